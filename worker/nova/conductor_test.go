package nova_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"xcatbm/internal/broker"
	"xcatbm/internal/testkit/testamqp"
	"xcatbm/messages"
	"xcatbm/worker/nova"
)

// fakeConductor consumes topic "conductor" on exchange nova of a real broker and
// answers each call with answer (nil: no answer), in the captured reply shape.
type fakeConductor struct {
	mu    sync.Mutex
	seen  []*messages.Request
	props []amqp.Delivery
}

func startFakeConductor(t *testing.T, url string, answer func(n int, req *messages.Request) []byte) *fakeConductor {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("nova", "topic", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("conductor", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("conductor", "conductor", "nova", false, nil); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume("conductor", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeConductor{}
	go func() {
		for d := range ds {
			req, err := messages.DecodeRequest(d.Body)
			if err != nil {
				continue
			}
			f.mu.Lock()
			f.seen = append(f.seen, req)
			f.props = append(f.props, d)
			n := len(f.seen)
			f.mu.Unlock()
			body := answer(n, req)
			if body == nil {
				continue
			}
			_ = ch.PublishWithContext(context.Background(), "", req.ReplyQueue, true, false,
				amqp.Publishing{ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2, Body: body})
		}
	}()
	return f
}

func (f *fakeConductor) requests() []*messages.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*messages.Request(nil), f.seen...)
}

func newConductor(t *testing.T, url string, timeout time.Duration) *nova.Conductor {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	conn := broker.NewConn(broker.ConnConfig{URLs: []string{url}, Log: log})
	c := nova.NewConductor(nova.ConductorConfig{Conn: conn, Timeout: timeout, PingTimeout: timeout, Attempts: 3,
		Backoff: broker.Backoff{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond}, Log: log})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); conn.Run(ctx) }()
	go func() { defer wg.Done(); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return c
}

// serviceCreateResult is the captured reply result of Service.create.
const serviceCreateResult = `[{"created_at": "2026-11-25T03:16:14Z", "id": 4, "uuid": "8245f619-0264-4a37-b515-0a08a97af561", "disabled": false, "forced_down": false, "last_seen_up": null, "obj_what_changed": []}, null]`

func TestConductorCalls(t *testing.T) {
	vh := testamqp.New(t)
	fake := startFakeConductor(t, vh.URL, func(n int, req *messages.Request) []byte {
		var objMethod string
		if raw, ok := req.Arg("objmethod"); ok {
			_ = json.Unmarshal(raw, &objMethod)
		}
		var body []byte
		switch {
		case req.Method == "ping":
			body, _ = messages.EncodeReply(req.MsgID, map[string]string{"service": "conductor"})
		case objMethod == "get_by_host_and_nodename":
			body, _ = messages.EncodeFailureReply(req.MsgID, &messages.Failure{Class: "ComputeHostNotFound", Module: "nova.exception",
				Message: "Compute host h1 could not be found.", Kwargs: map[string]any{"host": "h1"}})
		case objMethod == "create":
			body, _ = messages.EncodeReply(req.MsgID, json.RawMessage(serviceCreateResult))
		case objMethod == "get_minimum_version":
			if n <= 4 { // ignore the first send: the client must resend
				return nil
			}
			body, _ = messages.EncodeReply(req.MsgID, 64)
		}
		return body
	})
	c := newConductor(t, vh.URL, 400*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	_, err := c.ObjectClassAction(ctx, "ComputeNode", "get_by_host_and_nodename", []any{"h1", "n1"}, nil)
	var re *nova.RemoteError
	if !errors.As(err, &re) || re.Class != "ComputeHostNotFound" || !errors.Is(err, nova.ErrComputeHostNotFound) || !errors.Is(err, nova.ErrNotFound) {
		t.Fatalf("get_by_host_and_nodename: %v; want a ComputeHostNotFound RemoteError", err)
	}
	if errors.Is(err, nova.ErrUnexpectedTaskState) {
		t.Fatal("ComputeHostNotFound matches ErrUnexpectedTaskState")
	}
	svc, _ := messages.NewObject("Service", "1.22", map[string]any{"binary": "nova-compute", "host": "h1", "report_count": 0, "topic": "compute", "version": 64})
	svc.Changes = []string{"binary", "host", "report_count", "topic", "version"}
	upd, ret, err := c.ObjectAction(ctx, svc, "create", nil, nil, nil)
	if err != nil {
		t.Fatalf("Service.create: %v", err)
	}
	if string(upd["id"]) != "4" || string(upd["uuid"]) != `"8245f619-0264-4a37-b515-0a08a97af561"` || string(ret) != "null" {
		t.Fatalf("Service.create: updates %v result %s", upd, ret)
	}
	res, err := c.ObjectClassAction(ctx, "Service", "get_minimum_version", []any{"nova-compute"}, nil)
	if err != nil || string(res) != "64" {
		t.Fatalf("get_minimum_version after a lost reply: %s %v", res, err)
	}

	reqs := fake.requests()
	fake.mu.Lock()
	props := fake.props
	fake.mu.Unlock()
	for i, r := range reqs {
		if !strings.HasPrefix(r.ReplyQueue, "reply_") || r.ReplyQueue != c.ReplyQueue() || r.MsgID == "" || r.UniqueID == "" {
			t.Errorf("request %d (%s): reply_q %q msg_id %q", i, r.Method, r.ReplyQueue, r.MsgID)
		}
		if props[i].Expiration != "400" {
			t.Errorf("request %d (%s): expiration %q, want 400", i, r.Method, props[i].Expiration)
		}
		if rk := props[i].RoutingKey; rk != "conductor" {
			t.Errorf("request %d: routing key %q", i, rk)
		}
	}
	if reqs[0].Method != "ping" || reqs[0].Namespace != "baseapi" || reqs[0].Version != "1.0" {
		t.Errorf("ping sent as %s ns %q v%s", reqs[0].Method, reqs[0].Namespace, reqs[0].Version)
	}
	if r := reqs[2]; r.Method != "object_action" || r.Version != "3.0" {
		t.Errorf("create sent as %s v%s", r.Method, r.Version)
	} else {
		var inst map[string]json.RawMessage
		_ = json.Unmarshal(r.Args["objinst"], &inst)
		if string(inst["nova_object.name"]) != `"Service"` || !strings.Contains(string(inst["nova_object.changes"]), "report_count") {
			t.Errorf("objinst: %s", r.Args["objinst"])
		}
	}
	if n := len(reqs); n != 5 || reqs[3].MsgID == reqs[4].MsgID {
		t.Errorf("want get_minimum_version sent twice with fresh msg ids; %d requests", n)
	}
	if _, ok := reqs[1].Args["object_versions"]; !ok {
		t.Errorf("class action without object_versions: %v", reqs[1].Args)
	}
}

func TestConductorSilent(t *testing.T) {
	vh := testamqp.New(t)
	fake := startFakeConductor(t, vh.URL, func(int, *messages.Request) []byte { return nil })
	c := newConductor(t, vh.URL, 200*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := c.ObjectClassAction(ctx, "Service", "get_minimum_version", []any{"nova-compute"}, nil)
	if !errors.Is(err, nova.ErrTimeout) {
		t.Fatalf("silent conductor: %v; want ErrTimeout", err)
	}
	if n := len(fake.requests()); n != 3 {
		t.Fatalf("silent conductor got %d sends; want 3 attempts", n)
	}
	pctx, pcancel := context.WithTimeout(ctx, 700*time.Millisecond)
	defer pcancel()
	if err := c.Ping(pctx); err == nil {
		t.Fatal("ping of a silent conductor succeeded")
	}
}

func TestResourceClass(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "CUSTOM_BAREMETAL"}, {"baremetal-gold", "CUSTOM_BAREMETAL_GOLD"}, {"CUSTOM_X", "CUSTOM_X"}, {"gpu.large", "CUSTOM_GPU_LARGE"},
	} {
		if got := nova.ResourceClass(tc.in); got != tc.want {
			t.Errorf("ResourceClass(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
