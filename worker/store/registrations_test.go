package store_test

import (
	"context"
	"testing"

	"xcatbm/worker/store"
)

// TestNodeRegistrations records registration states and lists them: a node never
// synced is pending, a state is written only when it changes, the compute node uuid
// is kept when a later state does not know it, removed nodes take their state with
// them and unknown nodes get none.
func TestNodeRegistrations(t *testing.T) {
	t.Parallel()
	_, st := newStore(t)
	ctx := context.Background()
	for _, n := range []*store.Node{
		{Name: "a01", ComputeHost: "h1", ResourceClass: "gold"},
		{Name: "a02", ComputeHost: "h1"},
		{Name: "a03", ComputeHost: "h1"},
		{Name: "b01", ComputeHost: "h2"},
	} {
		if _, err := st.UpsertNode(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		reg         store.NodeRegistration
		wantWritten bool
	}{
		{store.NodeRegistration{Name: "a01", State: store.RegistrationReady, Detail: "inventory CUSTOM_GOLD: 1", ComputeNode: "u-1"}, true},
		{store.NodeRegistration{Name: "a01", State: store.RegistrationReady, Detail: "inventory CUSTOM_GOLD: 1", ComputeNode: "u-1"}, false},
		{store.NodeRegistration{Name: "a02", State: store.RegistrationPending, Detail: "compute node: conductor did not answer"}, true},
		{store.NodeRegistration{Name: "a02", State: store.RegistrationFailed, Detail: "resource provider: name taken", ComputeNode: "u-2"}, true},
		{store.NodeRegistration{Name: "a02", State: store.RegistrationPending, Detail: "registration changed"}, true},
		{store.NodeRegistration{Name: "ghost", State: store.RegistrationReady}, false},
	}
	for i, s := range steps {
		written, err := st.SetNodeRegistration(ctx, s.reg)
		if err != nil || written != s.wantWritten {
			t.Fatalf("step %d %+v: written %v, %v; want %v", i, s.reg, written, err, s.wantWritten)
		}
	}

	for _, c := range []struct {
		host  string
		names []string
		want  map[string][3]string // state, detail, compute node
	}{
		{"h1", nil, map[string][3]string{
			"a01": {store.RegistrationReady, "inventory CUSTOM_GOLD: 1", "u-1"},
			"a02": {store.RegistrationPending, "registration changed", "u-2"},
			"a03": {store.RegistrationPending, "not synced to nova and placement yet", ""},
		}},
		{"", []string{"a03", "b01", "ghost"}, map[string][3]string{
			"a03": {store.RegistrationPending, "not synced to nova and placement yet", ""},
			"b01": {store.RegistrationPending, "not synced to nova and placement yet", ""},
		}},
		{"h2", []string{"a01"}, map[string][3]string{}},
	} {
		got, err := st.NodeStatuses(ctx, c.host, c.names)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(c.want) {
			t.Errorf("host %q names %v: %d nodes, want %d: %+v", c.host, c.names, len(got), len(c.want), got)
		}
		for i, s := range got {
			w, ok := c.want[s.Node.Name]
			r := s.Registration
			if !ok || [3]string{r.State, r.Detail, r.ComputeNode} != w || r.Name != s.Node.Name {
				t.Errorf("host %q: %s = %+v, want %v", c.host, s.Node.Name, r, w)
			}
			if i > 0 && got[i-1].Node.Name >= s.Node.Name {
				t.Errorf("host %q: not sorted by name: %s before %s", c.host, got[i-1].Node.Name, s.Node.Name)
			}
			if synced := !r.UpdatedAt.IsZero(); synced != (s.Node.Name == "a01" || s.Node.Name == "a02") {
				t.Errorf("%s: updated_at %v", s.Node.Name, r.UpdatedAt)
			}
		}
	}

	if err := st.DeleteNode(ctx, "a01"); err != nil {
		t.Fatal(err)
	}
	if written, err := st.SetNodeRegistration(ctx, store.NodeRegistration{Name: "a01", State: store.RegistrationReady}); err != nil || written {
		t.Errorf("registration of a removed node: written %v, %v", written, err)
	}
	if got, _ := st.NodeStatuses(ctx, "h1", []string{"a01"}); len(got) != 0 {
		t.Errorf("removed node listed: %+v", got)
	}
}
