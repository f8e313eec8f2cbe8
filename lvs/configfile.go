package lvs

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"gopkg.in/yaml.v3"
)

// ParseConfig reads the lvs section of a configuration in YAML (the format
// `repctl lvs save` writes and `repctl lvs restore` reads): it starts from
// DefaultConfig, decodes with the same rules as the daemon (mapstructure
// keys, durations as strings), rejects unknown keys, and validates.
func ParseConfig(data []byte) (Config, error) {
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return Config{}, fmt.Errorf("%w: yaml: %v", ErrInvalidConfig, err)
	}
	cfg := DefaultConfig()
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:  mapstructure.StringToTimeDurationHookFunc(),
		ErrorUnused: true,
		Result:      &cfg,
	})
	if err != nil {
		return Config{}, err
	}
	if err := dec.Decode(raw); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// EncodeYAML writes c in the format ParseConfig reads, keys in field order,
// zero values omitted.
func (c Config) EncodeYAML() ([]byte, error) {
	n, _ := encodeNode(reflect.ValueOf(c), true)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

var durationType = reflect.TypeOf(time.Duration(0))

func scalar(v string, tag string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Value: v, Tag: tag}
}

// encodeNode returns the node for v and whether it should be written (zero
// values are left out, except behind a non-nil pointer or as list items).
func encodeNode(v reflect.Value, keep bool) (*yaml.Node, bool) {
	if v.Type() == durationType {
		d := time.Duration(v.Int())
		return scalar(d.String(), "!!str"), keep || d != 0
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil, false
		}
		return encodeNode(v.Elem(), true)
	case reflect.Struct:
		m := &yaml.Node{Kind: yaml.MappingNode}
		for i := range v.NumField() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("mapstructure"), ",")
			if name == "" || name == "-" {
				continue
			}
			if child, ok := encodeNode(v.Field(i), false); ok {
				m.Content = append(m.Content, scalar(name, "!!str"), child)
			}
		}
		return m, keep || len(m.Content) > 0
	case reflect.Slice:
		s := &yaml.Node{Kind: yaml.SequenceNode}
		for i := range v.Len() {
			child, _ := encodeNode(v.Index(i), true)
			s.Content = append(s.Content, child)
		}
		return s, keep || v.Len() > 0
	case reflect.String:
		return scalar(v.String(), "!!str"), keep || v.String() != ""
	case reflect.Bool:
		return scalar(strconv.FormatBool(v.Bool()), "!!bool"), keep || v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return scalar(strconv.FormatInt(v.Int(), 10), "!!int"), keep || v.Int() != 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return scalar(strconv.FormatUint(v.Uint(), 10), "!!int"), keep || v.Uint() != 0
	}
	panic(fmt.Sprintf("lvs: EncodeYAML cannot encode %s (a Config field of an unsupported kind)", v.Type()))
}
