package nftrules

import "errors"

var (
	// ErrIDCollision is returned by Layout.ServiceRules and BuildBatch when
	// two real servers of one service hash to the same persistence id.
	ErrIDCollision = errors.New("real server id collision")

	// ErrUnsupported is returned by Layout.ServiceRules and BuildBatch for a
	// service this backend cannot express (check model.CheckBackend first).
	ErrUnsupported = errors.New("not expressible in nftables")
)
