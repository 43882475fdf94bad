package publisher

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xcatbm/internal/testkit/testamqp"
	"xcatbm/messages"
	"xcatbm/xcat"
)

// workerSide stands where a worker would on the real broker: it declares the nova
// exchange and compute.<host> as the worker does, and hands the test each cast that
// arrives there.
type workerSide struct {
	ch    *amqp.Channel
	casts <-chan amqp.Delivery
}

func newWorkerSide(t *testing.T, url, host string) *workerSide {
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
	if err := ch.ExchangeDeclare("nova", amqp.ExchangeTopic, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q := "compute." + host
	if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q, q, "nova", false, nil); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(q, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &workerSide{ch: ch, casts: ds}
}

// notify publishes a job notification as the worker's outbox does.
func (w *workerSide) notify(t *testing.T, host string, end bool, p messages.JobPayload) {
	t.Helper()
	n, err := messages.NewJobNotification(host, end, p, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := n.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.ch.PublishWithContext(context.Background(), "nova", n.RoutingKey(), false, false,
		amqp.Publishing{ContentType: "application/json", Body: body}); err != nil {
		t.Fatal(err)
	}
}

func (w *workerSide) nextCast(t *testing.T) *messages.Request {
	t.Helper()
	select {
	case d := <-w.casts:
		req, err := messages.DecodeRequest(d.Body)
		if err != nil {
			t.Fatalf("the cast does not decode as oslo's wire: %v", err)
		}
		return req
	case <-time.After(10 * time.Second):
		t.Fatal("no cast reached compute.<host>")
		return nil
	}
}

// TestSubmitAndFollow casts a registration job to a host's queue on the real broker
// and follows it through progress to its end, skipping other jobs' notifications.
func TestSubmitAndFollow(t *testing.T) {
	t.Parallel()
	vh := testamqp.New(t)
	w := newWorkerSide(t, vh.URL, "mn1")
	p, err := Dial(Config{URLs: []string{vh.URL}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := &messages.RegisterNodesArgs{NodeRange: "node[01-03]", ComputeHost: "mn1"}
	job, err := p.Submit(ctx, "mn1", messages.MethodRegisterNodes, args, true)
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()

	req := w.nextCast(t)
	if req.Namespace != messages.XCATBMNamespace || req.Method != messages.MethodRegisterNodes || req.UniqueID != job.ID || req.IsCall() {
		t.Fatalf("cast = %s.%s id %s call %v; want a cast of xcatbm.register_nodes with id %s", req.Namespace, req.Method, req.UniqueID, req.IsCall(), job.ID)
	}
	got, err := req.RegisterNodes()
	if err != nil || *got != *args {
		t.Fatalf("args = %+v, %v; want %+v", got, err, args)
	}
	if rid := req.Context.RequestID(); !strings.HasPrefix(rid, "req-") {
		t.Fatalf("request_id %q: want req-<uuid>", rid)
	}

	one := []messages.JobItemResult{{Name: "node01", Status: messages.ItemOK, Message: "registered"}}
	all := append(one, messages.JobItemResult{Name: "node02", Status: messages.ItemOK, Message: "registered"},
		messages.JobItemResult{Name: "node03", Status: messages.ItemFailed, Message: "no MAC"})
	w.notify(t, "mn1", true, messages.JobPayload{JobID: "someone-else", Kind: "register_nodes", Results: one, Done: 1, Total: 1})
	w.notify(t, "mn1", false, messages.JobPayload{JobID: job.ID, Kind: "register_nodes", Results: one, Done: 1, Total: 3})
	w.notify(t, "mn1", true, messages.JobPayload{JobID: job.ID, Kind: "register_nodes", Results: all, Done: 3, Total: 3})

	var progress []int
	end, err := job.Follow(ctx, func(p *messages.JobPayload) { progress = append(progress, p.Done) })
	if err != nil {
		t.Fatal(err)
	}
	if end.JobID != job.ID || end.Done != 3 || len(end.Results) != 3 || end.Results[2].Status != messages.ItemFailed {
		t.Fatalf("end = %+v; want this job's three results", end)
	}
	if len(progress) != 1 || progress[0] != 1 {
		t.Fatalf("progress seen = %v; want one report of 1 done", progress)
	}
}

// TestSubmitErrors: what Submit and Follow say when there is nobody to talk to.
func TestSubmitErrors(t *testing.T) {
	t.Parallel()
	vh := testamqp.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := &messages.RegisterNodesArgs{NodeRange: "node01", ComputeHost: "mn9"}
	p, err := Dial(Config{URLs: []string{vh.URL}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	// Before any worker declared nova's exchange, following is impossible.
	if _, err := p.Submit(ctx, "mn9", messages.MethodRegisterNodes, args, true); err == nil || !strings.Contains(err.Error(), "no worker has declared it yet") {
		t.Fatalf("follow without the exchange: %v", err)
	}
	newWorkerSide(t, vh.URL, "mn1")
	cases := []struct {
		name   string
		host   string
		follow bool
		want   error
	}{
		{"a host no worker serves", "mn9", true, ErrNoWorker},
		{"without follow too", "mn9", false, ErrNoWorker},
	}
	for _, tc := range cases {
		if _, err := p.Submit(ctx, tc.host, messages.MethodRegisterNodes, args, tc.follow); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v; want %v", tc.name, err, tc.want)
		}
	}

	job, err := p.Submit(ctx, "mn1", messages.MethodRegisterNodes, args, false)
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	if _, err := job.Follow(ctx, nil); err == nil || !strings.Contains(err.Error(), "without follow") {
		t.Fatalf("Follow of an unfollowed job: %v", err)
	}

	followed, err := p.Submit(ctx, "mn1", messages.MethodRegisterNodes, args, true)
	if err != nil {
		t.Fatal(err)
	}
	defer followed.Close()
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if _, err := followed.Follow(short, nil); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), followed.ID) {
		t.Fatalf("Follow past its context: %v; want the deadline and the job id", err)
	}
}

func TestDialErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		urls []string
	}{
		{"no URL", nil},
		{"nothing listening", []string{"amqp://guest:guest@127.0.0.1:1/"}},
	} {
		if _, err := Dial(Config{URLs: tc.urls}); !errors.Is(err, ErrConnect) {
			t.Errorf("%s: err = %v; want ErrConnect", tc.name, err)
		}
	}
}
func TestCheckArgs(t *testing.T) {
	t.Parallel()
	img := func(names ...string) *messages.RegisterImagesArgs {
		a := &messages.RegisterImagesArgs{Cloud: "c"}
		for _, n := range names {
			a.Images = append(a.Images, messages.ImageRegistration{XCATName: n, Name: n})
		}
		return a
	}
	tests := []struct {
		name     string
		args     messages.JobArgs
		maxNodes int
		tooLarge bool
		invalid  bool
	}{
		{"register within the default bound", &messages.RegisterNodesArgs{NodeRange: "n[1-10000]"}, 0, false, false},
		{"register over the default bound", &messages.RegisterNodesArgs{NodeRange: "n[1-1000000]"}, 0, true, true},
		{"register over a given bound", &messages.RegisterNodesArgs{NodeRange: "n[1-11]"}, 10, true, true},
		{"no bound", &messages.RegisterNodesArgs{NodeRange: "n[1-1000000]"}, -1, false, false},
		{"remove over the bound", &messages.RemoveNodesArgs{NodeRange: "n[1-10001]"}, 0, true, true},
		{"metacharacter", &messages.RegisterNodesArgs{NodeRange: "n1;reboot"}, 0, false, true},
		{"group", &messages.RemoveNodesArgs{NodeRange: "compute,-n01"}, 1, true, true},
		{"osimage", img("rhels7.5-x86_64-install-compute"), 0, false, false},
		{"osimage outside the safe set", img("ok", "bad name"), 0, false, true},
	}
	for _, tt := range tests {
		err := CheckArgs(tt.args, tt.maxNodes)
		var tl *xcat.NoderangeTooLargeError
		if errors.As(err, &tl) != tt.tooLarge || errors.Is(err, xcat.ErrInvalidInput) != tt.invalid {
			t.Errorf("%s: %v, want too large %v, invalid %v", tt.name, err, tt.tooLarge, tt.invalid)
		}
	}
}
