// Package topology decides which fence devices, in which order, fence a
// target node.
//
// A device can fence the targets in its host list (the port sent to the
// agent is the host name) and in its host map (the port is the mapped one).
// A target's levels are tried in order; every device of a level must
// succeed for the level to succeed. A target without explicit levels gets
// one level per device that can fence it, in configuration order, like
// Pacemaker without a fencing topology.
//
// The package is pure: Check finds every configuration mistake with its
// position so the caller can name the config field; a Table built from
// checked input answers Levels without errors.
package topology
