package lvs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
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
	return DecodeConfig(raw)
}

// DecodeConfig is ParseConfig for a document already read into maps and
// lists (the daemon's config loader hands it the lvs section): it starts
// from DefaultConfig, decodes, and validates. Unknown keys and values of
// the wrong type are a *ValidationError naming each field
// ("lvs.services[0].check.typ: unknown key").
func DecodeConfig(raw any) (Config, error) {
	cfg := DefaultConfig()
	if raw == nil {
		return cfg, cfg.Validate()
	}
	unknown, bad := decodeStrict(raw, &cfg, "lvs.")
	if len(bad) > 0 {
		// Validating a half-decoded section would report its holes.
		return Config{}, &ValidationError{Problems: append(unknown, bad...)}
	}
	_, problems := cfg.compile()
	if problems = append(unknown, problems...); len(problems) > 0 {
		return Config{}, &ValidationError{Problems: problems}
	}
	return cfg, nil
}

// decodeStrict decodes raw onto out and returns its problems, each named
// by its field with prefix: unknown keys, and values of the wrong type.
func decodeStrict(raw any, out any, prefix string) (unknown, bad []string) {
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook: mapstructure.StringToTimeDurationHookFunc(),
		Result:     out,
	})
	if err != nil {
		panic("lvs: invalid mapstructure decoder configuration: " + err.Error())
	}
	unknown = unknownKeys(raw, reflect.TypeOf(out).Elem(), prefix, nil)
	if err := dec.Decode(raw); err != nil {
		bad = decodeProblems(err, prefix, nil)
		slices.Sort(bad)
	}
	return unknown, bad
}

// unknownKeys lists the keys of raw that no field of t takes, with their
// paths. (mapstructure's own check stops at a struct that has another
// error, so a typo could hide behind a bad value.)
func unknownKeys(raw any, t reflect.Type, path string, out []string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && t != durationType:
		m, ok := raw.(map[string]any)
		if !ok {
			return out
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ",")
			if name != "" && name != "-" {
				fields[name] = t.Field(i).Type
			}
		}
		keys := slices.Sorted(maps.Keys(m))
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				out = append(out, path+k+": unknown key")
				continue
			}
			out = unknownKeys(m[k], ft, path+k+".", out)
		}
	case t.Kind() == reflect.Slice:
		l, ok := raw.([]any)
		if !ok {
			return out
		}
		base := strings.TrimSuffix(path, ".")
		for i, e := range l {
			out = unknownKeys(e, t.Elem(), fmt.Sprintf("%s[%d].", base, i), out)
		}
	}
	return out
}

// decodeProblems flattens mapstructure's joined errors into one line per
// field.
func decodeProblems(err error, prefix string, out []string) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = decodeProblems(e, prefix, out)
		}
		return out
	}
	var de *mapstructure.DecodeError
	if errors.As(err, &de) {
		if inner := de.Unwrap(); inner != nil {
			if _, nested := inner.(interface{ Unwrap() []error }); nested {
				return decodeProblems(inner, prefix, out)
			}
			name := de.Name()
			if name == "" {
				name = "(top level)"
			} else {
				name = prefix + name
			}
			return append(out, name+": "+inner.Error())
		}
	}
	return append(out, strings.TrimSuffix(prefix, ".")+": "+err.Error())
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

// JSON: the control API carries configuration objects with the same keys
// and duration strings as the YAML file, so `repctl lvs` payloads, `save`
// output and the config file read alike.

// MarshalJSON writes c with its config-file keys (zero values omitted,
// durations as "5s").
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(plain(reflect.ValueOf(c))) }

// UnmarshalJSON decodes config-file keys onto c (keys not present keep
// their value; unknown keys are an error). It does not validate.
func (c *Config) UnmarshalJSON(b []byte) error { return decodeJSON(b, c) }

// MarshalJSON writes s with its config-file keys.
func (s ServiceConfig) MarshalJSON() ([]byte, error) { return json.Marshal(plain(reflect.ValueOf(s))) }

// UnmarshalJSON decodes config-file keys onto s.
func (s *ServiceConfig) UnmarshalJSON(b []byte) error { return decodeJSON(b, s) }

// MarshalJSON writes r with its config-file keys.
func (r RealServerConfig) MarshalJSON() ([]byte, error) {
	return json.Marshal(plain(reflect.ValueOf(r)))
}

// UnmarshalJSON decodes config-file keys onto r.
func (r *RealServerConfig) UnmarshalJSON(b []byte) error { return decodeJSON(b, r) }

func decodeJSON(b []byte, out any) error {
	var raw any
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("%w: json: %v", ErrInvalidConfig, err)
	}
	if unknown, bad := decodeStrict(raw, out, ""); len(unknown)+len(bad) > 0 {
		return &ValidationError{Problems: append(unknown, bad...)}
	}
	return nil
}

// plain converts a config value to maps, slices and scalars keyed by the
// mapstructure tags, the way encodeNode does for YAML.
func plain(v reflect.Value) any {
	n, _ := encodeNode(v, true)
	return nodeToPlain(n)
}

func nodeToPlain(n *yaml.Node) any {
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i < len(n.Content); i += 2 {
			m[n.Content[i].Value] = nodeToPlain(n.Content[i+1])
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, c := range n.Content {
			s[i] = nodeToPlain(c)
		}
		return s
	}
	switch n.Tag {
	case "!!int":
		i, _ := strconv.ParseInt(n.Value, 10, 64)
		return i
	case "!!bool":
		return n.Value == "true"
	}
	return n.Value
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
