package xcat_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"xcatbm/xcat"
	"xcatbm/xcat/sim"
)

func coalesceSim(t *testing.T, n int) (*sim.Server, xcat.Backend) {
	t.Helper()
	return coalesceSimLatency(t, n, sim.Latency{})
}

func coalesceSimLatency(t *testing.T, n int, lat sim.Latency) (*sim.Server, xcat.Backend) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var nodes []sim.NodeSpec
	for i := 1; i <= n; i++ {
		nodes = append(nodes, sim.NodeSpec{Name: fmt.Sprintf("c%03d", i), Power: "off", Attrs: map[string]string{"mgt": "ipmi", "mac": fmt.Sprintf("aa:00:00:00:00:%02x", i)}})
	}
	srv, err := sim.Start(ctx, sim.Config{Cluster: sim.NewCluster(nodes...), Latency: lat})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	nat, err := xcat.NewNative(xcat.NativeConfig{Addr: srv.Addr(), CredDir: srv.CredDir()})
	if err != nil {
		t.Fatal(err)
	}
	return srv, nat
}

// eachNode calls call for nodes c001..c<n>, each from its own goroutine, gap apart,
// and joins their errors.
func eachNode(n int, gap time.Duration, call func(node string) error) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i-1] = call(fmt.Sprintf("c%03d", i))
		}()
		time.Sleep(gap)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// statEach runs rpower stat for nodes c001..c<n> (eachNode) and checks that each
// caller got its own node's answer (off).
func statEach(client xcat.Client, n int, gap time.Duration) error {
	return eachNode(n, gap, func(node string) error {
		res, err := client.Power(context.Background(), node, xcat.PowerStat)
		switch {
		case err != nil:
			return err
		case len(res) != 1 || res[node].Value != "off" || res[node].Err != nil:
			return fmt.Errorf("%s: %+v", node, res)
		}
		return nil
	})
}

// TestCoalescerMergesConcurrentCalls: 50 concurrent rpower stat calls of one node each
// become one request, and each caller gets its own node's answer.
func TestCoalescerMergesConcurrentCalls(t *testing.T) {
	t.Parallel()
	srv, nat := coalesceSim(t, 50)
	co := xcat.NewCoalescer(nat, xcat.CoalesceConfig{Window: 50 * time.Millisecond})
	client := xcat.NewClient(co)
	if err := statEach(client, 50, 0); err != nil {
		t.Fatal(err)
	}
	if n := srv.CountRequests("rpower"); n != 1 {
		t.Errorf("rpower requests = %d, want 1", n)
	}
}

// TestCoalescerIsolatesABadNode: a caller naming an unknown node makes xcatd refuse
// the merged request; the other callers still get their answers.
func TestCoalescerIsolatesABadNode(t *testing.T) {
	t.Parallel()
	_, nat := coalesceSim(t, 3)
	client := xcat.NewClient(xcat.NewCoalescer(nat, xcat.CoalesceConfig{Window: 50 * time.Millisecond}))
	var wg sync.WaitGroup
	results := map[string]error{}
	var mu sync.Mutex
	for _, node := range []string{"c001", "c002", "nosuch"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := client.Power(context.Background(), node, xcat.PowerStat)
			if err == nil {
				err = res[node].Err
			}
			mu.Lock()
			results[node] = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	if results["c001"] != nil || results["c002"] != nil {
		t.Errorf("good nodes failed: %v", results)
	}
	var cmdErr *xcat.CommandError
	if !errors.As(results["nosuch"], &cmdErr) {
		t.Errorf("unknown node: %v, want a CommandError", results["nosuch"])
	}
}

// TestCoalescerOffSendsEachRequest: Window 0 turns coalescing off.
func TestCoalescerOffSendsEachRequest(t *testing.T) {
	t.Parallel()
	srv, nat := coalesceSim(t, 4)
	client := xcat.NewClient(xcat.NewCoalescer(nat, xcat.CoalesceConfig{}))
	var wg sync.WaitGroup
	for i := 1; i <= 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = client.Power(context.Background(), fmt.Sprintf("c%03d", i), xcat.PowerStat)
		}()
	}
	wg.Wait()
	if n := srv.CountRequests("rpower"); n != 4 {
		t.Errorf("rpower requests = %d, want 4 with coalescing off", n)
	}
}

// TestCoalescerGathersWhileInFlight: calls that arrive one by one, further apart than
// the window, still become about one request per round trip while a merged request of
// the same command is in flight; with room for every request in flight, each call is
// its own request.
func TestCoalescerGathersWhileInFlight(t *testing.T) {
	t.Parallel()
	const calls, gap = 40, 10 * time.Millisecond // 400 ms of arrivals, 200 ms a request
	for _, tc := range []struct {
		name        string
		maxInFlight int
		min, max    int
	}{
		{"one in flight", 1, 2, 5},
		{"unbounded", 1000, 30, calls},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, nat := coalesceSimLatency(t, calls, sim.Latency{Fixed: 200 * time.Millisecond})
			client := xcat.NewClient(xcat.NewCoalescer(nat, xcat.CoalesceConfig{Window: 2 * time.Millisecond, MaxInFlight: tc.maxInFlight}))
			if err := statEach(client, calls, gap); err != nil {
				t.Fatal(err)
			}
			if n := srv.CountRequests("rpower"); n < tc.min || n > tc.max {
				t.Errorf("rpower requests = %d, want %d..%d", n, tc.min, tc.max)
			}
		})
	}
}

// TestCoalescerHoldIsBounded: a small request waits for a long one of the same
// command in flight at most MaxHold, not for its whole duration.
func TestCoalescerHoldIsBounded(t *testing.T) {
	t.Parallel()
	srv, nat := coalesceSimLatency(t, 601, sim.Latency{PerNode: 3 * time.Millisecond}) // 600 nodes: 1.8 s
	client := xcat.NewClient(xcat.NewCoalescer(nat, xcat.CoalesceConfig{Window: 2 * time.Millisecond, MaxHold: 100 * time.Millisecond}))
	bigDone := make(chan time.Time, 1)
	go func() {
		_, _ = client.Power(context.Background(), "c[001-600]", xcat.PowerStat)
		bigDone <- time.Now()
	}()
	time.Sleep(50 * time.Millisecond)
	res, err := client.Power(context.Background(), "c601", xcat.PowerStat)
	smallDone := time.Now()
	if err != nil || res["c601"].Err != nil {
		t.Fatalf("small request: %v %+v", err, res)
	}
	big := <-bigDone
	if !smallDone.Before(big) {
		t.Errorf("the small request came back %v after the long one it should not wait for", smallDone.Sub(big))
	}
	if n := srv.CountRequests("rpower"); n != 2 {
		t.Errorf("rpower requests = %d, want 2", n)
	}
}

// TestCoalescerPassesStdinThrough: requests carrying standard input are each one
// caller's own data and are sent as they are, never merged, even for a merged command
// within the window.
func TestCoalescerPassesStdinThrough(t *testing.T) {
	t.Parallel()
	srv, nat := coalesceSim(t, 4)
	co := xcat.NewCoalescer(nat, xcat.CoalesceConfig{Window: 50 * time.Millisecond})
	client := xcat.NewClient(co)
	err := eachNode(4, 0, func(node string) error {
		resp, err := client.Raw(context.Background(), xcat.Request{Command: "rpower", Noderange: node, Args: []string{"stat"}, Stdin: node + ":\n    objtype=node\n"})
		switch {
		case err != nil:
			return err
		case len(resp.Order) != 1 || resp.Order[0] != node:
			return fmt.Errorf("%s: answer for %v", node, resp.Order)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.CountRequests("rpower"); n != 4 || co.Sent() != 0 {
		t.Errorf("rpower requests = %d, merged sent = %d; want 4 requests and none merged", n, co.Sent())
	}
	for _, r := range srv.Requests() {
		if want := r.Noderange + ":\n    objtype=node\n"; r.Stdin != want {
			t.Errorf("request for %s carried stdin %q, want %q", r.Noderange, r.Stdin, want)
		}
	}
}
