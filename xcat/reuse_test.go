package xcat_test

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"xcatbm/xcat"
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
