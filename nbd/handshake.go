package nbd

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/replicad/replicad/nbd/wire"
)

// maxOptionData bounds an option's data: export names are at most 4 KiB,
// so anything bigger is a confused or hostile client.
const maxOptionData = 64 << 10

// errAbort ends negotiation without transmission (ABORT, or a client that
// broke the protocol in a way that requires a hard disconnect).
var errAbort = errors.New("negotiation ended")

type negotiation struct {
	s        *Server
	nc       net.Conn // replaced by the TLS connection after STARTTLS
	r        *bufio.Reader
	tls      bool
	noZeroes bool
	// chosen is called with the export before the reply that starts
	// transmission, so the connection counts for it by the time the
	// client can use it; false aborts (the server is closing it).
	chosen func(name string) bool
}

// negotiate runs the handshake. On success it returns the export, the
// connection and the reader to continue with.
func (s *Server) negotiate(nc net.Conn, chosen func(name string) bool) (Export, net.Conn, *bufio.Reader, error) {
	n := &negotiation{s: s, nc: nc, r: bufio.NewReaderSize(nc, 128<<10), chosen: chosen}
	nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	if _, err := nc.Write(wire.Greeting()); err != nil {
		return Export{}, nil, nil, err
	}
	var cf [4]byte
	if _, err := io.ReadFull(n.r, cf[:]); err != nil {
		return Export{}, nil, nil, fmt.Errorf("read client flags: %w", err)
	}
	nz, err := wire.ParseClientFlags(binary.BigEndian.Uint32(cf[:]))
	if err != nil {
		return Export{}, nil, nil, err
	}
	n.noZeroes = nz
	for {
		o, length, err := wire.ReadOption(n.r, maxOptionData)
		if errors.Is(err, wire.ErrOptionTooLong) {
			return Export{}, nil, nil, fmt.Errorf("option %d with %d bytes of data: closing", o.ID, length)
		}
		if err != nil {
			return Export{}, nil, nil, err
		}
		exp, done, err := n.option(o)
		if err != nil {
			return Export{}, nil, nil, err
		}
		if done {
			n.nc.SetDeadline(time.Time{})
			return exp, n.nc, n.r, nil
		}
	}
}

func (n *negotiation) reply(opt, typ uint32, data []byte) error {
	_, err := n.nc.Write(wire.AppendOptionReply(nil, opt, typ, data))
	return err
}

func (n *negotiation) replyErr(opt, typ uint32, format string, args ...any) error {
	return n.reply(opt, typ, []byte(fmt.Sprintf(format, args...)))
}

// option handles one option; done means transmission begins with exp.
func (n *negotiation) option(o wire.Option) (exp Export, done bool, err error) {
	if n.s.cfg.RequireTLS && !n.tls && o.ID != wire.OptStartTLS && o.ID != wire.OptAbort {
		if o.ID == wire.OptExportName {
			return Export{}, false, fmt.Errorf("EXPORT_NAME before STARTTLS on a TLS-only server: %w", errAbort)
		}
		return Export{}, false, n.replyErr(o.ID, wire.RepErrTLSReqd, "this server requires TLS: send STARTTLS first")
	}
	switch o.ID {
	case wire.OptExportName:
		name, err := wire.ParseExportName(o.Data)
		if err != nil {
			return Export{}, false, fmt.Errorf("EXPORT_NAME: %w", err)
		}
		exp, ok := n.s.exports.Export(name)
		if !ok {
			// EXPORT_NAME has no error reply: the protocol says disconnect.
			return Export{}, false, fmt.Errorf("EXPORT_NAME %q: no such export: %w", name, errAbort)
		}
		if !n.chosen(exp.Name) {
			return Export{}, false, errAbort
		}
		_, err = n.nc.Write(wire.ExportNameReply(uint64(exp.Backend.Size()), transmissionFlags(exp), n.noZeroes))
		return exp, err == nil, err

	case wire.OptAbort:
		n.reply(o.ID, wire.RepAck, nil)
		return Export{}, false, errAbort

	case wire.OptList:
		if len(o.Data) != 0 {
			return Export{}, false, n.replyErr(o.ID, wire.RepErrInvalid, "LIST takes no data")
		}
		var b []byte
		for _, name := range n.s.exports.ExportNames() {
			b = wire.AppendOptionReply(b, o.ID, wire.RepServer, wire.ServerData(name))
		}
		b = wire.AppendOptionReply(b, o.ID, wire.RepAck, nil)
		_, err := n.nc.Write(b)
		return Export{}, false, err

	case wire.OptStartTLS:
		switch {
		case n.s.cfg.TLS == nil:
			return Export{}, false, n.replyErr(o.ID, wire.RepErrUnsup, "TLS is not configured on this server")
		case n.tls:
			return Export{}, false, n.replyErr(o.ID, wire.RepErrInvalid, "TLS is already active")
		case len(o.Data) != 0:
			return Export{}, false, n.replyErr(o.ID, wire.RepErrInvalid, "STARTTLS takes no data")
		case n.r.Buffered() != 0:
			return Export{}, false, fmt.Errorf("client sent data after STARTTLS before the reply: %w", errAbort)
		}
		if err := n.reply(o.ID, wire.RepAck, nil); err != nil {
			return Export{}, false, err
		}
		tc := tls.Server(n.nc, n.s.cfg.TLS)
		if err := tc.Handshake(); err != nil {
			return Export{}, false, fmt.Errorf("TLS handshake: %w", err)
		}
		n.nc, n.tls = tc, true
		n.r = bufio.NewReaderSize(tc, 128<<10)
		return Export{}, false, nil

	case wire.OptInfo, wire.OptGo:
		req, err := wire.ParseInfoRequest(o.Data)
		if err != nil {
			return Export{}, false, n.replyErr(o.ID, wire.RepErrInvalid, "%v", err)
		}
		exp, ok := n.s.exports.Export(req.Name)
		if !ok {
			return Export{}, false, n.replyErr(o.ID, wire.RepErrUnknown, "no export named %q (exports: %s)",
				req.Name, strings.Join(n.s.exports.ExportNames(), ", "))
		}
		b := wire.AppendOptionReply(nil, o.ID, wire.RepInfo, wire.InfoExportData(uint64(exp.Backend.Size()), transmissionFlags(exp)))
		for _, info := range req.Infos {
			switch info {
			case wire.InfoName:
				b = wire.AppendOptionReply(b, o.ID, wire.RepInfo, wire.InfoStringData(wire.InfoName, exp.Name))
			case wire.InfoDescription:
				if exp.Description != "" {
					b = wire.AppendOptionReply(b, o.ID, wire.RepInfo, wire.InfoStringData(wire.InfoDescription, exp.Description))
				}
			}
		}
		// Sent whether or not requested (the protocol allows it): any
		// alignment works, 4 KiB is best, MaxPayload is the limit.
		b = wire.AppendOptionReply(b, o.ID, wire.RepInfo, wire.InfoBlockSizeData(1, 4096, n.s.cfg.MaxPayload))
		b = wire.AppendOptionReply(b, o.ID, wire.RepAck, nil)
		if o.ID == wire.OptGo && !n.chosen(exp.Name) {
			return Export{}, false, errAbort
		}
		if _, err := n.nc.Write(b); err != nil {
			return Export{}, false, err
		}
		return exp, o.ID == wire.OptGo, nil

	default:
		return Export{}, false, n.replyErr(o.ID, wire.RepErrUnsup, "option %d is not supported", o.ID)
	}
}

func transmissionFlags(e Export) uint16 {
	f := wire.TFlagHasFlags | wire.TFlagSendFlush | wire.TFlagSendFUA | wire.TFlagCanMultiConn
	if e.ReadOnly {
		return f | wire.TFlagReadOnly
	}
	return f | wire.TFlagSendTrim | wire.TFlagSendWriteZeroes
}
