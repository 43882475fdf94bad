package worker_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"xcatbm/internal/broker"
	"xcatbm/worker/nova"
)

// TestDeadLetteredCastFailsItsInstance: with the nova integration, a cast the worker
// refuses (dead-letters) that names an instance queues what nova-compute writes when
// a request fails unexpectedly — the action event started and finished with the
// error, a fault with the reason, the instance saved in ERROR with no task state —
// once, however often the cast is delivered. A cast of an instance operation xcatbm
// does not implement (pause_instance) queues what nova-compute writes when its
// driver lacks it: the event and the fault, the task state cleared, vm_state kept.
func TestDeadLetteredCastFailsItsInstance(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ipmiNode("n01", "10.0.0.11"))
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	svc, err := nova.New(nova.Config{ComputeHost: host},
		nova.Deps{Conn: broker.NewConn(broker.ConnConfig{URLs: []string{e.vh.URL}, Log: log}), Store: e.st, Placement: &nova.Placement{}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	e.startWorkerWith(testConfig(), svc)

	const uuid = "deadbeef-1111-4111-8111-111111111111"
	c := castSpec{file: "cast-build_and_run_instance.json", node: "n01", uuid: uuid, hostname: "tenant-a", image: image,
		version: "7.1", uniqueID: "0badcafe0badcafe0badcafe0badcafe"}
	e.cast(c)
	e.cast(c) // delivered twice, refused once
	const paused = "deadbeef-2222-4222-8222-222222222222"
	e.cast(castSpec{file: "cast-start_instance.json", method: "pause_instance", uuid: paused, uniqueID: "1badcafe0badcafe0badcafe0badcafe"})

	type row struct {
		op      string
		payload map[string]any
	}
	var rows []row
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		rows = rows[:0]
		rs, err := e.db.QueryContext(context.Background(), `SELECT op, payload FROM nova_outbox WHERE instance_uuid=$1 ORDER BY id`, uuid)
		if err != nil {
			t.Fatal(err)
		}
		for rs.Next() {
			var r row
			var p []byte
			if err := rs.Scan(&r.op, &p); err != nil {
				t.Fatal(err)
			}
			_ = json.Unmarshal(p, &r.payload)
			rows = append(rows, r)
		}
		rs.Close()
		if len(rows) >= 4 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The pause was dead-lettered too (the duplicate is not put there again).
	for got := 0; got < 2; {
		_, ok, err := e.ch.Get("xcatbm.dead_letter", true)
		switch {
		case err != nil:
			t.Fatal(err)
		case ok:
			got++
		case time.Now().After(deadline):
			t.Fatalf("%d dead letters, want 2", got)
		default:
			time.Sleep(50 * time.Millisecond)
		}
	}
	var ops []string
	for _, r := range rows {
		ops = append(ops, r.op)
	}
	if want := []string{"event_start", "fault_create", "instance_save", "event_finish"}; !slices.Equal(ops, want) {
		t.Fatalf("nova ops %v, want %v", ops, want)
	}
	if msg, _ := rows[1].payload["message"].(string); !strings.Contains(msg, "7.1") {
		t.Errorf("fault message %q does not give the refusal's reason", msg)
	}
	updates, _ := rows[2].payload["updates"].(map[string]any)
	if updates["vm_state"] != "error" || updates["task_state"] != nil || len(updates) != 2 {
		t.Errorf("instance save %v, want vm_state error and no task state", updates)
	}
	if ev, _ := rows[3].payload["event"].(string); ev != "compute__do_build_and_run_instance" || rows[3].payload["exc_val"] == nil {
		t.Errorf("event finish %v, want build_and_run_instance's event finished with the error", rows[3].payload)
	}

	rows = rows[:0]
	rs, err := e.db.QueryContext(context.Background(), `SELECT op, payload FROM nova_outbox WHERE instance_uuid=$1 ORDER BY id`, paused)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var r row
		var p []byte
		if err := rs.Scan(&r.op, &p); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(p, &r.payload)
		rows = append(rows, r)
	}
	rs.Close()
	ops = ops[:0]
	for _, r := range rows {
		ops = append(ops, r.op)
	}
	if want := []string{"event_start", "fault_create", "instance_save", "event_finish"}; !slices.Equal(ops, want) {
		t.Fatalf("pause: nova ops %v, want %v", ops, want)
	}
	if msg, _ := rows[1].payload["message"].(string); !strings.Contains(msg, "pause_instance") {
		t.Errorf("pause: fault message %q does not name the method", msg)
	}
	if updates, _ := rows[2].payload["updates"].(map[string]any); len(updates) != 1 || updates["task_state"] != nil {
		t.Errorf("pause: instance save %v, want only the task state cleared", updates)
	}
	if ev, _ := rows[3].payload["event"].(string); ev != "compute_pause_instance" || rows[3].payload["exc_val"] == nil {
		t.Errorf("pause: event finish %v, want compute_pause_instance finished with the error", rows[3].payload)
	}
	var total int
	if err := e.db.QueryRowContext(context.Background(), `SELECT count(*) FROM nova_outbox`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != 8 {
		t.Errorf("%d nova ops queued in all, want 4 for each refused instance", total)
	}
}
