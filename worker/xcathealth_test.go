package worker_test

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"xcatbm/worker"
	"xcatbm/xcat"
	"xcatbm/xcat/sim"
)

// TestClassifyXCATError provokes each kind of failure against a real listener or the
// simulator and checks how it is named.
func TestClassifyXCATError(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := sim.Start(ctx, sim.Config{Cluster: sim.NewCluster(ipmiNode("n01", "10.0.0.11")), CredDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	other, err := sim.Start(ctx, sim.Config{Cluster: sim.NewCluster(), CredDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	// A port where nothing listens.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	// A server that accepts and never answers.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	client := func(addr, creds string) xcat.Client {
		n, err := xcat.NewNative(xcat.NativeConfig{Addr: addr, CredDir: creds, DialTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return xcat.NewClient(n)
	}
	cases := []struct {
		name string
		xc   xcat.Client
		nr   string
		want string
	}{
		{"answered", client(srv.Addr(), srv.CredDir()), "n01", ""},
		{"refused by xcatd", client(srv.Addr(), srv.CredDir()), "nosuch", worker.XCATFailCommand},
		{"nothing listening", client(closed, srv.CredDir()), "n01", worker.XCATFailConnect},
		{"certificates of another CA", client(srv.Addr(), other.CredDir()), "n01", worker.XCATFailTLS},
		{"no answer in time", client(mute.Addr().String(), srv.CredDir()), "n01", worker.XCATFailTimeout},
	}
	for _, tc := range cases {
		rctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		_, _, err := tc.xc.NodeLs(rctx, tc.nr, "nodelist.status")
		cancel()
		if got := worker.ClassifyXCATError(err); got != tc.want {
			t.Errorf("%s: %v classified %q, want %q", tc.name, err, got, tc.want)
		}
	}
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestXCATOutageIsVisible: requests to an xcatd that is gone are counted by kind,
// logged at warn when the run starts and at error when it becomes an outage, and
// Down explains the outage until a request gets through again.
func TestXCATOutageIsVisible(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	var logs logBuf
	h := worker.NewXCATHealth(reg, zerolog.New(&logs), 300*time.Millisecond)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := sim.Start(ctx, sim.Config{Cluster: sim.NewCluster(ipmiNode("n01", "10.0.0.11")), CredDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	n, err := xcat.NewNative(xcat.NativeConfig{Addr: addr, CredDir: srv.CredDir(), DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	down := xcat.NewClient(h.Watch(n))
	began := time.Now()
	for time.Since(began) < 400*time.Millisecond {
		if _, _, err := down.NodeLs(ctx, "n01", "nodelist.status"); err == nil {
			t.Fatal("a request to a closed port succeeded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	why := h.Down()
	if !strings.Contains(why, "xCAT unreachable since") || !strings.Contains(why, "connect") {
		t.Fatalf("Down() = %q; want the outage with its kind", why)
	}
	if v := failuresOf(t, reg, "connect"); v < 5 {
		t.Errorf("xcatbm_xcat_failures_total{kind=connect} = %v, want every failure counted", v)
	}
	out := logs.String()
	if strings.Count(out, `"level":"warn"`) != 1 || strings.Count(out, `"level":"error"`) != 1 {
		t.Errorf("want one warn when the failures start and one error for the outage, got:\n%s", out)
	}
	// xcatd back: one good answer ends the outage.
	n2, err := xcat.NewNative(xcat.NativeConfig{Addr: srv.Addr(), CredDir: srv.CredDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := xcat.NewClient(h.Watch(n2)).NodeLs(ctx, "n01", "nodelist.status"); err != nil {
		t.Fatal(err)
	}
	if why := h.Down(); why != "" {
		t.Fatalf("still down after a good answer: %s", why)
	}
	if !strings.Contains(logs.String(), "xCAT reachable again") {
		t.Errorf("the recovery is not logged:\n%s", logs.String())
	}
}

// failuresOf reads xcatbm_xcat_failures_total{kind} from reg.
func failuresOf(t *testing.T, reg *prometheus.Registry, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "xcatbm_xcat_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no xcatbm_xcat_failures_total{kind=%q}", kind)
	return 0
}
