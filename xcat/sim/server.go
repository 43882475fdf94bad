// Package sim is a simulated xCAT management node for tests, benchmarks and the demo:
// it serves xcatd's XML-over-TLS protocol on a listener, keeps an in-memory cluster
// (nodes, groups, the usual tables, power and boot state), answers the commands xcatbm
// uses with xCAT's output formats, moves a node's status through an install on a
// timeline, models latency, injects faults and records every request. Production code
// never imports it.
//
// Like xcatd, a connection may carry several requests one after another: each answer
// ends with serverdone and the server then reads the next request (xcatd's service loop
// does the same). By default the connection closes when the client closes it; with
// Config.CloseKept the server closes a kept connection on its own, as xcatd does.
//
// The answers follow xcatd 2.19's (the transcripts in the project's shared xcatd
// folder): elements and texts, which element carries an error, xcatdsource on what a
// plugin answers, numofnodes after the object commands and nodels, noderanges
// expanded sorted and without duplicates.
package sim

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"xcatbm/xcat"
)

// Timeline says how long each phase of a simulated install lasts, from the rpower
// (or rnetboot) that boots a node whose boot state is "install <image>".
type Timeline struct {
	// PoweringOn is the time in powering-on before the installer starts.
	PoweringOn time.Duration `json:"poweringOn" yaml:"poweringOn"`
	// Installing is the time in installing.
	Installing time.Duration `json:"installing" yaml:"installing"`
	// Postbooting is the time in postbooting before booted (or failed).
	Postbooting time.Duration `json:"postbooting" yaml:"postbooting"`
	// Cleaning is how long a runimage (xcatbm's disk cleaning) runs in genesis
	// before the node powers off; 0 is Installing.
	Cleaning time.Duration `json:"cleaning,omitempty" yaml:"cleaning,omitempty"`
}

// DefaultTimeline is short, for tests.
var DefaultTimeline = Timeline{PoweringOn: 20 * time.Millisecond, Installing: 150 * time.Millisecond, Postbooting: 50 * time.Millisecond}

// Latency is the cost model of a request: Fixed per request plus PerNode per node of
// its expanded noderange, slept before answering.
type Latency struct {
	Fixed   time.Duration `json:"fixed" yaml:"fixed"`
	PerNode time.Duration `json:"perNode" yaml:"perNode"`
}

// Config configures a Server. The zero value serves an empty cluster on 127.0.0.1:0.
type Config struct {
	// Addr is the listen address; default "127.0.0.1:0".
	Addr string
	// Cluster is the initial cluster; nil means an empty NewCluster().
	Cluster *Cluster
	// CredDir receives ca.pem and client-cred.pem; default a new temporary directory
	// (removed by Close).
	CredDir string
	// ClientUser is the CN of the client certificate; default "root".
	ClientUser string
	// Timeline of installs; zero means DefaultTimeline (or the cluster's).
	Timeline Timeline
	// Latency model; zero means no added latency (or the cluster's).
	Latency Latency
	// Logf, when set, receives one line per request (t.Logf fits).
	Logf func(format string, args ...any)
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Hostname is the management node's name, which xcatd puts in every element its
	// plugins answer (<xcatdsource>) and xCAT's client prints as "[mn1]: "; default
	// "mn1".
	Hostname string
	// Version is what lsxcatd answers after "Version "; default DefaultVersion.
	Version string
	// Shuffle answers in orders xcatd may use but need not: the nodes of rpower,
	// rsetboot, rinv, rvitals, rnetboot and updatenode in a random order (xcatd
	// answers each node when its BMC has answered), nodels' tables in a random order
	// (xcatd walks a Perl hash). Off, both follow the sorted noderange and the
	// simulator's table order.
	Shuffle bool
	// CloseKept, when set, closes kept connections as xcatd does (see KeptClose).
	CloseKept *KeptClose
	// BMCForgetsBootFlags makes rsetboot answer "boot override inactive", as BMCs that
	// do not keep the boot flags' valid bit do (OpenIPMI's ipmi_sim, which the xcatd
	// transcripts were taken against); a BMC that keeps them answers "Network".
	BMCForgetsBootFlags bool
	// InstallDir is the management node's install directory (site.installdir),
	// where a node whose postbootscripts run config_ops_bmnode --config-drive
	// fetches its tree from at the end of its install (see ConfigDriveFetches).
	InstallDir string
}

// DefaultVersion is the xCAT release whose xcatd the simulator answers like.
const DefaultVersion = "2.19.0 (git commit 7733d16f8de0fc36b80638c04a7033931fa13304)"

// KeptClose says when the server closes a connection on its own after an answer.
//
// xcatd 2.19 closes a kept connection 0.12 to 0.19 s after serverdone when no
// request came (its wait for the next request is cut short, most likely by the
// signal of the request's finished plugin process) and reads nothing more: a request
// that arrives after that is answered by the close alone. The server does the same:
// after each answer it closes the connection a random time in [Min, Max] after
// serverdone unless the next request has been read whole by then; a request not read
// whole by then is dropped unread and is not recorded. A new connection's first
// request is always read.
type KeptClose struct {
	Min, Max time.Duration
}

// XcatdKeptClose is the closing xcatd 2.19 was measured to do.
var XcatdKeptClose = KeptClose{Min: 120 * time.Millisecond, Max: 190 * time.Millisecond}

// KeptCloseStats counts the kept connections the server closed (Config.CloseKept).
type KeptCloseStats struct {
	// Closed is how many kept connections the server closed on its own.
	Closed int
	// Unread is how many of them had the start of a request, or a whole one, that
	// the server dropped unread.
	Unread int
}

// Record is one request the server received.
type Record struct {
	// Time is when the request was read.
	Time time.Time
	// Command, Noderange and Args are as sent.
	Command   string
	Noderange string
	Args      []string
	Env       map[string]string
	// Stdin is the request's standard input (a chdef -z stanza), "" when none.
	Stdin string
	// Nodes is the expanded noderange, or the existing nodes a chdef -z stanza named
	// (nil when it did not expand).
	Nodes []string
	// ErrorCode is the OR of the errorcodes answered.
	ErrorCode int
	// Dropped is true when a fault closed the connection before serverdone.
	Dropped bool
}

// Server is a running simulated management node. Its methods are safe for concurrent
// use.
type Server struct {
	cfg     Config
	ln      net.Listener
	creds   *credentials
	credDir string
	tmpDir  bool

	mu      sync.Mutex
	st      *state
	faults  faults
	records []Record
	// served counts every xcatd request served since Start; ResetRequests and
	// TakeRequests leave it alone.
	served int
	// driveFetches are the config drives nodes fetched (configdrive.go).
	driveFetches []ConfigDriveFetch
	cleanings    []Cleaning

	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
	conns  map[net.Conn]struct{}

	rng       *rand.Rand // guarded by mu
	keptStats KeptCloseStats
}

// Start generates credentials, writes them to the credential directory, and serves
// until ctx ends or Close is called. It returns once the listener is ready.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.ClientUser == "" {
		cfg.ClientUser = "root"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "mn1"
	}
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	if k := cfg.CloseKept; k != nil && (k.Min < 0 || k.Max < k.Min) {
		return nil, fmt.Errorf("sim: CloseKept %v..%v: want 0 <= Min <= Max", k.Min, k.Max)
	}
	cl := cfg.Cluster
	if cl == nil {
		cl = NewCluster()
	}
	if err := cl.validate(); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if cfg.Timeline == (Timeline{}) {
		cfg.Timeline = DefaultTimeline
		if cl.Timeline != nil {
			cfg.Timeline = *cl.Timeline
		}
	}
	if cfg.Latency == (Latency{}) && cl.Latency != nil {
		cfg.Latency = *cl.Latency
	}
	creds, err := newCredentials(cfg.ClientUser)
	if err != nil {
		return nil, fmt.Errorf("sim: credentials: %w", err)
	}
	s := &Server{cfg: cfg, creds: creds, st: newState(cl), conns: map[net.Conn]struct{}{},
		rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
	s.credDir = cfg.CredDir
	if s.credDir == "" {
		dir, err := os.MkdirTemp("", "xcatbm-sim-cred-")
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		s.credDir, s.tmpDir = dir, true
	}
	if err := creds.write(s.credDir); err != nil {
		return nil, fmt.Errorf("sim: writing credentials: %w", err)
	}
	for _, spec := range cl.Nodes {
		if f := spec.Fault; f != nil {
			switch f.Install {
			case "fail":
				s.faults.add(Fault{Kind: FaultInstallFail, Nodes: []string{spec.Name}})
			case "hang":
				s.faults.add(Fault{Kind: FaultInstallHang, Nodes: []string{spec.Name}})
			}
			if f.BMCTimeout {
				s.faults.add(Fault{Kind: FaultBMCTimeout, Nodes: []string{spec.Name}, Count: f.BMCTimeoutCount})
			}
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	s.ln = tls.NewListener(ln, creds.serverTLS())
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(1)
	go s.serve()
	context.AfterFunc(s.ctx, func() { _ = s.ln.Close() })
	return s, nil
}

// Addr is the address the server listens on (host:port), for XCATHOST.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// CredDir is the directory holding ca.pem and client-cred.pem.
func (s *Server) CredDir() string { return s.credDir }

// ClientTLS returns a client TLS configuration trusting this server.
func (s *Server) ClientTLS() *tls.Config {
	c, err := ClientTLSConfig(s.credDir)
	if err != nil {
		// The files were written at Start; fall back to the in-memory pool.
		return &tls.Config{RootCAs: s.creds.pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	}
	return c
}

// Close stops the listener, closes open connections and waits for them to finish. It
// may be called more than once.
func (s *Server) Close() error {
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if s.tmpDir {
		_ = os.RemoveAll(s.credDir)
	}
	return nil
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			_ = conn.Close()
			return
		}
		s.conns[conn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(conn)
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

func (s *Server) handle(conn net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		_ = conn.Close()
	}()
	cr := &countingReader{r: conn}
	br := bufio.NewReader(cr)
	for served := 0; ; served++ {
		var closer *time.Timer
		before := cr.n
		if served > 0 && s.cfg.CloseKept != nil {
			closer = time.AfterFunc(s.keptDelay(), func() { _ = conn.Close() })
		}
		req, err := ReadRequest(br)
		if closer != nil && !closer.Stop() {
			// The server left its loop before it had read a request: whatever came
			// is dropped with the connection, as xcatd drops it.
			unread := cr.n > before || br.Buffered() > 0
			s.mu.Lock()
			s.keptStats.Closed++
			if unread {
				s.keptStats.Unread++
			}
			s.mu.Unlock()
			s.logf("xcatbm-sim: closed a kept connection (request dropped unread: %v)", unread)
			return
		}
		if err != nil {
			if errors.Is(err, ErrNotXCATRequest) && served == 0 {
				s.logf("xcatbm-sim: closing connection: %v", err)
			} else if !errors.Is(err, io.EOF) && s.ctx.Err() == nil {
				s.logf("xcatbm-sim: closing connection: %v", describeConnError(conn, err))
			}
			return
		}
		if !s.serveRequest(conn, req) {
			return
		}
	}
}

// keptDelay draws how long after serverdone a kept connection closes.
func (s *Server) keptDelay() time.Duration {
	k := s.cfg.CloseKept
	if k.Max <= k.Min {
		return k.Min
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return k.Min + time.Duration(s.rng.Int64N(int64(k.Max-k.Min)+1))
}

// KeptCloses returns how many kept connections the server closed on its own.
func (s *Server) KeptCloses() KeptCloseStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keptStats
}

// describeConnError says what a failed read of a connection means; a TLS handshake
// that failed on the client's certificate is named as such.
func describeConnError(conn net.Conn, err error) error {
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return fmt.Errorf("client certificate not accepted (not signed by this server's CA?): %w", err)
	}
	if tc, ok := conn.(*tls.Conn); ok && !tc.ConnectionState().HandshakeComplete {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	return err
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

// serveRequest answers one request; false means the connection must close.
func (s *Server) serveRequest(conn net.Conn, req xcat.Request) bool {
	now := s.cfg.Now()
	s.mu.Lock()
	nodes, resps := s.execute(req, now)
	code := 0
	for _, r := range ToResponseCodes(resps) {
		code |= r
	}
	drop := s.faults.takeDrop(req.Command)
	delay := s.faults.slowDelay(req.Command)
	rec := Record{Time: now, Command: req.Command, Noderange: req.Noderange, Args: slices.Clone(req.Args),
		Env: req.Env, Stdin: req.Stdin, Nodes: nodes, ErrorCode: code, Dropped: drop}
	s.records = append(s.records, rec)
	s.served++
	s.mu.Unlock()
	s.logf("xcatbm-sim: %s (%d nodes) rc=%d dropped=%v", req.String(), len(nodes), code, drop)

	wait := s.cfg.Latency.Fixed + time.Duration(len(nodes))*s.cfg.Latency.PerNode + delay
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return false
		}
	}
	if drop {
		// Send what a plugin might have sent before dying, but no serverdone.
		if len(resps) > 1 {
			if b, err := marshalResponses(resps[:1]); err == nil {
				_, _ = conn.Write(b)
			}
		}
		return false
	}
	b, err := marshalResponses(resps)
	if err != nil {
		s.logf("xcatbm-sim: marshal: %v", err)
		return false
	}
	_, err = conn.Write(b)
	return err == nil
}

// ToResponseCodes returns every errorcode in rs, top-level and per node.
func ToResponseCodes(rs []WireResponse) []int {
	var out []int
	for _, r := range rs {
		out = append(out, r.ErrorCode...)
		for _, n := range r.Nodes {
			out = append(out, n.ErrorCode...)
		}
	}
	return out
}

// Requests returns a copy of every request served, in arrival order.
func (s *Server) Requests() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, len(s.records))
	copy(out, s.records)
	return out
}

// ResetRequests forgets the requests recorded so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	s.records = nil
	s.mu.Unlock()
}

// TakeRequests returns every request recorded since the last TakeRequests or
// ResetRequests, in arrival order, and forgets them: a long run can count all of its
// requests without the record growing.
func (s *Server) TakeRequests() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.records
	s.records = nil
	return out
}

// Served is how many xcatd requests the server has served since it started, whatever
// was reset or taken since.
func (s *Server) Served() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served
}

// CountRequests counts recorded requests for command (every command when "") whose
// arguments start with argsPrefix.
func (s *Server) CountRequests(command string, argsPrefix ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.records {
		if (command == "" || r.Command == command) && len(r.Args) >= len(argsPrefix) && slices.Equal(r.Args[:len(argsPrefix)], argsPrefix) {
			n++
		}
	}
	return n
}

// NodeCalls returns the recorded requests whose expanded noderange held node.
func (s *Server) NodeCalls(node string) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Record
	for _, r := range s.records {
		if slices.Contains(r.Nodes, node) {
			out = append(out, r)
		}
	}
	return out
}

// NodeState is a snapshot of one simulated node.
type NodeState struct {
	Name string
	// Status is nodelist.status; StatusTime its last change.
	Status     string
	StatusTime string
	// Power is "on" or "off"; BootTarget the rsetboot/rbootseq device ("net", "hd", ...).
	Power      string
	BootTarget string
	// IP is hosts.ip; HostsEntry the /etc/hosts address makehosts wrote ("" if none).
	IP         string
	HostsEntry string
	// CurrState is chain.currstate (e.g. "install rhels7.5-x86_64-install-compute").
	CurrState       string
	PostScripts     []string
	PostBootScripts []string
	// RanScripts are the scripts run by finished installs and updatenode, in order.
	RanScripts []string
	// Attrs holds every lsdef attribute.
	Attrs map[string]string
}

// Node returns a snapshot of node name; ok is false when it is not defined.
func (s *Server) Node(name string) (NodeState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.st.nodes[name]
	if !ok {
		return NodeState{}, false
	}
	s.advance(n, s.cfg.Now())
	attrs := map[string]string{}
	for k, v := range n.attrs {
		attrs[k] = v
	}
	return NodeState{
		Name: name, Status: n.attrs["status"], StatusTime: n.attrs["statustime"],
		Power: n.power, BootTarget: n.bootTarget, IP: n.attrs["ip"], HostsEntry: n.hostsIP,
		CurrState: n.attrs["currstate"], PostScripts: splitList(n.attrs["postscripts"]),
		PostBootScripts: splitList(n.attrs["postbootscripts"]), RanScripts: slices.Clone(n.ran), Attrs: attrs,
	}, true
}

// Site returns the site table value of key.
func (s *Server) Site(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.site[key]
}

// WaitStatus polls node until its status is want or ctx ends.
func (s *Server) WaitStatus(ctx context.Context, node, want string) error {
	for {
		ns, ok := s.Node(node)
		if !ok {
			return fmt.Errorf("sim: no node %s", node)
		}
		if ns.Status == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sim: %s status %q, waiting for %q: %w", node, ns.Status, want, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func splitList(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

func (s *Server) setStatus(n *node, status string, at time.Time) {
	n.attrs["status"] = status
	n.attrs["statustime"] = at.Format("01-02-2006 15:04:05")
}

// advance moves n along its install timeline up to now.
func (s *Server) advance(n *node, now time.Time) {
	run := n.install
	if run == nil {
		return
	}
	tl := s.cfg.Timeline
	el := now.Sub(run.start)
	switch {
	case el < tl.PoweringOn:
		return // still powering-on
	case run.shell:
		n.install = nil
		s.setStatus(n, "shell", run.start.Add(tl.PoweringOn))
	case run.runImage != "":
		cleaning := tl.Cleaning
		if cleaning == 0 {
			cleaning = tl.Installing
		}
		if el < tl.PoweringOn+cleaning {
			if n.attrs["status"] != "configuring" {
				s.setStatus(n, "configuring", run.start.Add(tl.PoweringOn))
			}
			return
		}
		n.install = nil
		s.runImage(n, run.runImage, run.start.Add(tl.PoweringOn), run.start.Add(tl.PoweringOn+cleaning))
	case s.faults.nodeHas(FaultInstallHang, n.name) || el < tl.PoweringOn+tl.Installing:
		if n.attrs["status"] != "installing" {
			s.setStatus(n, "installing", run.start.Add(tl.PoweringOn))
		}
	case el < tl.PoweringOn+tl.Installing+tl.Postbooting:
		if n.attrs["status"] != "postbooting" {
			s.setStatus(n, "postbooting", run.start.Add(tl.PoweringOn+tl.Installing))
		}
	default:
		end := run.start.Add(tl.PoweringOn + tl.Installing + tl.Postbooting)
		n.install = nil
		n.attrs["currstate"] = "boot"
		n.bootTarget = "hd"
		if s.faults.nodeHas(FaultInstallFail, n.name) {
			s.setStatus(n, "failed", end)
			return
		}
		n.ran = append(n.ran, splitList(n.attrs["postscripts"])...)
		n.ran = append(n.ran, splitList(n.attrs["postbootscripts"])...)
		if !s.fetchConfigDrive(n, end) {
			s.setStatus(n, "failed", end)
			return
		}
		s.setStatus(n, "booted", end)
	}
}
