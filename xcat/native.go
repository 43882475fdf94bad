package xcat

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
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
	// ReuseIdle, when positive, keeps a connection after a complete answer and
	// sends the next request on it if it has been idle no longer than this (keep it
	// well under xcatd's 15 s idle limit). Zero opens a connection per request, as
	// xCAT's own client does. MaxIdle caps the kept connections (default 16).
	ReuseIdle time.Duration
	MaxIdle   int
}

// Native is the Backend that speaks xcatd's own protocol: one TLS connection per
// request, an <xcatrequest> XML document out, a stream of <xcatresponse> elements in
// until serverdone. It needs no xCAT software on the machine. Safe for concurrent use.
//
// By default connections are not reused: xCAT's own client
// (xCAT::Client::submit_request) and REST gateway open a connection per command and
// close it after serverdone. xcatd's service_connection loop does read further
// requests on the same connection, closing one that stays silent for 15 seconds, and
// its framing ("read until </xcatrequest>") is safe as long as one request is sent at
// a time; NativeConfig.ReuseIdle turns reuse on, which spares a TLS handshake per
// request. A request on a reused connection that xcatd closed meanwhile fails with
// ErrUnavailable and is not resent: callers retry transient errors themselves, where
// they can check whether a request took effect.
type Native struct {
	addr    string
	cwd     string
	timeout time.Duration
	tls     *tls.Config
	reuse   time.Duration
	maxIdle int

	mu   sync.Mutex
	idle []idleConn
}

type idleConn struct {
	conn  net.Conn
	since time.Time
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
		addr:    cfg.Addr,
		cwd:     cfg.Cwd,
		timeout: cfg.DialTimeout,
		reuse:   cfg.ReuseIdle,
		maxIdle: cfg.MaxIdle,
		tls:     verifyWithoutHostname(roots, cert),
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
// ErrUnavailable when xcatd cannot be reached or the answer ends before serverdone,
// ErrInvalidInput when req cannot be sent, ctx's error when ctx ends first, and a
// *CommandError together with the Response when xcatd answered with top-level errors.
func (n *Native) Do(ctx context.Context, req Request) (*Response, error) {
	if err := validateRequest(req); err != nil {
		return nil, err
	}
	body := encodeRequest(req, n.cwd)

	dctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, n.timeout)
		defer cancel()
	}
	conn := n.takeIdle()
	if conn == nil {
		d := tls.Dialer{Config: n.tls}
		c, err := d.DialContext(dctx, "tcp", n.addr)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s: connect to xcatd %s: %w", req.Command, n.addr, ctx.Err())
			}
			return nil, fmt.Errorf("%s: connect to xcatd %s: %w: %w", req.Command, n.addr, ErrUnavailable, err)
		}
		conn = c
	}
	complete := false
	defer func() {
		if !complete || !n.putIdle(conn) {
			_ = conn.Close()
		}
	}()
	// The context bounds the whole exchange: closing the connection unblocks a read.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}

	if _, err := conn.Write(body); err != nil {
		if cerr := ctxDone(ctx); cerr != nil {
			return nil, fmt.Errorf("%s: %w", req.Command, cerr)
		}
		return nil, fmt.Errorf("%s: send to xcatd: %w: %w", req.Command, ErrUnavailable, err)
	}
	resp, err := readResponse(conn)
	if err != nil {
		if cerr := ctxDone(ctx); cerr != nil {
			return resp, fmt.Errorf("%s: %w", req.Command, cerr)
		}
		return resp, fmt.Errorf("%s: %w", req.Command, err)
	}
	// Keep the connection only when the context's watcher never fired on it.
	complete = stop() && ctx.Err() == nil && conn.SetDeadline(time.Time{}) == nil
	return resp, commandError(req, resp)
}

// takeIdle returns a kept connection idle for no longer than the reuse limit, or nil.
func (n *Native) takeIdle() net.Conn {
	if n.reuse <= 0 {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for len(n.idle) > 0 {
		c := n.idle[len(n.idle)-1]
		n.idle = n.idle[:len(n.idle)-1]
		if time.Since(c.since) <= n.reuse {
			return c.conn
		}
		_ = c.conn.Close()
	}
	return nil
}

// putIdle keeps conn for reuse and reports whether it did.
func (n *Native) putIdle(conn net.Conn) bool {
	if n.reuse <= 0 {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.idle) >= n.maxIdle {
		return false
	}
	n.idle = append(n.idle, idleConn{conn: conn, since: time.Now()})
	return true
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
