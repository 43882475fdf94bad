package store_test

import (
	"context"
	"testing"
	"time"

	"xcatbm/worker/store"
)

// TestApplyNodeUpdates: the node updates of a batch of transitions land as each
// says — a registered node gets its instance and keeps what the update leaves out, a
// node not yet in the table is inserted, and a node updated twice in one batch ends
// with the later update.
func TestApplyNodeUpdates(t *testing.T) {
	t.Parallel()
	db, st := newStore(t)
	ctx := context.Background()
	if _, err := st.UpsertNodes(ctx, []*store.Node{{Name: "n1", ComputeHost: "mn1", Mgt: "ipmi", MAC: "aa:00", OriginalIP: "10.0.0.1"},
		{Name: "n3", ComputeHost: "mn1", Mgt: "ipmi"}}, ""); err != nil {
		t.Fatal(err)
	}
	var news []store.NewJob
	for range 4 {
		news = append(news, store.NewJob{Kind: "spawn", ComputeHost: "mn1", State: "resolve", Request: []byte(`{}`), Deadline: time.Now().Add(time.Hour)})
	}
	ins, err := st.InsertJobs(ctx, news)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := st.ClaimJobs(ctx, "w1", "mn1", 10, time.Minute, nil); err != nil || len(got) != 4 {
		t.Fatalf("claimed %d of 4: %v", len(got), err)
	}
	s := func(v string) *string { return &v }
	ts := []store.Transition{
		{JobID: ins[0].ID, From: "resolve", To: "done", Finish: true,
			NodeUpdate: &store.NodeUpdate{Name: "n1", ComputeHost: "mn1", InstanceUUID: s("i-1"), OriginalIP: "10.9.9.9"}},
		{JobID: ins[1].ID, From: "resolve", To: "done", Finish: true,
			NodeUpdate: &store.NodeUpdate{Name: "n2", ComputeHost: "mn1", PowerState: s("on"), MAC: "bb:00"}},
		{JobID: ins[2].ID, From: "resolve", To: "done", Finish: true,
			NodeUpdate: &store.NodeUpdate{Name: "n3", ComputeHost: "mn1", PowerState: s("on")}},
		{JobID: ins[3].ID, From: "resolve", To: "done", Finish: true,
			NodeUpdate: &store.NodeUpdate{Name: "n3", ComputeHost: "mn1", PowerState: s("off"), InstanceUUID: s("i-3")}},
	}
	if lost, _, err := st.Apply(ctx, "w1", ts); err != nil || len(lost) > 0 {
		t.Fatalf("apply: lost %v, %v", lost, err)
	}
	for _, want := range []struct{ name, instance, power, mgt, mac, ip string }{
		// n1 had no instance, so the update's address replaces its original one.
		{"n1", "i-1", "unknown", "ipmi", "aa:00", "10.9.9.9"},
		{"n2", "", "on", "", "bb:00", ""},
		{"n3", "i-3", "off", "ipmi", "", ""},
	} {
		var inst, power, mgt, mac, ip string
		if err := db.QueryRow(`SELECT instance_uuid, power_state, mgt, mac, original_ip FROM nodes WHERE name = $1`, want.name).
			Scan(&inst, &power, &mgt, &mac, &ip); err != nil {
			t.Fatalf("%s: %v", want.name, err)
		}
		if got := [5]string{inst, power, mgt, mac, ip}; got != [5]string{want.instance, want.power, want.mgt, want.mac, want.ip} {
			t.Errorf("%s: instance, power, mgt, mac, ip = %q, want %q", want.name, got, [5]string{want.instance, want.power, want.mgt, want.mac, want.ip})
		}
	}
	// With n1 in use, an address in an update no longer replaces its own.
	more, err := st.InsertJobs(ctx, []store.NewJob{{Kind: "spawn", ComputeHost: "mn1", State: "resolve", Request: []byte(`{}`), Deadline: time.Now().Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ClaimJobs(ctx, "w1", "mn1", 10, time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	if lost, _, err := st.Apply(ctx, "w1", []store.Transition{{JobID: more[0].ID, From: "resolve", To: "done", Finish: true,
		NodeUpdate: &store.NodeUpdate{Name: "n1", ComputeHost: "mn1", OriginalIP: "10.7.7.7", PowerState: s("on")}}}); err != nil || len(lost) > 0 {
		t.Fatalf("apply: lost %v, %v", lost, err)
	}
	var ip, power string
	if err := db.QueryRow(`SELECT original_ip, power_state FROM nodes WHERE name = 'n1'`).Scan(&ip, &power); err != nil {
		t.Fatal(err)
	}
	if ip != "10.9.9.9" || power != "on" {
		t.Errorf("n1 in use: original_ip %q power %q, want 10.9.9.9 on", ip, power)
	}
}

// TestApplyHistory: a job's history has one row per transition; a transition that
// starts the next step in its own transaction says so on its row (no row of its own),
// while a step started by itself (MarkStarted) still gets a "started" row.
func TestApplyHistory(t *testing.T) {
	t.Parallel()
	_, st := newStore(t)
	ctx := context.Background()
	ins, err := st.InsertJobs(ctx, []store.NewJob{{Kind: "power_off", ComputeHost: "mn1", State: "resolve", Request: []byte(`{}`), Deadline: time.Now().Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	id := ins[0].ID
	if got, err := st.ClaimJobs(ctx, "w1", "mn1", 10, time.Minute, nil); err != nil || len(got) != 1 {
		t.Fatalf("claimed %d of 1: %v", len(got), err)
	}
	if marked, err := st.MarkStarted(ctx, "w1", []store.StepStart{{JobID: id, State: "resolve"}}); err != nil || len(marked) != 1 {
		t.Fatalf("mark started: %v, %v", marked, err)
	}
	for _, tr := range []store.Transition{
		{JobID: id, From: "resolve", To: "power", StartNext: true, Detail: "node n1"},
		{JobID: id, From: "power", To: "power", KeepAttempts: true, Detail: "retry: busy"},
		{JobID: id, From: "power", To: "done", Finish: true},
	} {
		if lost, _, err := st.Apply(ctx, "w1", []store.Transition{tr}); err != nil || len(lost) > 0 {
			t.Fatalf("apply %s -> %s: lost %v, %v", tr.From, tr.To, lost, err)
		}
	}
	hist, err := st.History(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		from, to, detail string
		startedNext      bool
	}
	want := []row{{"", "resolve", "accepted", false}, {"resolve", "resolve", "started", false},
		{"resolve", "power", "node n1", true}, {"power", "power", "retry: busy", false}, {"power", "done", "", false}}
	var got []row
	for _, h := range hist {
		got = append(got, row{h.From, h.To, h.Detail, h.StartedNext})
	}
	if len(got) != len(want) {
		t.Fatalf("history %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("history row %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}
