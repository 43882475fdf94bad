package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"xcatbm/worker/store"
)

// TestClaimJobsOneAtATimePerNodeAndInstance: a job waits for every earlier open job
// of its node and of its instance; jobs with no node or no instance wait only on the
// other; excluded ids are skipped; once the first job ends, the ones behind it run.
func TestClaimJobsOneAtATimePerNodeAndInstance(t *testing.T) {
	t.Parallel()
	_, st := newStore(t)
	ctx := context.Background()
	specs := []struct{ name, node, instance string }{
		{"a", "n1", "i1"},
		{"b same node", "n1", "i2"},
		{"c same instance", "n2", "i1"},
		{"d no node", "", "i3"},
		{"e no instance", "n3", ""},
		{"f behind d", "", "i3"},
		{"g excluded", "n4", "i4"},
	}
	var news []store.NewJob
	for _, s := range specs {
		news = append(news, store.NewJob{Kind: "spawn", ComputeHost: "mn1", Node: s.node, InstanceUUID: s.instance,
			State: "resolve", Request: []byte(`{}`), Deadline: time.Now().Add(time.Hour)})
	}
	ins, err := st.InsertJobs(ctx, news)
	if err != nil {
		t.Fatal(err)
	}
	id := map[string]int64{}
	name := map[int64]string{}
	for i, s := range specs {
		id[s.name] = ins[i].ID
		name[ins[i].ID] = s.name
	}
	claim := func(exclude ...int64) []string {
		t.Helper()
		jobs, err := st.ClaimJobs(ctx, "w1", "mn1", 100, time.Minute, exclude)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, j := range jobs {
			got = append(got, name[j.ID])
		}
		slices.Sort(got)
		return got
	}
	if got, want := claim(id["g excluded"]), []string{"a", "d no node", "e no instance"}; !slices.Equal(got, want) {
		t.Fatalf("first claim = %v, want %v", got, want)
	}
	if _, _, err := st.Apply(ctx, "w1", []store.Transition{
		{JobID: id["a"], From: "resolve", To: "done", Finish: true},
		{JobID: id["d no node"], From: "resolve", To: "done", Finish: true},
	}); err != nil {
		t.Fatal(err)
	}
	held := []int64{id["e no instance"]}
	if got, want := claim(held...), []string{"b same node", "c same instance", "f behind d", "g excluded"}; !slices.Equal(got, want) {
		t.Fatalf("after a and d ended, claim = %v, want %v", got, want)
	}
}

// TestClaimJobsStarting: the claim records the step as started, with its history
// row, for exactly the jobs the rule selects, returns them with ClaimStarted and their
// attempt counted, and leaves every other claimed job as it was; a claim without a
// rule starts nothing.
func TestClaimJobsStarting(t *testing.T) {
	t.Parallel()
	db, st := newStore(t)
	ctx := context.Background()
	now := time.Now()
	rule := &store.StartRule{Now: now, States: []string{"resolve", "wait_booted"}, PastDeadline: []string{"wait_booted"}}
	cases := []struct {
		name      string
		host      string
		state     string
		deadline  time.Time
		setup     string // SQL run on the job's row (id $1) before the claim
		start     bool   // the claim starts its step
		attempts  int    // after the claim
		wasBefore bool   // StepStarted as returned
	}{
		{name: "fresh", host: "mn1", state: "resolve", deadline: now.Add(time.Hour), start: true, attempts: 1},
		{name: "started before", host: "mn1", state: "resolve", deadline: now.Add(time.Hour),
			setup: `UPDATE jobs SET step_started = true, attempts = 1 WHERE id = $1`, attempts: 1, wasBefore: true},
		{name: "cancelled", host: "mn1", state: "resolve", deadline: now.Add(time.Hour),
			setup: `UPDATE jobs SET cancel_requested = true WHERE id = $1`},
		{name: "past its deadline", host: "mn1", state: "resolve", deadline: now.Add(-time.Second)},
		{name: "past its deadline, a step that runs past it", host: "mn1", state: "wait_booted", deadline: now.Add(-time.Second), start: true, attempts: 1},
		{name: "deadline at the rule's now", host: "mn1", state: "resolve", deadline: now, start: true, attempts: 1},
		{name: "a state the rule does not name", host: "mn1", state: "set_ip", deadline: now.Add(time.Hour)},
		{name: "claimed without a rule", host: "mn2", state: "resolve", deadline: now.Add(time.Hour)},
	}
	var news []store.NewJob
	for i, c := range cases {
		news = append(news, store.NewJob{Kind: "power_off", ComputeHost: c.host, Node: fmt.Sprintf("n%d", i),
			InstanceUUID: fmt.Sprintf("i%d", i), State: c.state, Request: []byte(`{}`), Deadline: c.deadline})
	}
	ins, err := st.InsertJobs(ctx, news)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		if c.setup != "" {
			if _, err := db.ExecContext(ctx, c.setup, ins[i].ID); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
	}
	claimed := map[int64]*store.Job{}
	for _, claim := range []struct {
		host string
		rule *store.StartRule
	}{{"mn1", rule}, {"mn2", nil}} {
		jobs, err := st.ClaimJobsStarting(ctx, "w1", claim.host, 100, time.Minute, nil, claim.rule)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			claimed[j.ID] = j
		}
	}
	for i, c := range cases {
		id := ins[i].ID
		j := claimed[id]
		if j == nil {
			t.Errorf("%s: not claimed", c.name)
			continue
		}
		if j.ClaimStarted != c.start || j.StepStarted != c.wasBefore || j.Attempts != c.attempts {
			t.Errorf("%s: returned ClaimStarted %v StepStarted %v Attempts %d, want %v %v %d",
				c.name, j.ClaimStarted, j.StepStarted, j.Attempts, c.start, c.wasBefore, c.attempts)
		}
		var started bool
		var attempts int
		var lockedBy string
		if err := db.QueryRowContext(ctx, `SELECT step_started, attempts, locked_by FROM jobs WHERE id = $1`, id).Scan(&started, &attempts, &lockedBy); err != nil {
			t.Fatal(err)
		}
		if started != (c.start || c.wasBefore) || attempts != c.attempts || lockedBy != "w1" {
			t.Errorf("%s: row step_started %v attempts %d locked_by %q, want %v %d w1", c.name, started, attempts, lockedBy, c.start || c.wasBefore, c.attempts)
		}
		hist, err := st.History(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, h := range hist {
			got = append(got, h.From+">"+h.To+":"+h.Step+":"+h.Detail)
		}
		want := []string{">" + c.state + "::accepted"}
		if c.start {
			want = append(want, c.state+">"+c.state+":"+c.state+":started")
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: history %q, want %q", c.name, got, want)
		}
	}
}

// TestInsertJobsRequests: the requests of one call, sent together as one JSON array,
// come back each with its own job, whatever they hold (quotes, backslashes, escapes,
// text outside ASCII, nested arrays, large values), and duplicates take no request.
func TestInsertJobsRequests(t *testing.T) {
	t.Parallel()
	_, st := newStore(t)
	ctx := context.Background()
	reqs := []string{
		`{}`,
		`{"a":"quote \" and backslash \\ and slash \/"}`,
		`{"text":"café ünïcode 雪 \u00e9 \ud83d\ude00","n":[1,[2,[3,{"x":null}]]]}`,
		`{"big":"` + strings.Repeat("x\\\"", 20000) + `"}`,
		`[1,2,3]`,
		`{"same message":"first"}`,
		`{"same message":"second, a duplicate"}`,
	}
	var news []store.NewJob
	for i, r := range reqs {
		mid := fmt.Sprintf("m%d", i)
		if i == 6 {
			mid = "m5"
		}
		news = append(news, store.NewJob{Kind: "power_off", ComputeHost: "mn1", Node: fmt.Sprintf("n%d", i), State: "resolve",
			Request: []byte(r), MessageID: mid, Deadline: time.Now().Add(time.Hour)})
	}
	ins, err := st.InsertJobs(ctx, news)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range reqs {
		if i == 6 {
			if !ins[i].Duplicate {
				t.Errorf("job %d: not a duplicate", i)
			}
			continue
		}
		j, err := st.Job(ctx, ins[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		var got, want any
		if err := json.Unmarshal(j.Request, &got); err != nil {
			t.Fatalf("job %d: stored request %.80q: %v", i, j.Request, err)
		}
		if err := json.Unmarshal([]byte(r), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) || j.Node != fmt.Sprintf("n%d", i) {
			t.Errorf("job %d (node %s): request %.80q, want %.80q", i, j.Node, j.Request, r)
		}
	}
}
