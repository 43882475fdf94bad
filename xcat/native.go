package xcat

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultAddr is where xcatd listens unless told otherwise (site.xcatdport).
const DefaultAddr = "localhost:3001"

// NativeConfig says how to reach xcatd. The zero value means localhost:3001 with the
// credentials of the user running the program in ~/.xcat.
type NativeConfig struct {
	// Addr is xcatd's host:port; DefaultAddr when empty. xCAT's own client reads it
	// from XCATHOST; the program that builds the config should do the same.
	Addr string
	// CredDir is the directory holding client-cred.pem and ca.pem, as xCAT lays out
	// ~/.xcat (the default when empty). CredFile and CAFile, when set, win over it.
	CredDir string
	// CredFile holds the client's private key and certificate, concatenated in PEM
	// (<CredDir>/client-cred.pem when empty). The certificate's CN is the xCAT user
	// the policy table checks.
	CredFile string
	// CAFile holds the CA certificate(s) that signed xcatd's certificate
	// (<CredDir>/ca.pem when empty).
	CAFile string
	// Cwd is sent as the request's working directory, which xcatd uses to resolve
	// relative ^file noderanges; the process's working directory when empty.
	Cwd string
	// DialTimeout bounds connecting and the TLS handshake when the context has no
	// earlier deadline; 30s when zero.
	DialTimeout time.Duration
	// ReuseIdle, when positive, keeps a connection after a complete answer and sends
	// a later read-only request (see ReadOnly) on it if it has been idle no longer
	// than this; every other request gets a connection of its own. Zero opens a
	// connection per request, as xCAT's own client does. MaxIdle caps the kept
	// connections (default 16).
	ReuseIdle time.Duration
	MaxIdle   int
}

// Native is the Backend that speaks xcatd's own protocol: a TLS connection, an
// <xcatrequest> XML document out, a stream of <xcatresponse> elements in until
// serverdone. It needs no xCAT software on the machine. Safe for concurrent use.
//
// # Connections
//
// By default every request has a connection of its own, as with xCAT's own client
// (xCAT::Client::submit_request), which closes it after serverdone. TLS sessions are
// resumed, which spares most of a handshake.
//
// xcatd does read further requests on a kept connection, but it also closes a kept
// connection on its own, 0.12 to 0.19 s after serverdone (xcatd's service loop leaves
// when its 15 s wait for the next request is cut short, most likely by the signal of
// the request's finished plugin process), and a request sent just then is accepted by
// the socket and answered by a close and nothing else. xcatd's loop either reads a
// request and answers it (at least serverdone) or leaves without reading it, so such
// a close means the request was never read: it did not run. Only the death of the
// connection's xcatd process could end a request that did run without a byte of
// answer, and that may happen on any connection.
//
// With NativeConfig.ReuseIdle, Native therefore reuses kept connections for
// read-only requests only (ReadOnly: nodels, lsdef, rpower stat, ...), and sends a
// read-only request again on a new connection when a kept one ends before any byte
// of the answer; a second run of a read-only request changes nothing. Every other
// request, rpower boot, nodeset, chdef -p among them, always goes on a new
// connection, so xcatd's closing of kept connections can neither lose it nor run it
// twice. A kept connection that xcatd closed while it was idle is noticed and
// dropped before it is used. Other failures are not retried here: an answer cut short
// is an error wrapping ErrUnavailable, and callers retry where they can check
// whether the request took effect.
type Native struct {
	addr     string
	cwd      string
	timeout  time.Duration
	tls      *tls.Config
	reuse    time.Duration
	maxIdle  int
	credFile string

	mu     sync.Mutex
	idle   []*keptConn
	closed bool

	dials, reused, resent atomic.Int64
}

// keptConn is an idle connection kept for reuse. A goroutine reads from it while it
// is idle, so that a close by xcatd is seen before the connection is used.
type keptConn struct {
	conn  net.Conn
	since time.Time
	done  chan struct{} // closed when the idle read returned
	n     int           // bytes the idle read got (xcatd sends nothing unasked)
	err   error         // the idle read's error
}

// NativeStats counts what a Native did with its connections.
type NativeStats struct {
	// Dials is how many connections were opened.
	Dials int64
	// Reused is how many requests went on a kept connection.
	Reused int64
	// Resent is how many read-only requests were sent again on a new connection
	// because xcatd closed the kept one before answering.
	Resent int64
}

// Stats returns the connection counters since NewNative.
func (n *Native) Stats() NativeStats {
	return NativeStats{Dials: n.dials.Load(), Reused: n.reused.Load(), Resent: n.resent.Load()}
}

// readOnlyCommands only read, whatever their arguments (except those in
// writingOptions).
var readOnlyCommands = map[string]bool{
	"nodels": true, "lsdef": true, "tabdump": true, "gettab": true, "lsxcatd": true,
	"nodestat": true, "rinv": true, "rvitals": true,
}

// writingOptions are the options that make a readOnlyCommands command write:
// tabdump -f writes a file, nodestat -u updates nodelist.status.
var writingOptions = map[string][]string{
	"tabdump":  {"-f"},
	"nodestat": {"-u", "--updatedb"},
}

// statCommands only read when their first argument asks for the state.
var statCommands = map[string][]string{
	"rpower":   {"stat", "state", "status"},
	"rsetboot": {"stat"},
	"nodeset":  {"stat"},
}

// ReadOnly reports whether req only reads xCAT's state, so that running it twice is
// the same as running it once: nodels, lsdef, tabdump (without -f), gettab, lsxcatd,
// nodestat (without -u), rinv, rvitals, and rpower, rsetboot and nodeset asked for
// their state ("stat"). Everything else, unknown commands included, counts as a
// change.
func ReadOnly(req Request) bool {
	if readOnlyCommands[req.Command] {
		for _, a := range req.Args {
			if slices.Contains(writingOptions[req.Command], a) {
				return false
			}
		}
		return true
	}
	if stats, ok := statCommands[req.Command]; ok && len(req.Args) == 1 {
		return slices.Contains(stats, req.Args[0])
	}
	return false
}

// NewNative loads the credentials named by cfg and returns a Native backend. It does
// not connect; an unreachable xcatd shows at the first Do as ErrUnavailable.
func NewNative(cfg NativeConfig) (*Native, error) {
	if cfg.CredDir == "" {
		home, _ := os.UserHomeDir()
		cfg.CredDir = filepath.Join(home, ".xcat")
	}
	if cfg.CredFile == "" {
		cfg.CredFile = filepath.Join(cfg.CredDir, "client-cred.pem")
	}
	if cfg.CAFile == "" {
		cfg.CAFile = filepath.Join(cfg.CredDir, "ca.pem")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("xcatd address %q: %w", cfg.Addr, err)
	}
	if cfg.Cwd == "" {
		cfg.Cwd, _ = os.Getwd()
		if cfg.Cwd == "" {
			cfg.Cwd = "/"
		}
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 30 * time.Second
	}
	cred, err := os.ReadFile(cfg.CredFile)
	if err != nil {
		return nil, fmt.Errorf("xcat client credentials: %w", err)
	}
	cert, err := tls.X509KeyPair(cred, cred)
	if err != nil {
		return nil, fmt.Errorf("xcat client credentials %s: %w", cfg.CredFile, err)
	}
	caPEM, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("xcat CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("xcat CA %s: no PEM certificate found", cfg.CAFile)
	}
	if cfg.MaxIdle <= 0 {
		cfg.MaxIdle = 16
	}
	return &Native{
		addr:     cfg.Addr,
		cwd:      cfg.Cwd,
		timeout:  cfg.DialTimeout,
		reuse:    cfg.ReuseIdle,
		maxIdle:  cfg.MaxIdle,
		credFile: cfg.CredFile,
		tls:      verifyWithoutHostname(roots, cert),
	}, nil
}

// verifyWithoutHostname returns a TLS config that checks the server's chain against
// roots but not its name, as xCAT's clients do: xcatd's certificate names the
// management node's hostname, which rarely matches the address clients use. Go's own
// verification is switched off only to be replaced by VerifyConnection, which does the
// same chain check without the name.
func verifyWithoutHostname(roots *x509.CertPool, cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		// One connection per request (see Native): resuming TLS sessions spares most
		// of the handshake's cost. VerifyConnection runs on resumed connections too.
		ClientSessionCache: tls.NewLRUClientSessionCache(64),
		InsecureSkipVerify: true, // replaced by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("xcatd sent no certificate")
			}
			opts := x509.VerifyOptions{
				Roots:         roots,
				Intermediates: x509.NewCertPool(),
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
				return fmt.Errorf("xcatd certificate: %w", err)
			}
			return nil
		},
	}
}

// Do sends req to xcatd and reads the whole answer. It returns an error wrapping
// ErrUnavailable when xcatd cannot be reached or the answer ends before serverdone
// (and also ErrCertificateRejected when xcatd refused the client certificate),
// ErrInvalidInput when req cannot be sent, ctx's error when ctx ends first, and a
// *CommandError together with the Response when xcatd answered with top-level errors.
func (n *Native) Do(ctx context.Context, req Request) (*Response, error) {
	if err := validateRequest(req); err != nil {
		return nil, err
	}
	body := encodeRequest(req, n.cwd)
	if ReadOnly(req) {
		if conn := n.takeIdle(); conn != nil {
			n.reused.Add(1)
			resp, silent, err := n.exchange(ctx, conn, body, req, true)
			if !silent {
				return resp, err
			}
			// xcatd closed the kept connection without reading the request (see
			// Native): it did not run; a read-only request may simply go again.
			n.resent.Add(1)
		}
	}
	conn, err := n.dial(ctx, req)
	if err != nil {
		return nil, err
	}
	resp, _, err := n.exchange(ctx, conn, body, req, false)
	return resp, err
}

// dial opens a new connection and completes its TLS handshake.
func (n *Native) dial(ctx context.Context, req Request) (net.Conn, error) {
	dctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, n.timeout)
		defer cancel()
	}
	n.dials.Add(1)
	d := tls.Dialer{Config: n.tls}
	c, err := d.DialContext(dctx, "tcp", n.addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: connect to xcatd %s: %w", req.Command, n.addr, ctx.Err())
		}
		return nil, fmt.Errorf("%s: connect to xcatd %s: %w", req.Command, n.addr, n.classify(err, true))
	}
	return c, nil
}

// exchange sends body on conn and reads the answer. silent reports a failure before
// any byte of the answer arrived (not one caused by ctx). A connection whose answer
// completed is kept for reuse when reuse is on; any other is closed.
func (n *Native) exchange(ctx context.Context, conn net.Conn, body []byte, req Request, kept bool) (resp *Response, silent bool, err error) {
	complete := false
	defer func() {
		if !complete || !n.putIdle(conn) {
			_ = conn.Close()
		}
	}()
	// The context bounds the whole exchange: a past deadline unblocks a read.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}

	if _, err := conn.Write(body); err != nil {
		if cerr := ctxDone(ctx); cerr != nil {
			return nil, false, fmt.Errorf("%s: %w", req.Command, cerr)
		}
		return nil, true, fmt.Errorf("%s: send to xcatd: %w", req.Command, n.classify(err, !kept))
	}
	cr := &countingReader{r: conn}
	resp, err = readResponse(cr)
	if err != nil {
		if cerr := ctxDone(ctx); cerr != nil {
			return resp, false, fmt.Errorf("%s: %w", req.Command, cerr)
		}
		if cr.n == 0 {
			return resp, true, fmt.Errorf("%s: %w", req.Command, n.classify(err, !kept))
		}
		return resp, false, fmt.Errorf("%s: %w", req.Command, err)
	}
	// Keep the connection only when the context's watcher never fired on it.
	complete = stop() && ctx.Err() == nil && conn.SetDeadline(time.Time{}) == nil
	return resp, false, commandError(req, resp)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// ErrCertificateRejected marks a connection xcatd ended because it did not accept the
// client certificate (one not signed by xcatd's CA, expired, ...). Errors wrapping it
// also wrap ErrUnavailable.
var ErrCertificateRejected = errors.New("certificate not accepted by xcatd")

// certAlerts are the TLS alerts a server sends when it refuses the client's
// certificate, as Go names them.
var certAlerts = []string{"bad certificate", "unsupported certificate", "revoked certificate",
	"expired certificate", "unknown certificate", "unknown certificate authority",
	"access denied", "certificate required"}

// classify wraps a connection failure that got no answer at all: as
// ErrCertificateRejected when xcatd sent a certificate alert, or when it reset a new
// connection right after the handshake (xcatd closes the socket when the TLS session
// fails, which a request already sent turns into a reset); as ErrUnavailable always.
func (n *Native) classify(err error, fresh bool) error {
	if !errors.Is(err, ErrUnavailable) {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		for _, a := range certAlerts {
			if strings.HasSuffix(op.Err.Error(), a) {
				return fmt.Errorf("%w (client certificate %s): %w", ErrCertificateRejected, n.credFile, err)
			}
		}
	}
	if fresh && errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("xcatd reset the new connection before answering, most likely %w (client certificate %s: is it signed by xcatd's CA?): %w",
			ErrCertificateRejected, n.credFile, err)
	}
	return err
}

// takeIdle returns a kept connection that is still open and has been idle for no
// longer than the reuse limit, or nil.
func (n *Native) takeIdle() net.Conn {
	if n.reuse <= 0 {
		return nil
	}
	for {
		n.mu.Lock()
		if len(n.idle) == 0 {
			n.mu.Unlock()
			return nil
		}
		k := n.idle[len(n.idle)-1]
		n.idle = n.idle[:len(n.idle)-1]
		n.mu.Unlock()
		if conn := k.take(n.reuse); conn != nil {
			return conn
		}
	}
}

// take stops the idle read and returns the connection if it is still fit for a
// request; otherwise it closes it and returns nil.
func (k *keptConn) take(limit time.Duration) net.Conn {
	if time.Since(k.since) > limit {
		_ = k.conn.Close()
		return nil
	}
	select {
	case <-k.done:
		// xcatd closed it (or sent something unasked) while it was idle.
		_ = k.conn.Close()
		return nil
	default:
	}
	_ = k.conn.SetReadDeadline(time.Unix(1, 0))
	<-k.done
	if k.n != 0 || !errors.Is(k.err, os.ErrDeadlineExceeded) || k.conn.SetReadDeadline(time.Time{}) != nil {
		_ = k.conn.Close()
		return nil
	}
	return k.conn
}

// putIdle keeps conn for reuse and reports whether it did.
func (n *Native) putIdle(conn net.Conn) bool {
	if n.reuse <= 0 {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	fresh := n.idle[:0]
	for _, k := range n.idle {
		if time.Since(k.since) > n.reuse {
			_ = k.conn.Close()
			continue
		}
		fresh = append(fresh, k)
	}
	clear(n.idle[len(fresh):])
	n.idle = fresh
	if len(n.idle) >= n.maxIdle {
		return false
	}
	k := &keptConn{conn: conn, since: time.Now(), done: make(chan struct{})}
	go func() {
		var b [1]byte
		k.n, k.err = conn.Read(b[:])
		close(k.done)
	}()
	n.idle = append(n.idle, k)
	return true
}

// Close closes the kept connections; requests still in flight finish on their own.
// A Native that is closed keeps no connection after it. Close always returns nil.
func (n *Native) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	for _, k := range n.idle {
		_ = k.conn.Close()
	}
	n.idle = nil
	return nil
}

// ctxDone returns ctx's error, also when its deadline has passed but the context's own
// timer has not fired yet (the connection's deadline, set to the same instant, may
// fire first).
func ctxDone(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// commandError returns a *CommandError when resp carries top-level errors, or a
// non-zero errorcode that no node accounts for (xCAT's ipmi plugin refuses an unknown
// rpower action with a top-level data line and errorcode 1, no error element); else
// nil.
func commandError(req Request, resp *Response) error {
	msgs := resp.Errors
	if len(msgs) == 0 {
		if resp.ErrorCode == 0 || nodeFailed(resp) {
			return nil
		}
		msgs = resp.Data
		if len(msgs) == 0 {
			msgs = []string{fmt.Sprintf("errorcode %d", resp.ErrorCode)}
		}
	}
	code := resp.ErrorCode
	if code == 0 {
		code = 1
	}
	return &CommandError{Request: req, Messages: append([]string(nil), msgs...), Code: code}
}

// nodeFailed reports whether a node of resp has an error or an errorcode.
func nodeFailed(resp *Response) bool {
	for _, n := range resp.Nodes {
		if len(n.Errors) > 0 || n.ErrorCode != 0 {
			return true
		}
	}
	return false
}

// encodeRequest renders req as xcatd expects it: one <xcatrequest> with an element per
// key, repeated <arg> elements in order and <stdin> when the request has input.
func encodeRequest(req Request, cwd string) []byte {
	var b bytes.Buffer
	elem := func(name, value string) {
		b.WriteString("<" + name + ">")
		_ = xml.EscapeText(&b, []byte(value))
		b.WriteString("</" + name + ">\n")
	}
	b.WriteString("<xcatrequest>\n")
	elem("clienttype", "cli")
	elem("command", req.Command)
	elem("cwd", cwd)
	if req.Noderange != "" {
		elem("noderange", req.Noderange)
	}
	for _, a := range req.Args {
		elem("arg", a)
	}
	if req.Stdin != "" {
		// Escaped, the text's newlines survive XML's line-end normalization as they are.
		elem("stdin", req.Stdin)
	}
	if len(req.Env) > 0 {
		keys := make([]string, 0, len(req.Env))
		for k := range req.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("<environment>")
		for _, k := range keys {
			elem(k, req.Env[k])
		}
		b.WriteString("</environment>\n")
	}
	b.WriteString("</xcatrequest>\n")
	return b.Bytes()
}
