package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/replicad/replicad/fence"
	"github.com/replicad/replicad/internal/bytesize"
	"github.com/replicad/replicad/internal/daemon"
)

// loadConfig reads the daemon's configuration: defaults, then the YAML
// document (file or reader), then REPLICAD_* environment variables, then
// the flags that were set. Unknown keys are errors.
func loadConfig(path string, doc io.Reader, flags *pflag.FlagSet) (daemon.Config, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	v.SetEnvPrefix("REPLICAD")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_", "-", "_"))
	v.AutomaticEnv()
	def := daemon.DefaultConfig()
	registerDefaults(v, "", reflect.ValueOf(def))
	switch {
	case doc != nil:
		if err := v.ReadConfig(doc); err != nil {
			return def, fmt.Errorf("config: %w", err)
		}
	case path != "":
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			var nf viper.ConfigFileNotFoundError
			if errors.As(err, &nf) || errors.Is(err, os.ErrNotExist) {
				return def, fmt.Errorf("config file %s not found (write one, see docs/configuration.md, or try `replicad demo`)", path)
			}
			return def, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	if flags != nil {
		for key, name := range flagKeys {
			if f := flags.Lookup(name); f != nil && f.Changed {
				v.Set(key, f.Value.String())
			}
		}
	}
	fc := fileConfig{Config: def}
	err := v.UnmarshalExact(&fc, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		byteSizeHook,
		mapstructure.StringToSliceHookFunc(","),
	)))
	cfg := fc.Config
	if err != nil {
		return cfg, fmt.Errorf("config: %s", cleanDecodeError(err))
	}
	if fc.Fence != nil {
		f, err := fence.Decode(fc.Fence)
		if err != nil {
			return cfg, fenceDecodeError(err)
		}
		cfg.Fence = &f
	}
	if cfg.LVS, err = decodeLVS(v, fc.LVS); err != nil {
		return cfg, err
	}
	for i := range cfg.Volumes {
		cfg.Volumes[i] = withVolumeDefaults(cfg.Volumes[i])
	}
	return cfg, cfg.Validate()
}

// fileConfig is what the configuration decodes into: the daemon's Config
// and, kept raw, the fence section. fence.Decode turns that into a
// fence.Config, starting each device from its defaults and refusing unknown
// keys and durations without units. A missing (or empty) fence section
// leaves fencing unconfigured.
type fileConfig struct {
	daemon.Config `mapstructure:",squash"`
	Fence         any `mapstructure:"fence"`
	LVS           any `mapstructure:"lvs"`
}

// fenceDecodeError lists fence.Decode's problems the way Validate lists
// the rest: one field per line.
func fenceDecodeError(err error) error {
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		lines = append(lines, strings.TrimPrefix(l, fence.ErrInvalidConfig.Error()+": "))
	}
	return fmt.Errorf("invalid configuration:\n  %s", strings.Join(lines, "\n  "))
}

// flagKeys maps config keys to the run command's flags.
var flagKeys = map[string]string{
	"log.level":      "log-level",
	"control.socket": "control-socket",
	"metrics.listen": "metrics-listen",
	"node.name":      "node-name",
}

// withVolumeDefaults fills zero fields of a volume from DefaultVolume: a
// YAML list element starts empty, not from the defaults.
func withVolumeDefaults(v daemon.VolumeConfig) daemon.VolumeConfig {
	d := daemon.DefaultVolume()
	v.Meta = cmp.Or(v.Meta, d.Meta)
	v.MaxPeers = cmp.Or(v.MaxPeers, d.MaxPeers)
	v.BitmapGranularity = cmp.Or(v.BitmapGranularity, d.BitmapGranularity)
	v.ALExtentSize = cmp.Or(v.ALExtentSize, d.ALExtentSize)
	v.ALExtents = cmp.Or(v.ALExtents, d.ALExtents)
	r, dr := &v.Replication, d.Replication
	r.Protocol = strings.ToUpper(cmp.Or(r.Protocol, dr.Protocol))
	r.Fencing = cmp.Or(r.Fencing, dr.Fencing)
	r.Quorum = cmp.Or(r.Quorum, dr.Quorum)
	r.OnNoQuorum = cmp.Or(r.OnNoQuorum, dr.OnNoQuorum)
	r.Compression = cmp.Or(r.Compression, dr.Compression)
	r.Timeout = cmp.Or(r.Timeout, dr.Timeout)
	r.After0Pri = cmp.Or(r.After0Pri, dr.After0Pri)
	r.After1Pri = cmp.Or(r.After1Pri, dr.After1Pri)
	r.After2Pri = cmp.Or(r.After2Pri, dr.After2Pri)
	r.PingInterval = cmp.Or(r.PingInterval, dr.PingInterval)
	r.PingTimeout = cmp.Or(r.PingTimeout, dr.PingTimeout)
	r.ConnectInterval = cmp.Or(r.ConnectInterval, dr.ConnectInterval)
	return v
}

// registerDefaults tells viper every scalar key, so that environment
// variables can override keys the file does not mention.
func registerDefaults(v *viper.Viper, prefix string, rv reflect.Value) {
	t := rv.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
		if tag == "-" || !f.IsExported() {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		fv := rv.Field(i)
		switch {
		case f.Type.Kind() == reflect.Struct && f.Type.String() != "time.Duration":
			registerDefaults(v, key, fv)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			// Lists of structs (volumes) come only from the file.
		default:
			v.SetDefault(key, fv.Interface())
		}
	}
}

// byteSizeHook lets integer fields take sizes such as "32MiB".
func byteSizeHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String {
		return data, nil
	}
	switch to.Kind() {
	case reflect.Int, reflect.Int64, reflect.Uint32, reflect.Uint64:
	default:
		return data, nil
	}
	s := data.(string)
	n, err := bytesize.Parse(s)
	if err != nil {
		return nil, err
	}
	if to.Kind() == reflect.Uint32 && n > 1<<32-1 {
		return nil, fmt.Errorf("%s is too large for this field (at most 4 GiB)", s)
	}
	return n, nil
}

func cleanDecodeError(err error) string {
	s := err.Error()
	s = strings.ReplaceAll(s, "decoding failed due to the following error(s):\n\n", "")
	return strings.ReplaceAll(s, "\n", "\n  ")
}

// newLogger builds the slog logger the config asks for.
func newLogger(c daemon.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
