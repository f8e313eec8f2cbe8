package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/viper"

	"github.com/replicad/replicad/lvs"
)

// decodeLVS reads the lvs section with lvs.DecodeConfig, so that the
// config file and `repctl lvs restore` read it by the same rules: the
// library's defaults, unknown keys rejected, every problem named by its
// field ("lvs.services[0].scheduler: ..."). No section means load
// balancing is off; "lvs: {}" (which viper drops, hence InConfig) turns it
// on with no services. Environment variables and flags do not reach it.
func decodeLVS(v *viper.Viper, raw any) (*lvs.Config, error) {
	if raw == nil && !v.InConfig("lvs") {
		return nil, nil
	}
	cfg, err := lvs.DecodeConfig(raw)
	var ve *lvs.ValidationError
	switch {
	case errors.As(err, &ve):
		// The same shape as Validate's report.
		return nil, fmt.Errorf("invalid configuration:\n  %s", strings.Join(ve.Problems, "\n  "))
	case err != nil:
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	return &cfg, nil
}
