package agentproto

import "strings"

// Plug is one line of a list action's output: a port (plug) and its alias.
type Plug struct {
	Port  string `json:"port"`
	Alias string `json:"alias,omitempty"`
}

// ParseList reads a list (or list-status) action's output: one
// "port<sep>alias[<sep>status]" per line. Lines without the separator, such
// as fencing.py's "NOTICE: List option is not working on this device yet"
// and its "N/A", are not plugs and are skipped.
func ParseList(out []byte, sep string) []Plug {
	if sep == "" {
		sep = ","
	}
	var plugs []Plug
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		port, rest, ok := strings.Cut(line, sep)
		if !ok || port == "" {
			continue
		}
		alias, _, _ := strings.Cut(rest, sep)
		plugs = append(plugs, Plug{Port: port, Alias: alias})
	}
	return plugs
}
