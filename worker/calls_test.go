package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xcatbm/messages"
)

// TestCallsAreAnswered: get_console_output, the baseapi ping, an unknown method and
// stop_instance as a call each get their reply on the caller's reply queue.
func TestCallsAreAnswered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ipmiNode("n30", "10.0.0.30"))
	e.startWorker(testConfig())
	q, err := e.ch.QueueDeclare("reply_"+messages.NewUniqueID(), false, false, true, false, amqp.Table{"x-expires": int32(60000)})
	if err != nil {
		t.Fatal(err)
	}
	replies, err := e.ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	call := func(body []byte) *messages.Reply {
		t.Helper()
		if err := e.ch.PublishWithContext(context.Background(), "nova", "compute."+host, false, false,
			amqp.Publishing{ContentType: "application/json", Expiration: "30000", Body: body}); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-replies:
			r, err := messages.DecodeReply(d.Body)
			if err != nil {
				t.Fatalf("reply does not decode: %v: %s", err, d.Body)
			}
			return r
		case <-time.After(20 * time.Second):
			t.Fatal("no reply within 20s")
			return nil
		}
	}

	r := call(castBody(t, castSpec{file: "call-get_console_output.json", node: "n30", uuid: "cccccccc-cccc-4ccc-8ccc-cccccccccccc", replyQueue: q.Name}))
	var out string
	want := ""
	for i := 11; i <= 60; i++ { // the vector asks for the last 50 lines
		want += fmt.Sprintf("console line %d\n", i)
	}
	if r.Failure != nil || json.Unmarshal(r.Result, &out) != nil || out != want {
		t.Errorf("console output: result %s failure %v", r.Result, r.Failure)
	}

	r = call(castBody(t, castSpec{file: "call-get_console_output.json", node: "n99", uuid: "cccccccc-cccc-4ccc-8ccc-cccccccccccc", replyQueue: q.Name}))
	if r.Failure == nil || r.Failure.Class != "ConsoleNotAvailable" {
		t.Errorf("console of a node without a log: %+v", r.Failure)
	}

	r = call(castBody(t, castSpec{file: "call-get_console_output.json", method: "get_diagnostics", replyQueue: q.Name}))
	if r.Failure == nil || r.Failure.Class != "NoSuchMethod" {
		t.Errorf("unknown method: %+v", r.Failure)
	}

	ping, err := messages.EncodeRequest(&messages.Request{Method: "ping", Namespace: "baseapi", Version: "1.0",
		Args: map[string]json.RawMessage{"arg": json.RawMessage(`"1.21 GigaWatts"`)}, UniqueID: messages.NewUniqueID(),
		MsgID: messages.NewUniqueID(), ReplyQueue: q.Name, Context: messages.NewContext()})
	if err != nil {
		t.Fatal(err)
	}
	r = call(ping)
	if r.Failure != nil || string(r.Result) != `{"arg":"1.21 GigaWatts","service":"compute"}` {
		t.Errorf("ping: result %s failure %v", r.Result, r.Failure)
	}

	r = call(castBody(t, castSpec{file: "call-stop_instance.json", node: "n30", uuid: "dddddddd-dddd-4ddd-8ddd-dddddddddddd", replyQueue: q.Name}))
	if r.Failure != nil || string(r.Result) != "null" {
		t.Errorf("stop_instance call: result %s failure %v", r.Result, r.Failure)
	}
	if n, _ := e.sim.Node("n30"); n.Power != "off" {
		t.Errorf("stop_instance replied before the node was off: %s", n.Power)
	}
}
