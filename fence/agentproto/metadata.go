package agentproto

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// MaxMetadataSize bounds the metadata XML ParseMetadata accepts. Real agents
// print 5-30 KiB.
const MaxMetadataSize = 1 << 20

// Metadata is what an agent prints for the metadata action
// (fence-agents lib/metadata.rng): its name, parameters and actions.
type Metadata struct {
	XMLName    xml.Name    `xml:"resource-agent" json:"-"`
	Name       string      `xml:"name,attr" json:"name"`
	ShortDesc  string      `xml:"shortdesc,attr" json:"shortdesc,omitempty"`
	LongDesc   string      `xml:"longdesc" json:"longdesc,omitempty"`
	Parameters []Parameter `xml:"parameters>parameter" json:"parameters"`
	Actions    []ActionDoc `xml:"actions>action" json:"actions"`
}

// Parameter is one <parameter> of the metadata.
type Parameter struct {
	Name       string  `xml:"name,attr" json:"name"`
	Unique     string  `xml:"unique,attr,omitempty" json:"-"`
	Required   string  `xml:"required,attr,omitempty" json:"-"`
	Deprecated string  `xml:"deprecated,attr,omitempty" json:"-"`
	Obsoletes  string  `xml:"obsoletes,attr,omitempty" json:"obsoletes,omitempty"`
	Content    Content `xml:"content" json:"content"`
	ShortDesc  string  `xml:"shortdesc" json:"shortdesc,omitempty"`
}

// Content is a parameter's type, default and (for select) options.
type Content struct {
	Type    string   `xml:"type,attr" json:"type"`
	Default string   `xml:"default,attr,omitempty" json:"default,omitempty"`
	Options []Option `xml:"option" json:"options,omitempty"`
}

// Option is one allowed value of a select parameter.
type Option struct {
	Value string `xml:"value,attr" json:"value"`
}

// ActionDoc is one <action> the agent supports.
type ActionDoc struct {
	Name      string `xml:"name,attr" json:"name"`
	Automatic string `xml:"automatic,attr,omitempty" json:"-"`
	OnTarget  string `xml:"on_target,attr,omitempty" json:"-"`
}

// Content types fencing.py emits.
var contentTypes = []string{"string", "boolean", "integer", "second", "select"}

var paramNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
var actionNameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

// IsRequired reports the required="1" attribute.
func (p Parameter) IsRequired() bool { return p.Required == "1" }

// IsDeprecated reports the deprecated="1" attribute.
func (p Parameter) IsDeprecated() bool { return p.Deprecated == "1" }

// ParseMetadata decodes and validates metadata XML. Every problem found is
// reported, each naming the element it is about, wrapped in ErrBadMetadata.
func ParseMetadata(b []byte) (*Metadata, error) {
	if len(b) > MaxMetadataSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrBadMetadata, len(b), MaxMetadataSize)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("%w: empty output (does the agent implement the metadata action?)", ErrBadMetadata)
	}
	var m Metadata
	d := xml.NewDecoder(bytes.NewReader(b))
	// fencing.py writes <?xml version="1.0" ?> without an encoding; tolerate
	// a declared one by passing bytes through unchanged.
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	if err := d.Decode(&m); err != nil {
		var se *xml.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%w: XML syntax error on line %d: %s", ErrBadMetadata, se.Line, se.Msg)
		}
		return nil, fmt.Errorf("%w: %v", ErrBadMetadata, err)
	}
	// Anything after the root element other than whitespace, comments or
	// processing instructions means the output was not one document.
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: after </resource-agent>: %v", ErrBadMetadata, err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, fmt.Errorf("%w: text after </resource-agent>", ErrBadMetadata)
			}
		case xml.Comment, xml.ProcInst, xml.Directive:
		default:
			return nil, fmt.Errorf("%w: a second element after </resource-agent>", ErrBadMetadata)
		}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the rules of lib/metadata.rng that matter to replicad and
// reports all broken ones.
func (m *Metadata) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrBadMetadata}, args...)...))
	}
	if m.Name == "" {
		bad("resource-agent has no name attribute")
	}
	seen := map[string]int{}
	for i, p := range m.Parameters {
		where := fmt.Sprintf("parameters[%d]", i)
		if p.Name == "" {
			bad("%s: no name attribute", where)
			continue
		}
		where = fmt.Sprintf("parameters[%d] (%q)", i, p.Name)
		if !paramNameRE.MatchString(p.Name) {
			bad("%s: name has characters other than letters, digits, '.', '-' and '_'", where)
		}
		// Agents list aliases that differ only in '-' versus '_'
		// (fence_redfish: redfish-uri and redfish_uri), so only exact
		// repeats are an error.
		if j, dup := seen[p.Name]; dup {
			bad("%s: same name as parameters[%d]", where, j)
		} else {
			seen[p.Name] = i
		}
		for attr, v := range map[string]string{"unique": p.Unique, "required": p.Required, "deprecated": p.Deprecated} {
			if v != "" && v != "0" && v != "1" {
				bad("%s: %s=%q, want 0 or 1", where, attr, v)
			}
		}
		c := p.Content
		if !slices.Contains(contentTypes, c.Type) {
			bad("%s: content type %q, want one of %s", where, c.Type, strings.Join(contentTypes, ", "))
			continue
		}
		if c.Type == "select" && len(c.Options) == 0 {
			bad("%s: select content without options", where)
		}
		if c.Type != "select" && len(c.Options) != 0 {
			bad("%s: %s content with options", where, c.Type)
		}
		if c.Default != "" {
			if err := checkValue(c, c.Default); err != nil {
				bad("%s: default %v", where, err)
			}
		}
	}
	seenAct := map[string]int{}
	for i, a := range m.Actions {
		if !actionNameRE.MatchString(a.Name) {
			bad("actions[%d]: name %q is not an action name", i, a.Name)
			continue
		}
		if j, dup := seenAct[a.Name]; dup {
			bad("actions[%d] (%q): same name as actions[%d]", i, a.Name, j)
		}
		seenAct[a.Name] = i
	}
	if len(m.Actions) == 0 {
		bad("no <actions>")
	}
	return errors.Join(errs...)
}

// Supports reports whether the agent lists action.
func (m *Metadata) Supports(action string) bool {
	return slices.ContainsFunc(m.Actions, func(a ActionDoc) bool { return a.Name == action })
}

// Param finds a parameter by name, treating "-" and "_" alike (an exact
// match wins over an alias).
func (m *Metadata) Param(name string) (Parameter, bool) {
	for _, p := range m.Parameters {
		if p.Name == name {
			return p, true
		}
	}
	n := NormalizeName(name)
	for _, p := range m.Parameters {
		if NormalizeName(p.Name) == n {
			return p, true
		}
	}
	return Parameter{}, false
}

// reservedParams are set by whoever runs the agent, never by configuration.
var reservedParams = []string{"action", "option", "nodename", "port", "plug"}

// IsReserved reports whether name is an argument the caller of an agent sets
// itself (action, port, plug, nodename, option).
func IsReserved(name string) bool { return slices.Contains(reservedParams, NormalizeName(name)) }

// CheckParams checks configured values against the metadata: every name must
// be a parameter of the agent, and values must fit its content type. Missing
// required parameters are reported too, except the reserved ones.
func (m *Metadata) CheckParams(params map[string]string) []error {
	var errs []error
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		p, ok := m.Param(n)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: agent %s has no parameter %q", n, m.Name, n))
			continue
		}
		if err := checkValue(p.Content, params[n]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
	}
	have := map[string]bool{}
	for n := range params {
		have[NormalizeName(n)] = true
	}
	// A parameter and the one it obsoletes (username/login) stand in for
	// each other: fence_redfish marks both required.
	replacedBy := map[string]bool{}
	for _, p := range m.Parameters {
		if p.Obsoletes != "" && have[NormalizeName(p.Name)] {
			replacedBy[NormalizeName(p.Obsoletes)] = true
		}
	}
	for _, p := range m.Parameters {
		if !p.IsRequired() || IsReserved(p.Name) || have[NormalizeName(p.Name)] || replacedBy[NormalizeName(p.Name)] {
			continue
		}
		if p.Obsoletes != "" && have[NormalizeName(p.Obsoletes)] {
			continue
		}
		errs = append(errs, fmt.Errorf("%s: required by agent %s but not set", p.Name, m.Name))
	}
	return errs
}

func checkValue(c Content, v string) error {
	switch c.Type {
	case "integer":
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
	case "second":
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			return fmt.Errorf("%q is not a number of seconds", v)
		}
	case "boolean":
		switch strings.ToLower(v) {
		case "0", "1", "yes", "no", "on", "off", "true", "false":
		default:
			return fmt.Errorf("%q is not a boolean (want 1/0, yes/no, on/off, true/false)", v)
		}
	case "select":
		if !slices.ContainsFunc(c.Options, func(o Option) bool { return o.Value == v }) {
			opts := make([]string, len(c.Options))
			for i, o := range c.Options {
				opts[i] = o.Value
			}
			return fmt.Errorf("%q is not one of %s", v, strings.Join(opts, ", "))
		}
	}
	return nil
}

// Marshal renders m as metadata XML, the way a native agent answers the
// metadata action.
func (m *Metadata) Marshal() ([]byte, error) {
	out, err := xml.MarshalIndent(m, "", "\t")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(out, '\n')...), nil
}
