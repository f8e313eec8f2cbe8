package nftrules

import "errors"

var (
	// ErrUnsupported is returned by Layout.ServiceRules and BuildBatch for a
	// service this backend cannot express (check model.CheckBackend first).
	ErrUnsupported = errors.New("not expressible in nftables")
)
