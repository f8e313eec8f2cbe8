package replication

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/replicad/replicad/internal/clock"
	"github.com/replicad/replicad/replication/engine"
	"github.com/replicad/replicad/replication/wire"
)

// link keeps a volume connected to one peer: it dials (the lower node id
// dials) or takes accepted connections, runs sessions and reconnects.
type link struct {
	r          *Replicator
	peer       uint32
	accepted   chan *peerConn
	kick       chan struct{} // wake the connect loop
	resyncKick chan struct{}

	// Guarded by r.mu.
	sess          *session
	resyncRunning bool
	lastDialErr   string

	// Byte counters (frames including headers), for metrics and tests.
	stats LinkStats
	// ctl sizes the resync window; guarded by r.mu.
	ctl *resyncController
	// spare holds resync read buffers the sender has written out, for the
	// next reads: a fresh 1 MiB buffer per chunk costs zeroing, page
	// faults and garbage collection on every chunk.
	spare chan []byte
}

// buffer returns a resync read buffer of n bytes, a spare one if it fits.
// Its contents are stale: the caller overwrites all of it.
func (l *link) buffer(n int64) []byte {
	select {
	case b := <-l.spare:
		if int64(cap(b)) >= n {
			return b[:n]
		}
	default:
	}
	return make([]byte, n)
}

// recycle keeps b for a later resync read, unless enough are kept.
func (l *link) recycle(b []byte) {
	select {
	case l.spare <- b:
	default:
	}
}

// LinkStats counts a link's traffic since the replicator started.
type LinkStats struct {
	// SentBytes and ReceivedBytes count whole frames by message kind:
	// "write" (Write and Zero), "resync" (ResyncData and digests), "other".
	SentBytes     map[string]*atomic.Int64
	ReceivedBytes map[string]*atomic.Int64
}

func newLinkStats() LinkStats {
	s := LinkStats{SentBytes: map[string]*atomic.Int64{}, ReceivedBytes: map[string]*atomic.Int64{}}
	for _, k := range []string{"write", "resync", "other"} {
		s.SentBytes[k], s.ReceivedBytes[k] = new(atomic.Int64), new(atomic.Int64)
	}
	return s
}

// kind classifies a message for the byte counters.
func kind(t wire.Type) string {
	switch t {
	case wire.TypeWrite, wire.TypeZero:
		return "write"
	case wire.TypeResyncData, wire.TypeDigest, wire.TypeDigestReply:
		return "resync"
	}
	return "other"
}

// session is one connection's lifetime.
type session struct {
	conn   *peerConn
	queue  []wire.Message // guarded by r.mu
	signal chan struct{}
	dead   bool   // guarded by r.mu
	reason string // why it was killed
	done   chan struct{}
	// unacked holds (sequence, time sent) of Writes the peer has not yet
	// acknowledged, oldest first: the ko-count watchdog looks at the head.
	unacked []sentAt // guarded by r.mu
	// held is a lazy acknowledgement (engine.Send.Lazy) not yet queued,
	// standing for heldCount of them; heldTimer queues it at the latest
	// ackDelay after it was held. Guarded by r.mu.
	held      wire.Message
	heldCount int
	heldTimer clock.Timer
}

// Lazy acknowledgements wait at most ackDelay (ReplicatorConfig.ackDelay
// in tests), or until maxHeldAcks of them are held, or until another
// message is queued. A protocol A secondary that acknowledged every batch
// of writes at once would wake the primary for every batch, for nothing a
// client waits on; held back, one acknowledgement retires hundreds of
// writes. The primary keeps their activity-log extents until then, so the
// delay stays short. (Two primaries need protocol C: no acknowledgement
// that conflict resolution relies on is ever held.)
const (
	ackDelay    = 5 * time.Millisecond
	maxHeldAcks = 256
)

type sentAt struct {
	seq uint64
	at  time.Time
}

func (l *link) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

func (l *link) run() {
	r := l.r
	for r.ctx.Err() == nil {
		r.mu.Lock()
		want := r.eng.WantsConnection(l.peer)
		r.mu.Unlock()
		if !want {
			select {
			case pc := <-l.accepted:
				l.refuseStandAlone(pc)
			case <-l.kick:
			case <-r.ctx.Done():
			}
			continue
		}
		var pc *peerConn
		if r.cfg.NodeID < l.peer {
			var err error
			pc, err = r.tr.dial(r.ctx, l.peer)
			if err != nil {
				r.mu.Lock()
				if err.Error() != l.lastDialErr {
					r.log.Info("cannot reach peer; retrying", "peer", l.peer, "err", err)
					l.lastDialErr = err.Error()
				}
				r.mu.Unlock()
				l.pause()
				continue
			}
		} else {
			select {
			case pc = <-l.accepted:
			case <-l.kick:
				continue
			case <-r.ctx.Done():
				return
			}
		}
		r.mu.Lock()
		l.lastDialErr = ""
		want = r.eng.WantsConnection(l.peer)
		r.mu.Unlock()
		if !want { // disconnected by the operator meanwhile
			l.refuseStandAlone(pc)
			continue
		}
		l.runSession(pc)
		if r.cfg.NodeID < l.peer {
			// The dialer paces reconnection; the acceptor takes the next
			// connection as soon as it comes.
			l.pause()
		}
	}
}

func (l *link) refuseStandAlone(pc *peerConn) {
	pc.Write(wire.AppendFrame(nil, &wire.Goodbye{Reason: fmt.Sprintf("node %d keeps volume %s StandAlone (repctl connect on it)", l.r.cfg.NodeID, l.r.name())}))
	pc.Close()
}

// pause waits ConnectInterval (or a kick).
func (l *link) pause() {
	t := l.r.cfg.Clock.NewTimer(l.r.cfg.ConnectInterval)
	defer t.Stop()
	select {
	case <-t.C():
	case <-l.kick:
	case <-l.r.ctx.Done():
	}
}

func (l *link) runSession(pc *peerConn) {
	r := l.r
	s := &session{conn: pc, signal: make(chan struct{}, 1), done: make(chan struct{})}
	r.mu.Lock()
	l.sess = s
	// A new connection measures afresh (and forgets ranges the last one
	// never acknowledged).
	l.ctl = newResyncController(r.cfg.ResyncChunk, r.cfg.ResyncWindow, r.cfg.ResyncDelayTarget)
	out, err := r.eng.Connected(l.peer)
	if err != nil {
		l.sess = nil
		r.mu.Unlock()
		pc.Close()
		return
	}
	r.execLocked(out)
	var first []engine.Apply
	var firstErr error
	if pc.first != nil {
		out, firstErr = r.eng.Receive(l.peer, pc.first)
		first = r.execLocked(out)
	}
	r.mu.Unlock()
	r.log.Info("peer connected", "peer", l.peer, "remote", pc.RemoteAddr().String())
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		l.sender(s)
	}()
	go l.watchdog(s)
	reason := "protocol error: " + fmt.Sprint(firstErr)
	if firstErr == nil {
		reason = l.reader(s, first)
	}
	r.mu.Lock()
	if s.dead && s.reason != "" {
		reason = s.reason
	}
	s.dead = true
	r.mu.Unlock()
	pc.Close()
	close(s.done)
	<-senderDone
	r.mu.Lock()
	l.sess = nil
	r.execLocked(r.eng.Disconnected(l.peer, reason))
	r.mu.Unlock()
	r.log.Info("peer disconnected", "peer", l.peer, "reason", reason)
}

// sendLocked queues a message on the current session.
func (l *link) sendLocked(m wire.Message) { l.queueLocked(m, false) }

// queueLocked queues a message on the current session; a lazy one is
// held back (see ackDelay), replacing the one held before it, as
// acknowledgements are cumulative. A held acknowledgement is queued ahead
// of the next message, so the peer sees them in the order they were made.
func (l *link) queueLocked(m wire.Message, lazy bool) {
	s := l.sess
	if s == nil || s.dead {
		return
	}
	if lazy {
		s.held = m
		if s.heldCount++; s.heldCount < maxHeldAcks {
			if s.heldTimer == nil {
				s.heldTimer = l.r.cfg.Clock.AfterFunc(cmp.Or(l.r.cfg.ackDelay, ackDelay), func() {
					l.r.mu.Lock()
					defer l.r.mu.Unlock()
					s.heldTimer = nil
					if l.sess == s && !s.dead && s.held != nil {
						l.queueLocked(nil, false)
					}
				})
			}
			return
		}
		m = nil
	}
	if s.held != nil {
		s.queue = append(s.queue, s.held)
		s.held, s.heldCount = nil, 0
	}
	if m != nil {
		s.queue = append(s.queue, m)
	}
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// killLocked ends the session: queued messages (a Goodbye) still go out,
// then the connection closes; a second later it closes regardless.
func (l *link) killLocked(reason string, standAlone bool) {
	s := l.sess
	if s == nil || s.dead {
		l.wake()
		return
	}
	l.queueLocked(nil, false) // a held acknowledgement goes out too
	s.dead, s.reason = true, reason
	select {
	case s.signal <- struct{}{}:
	default:
	}
	conn := s.conn
	go func() {
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-s.done:
		case <-t.C:
			conn.Close()
		}
	}()
}

func (l *link) reader(s *session, pending []engine.Apply) string {
	r := l.r
	if reason := l.applyAll(pending); reason != "" {
		return reason
	}
	var buf []byte
	idle := r.cfg.PingInterval + r.cfg.PingTimeout
	for {
		s.conn.SetReadDeadline(time.Now().Add(idle))
		f, err := wire.ReadFrame(s.conn.r, buf)
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				return fmt.Sprintf("peer silent for %v (ping timeout)", idle)
			case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
				return "connection closed"
			}
			return "connection failed: " + err.Error()
		}
		l.stats.ReceivedBytes[kind(f.Type)].Add(int64(wire.HeaderSize + len(f.Payload)))
		if cap(f.Payload) > cap(buf) && f.Flags&wire.FlagS2 == 0 {
			buf = f.Payload[:0]
		}
		m, err := wire.Decode(f)
		if err != nil {
			if errors.Is(err, wire.ErrChecksum) {
				return "data checksum mismatch, the link corrupted data: " + err.Error()
			}
			return "protocol error: " + err.Error()
		}
		switch m.(type) {
		case *wire.Ping:
			r.mu.Lock()
			l.sendLocked(&wire.PingAck{})
			r.mu.Unlock()
			continue
		case *wire.PingAck:
			continue
		}
		r.mu.Lock()
		out, err := r.eng.Receive(l.peer, m)
		applies := r.execLocked(out)
		r.mu.Unlock()
		if err != nil {
			return err.Error()
		}
		switch m := m.(type) {
		case *wire.ResyncAck:
			r.mu.Lock()
			l.ctl.Acked(int64(m.Offset), r.cfg.Clock.Now())
			r.mu.Unlock()
			select {
			case l.resyncKick <- struct{}{}:
			default:
			}
		case *wire.WriteAck:
			r.mu.Lock()
			i := 0
			for i < len(s.unacked) && s.unacked[i].seq <= m.Seq {
				i++
			}
			s.unacked = s.unacked[i:]
			r.mu.Unlock()
		}
		if reason := l.applyAll(applies); reason != "" {
			return reason
		}
	}
}

// applyAll performs received operations in order and reports them back.
func (l *link) applyAll(as []engine.Apply) string {
	r := l.r
	for _, a := range as {
		var err error
		switch a.Kind {
		case engine.ApplyWrite, engine.ApplyZero:
			err = r.applyWrite(a)
		case engine.ApplyResync:
			err = r.vol.WriteAt(r.ctx, a.Data, a.Offset, false)
		case engine.ApplyFlush, engine.ApplySyncDone:
			err = r.vol.Flush(r.ctx)
		case engine.ApplyDigest:
			a.Data = make([]byte, a.Length)
			err = r.vol.ReadAt(r.ctx, a.Data, a.Offset)
		}
		r.mu.Lock()
		r.execLocked(r.eng.Applied(a, err))
		r.mu.Unlock()
	}
	return ""
}

// applyWrite applies a peer's write or zeroing under the range lock, so it
// lands after any local write of the same blocks in progress (with two
// primaries, the order that decides who wins), and without the parts the
// engine says to skip.
func (r *Replicator) applyWrite(a engine.Apply) error {
	n := a.Length
	if a.Kind == engine.ApplyWrite {
		n = int64(len(a.Data))
	}
	lo, ln := r.blockRange(a.Offset, n)
	r.ranges.lock(lo, ln)
	defer r.ranges.unlock(lo, ln)
	r.mu.Lock()
	skip := r.eng.BeginApply(a)
	r.mu.Unlock()
	for _, p := range engine.Pieces(a.Offset, n, skip) {
		var err error
		if a.Kind == engine.ApplyWrite {
			err = r.vol.WriteAt(r.ctx, a.Data[p.Off-a.Offset:p.Off-a.Offset+p.N], p.Off, a.FUA)
		} else {
			err = r.vol.WriteZeroes(r.ctx, p.Off, p.N, a.Deallocate, a.FUA)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// sender writes queued messages, coalescing cumulative acknowledgements,
// pings the peer when idle, and reports Writes written to the socket.
func (l *link) sender(s *session) {
	r := l.r
	w := &frameWriter{w: s.conn.Conn}
	ping := r.cfg.Clock.NewTimer(r.cfg.PingInterval)
	defer ping.Stop()
	var scratch []byte
	for {
		select {
		case <-s.signal:
		case <-ping.C():
			r.mu.Lock()
			l.sendLocked(&wire.Ping{})
			r.mu.Unlock()
			ping.Reset(r.cfg.PingInterval)
			continue
		case <-s.done:
			return
		}
		r.mu.Lock()
		batch, dead := s.queue, s.dead
		s.queue = nil
		r.mu.Unlock()
		var sent uint64
		for _, m := range coalesce(batch) {
			var err error
			var n int
			scratch, n, err = writeFrame(w, scratch, m, r.cfg.compression)
			l.stats.SentBytes[kind(m.Type())].Add(int64(n))
			if err != nil {
				s.conn.Close()
				return
			}
			switch m := m.(type) {
			case *wire.Write:
				sent = m.Seq
			case *wire.Zero:
				sent = m.Seq
			case *wire.ResyncData:
				// Written out or copied into w: the buffer is free.
				l.recycle(m.Data)
				m.Data = nil
			}
		}
		if err := w.flush(); err != nil {
			s.conn.Close()
			return
		}
		if dead {
			s.conn.Close()
			return
		}
		if sent > 0 {
			r.mu.Lock()
			s.unacked = append(s.unacked, sentAt{sent, r.cfg.Clock.Now()})
			r.execLocked(r.eng.Sent(l.peer, sent))
			r.mu.Unlock()
		}
	}
}

// frameWriter gathers small frames in one buffer, written when it fills up
// or on flush. A large data payload goes out from the caller's buffer, in
// one writev with whatever is gathered before it: no copy, one system call.
type frameWriter struct {
	w   io.Writer // the connection itself, so that writev applies
	buf []byte
	vec net.Buffers
}

const (
	// frameBuffer is how much the writer gathers before writing.
	frameBuffer = 256 << 10
	// largePayload is the payload size sent without a copy.
	largePayload = 64 << 10
)

// write gathers p (copied).
func (f *frameWriter) write(p []byte) error {
	if len(f.buf)+len(p) > frameBuffer {
		if err := f.flush(); err != nil {
			return err
		}
	}
	f.buf = append(f.buf, p...)
	return nil
}

// writeData writes the gathered frames, then head and data, at once.
func (f *frameWriter) writeData(head, data []byte) error {
	if len(data) < largePayload {
		if err := f.write(head); err != nil {
			return err
		}
		return f.write(data)
	}
	f.buf = append(f.buf, head...)
	f.vec = append(f.vec[:0], f.buf, data)
	_, err := f.vec.WriteTo(f.w)
	f.buf, f.vec = f.buf[:0], f.vec[:0]
	return err
}

// flush writes what is gathered.
func (f *frameWriter) flush() error {
	if len(f.buf) == 0 {
		return nil
	}
	_, err := f.w.Write(f.buf)
	f.buf = f.buf[:0]
	return err
}

// writeFrame writes m; large data payloads go from the caller's buffer
// without a copy.
// Bitmaps are mostly zeroes: always worth s2. Data frames are compressed
// only when the volume asks for it (compression costs CPU on every write).
func writeFrame(w *frameWriter, scratch []byte, m wire.Message, c wire.Compression) ([]byte, int, error) {
	var data []byte
	scratch = append(scratch[:0], make([]byte, wire.HeaderSize)...)
	switch m := m.(type) {
	case *wire.Write:
		scratch, data = m.AppendFixed(scratch), m.Data
	case *wire.ResyncData:
		scratch, data = m.AppendFixed(scratch), m.Data
	case *wire.Bitmap:
		c = wire.S2
		scratch = m.Append(scratch)
	default:
		c = wire.NoCompression
		scratch = m.Append(scratch)
	}
	if c != wire.NoCompression && len(scratch)-wire.HeaderSize+len(data) >= 1024 {
		payload := append(append([]byte(nil), scratch[wire.HeaderSize:]...), data...)
		if out, flag, ok := wire.Compress(c, payload); ok {
			scratch = append(scratch[:wire.HeaderSize], out...)
			wire.PutHeader(scratch, m.Type(), flag, len(out))
			return scratch, len(scratch), w.write(scratch)
		}
	}
	wire.PutHeader(scratch, m.Type(), 0, len(scratch)-wire.HeaderSize+len(data))
	return scratch, len(scratch) + len(data), w.writeData(scratch, data)
}

// coalesce drops acknowledgements superseded later in the batch (they are
// cumulative).
func coalesce(batch []wire.Message) []wire.Message {
	var lastWA, lastRA int = -1, -1
	for i, m := range batch {
		switch a := m.(type) {
		case *wire.WriteAck:
			if a.Err == "" {
				lastWA = i
			}
		case *wire.RecvAck:
			lastRA = i
		}
	}
	// Filtered in place: the batch is the sender's own.
	out := batch[:0]
	for i, m := range batch {
		switch a := m.(type) {
		case *wire.WriteAck:
			if a.Err == "" && i != lastWA {
				continue
			}
		case *wire.RecvAck:
			if i != lastRA {
				continue
			}
		}
		out = append(out, m)
	}
	return out
}

// startResyncLocked runs the resync sender for this peer.
func (l *link) startResyncLocked() {
	if l.resyncRunning {
		select {
		case l.resyncKick <- struct{}{}:
		default:
		}
		return
	}
	l.resyncRunning = true
	l.r.wg.Add(1)
	go func() {
		defer l.r.wg.Done()
		l.resync()
	}()
}

// resync sends out-of-sync ranges while this node is the peer's sync
// source, keeping at most ResyncWindow bytes in flight and at most
// ResyncRate bytes per second.
func (l *link) resync() {
	r := l.r
	bucket := tokenBucket{rate: r.cfg.ResyncRate, clock: r.cfg.Clock}
	for {
		r.mu.Lock()
		inflight, active := r.eng.ResyncInflight(l.peer)
		if !active || r.ctx.Err() != nil {
			l.resyncRunning = false
			r.mu.Unlock()
			return
		}
		if inflight >= l.ctl.Window() {
			r.mu.Unlock()
			l.waitResync(50 * time.Millisecond)
			continue
		}
		off, n, link, ok := r.eng.NextResync(l.peer, r.cfg.ResyncChunk)
		if !ok {
			r.execLocked(r.eng.ResyncIdle(l.peer))
			r.mu.Unlock()
			l.waitResync(200 * time.Millisecond)
			continue
		}
		r.mu.Unlock()
		bucket.take(n, r.ctx.Done())
		r.ranges.lock(off, n)
		data := l.buffer(n)
		err := r.vol.ReadAt(r.ctx, data, off)
		r.mu.Lock()
		l.ctl.Sent(off, r.cfg.Clock.Now())
		out := r.eng.ResyncRead(l.peer, link, off, data, err)
		if !sendsData(out, data) {
			// Digests or nothing: the data is not queued.
			l.recycle(data)
		}
		r.execLocked(out)
		r.mu.Unlock()
		r.ranges.unlock(off, n)
	}
}

// sendsData says whether out queues data itself, in resync data the
// sender will write (and then recycle).
func sendsData(out engine.Output, data []byte) bool {
	for _, s := range out.Sends {
		if m, ok := s.Msg.(*wire.ResyncData); ok && len(m.Data) > 0 && len(data) > 0 && &m.Data[0] == &data[0] {
			return true
		}
	}
	return false
}

func (l *link) waitResync(d time.Duration) {
	t := l.r.cfg.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.resyncKick:
	case <-t.C():
	case <-l.r.ctx.Done():
	}
}

// tokenBucket paces the resync to rate bytes/s (0: unlimited), allowing a
// burst of one second.
type tokenBucket struct {
	rate   int64
	clock  clock.Clock
	tokens float64
	last   time.Time
}

func (b *tokenBucket) take(n int64, done <-chan struct{}) {
	if b.rate <= 0 {
		return
	}
	now := b.clock.Now()
	if b.last.IsZero() {
		b.last, b.tokens = now, float64(b.rate)
	}
	b.tokens = min(float64(b.rate), b.tokens+now.Sub(b.last).Seconds()*float64(b.rate))
	b.last = now
	b.tokens -= float64(n)
	if b.tokens < 0 {
		wait := time.Duration(-b.tokens / float64(b.rate) * float64(time.Second))
		clock.Sleep(b.clock, wait, done)
	}
}

// watchdog cuts off a peer that stays connected (it answers pings) but has
// not acknowledged a write for KoCount*Timeout: a stuck peer must not hold
// the primary's writes forever (DRBD's ko-count).
func (l *link) watchdog(s *session) {
	r := l.r
	limit := time.Duration(r.cfg.KoCount) * r.cfg.Timeout
	if limit <= 0 {
		return
	}
	for {
		t := r.cfg.Clock.NewTimer(r.cfg.Timeout)
		select {
		case <-s.done:
			t.Stop()
			return
		case <-t.C():
		}
		r.mu.Lock()
		if len(s.unacked) > 0 && r.cfg.Clock.Now().Sub(s.unacked[0].at) > limit {
			age := r.cfg.Clock.Now().Sub(s.unacked[0].at).Round(time.Millisecond)
			l.killLocked(fmt.Sprintf("peer stuck: write %d unacknowledged for %v (ko-count %d × timeout %v)", s.unacked[0].seq, age, r.cfg.KoCount, r.cfg.Timeout), false)
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}
