// Package testenv holds the rules every replicad test follows about its
// environment: what to do when not root, when a Debian tool is missing, and
// how randomized tests report and accept their seed.
//
// Outside CI a missing requirement skips the test with a message naming it.
// Under CI=true (the CI runner installs every tool) a missing tool fails the
// test instead, so a broken install can never pass as a green run.
package testenv
