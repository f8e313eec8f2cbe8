package wire

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"io"
)

// MySQL capability flags used by the login (include/mysql_com.h).
const (
	ClientLongPassword     = 0x00000001
	ClientProtocol41       = 0x00000200
	ClientSecureConnection = 0x00008000
	ClientPluginAuth       = 0x00080000
)

// MySQL first payload bytes.
const (
	mysqlOK          = 0x00
	mysqlAuthSwitch  = 0xfe
	mysqlErr         = 0xff
	mysqlAuthMore    = 0x01
	mysqlProtocolV10 = 0x0a
	// ComQuit ends a session.
	ComQuit = 0x01
)

// NativePasswordPlugin is the plugin whose scramble Scramble computes.
const NativePasswordPlugin = "mysql_native_password"

// ReadMySQLPacket reads one packet (3-byte little-endian length, sequence
// id, payload), refusing payloads longer than limit.
func ReadMySQLPacket(r io.Reader, limit int) (seq byte, payload []byte, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if n > limit {
		return 0, nil, fmt.Errorf("%w: mysql packet of %d bytes (limit %d)", ErrTooLarge, n, limit)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, fmt.Errorf("%w: mysql packet truncated: %v", ErrMalformed, err)
	}
	return hdr[3], payload, nil
}

// AppendMySQLPacket frames payload (shorter than 16 MiB) as packet seq.
func AppendMySQLPacket(dst []byte, seq byte, payload []byte) []byte {
	n := len(payload)
	dst = append(dst, byte(n), byte(n>>8), byte(n>>16), seq)
	return append(dst, payload...)
}

// Greeting is the server's initial handshake (Protocol::HandshakeV10).
type Greeting struct {
	ServerVersion string
	ConnectionID  uint32
	Capabilities  uint32
	Charset       byte
	Status        uint16
	AuthData      []byte // the scramble salt (part 1 + part 2, 20 bytes usually)
	AuthPlugin    string
}

// ServerError is an ERR packet.
type ServerError struct {
	Code     uint16
	SQLState string // empty when the server sent none
	Message  string
}

func (e *ServerError) Error() string {
	if e.SQLState != "" {
		return fmt.Sprintf("mysql error %d (%s): %s", e.Code, e.SQLState, e.Message)
	}
	return fmt.Sprintf("mysql error %d: %s", e.Code, e.Message)
}

// IsServerError reports whether payload is an ERR packet.
func IsServerError(payload []byte) bool { return len(payload) > 0 && payload[0] == mysqlErr }

// ParseServerError decodes an ERR packet. The SQL state marker '#' is
// optional: servers omit it in errors sent before the handshake.
func ParseServerError(p []byte) (*ServerError, error) {
	if len(p) < 3 || p[0] != mysqlErr {
		return nil, fmt.Errorf("%w: not an ERR packet", ErrMalformed)
	}
	e := &ServerError{Code: binary.LittleEndian.Uint16(p[1:3])}
	rest := p[3:]
	if len(rest) >= 6 && rest[0] == '#' {
		e.SQLState = string(rest[1:6])
		rest = rest[6:]
	}
	e.Message = string(rest)
	return e, nil
}

// ParseGreeting decodes the server greeting. An ERR packet in its place
// (too many connections, host blocked) is returned as a *ServerError.
func ParseGreeting(p []byte) (Greeting, error) {
	var g Greeting
	if len(p) == 0 {
		return g, fmt.Errorf("%w: empty greeting", ErrMalformed)
	}
	if p[0] == mysqlErr {
		e, err := ParseServerError(p)
		if err != nil {
			return g, err
		}
		return g, e
	}
	if p[0] != mysqlProtocolV10 {
		return g, fmt.Errorf("%w: protocol version %d, want 10", ErrMalformed, p[0])
	}
	p = p[1:]
	end := bytes.IndexByte(p, 0)
	if end < 0 {
		return g, fmt.Errorf("%w: server version not terminated", ErrMalformed)
	}
	g.ServerVersion = string(p[:end])
	p = p[end+1:]
	// connection id (4), auth data part 1 (8), filler (1), caps low (2)
	if len(p) < 15 {
		return g, fmt.Errorf("%w: greeting truncated after the version", ErrMalformed)
	}
	g.ConnectionID = binary.LittleEndian.Uint32(p[0:4])
	g.AuthData = append([]byte(nil), p[4:12]...)
	if p[12] != 0 {
		return g, fmt.Errorf("%w: filler byte is %#x", ErrMalformed, p[12])
	}
	g.Capabilities = uint32(binary.LittleEndian.Uint16(p[13:15]))
	p = p[15:]
	if len(p) == 0 {
		return g, nil // pre-4.1 servers stop here
	}
	// charset (1), status (2), caps high (2), auth data length (1), reserved (10)
	if len(p) < 16 {
		return g, fmt.Errorf("%w: greeting truncated in the capability block", ErrMalformed)
	}
	g.Charset = p[0]
	g.Status = binary.LittleEndian.Uint16(p[1:3])
	g.Capabilities |= uint32(binary.LittleEndian.Uint16(p[3:5])) << 16
	authLen := int(p[5])
	p = p[16:]
	if g.Capabilities&ClientSecureConnection != 0 {
		n := max(13, authLen-8)
		if len(p) < n {
			return g, fmt.Errorf("%w: auth data part 2 truncated", ErrMalformed)
		}
		part2 := p[:n]
		// The last byte of part 2 is a terminating NUL in practice.
		if i := bytes.IndexByte(part2, 0); i >= 0 {
			part2 = part2[:i]
		}
		g.AuthData = append(g.AuthData, part2...)
		p = p[n:]
	}
	if g.Capabilities&ClientPluginAuth != 0 && len(p) > 0 {
		if i := bytes.IndexByte(p, 0); i >= 0 {
			p = p[:i]
		}
		g.AuthPlugin = string(p)
	}
	return g, nil
}

// Scramble computes mysql_native_password's answer:
// SHA1(password) XOR SHA1(salt + SHA1(SHA1(password))). An empty password
// gives an empty answer.
func Scramble(salt []byte, password string) []byte {
	if password == "" {
		return nil
	}
	h1 := sha1.Sum([]byte(password))
	h2 := sha1.Sum(h1[:])
	s := sha1.New()
	s.Write(salt)
	s.Write(h2[:])
	h3 := s.Sum(nil)
	for i := range h3 {
		h3[i] ^= h1[i]
	}
	return h3
}

// HandshakeResponse builds the client's login (Protocol::HandshakeResponse41)
// answering g with mysql_native_password.
func HandshakeResponse(g Greeting, user, password string) []byte {
	caps := uint32(ClientLongPassword | ClientProtocol41 | ClientSecureConnection | ClientPluginAuth)
	auth := Scramble(g.AuthData, password)
	b := binary.LittleEndian.AppendUint32(nil, caps)
	b = binary.LittleEndian.AppendUint32(b, 1<<24) // max packet size
	b = append(b, 45)                              // utf8mb4_general_ci
	b = append(b, make([]byte, 23)...)
	b = append(b, user...)
	b = append(b, 0, byte(len(auth)))
	b = append(b, auth...)
	b = append(b, NativePasswordPlugin...)
	return append(b, 0)
}

// LoginReply is the server's answer to a login.
type LoginReply struct {
	OK         bool
	Err        *ServerError
	SwitchTo   string // an auth switch request to this plugin
	SwitchData []byte // its salt
	MoreData   bool   // AuthMoreData (caching_sha2_password and friends)
}

// ParseLoginReply decodes OK, ERR, AuthSwitchRequest or AuthMoreData.
func ParseLoginReply(p []byte) (LoginReply, error) {
	if len(p) == 0 {
		return LoginReply{}, fmt.Errorf("%w: empty login reply", ErrMalformed)
	}
	switch p[0] {
	case mysqlOK:
		return LoginReply{OK: true}, nil
	case mysqlErr:
		e, err := ParseServerError(p)
		if err != nil {
			return LoginReply{}, err
		}
		return LoginReply{Err: e}, nil
	case mysqlAuthSwitch:
		rest := p[1:]
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return LoginReply{}, fmt.Errorf("%w: auth switch plugin name not terminated", ErrMalformed)
		}
		data := rest[i+1:]
		if j := bytes.IndexByte(data, 0); j >= 0 {
			data = data[:j]
		}
		return LoginReply{SwitchTo: string(rest[:i]), SwitchData: append([]byte(nil), data...)}, nil
	case mysqlAuthMore:
		return LoginReply{MoreData: true}, nil
	}
	return LoginReply{}, fmt.Errorf("%w: login reply starts with %#x", ErrMalformed, p[0])
}
