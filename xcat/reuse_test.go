package xcat_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"xcatbm/xcat"
	"xcatbm/xcat/sim"
)

// countingProxy forwards TCP connections to target and counts them.
func countingProxy(t *testing.T, target string) (addr string, conns *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = &atomic.Int32{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c); up.Close() }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String(), conns
}

// TestNativeReusesConnections: with ReuseIdle, sequential requests share one
// connection; without it each opens its own; an idle connection past the limit is
// not reused.
func TestNativeReusesConnections(t *testing.T) {
	t.Parallel()
	srv, _ := coalesceSim(t, 2)
	tests := []struct {
		name      string
		reuse     time.Duration
		pause     time.Duration
		wantConns int32
	}{
		{"reuse", time.Second, 0, 1},
		{"no reuse", 0, 0, 5},
		{"idle too long", 20 * time.Millisecond, 60 * time.Millisecond, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, conns := countingProxy(t, srv.Addr())
			nat, err := xcat.NewNative(xcat.NativeConfig{Addr: addr, CredDir: srv.CredDir(), ReuseIdle: tc.reuse})
			if err != nil {
				t.Fatal(err)
			}
			client := xcat.NewClient(nat)
			for i := 0; i < 5; i++ {
				res, err := client.Power(context.Background(), "c001,c002", xcat.PowerStat)
				if err != nil || res["c001"].Value != "off" || res["c002"].Value != "off" {
					t.Fatalf("request %d: %v %+v", i, err, res)
				}
				time.Sleep(tc.pause)
			}
			if got := conns.Load(); got != tc.wantConns {
				t.Errorf("connections = %d, want %d", got, tc.wantConns)
			}
		})
	}
}

// TestKeptConnectionStorm: a storm of requests from concurrent callers against a
// simulator that closes kept connections at random (0 to 2 ms after serverdone, so
// requests often arrive just as it closes). Counted in the simulator's request
// record: every request was answered and recorded once; rpower boot, nodeset and
// chdef -p ran exactly once per node.
func TestKeptConnectionStorm(t *testing.T) {
	t.Parallel()
	const nodes, readsPerNode, callers = 24, 12, 8
	cl := sim.GenerateCluster("s", nodes, "mn1")
	srv, err := sim.Start(t.Context(), sim.Config{Cluster: cl, Shuffle: true,
		CloseKept: &sim.KeptClose{Min: 0, Max: 2 * time.Millisecond},
		Timeline:  sim.Timeline{PoweringOn: time.Hour, Installing: time.Hour, Postbooting: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	nat, err := xcat.NewNative(xcat.NativeConfig{Addr: srv.Addr(), CredDir: srv.CredDir(), ReuseIdle: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nat.Close() })
	client := xcat.NewClient(nat)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	type op struct {
		node string
		kind string
	}
	var work []op
	names := make([]string, nodes)
	for i := range names {
		names[i] = cl.Nodes[i].Name
		for _, k := range []string{"rpower boot", "nodeset", "chdef -p"} {
			work = append(work, op{names[i], k})
		}
		for j := 0; j < readsPerNode; j++ {
			work = append(work, op{names[i], []string{"nodels", "rpower stat", "lsdef"}[j%3]})
		}
	}
	rand.Shuffle(len(work), func(i, j int) { work[i], work[j] = work[j], work[i] })

	const img = "rhels7.5-x86_64-install-compute"
	do := func(o op) error {
		var res xcat.Results
		var err error
		switch o.kind {
		case "rpower boot":
			res, err = client.Power(ctx, o.node, xcat.PowerBoot)
		case "nodeset":
			res, err = client.NodeSet(ctx, o.node, "osimage="+img)
		case "chdef -p":
			res, err = client.ChDef(ctx, o.node, xcat.ChDefAdd, xcat.Attrs{"postbootscripts": "config_ops_bmnode " + o.node})
		case "nodels":
			_, res, err = client.NodeLs(ctx, o.node, "nodelist.status")
		case "rpower stat":
			res, err = client.Power(ctx, o.node, xcat.PowerStat)
		case "lsdef":
			var a map[string]xcat.Attrs
			a, err = client.LsDefNodes(ctx, o.node, nil, "mac")
			if err == nil && a[o.node]["mac"] == "" {
				err = fmt.Errorf("lsdef %s: no mac in %v", o.node, a)
			}
			return err
		}
		if err != nil {
			return err
		}
		if r, ok := res[o.node]; !ok || r.Err != nil {
			return fmt.Errorf("%s %s: result %+v", o.kind, o.node, r)
		}
		return nil
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	next := make(chan op)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range next {
				if err := do(o); err != nil {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s %s: %v", o.kind, o.node, err))
					mu.Unlock()
				}
			}
		}()
	}
	for _, o := range work {
		next <- o
	}
	close(next)
	wg.Wait()
	for _, f := range failures {
		t.Errorf("lost: %s", f)
	}

	count := func(node, command string, match func(args []string) bool) int {
		n := 0
		for _, r := range srv.NodeCalls(node) {
			if r.Command == command && match(r.Args) {
				n++
			}
		}
		return n
	}
	first := func(want string) func([]string) bool {
		return func(a []string) bool { return len(a) > 0 && a[0] == want }
	}
	has := func(want string) func([]string) bool {
		return func(a []string) bool { return slices.Contains(a, want) }
	}
	all := func([]string) bool { return true }
	for _, n := range names {
		got := map[string]int{
			"rpower boot": count(n, "rpower", first("boot")),
			"nodeset":     count(n, "nodeset", all),
			"chdef -p":    count(n, "chdef", has("-p")),
			"reads":       count(n, "nodels", all) + count(n, "rpower", first("stat")) + count(n, "lsdef", all),
		}
		want := map[string]int{"rpower boot": 1, "nodeset": 1, "chdef -p": 1, "reads": readsPerNode}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: %s ran %d times, want %d", n, k, got[k], w)
			}
		}
		if ns, _ := srv.Node(n); len(ns.PostBootScripts) != 2 {
			t.Errorf("%s: postbootscripts %q, want otherpkgs and one config_ops_bmnode", n, ns.PostBootScripts)
		}
	}
	st, kc := nat.Stats(), srv.KeptCloses()
	t.Logf("client: %d connections, %d requests on kept ones, %d sent again; server: closed %d kept connections, %d with a request unread",
		st.Dials, st.Reused, st.Resent, kc.Closed, kc.Unread)
	// The storm must have hit what it is about: closes, reuse, and requests that
	// arrived as the server closed and had to go again.
	if kc.Closed == 0 || st.Reused == 0 || st.Resent == 0 || kc.Unread == 0 {
		t.Errorf("the storm did not exercise kept-connection closes: %+v, %+v", st, kc)
	}
}

// BenchmarkNativeConnections measures what one request costs against the simulator
// (no latency model) with each way of using connections: a new connection per request
// (TLS sessions resumed, Native's default), a new connection with a full TLS
// handshake, and kept connections, which Native uses for read-only requests only;
// with xcatd's closing of kept connections on too. It reports connections opened
// per request.
//
//	go test -run '^$' -bench BenchmarkNativeConnections -benchtime 2000x ./xcat/
func BenchmarkNativeConnections(b *testing.B) {
	read := xcat.Request{Command: "nodels", Noderange: "b1", Args: []string{"nodelist.status"}}
	change := xcat.Request{Command: "rpower", Noderange: "b1", Args: []string{"on"}}
	cases := []struct {
		name  string
		reuse time.Duration
		kept  *sim.KeptClose
		req   xcat.Request
		full  bool // a full handshake per request: no session resumption
	}{
		{"read/new connection, full handshake", 0, nil, read, true},
		{"read/new connection, resumed session", 0, nil, read, false},
		{"read/kept connection", 2 * time.Second, nil, read, false},
		{"read/kept connection, xcatd closes kept ones", 2 * time.Second, &sim.XcatdKeptClose, read, false},
		{"change/new connection (also with reuse on)", 2 * time.Second, nil, change, false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			srv, err := sim.Start(b.Context(), sim.Config{Cluster: sim.GenerateCluster("b", 1, "mn1"), CloseKept: c.kept})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			ctx := context.Background()
			if c.full {
				conf := srv.ClientTLS()
				b.ResetTimer()
				for b.Loop() {
					if _, err := sim.Call(ctx, srv.Addr(), conf, c.req); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(1, "dials/op")
				return
			}
			nat, err := xcat.NewNative(xcat.NativeConfig{Addr: srv.Addr(), CredDir: srv.CredDir(), ReuseIdle: c.reuse})
			if err != nil {
				b.Fatal(err)
			}
			defer nat.Close()
			if _, err := nat.Do(ctx, c.req); err != nil { // a session to resume, a connection to keep
				b.Fatal(err)
			}
			before := nat.Stats()
			b.ResetTimer()
			for b.Loop() {
				if _, err := nat.Do(ctx, c.req); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			after := nat.Stats()
			b.ReportMetric(float64(after.Dials-before.Dials)/float64(b.N), "dials/op")
		})
	}
}
