package main

import (
	"reflect"

	"github.com/spf13/viper"

	"github.com/replicad/replicad/lvs"
)

var lvsConfigType = reflect.TypeOf(lvs.Config{})

// lvsHook hands the lvs section to lvs.DecodeConfig, so that the config
// file and `repctl lvs restore` read it by the same rules: the library's
// defaults, unknown keys rejected and every problem named by its field
// ("lvs.services[0].scheduler: ..."). Environment variables and flags do
// not reach it: the section comes only from the file.
func lvsHook(from, to reflect.Type, data any) (any, error) {
	if to != lvsConfigType || from == lvsConfigType {
		return data, nil
	}
	return lvs.DecodeConfig(data)
}

// lvsSection turns an lvs section that decoded to nothing ("lvs:" or
// "lvs: {}", which viper drops) into the defaults: any lvs key enables the
// load balancer, with no services until some are added.
func lvsSection(v *viper.Viper, decoded *lvs.Config) *lvs.Config {
	if decoded == nil && v.InConfig("lvs") {
		def := lvs.DefaultConfig()
		return &def
	}
	return decoded
}
