package nova_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/lib/pq"
	"github.com/rs/zerolog"

	"xcatbm/internal/broker"
	"xcatbm/internal/testkit/testamqp"
	"xcatbm/internal/testkit/testdb"
	"xcatbm/messages"
	"xcatbm/worker/nova"
	"xcatbm/worker/store"
)

// member is one worker process's nova integration.
type member struct {
	svc    *nova.Service
	cancel context.CancelFunc
	done   chan struct{}
	db     *sql.DB
}

// serviceConductor answers what the nova-compute service role asks of nova-conductor
// (ping, Service.get_by_host_and_binary, Service.create, Service.save) and counts the
// creates and saves.
type serviceConductor struct {
	created      atomic.Bool
	creates      atomic.Int32
	heartbeats   atomic.Int32
	mu           sync.Mutex
	heartbeatsAt []time.Time
}

func (sc *serviceConductor) answer(_ int, req *messages.Request) []byte {
	var objMethod string
	if raw, ok := req.Arg("objmethod"); ok {
		_ = json.Unmarshal(raw, &objMethod)
	}
	var body []byte
	switch {
	case req.Method == "ping":
		body, _ = messages.EncodeReply(req.MsgID, map[string]string{"service": "conductor"})
	case objMethod == "get_by_host_and_binary":
		if !sc.created.Load() {
			body, _ = messages.EncodeReply(req.MsgID, nil)
			break
		}
		svc, _ := messages.NewObject("Service", "1.22", map[string]any{"id": 4, "binary": "nova-compute", "host": "mn1",
			"report_count": 7, "topic": "compute", "version": 64})
		body, _ = messages.EncodeReply(req.MsgID, svc)
	case objMethod == "create":
		sc.creates.Add(1)
		sc.created.Store(true)
		body, _ = messages.EncodeReply(req.MsgID, json.RawMessage(serviceCreateResult))
	case objMethod == "save":
		sc.heartbeats.Add(1)
		sc.mu.Lock()
		sc.heartbeatsAt = append(sc.heartbeatsAt, time.Now())
		sc.mu.Unlock()
		body, _ = messages.EncodeReply(req.MsgID, []any{map[string]any{}, nil})
	}
	return body
}

// longestGap is the longest time between two heartbeats nova saw after since.
func (sc *serviceConductor) longestGap(since time.Time) time.Duration {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	var gap time.Duration
	prev := since
	for _, at := range sc.heartbeatsAt {
		if at.Before(since) {
			continue
		}
		gap = max(gap, at.Sub(prev))
		prev = at
	}
	return gap
}

// TestOneServiceHolderPerHost runs three nova integrations of one compute host: one
// registers and heartbeats the service, the others do not; when it stops, cleanly or
// as if it died (its database gone, so it cannot give the role up), another takes
// the role over within the lease and nova's heartbeats go on.
func TestOneServiceHolderPerHost(t *testing.T) {
	t.Parallel()
	vh := testamqp.New(t)
	sc := &serviceConductor{}
	startFakeConductor(t, vh.URL, sc.answer)
	fsys, dir := store.Migrations()
	db := testdb.New(t, fsys, dir)
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	const heartbeat, ttl = 100 * time.Millisecond, 600 * time.Millisecond

	start := func(name string) *member {
		// Each member has a pool of its own, as each worker process has.
		own, err := sql.Open("postgres", db.URL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = own.Close() })
		ctx, cancel := context.WithCancel(context.Background())
		conn := broker.NewConn(broker.ConnConfig{URLs: []string{vh.URL}, Log: log})
		svc, err := nova.New(nova.Config{ComputeHost: "mn1", Holder: name, HeartbeatInterval: heartbeat, LeaseTTL: ttl,
			Backoff: broker.Backoff{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond}},
			nova.Deps{Conn: conn, Store: store.New(own), Placement: &nova.Placement{URL: "http://127.0.0.1:1"}, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		m := &member{svc: svc, cancel: cancel, done: make(chan struct{}), db: own}
		go conn.Run(ctx)
		go func() { defer close(m.done); _ = svc.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-m.done })
		return m
	}
	members := []*member{start("w1"), start("w2"), start("w3")}
	holders := func() []*member {
		var out []*member
		for _, m := range members {
			if m.svc.Leading() {
				out = append(out, m)
			}
		}
		return out
	}
	waitOne := func(what string) *member {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if h := holders(); len(h) == 1 {
				return h[0]
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("%s: %d holders of the nova-compute role", what, len(holders()))
		return nil
	}
	first := waitOne("start")
	for _, m := range members {
		select {
		case <-m.svc.Ready():
		case <-time.After(10 * time.Second):
			t.Fatal("a member never became ready")
		}
	}
	before := sc.heartbeats.Load()
	time.Sleep(10 * heartbeat)
	if n := sc.heartbeats.Load() - before; n < 5 || n > 13 {
		t.Errorf("%d heartbeats in 10 intervals: want about 10, from one holder", n)
	}
	if len(holders()) != 1 {
		t.Errorf("%d holders after a while", len(holders()))
	}

	// A clean stop gives the role up at once.
	stopped := time.Now()
	first.cancel()
	<-first.done
	members = slices.DeleteFunc(members, func(m *member) bool { return m == first })
	second := waitOne("after a clean stop")
	t.Logf("clean stop: role taken over in %v", time.Since(stopped).Round(time.Millisecond))

	// A holder that dies cannot give the role up: another takes it once the lease
	// ran out.
	died := time.Now()
	_ = second.db.Close()
	second.cancel()
	<-second.done
	members = slices.DeleteFunc(members, func(m *member) bool { return m == second })
	third := waitOne("after the holder died")
	took := time.Since(died)
	t.Logf("died: role taken over in %v (lease %v)", took.Round(time.Millisecond), ttl)
	if took > ttl+ttl/2 {
		t.Errorf("takeover after the holder died took %v; the lease is %v", took, ttl)
	}
	time.Sleep(5 * heartbeat)
	if gap := sc.longestGap(stopped); gap > ttl+ttl/2+2*heartbeat {
		t.Errorf("nova saw no heartbeat for %v", gap)
	}
	if n := sc.creates.Load(); n != 1 {
		t.Errorf("the service was created %d times; the later holders find it", n)
	}
	if !third.svc.Leading() {
		t.Error("the last member does not hold the role")
	}
}
