package fence

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"gopkg.in/yaml.v3"
)

// Decode turns the raw fence section (what viper's Get("fence") returns, or
// YAML decoded into map[string]any) into a Config on top of DefaultConfig,
// each device on top of DefaultDevice. Unknown keys are errors, and a
// duration written as a bare number is refused (60 would mean 60ns). The
// daemon must decode through here rather than viper.Unmarshal so that
// devices get their defaults.
func Decode(raw any) (Config, error) {
	cfg := DefaultConfig()
	if raw == nil {
		return cfg, nil
	}
	norm, err := normalize(raw, "fence")
	if err != nil {
		return cfg, err
	}
	m, ok := norm.(map[string]any)
	if !ok {
		return cfg, fmt.Errorf("%w: fence: want a mapping, got %T", ErrInvalidConfig, raw)
	}
	if devs, ok := m["devices"].([]any); ok {
		cfg.Devices = make([]DeviceConfig, len(devs))
		for i := range cfg.Devices {
			cfg.Devices[i] = DefaultDevice()
		}
	}
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:           &cfg,
		ErrorUnused:      true,
		WeaklyTypedInput: true,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			durationHook,
		),
	})
	if err != nil {
		return cfg, err
	}
	if err := dec.Decode(m); err != nil {
		return cfg, decodeProblems(err, cfg)
	}
	return cfg, nil
}

// decodeProblems turns mapstructure's error tree into one error per field,
// named as Validate names them ("fence.devices[0] (ipmi-a).timeout: ..."),
// each wrapping ErrInvalidConfig.
func decodeProblems(err error, cfg Config) error {
	var errs []error
	var walk func(error)
	walk = func(e error) {
		de, ok := e.(*mapstructure.DecodeError)
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
			return
		case interface{ Unwrap() error }:
			if !ok && u.Unwrap() != nil {
				walk(u.Unwrap())
				return
			}
		}
		if !ok {
			errs = append(errs, fmt.Errorf("%w: fence: %v", ErrInvalidConfig, e))
			return
		}
		msg := de.Unwrap().Error()
		if keys, ok := strings.CutPrefix(msg, "has invalid keys: "); ok {
			msg = "unknown key(s) " + keys + " (see docs/fencing.md for the keys)"
		}
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalidConfig, fieldName(de.Name(), cfg), msg))
	}
	walk(err)
	return errors.Join(errs...)
}

var deviceIndex = regexp.MustCompile(`^devices\[(\d+)\]`)

// fieldName prefixes a mapstructure field path with "fence" and adds a
// device's name after its index when it decoded.
func fieldName(name string, cfg Config) string {
	if name == "" {
		return "fence"
	}
	if m := deviceIndex.FindStringSubmatch(name); m != nil {
		if i, err := strconv.Atoi(m[1]); err == nil && i < len(cfg.Devices) && cfg.Devices[i].Name != "" {
			name = m[0] + " (" + cfg.Devices[i].Name + ")" + name[len(m[0]):]
		}
	}
	return "fence." + name
}

// normalize copies raw with every mapping turned into map[string]any, and
// refuses keys that are not strings (mapstructure panics on them).
func normalize(raw any, path string) (any, error) {
	switch v := raw.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			n, err := normalize(x, path+"."+k)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("%w: %s: key %v (%T) is not a string", ErrInvalidConfig, path, k, k)
			}
			n, err := normalize(x, path+"."+ks)
			if err != nil {
				return nil, err
			}
			out[ks] = n
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			n, err := normalize(x, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	}
	return raw, nil
}

// ParseYAML decodes the fence section written as YAML (the mapping under
// "fence:" in replicad's configuration file).
func ParseYAML(b []byte) (Config, error) {
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return DefaultConfig(), fmt.Errorf("%w: fence: YAML: %v", ErrInvalidConfig, err)
	}
	if raw == nil {
		return DefaultConfig(), nil
	}
	return Decode(raw)
}

var durationType = reflect.TypeOf(time.Duration(0))

func durationHook(from, to reflect.Type, v any) (any, error) {
	if to != durationType {
		return v, nil
	}
	switch from.Kind() {
	case reflect.String:
		d, err := time.ParseDuration(v.(string))
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration (want e.g. 500ms, 20s, 2m)", v)
		}
		return d, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return nil, fmt.Errorf("%v has no unit; write a duration such as %vs", v, v)
	}
	return v, nil
}
