// Package testcert makes throwaway certificate authorities and node
// certificates for the tests of TLS paths (NBD's STARTTLS, the replication
// link, cluster.tls in a config file). It is for tests only: the keys are
// generated per call and nothing is stored.
package testcert
