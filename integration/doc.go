// Package integration runs replicad as real processes against real peers
// from Debian's packages: nbdinfo, nbdcopy, qemu-io, fio, nbdfuse with loop
// devices and ext4, nbd-client where the kernel has the nbd module, and
// fencing through ipmi_sim BMCs with fence_ipmilan between nodes in network
// namespaces (netns_test.go builds them). Tests
// that need a tool skip without it (and fail under CI=true, where the test
// script installs everything); tests that need root skip when not root.
package integration
