package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"
)

// ErrNotRunning is returned by every Client call when nothing listens on
// the control socket.
var ErrNotRunning = errors.New("replicad is not running")

// APIError is an error response from the daemon.
type APIError struct {
	Status int
	Body   Error
}

func (e *APIError) Error() string { return e.Body.Message }

// Hint is what the daemon suggests doing next, if anything.
func (e *APIError) Hint() string { return e.Body.Hint }

// Client talks to replicad's control socket.
type Client struct {
	Socket string
	hc     *http.Client
}

// NewClient returns a client for the socket path.
func NewClient(socket string) *Client {
	return &Client{
		Socket: socket,
		hc: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			},
			MaxIdleConns: 1,
		}},
	}
}

// Do sends a request with an optional JSON body and decodes the JSON answer
// into out (if non-nil). Subsystems add endpoints without changing Client.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://replicad"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// The daemon names requesters in logs and the fence history.
	req.Header.Set("User-Agent", UserAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w (no daemon listens on %s)", ErrNotRunning, c.Socket)
		}
		return fmt.Errorf("control socket %s: %w", c.Socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		e := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(data, &e.Body) != nil || e.Body.Message == "" {
			e.Body.Message = fmt.Sprintf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}

// Stream sends a GET and calls f for each JSON value the daemon streams
// (newline-delimited), until the context ends or the stream closes.
func (c *Client) Stream(ctx context.Context, path string, f func(json.RawMessage) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://replicad"+path, nil)
	if err != nil {
		return err
	}
	hc := *c.hc
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w (no daemon listens on %s)", ErrNotRunning, c.Socket)
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(data, &e.Body) != nil {
			e.Body.Message = string(data)
		}
		return e
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var m json.RawMessage
		if err := dec.Decode(&m); err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := f(m); err != nil {
			return err
		}
	}
}

// Status fetches the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.Do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// CreateMD initialises a volume's metadata.
func (c *Client) CreateMD(ctx context.Context, volume string, force bool) (CreateMDResponse, error) {
	var r CreateMDResponse
	return r, c.Do(ctx, http.MethodPost, "/v1/volumes/"+volume+"/create-md", CreateMDRequest{Force: force}, &r)
}

// Up attaches and serves a volume.
func (c *Client) Up(ctx context.Context, volume string) (Volume, error) {
	var v Volume
	return v, c.Do(ctx, http.MethodPost, "/v1/volumes/"+volume+"/up", nil, &v)
}

// Down stops serving and detaches a volume.
func (c *Client) Down(ctx context.Context, volume string) (Volume, error) {
	var v Volume
	return v, c.Do(ctx, http.MethodPost, "/v1/volumes/"+volume+"/down", nil, &v)
}

// UserAgent is the User-Agent of every Client request.
const UserAgent = "repctl"

// DefaultTimeout bounds a CLI call that does not wait for long operations.
const DefaultTimeout = 60 * time.Second
