// Package fencetest provides real fence devices for tests: a shell-script
// fence agent whose behaviour is set through files, an OpenIPMI ipmi_sim
// BMC whose chassis control can run commands on power off and on (to kill a
// node's replicad in a namespace test), and a small Redfish service over
// HTTPS.
//
// Nothing here is a mock: the script is run as a fence-agents program
// through its stdin protocol, ipmi_sim is the real simulator spoken to by
// the real fence_ipmilan and ipmitool, and the Redfish service speaks HTTP
// with TLS and basic authentication.
package fencetest
