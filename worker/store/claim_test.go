package store_test

import (
	"context"
	"slices"
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
