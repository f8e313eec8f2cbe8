package fence

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/replicad/replicad/fence/agentproto"
)

// RedfishAgent fences through a BMC's Redfish API over HTTPS with basic
// authentication: ComputerSystem.Reset with ResetType ForceOff or On, and
// the power state read from the ComputerSystem resource's PowerState.
//
// The system is found from the service root (/redfish/v1 → Systems →
// Members): the member whose last path segment equals the port (a host-map
// port), or, for a node of the host list, RedfishConfig.System or else the
// BMC's only system.
type RedfishAgent struct {
	// hosts are the device's host-list nodes: their port (the node name)
	// means "this BMC's system", not a system Id.
	hosts  map[string]bool
	base   *url.URL
	user   string
	pass   string
	system string
	client *http.Client
}

var (
	_ Agent     = (*RedfishAgent)(nil)
	_ Lister    = (*RedfishAgent)(nil)
	_ Describer = (*RedfishAgent)(nil)
	_ io.Closer = (*RedfishAgent)(nil)
)

// maxRedfishBody bounds a Redfish response read.
const maxRedfishBody = 1 << 20

// NewRedfishAgent builds the agent from a validated RedfishConfig, reading
// its CA file and password file. hosts is the device's host list.
func NewRedfishAgent(c RedfishConfig, hosts []string) (*RedfishAgent, error) {
	base, err := url.Parse(c.Address)
	if err != nil {
		return nil, fmt.Errorf("redfish address: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.Insecure}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redfish ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redfish ca-file %s: no PEM certificate in it", c.CAFile)
		}
		tc.RootCAs = pool
	}
	pass := c.Password
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("redfish password-file: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
	}
	hs := map[string]bool{}
	for _, h := range hosts {
		hs[h] = true
	}
	return &RedfishAgent{
		hosts:  hs,
		base:   base,
		user:   c.Username,
		pass:   pass,
		system: c.System,
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: tc, Proxy: nil, MaxIdleConnsPerHost: 2}},
	}, nil
}

// Close drops idle connections.
func (a *RedfishAgent) Close() error {
	a.client.CloseIdleConnections()
	return nil
}

type odataRef struct {
	ID string `json:"@odata.id"`
}

type redfishSystem struct {
	ID         string `json:"Id"`
	PowerState string `json:"PowerState"`
	Actions    struct {
		Reset struct {
			Target  string   `json:"target"`
			Allowed []string `json:"ResetType@Redfish.AllowableValues"`
		} `json:"#ComputerSystem.Reset"`
	} `json:"Actions"`
}

// redfishError is the body of a Redfish error response.
type redfishError struct {
	Error struct {
		Code     string `json:"code"`
		Message  string `json:"message"`
		Extended []struct {
			Message string `json:"Message"`
		} `json:"@Message.ExtendedInfo"`
	} `json:"error"`
}

func (a *RedfishAgent) do(ctx context.Context, method, p string, body, out any) error {
	// Links come from the BMC; follow them only to the same BMC, so a
	// compromised or confused BMC cannot send our credentials elsewhere.
	ref, err := url.Parse(p)
	if err != nil || (ref.Host != "" && (ref.Host != a.base.Host || ref.Scheme != "https")) {
		return fmt.Errorf("%w: redfish: BMC returned link %q, want a path on %s", ErrAgentFailed, p, a.base.Host)
	}
	u := a.base.ResolveReference(ref)
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("%w: redfish %s %s: %v", ErrAgentFailed, method, p, err)
	}
	req.SetBasicAuth(a.user, a.pass)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-Version", "4.0")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("redfish %s %s: request abandoned: %w", method, p, context.Cause(ctx))
		}
		return fmt.Errorf("%w: redfish %s %s: %v", ErrAgentFailed, method, p, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxRedfishBody))
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("redfish %s %s: request abandoned: %w", method, p, context.Cause(ctx))
		}
		return fmt.Errorf("%w: redfish %s %s: reading response: %v", ErrAgentFailed, method, p, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		sentinel := ErrAgentFailed
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			sentinel = ErrLoginDenied
		}
		msg := resp.Status
		var re redfishError
		if json.Unmarshal(data, &re) == nil && re.Error.Message != "" {
			msg += ": " + re.Error.Message
			for _, e := range re.Error.Extended {
				if e.Message != "" {
					msg += "; " + e.Message
				}
			}
		}
		return fmt.Errorf("%w: redfish %s %s: %s", sentinel, method, p, msg)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%w: redfish %s %s: response is not the expected JSON: %v", ErrAgentFailed, method, p, err)
		}
	}
	return nil
}

// members lists the Systems collection.
func (a *RedfishAgent) members(ctx context.Context) ([]string, error) {
	var root struct {
		Systems odataRef `json:"Systems"`
	}
	if err := a.do(ctx, http.MethodGet, "/redfish/v1", nil, &root); err != nil {
		return nil, err
	}
	if root.Systems.ID == "" {
		return nil, fmt.Errorf("%w: redfish: service root has no Systems collection", ErrAgentFailed)
	}
	var coll struct {
		Members []odataRef `json:"Members"`
	}
	if err := a.do(ctx, http.MethodGet, root.Systems.ID, nil, &coll); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(coll.Members))
	for _, m := range coll.Members {
		if m.ID != "" {
			out = append(out, m.ID)
		}
	}
	return out, nil
}

// systemPath finds the ComputerSystem that port names.
func (a *RedfishAgent) systemPath(ctx context.Context, port string) (string, error) {
	if a.hosts[port] {
		port = ""
	}
	if a.system != "" && port == "" {
		return a.system, nil
	}
	ms, err := a.members(ctx)
	if err != nil {
		return "", err
	}
	if port == "" {
		if len(ms) != 1 {
			return "", fmt.Errorf("%w: redfish: %d systems (%s) and no port to choose one; set redfish.system or a host-map", ErrAgentFailed, len(ms), strings.Join(ms, ", "))
		}
		return ms[0], nil
	}
	for _, m := range ms {
		if path.Base(strings.TrimRight(m, "/")) == port {
			return m, nil
		}
	}
	return "", fmt.Errorf("%w: redfish: no system %q among %s", ErrAgentFailed, port, strings.Join(ms, ", "))
}

func (a *RedfishAgent) getSystem(ctx context.Context, port string) (string, redfishSystem, error) {
	p, err := a.systemPath(ctx, port)
	if err != nil {
		return "", redfishSystem{}, err
	}
	var s redfishSystem
	err = a.do(ctx, http.MethodGet, p, nil, &s)
	return p, s, err
}

// Power posts ComputerSystem.Reset with ForceOff (off) or On (on).
func (a *RedfishAgent) Power(ctx context.Context, action Action, port string) error {
	var reset string
	switch action {
	case ActionOff:
		reset = "ForceOff"
	case ActionOn:
		reset = "On"
	default:
		return fmt.Errorf("%w: power action %q", ErrUnsupported, action)
	}
	p, s, err := a.getSystem(ctx, port)
	if err != nil {
		return err
	}
	target := s.Actions.Reset.Target
	if target == "" {
		return fmt.Errorf("%w: redfish: %s has no #ComputerSystem.Reset action", ErrAgentFailed, p)
	}
	if len(s.Actions.Reset.Allowed) > 0 && !slices.Contains(s.Actions.Reset.Allowed, reset) {
		return fmt.Errorf("%w: redfish: %s allows ResetType %s, not %s", ErrUnsupported, p, strings.Join(s.Actions.Reset.Allowed, ", "), reset)
	}
	return a.do(ctx, http.MethodPost, target, map[string]string{"ResetType": reset}, nil)
}

// Status reads PowerState: "Off" is off; "On", "PoweringOn" and
// "PoweringOff" are on (not yet off).
func (a *RedfishAgent) Status(ctx context.Context, port string) (State, error) {
	p, s, err := a.getSystem(ctx, port)
	if err != nil {
		return StateUnknown, err
	}
	switch s.PowerState {
	case "Off":
		return StateOff, nil
	case "On", "PoweringOn", "PoweringOff", "Paused":
		return StateOn, nil
	}
	return StateUnknown, fmt.Errorf("%w: redfish: %s PowerState %q is not a power state", ErrAgentFailed, p, s.PowerState)
}

// Monitor reads the service root and the system list, which checks the
// address, the certificate and the login.
func (a *RedfishAgent) Monitor(ctx context.Context) error {
	if a.system != "" {
		var s redfishSystem
		return a.do(ctx, http.MethodGet, a.system, nil, &s)
	}
	_, err := a.members(ctx)
	return err
}

// List returns the systems as ports (the last path segment) with their
// paths as aliases.
func (a *RedfishAgent) List(ctx context.Context) ([]agentproto.Plug, error) {
	ms, err := a.members(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]agentproto.Plug, 0, len(ms))
	for _, m := range ms {
		out = append(out, agentproto.Plug{Port: path.Base(strings.TrimRight(m, "/")), Alias: m})
	}
	return out, nil
}

// Metadata describes the native agent in fence-agents form.
func (a *RedfishAgent) Metadata(context.Context) (*agentproto.Metadata, error) {
	return RedfishMetadata(), nil
}

// RedfishMetadata is the native Redfish agent's self-description.
func RedfishMetadata() *agentproto.Metadata {
	str := agentproto.Content{Type: "string"}
	return &agentproto.Metadata{
		Name:      "replicad-redfish",
		ShortDesc: "Native Redfish fence agent (ComputerSystem.Reset ForceOff/On over HTTPS)",
		LongDesc:  "Fences through a BMC's Redfish API. Off is ResetType ForceOff, on is On; power state is the ComputerSystem's PowerState. Configured under redfish: in the device.",
		Parameters: []agentproto.Parameter{
			{Name: "address", Required: "1", Content: str, ShortDesc: "https://host[:port] of the BMC"},
			{Name: "username", Required: "1", Content: str, ShortDesc: "Login name"},
			{Name: "password", Content: str, ShortDesc: "Login password"},
			{Name: "password-file", Content: str, ShortDesc: "File holding the password"},
			{Name: "system", Content: str, ShortDesc: "ComputerSystem path; empty to discover"},
			{Name: "ca-file", Content: str, ShortDesc: "PEM CA certificates for the BMC's certificate"},
			{Name: "insecure", Content: agentproto.Content{Type: "boolean", Default: "0"}, ShortDesc: "Skip certificate verification"},
		},
		Actions: []agentproto.ActionDoc{{Name: "on"}, {Name: "off"}, {Name: "reboot"}, {Name: "status"}, {Name: "list"}, {Name: "monitor"}, {Name: "metadata"}},
	}
}
