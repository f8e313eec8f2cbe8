package agentproto

import (
	"bytes"
	"fmt"
	"strings"
)

// Action names of the fence-agents API.
const (
	ActionOff         = "off"
	ActionOn          = "on"
	ActionReboot      = "reboot"
	ActionStatus      = "status"
	ActionList        = "list"
	ActionListStatus  = "list-status"
	ActionMonitor     = "monitor"
	ActionMetadata    = "metadata"
	ActionValidateAll = "validate-all"
)

// Arg is one name=value line.
type Arg struct {
	Name  string
	Value string
}

// MaxArgsSize bounds what ParseArgs accepts; agents never need more.
const MaxArgsSize = 1 << 20

// EncodeArgs renders args as stdin lines in order. Because an agent keeps the
// last value of a name, callers put the values they must control (action,
// port) last.
func EncodeArgs(args []Arg) ([]byte, error) {
	var b bytes.Buffer
	for i, a := range args {
		if err := checkArg(a.Name, a.Value); err != nil {
			return nil, fmt.Errorf("argument %d (%q): %w", i, a.Name, err)
		}
		b.WriteString(a.Name)
		b.WriteByte('=')
		b.WriteString(a.Value)
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// CheckName reports whether name can be sent as an argument name.
func CheckName(name string) error { return checkArg(name, "") }

// CheckValue reports whether v can be sent as an argument value.
func CheckValue(v string) error { return checkArg("x", v) }

func checkArg(name, value string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrBadArg)
	case strings.ContainsAny(name, "=\n\r\x00 \t"):
		return fmt.Errorf("%w: name contains '=', whitespace or NUL", ErrBadArg)
	case name[0] == '#':
		return fmt.Errorf("%w: name starts with '#' (a comment line)", ErrBadArg)
	case strings.ContainsAny(value, "\n\r\x00"):
		return fmt.Errorf("%w: value contains a newline or NUL", ErrBadArg)
	case len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"':
		// fencing.py strips one pair of surrounding quotes; a value that
		// is itself quoted would arrive changed.
		return fmt.Errorf("%w: value is wrapped in double quotes, which agents strip", ErrBadArg)
	case strings.TrimSpace(value) != value:
		// fencing.py strips each line, so trailing blanks would be lost.
		return fmt.Errorf("%w: value has leading or trailing whitespace, which agents strip", ErrBadArg)
	}
	return nil
}

// NormalizeName maps an argument name to the form fencing.py compares:
// "-" and "_" are the same.
func NormalizeName(name string) string { return strings.ReplaceAll(name, "-", "_") }

// ParseArgs reads stdin lines the way fencing.py does: lines are trimmed,
// blank lines and lines starting with "#" are skipped, a line without "="
// has an empty value, one pair of surrounding double quotes is removed, and
// the last value of a (normalized) name wins.
func ParseArgs(b []byte) (map[string]string, error) {
	if len(b) > MaxArgsSize {
		return nil, fmt.Errorf("%w: %d bytes of arguments, limit %d", ErrBadArg, len(b), MaxArgsSize)
	}
	out := make(map[string]string)
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		name, value, _ := strings.Cut(line, "=")
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		if name == "" {
			return nil, fmt.Errorf("%w: line %q has no name", ErrBadArg, line)
		}
		out[NormalizeName(name)] = value
	}
	return out, nil
}
