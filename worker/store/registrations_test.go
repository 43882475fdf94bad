package store_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"xcatbm/internal/config"
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
	if _, err := st.UpsertNodes(ctx, []*store.Node{
		{Name: "a01", ComputeHost: "h1", ResourceClass: "gold"},
		{Name: "a02", ComputeHost: "h1"},
		{Name: "a03", ComputeHost: "h1"},
		{Name: "b01", ComputeHost: "h2"},
	}, ""); err != nil {
		t.Fatal(err)
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
		written, err := st.SetNodeRegistrations(ctx, []store.NodeRegistration{s.reg})
		if err != nil || written[s.reg.Name] != s.wantWritten {
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
	if written, err := st.SetNodeRegistrations(ctx, []store.NodeRegistration{{Name: "a01", State: store.RegistrationReady}}); err != nil || len(written) != 0 {
		t.Errorf("registration of a removed node: written %v, %v", written, err)
	}
	if got, _ := st.NodeStatuses(ctx, "h1", []string{"a01"}); len(got) != 0 {
		t.Errorf("removed node listed: %+v", got)
	}
}

// TestSetNodeRegistrations records several nodes' states in one call: it writes
// those that changed and that exist, and says which.
func TestSetNodeRegistrations(t *testing.T) {
	t.Parallel()
	_, st := newStore(t)
	ctx := context.Background()
	if _, err := st.UpsertNodes(ctx, []*store.Node{{Name: "a1", ComputeHost: "h1"}, {Name: "a2", ComputeHost: "h1"}, {Name: "a3", ComputeHost: "h1"}}, ""); err != nil {
		t.Fatal(err)
	}
	ready := func(name, uuid string) store.NodeRegistration {
		return store.NodeRegistration{Name: name, State: store.RegistrationReady, Detail: "inventory", ComputeNode: uuid}
	}
	steps := []struct {
		regs    []store.NodeRegistration
		written []string
	}{
		{[]store.NodeRegistration{ready("a1", "u1"), ready("a2", "u2"), ready("ghost", "u9")}, []string{"a1", "a2"}},
		{[]store.NodeRegistration{ready("a1", "u1"), ready("a2", ""), {Name: "a3", State: store.RegistrationFailed, Detail: "refused"}}, []string{"a3"}},
		{[]store.NodeRegistration{ready("a1", "u1b"), {Name: "a2", State: store.RegistrationPending, Detail: "again"}}, []string{"a1", "a2"}},
		{nil, nil},
	}
	for i, s := range steps {
		got, err := st.SetNodeRegistrations(ctx, s.regs)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if names := slices.Sorted(maps.Keys(got)); !slices.Equal(names, s.written) {
			t.Errorf("step %d: wrote %v, want %v", i, names, s.written)
		}
	}
	want := map[string][3]string{"a1": {"ready", "inventory", "u1b"}, "a2": {"pending", "again", "u2"}, "a3": {"failed", "refused", ""}}
	statuses, err := st.NodeStatuses(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][3]string{}
	for _, ns := range statuses {
		r := ns.Registration
		got[ns.Node.Name] = [3]string{r.State, r.Detail, r.ComputeNode}
	}
	if !maps.Equal(got, want) {
		t.Errorf("registrations\n %v\nwant\n %v", got, want)
	}
}

// TestUpsertNodes writes batches of registrations and checks what each batch
// reports and leaves in the nodes and node_registrations tables: new nodes are
// registered, a repeat changes nothing, a changed field is an update that keeps
// original_ip while an instance uses the node, a node in use on another compute
// host is left as it was, only changed nodes are marked pending, and a batch naming
// a node twice writes nothing.
func TestUpsertNodes(t *testing.T) {
	t.Parallel()
	db, st := newStore(t)
	ctx := context.Background()
	node := func(name, host string, cpus int, ip string) *store.Node {
		return &store.Node{Name: name, ComputeHost: host, MgmtNode: "mn1", Mgt: "ipmi", MAC: "aa:00", BMC: "10.1.0.1",
			BMCUsername: "ADMIN", BMCPassword: config.NewSecret("pw-" + name), CPUs: cpus, MemoryMB: 1024, DiskGB: 10,
			ResourceClass: "gold", OriginalIP: ip}
	}
	const pending = "registration changed; not synced"
	type want struct {
		old            bool // had a record before
		changed, inUse bool
	}
	// rec is what the tables hold of a node after a step: nodes.cpus, compute_host,
	// original_ip, and whether its registration is pending with the detail.
	type rec struct {
		cpus     int
		host, ip string
		pending  bool
	}
	steps := []struct {
		name  string
		setup string // SQL run first
		nodes []*store.Node
		want  []want
		after map[string]rec // every node after the step
	}{
		{name: "new", nodes: []*store.Node{node("a1", "h1", 8, "10.0.0.1"), node("a2", "h1", 8, "10.0.0.2"), node("a3", "h1", 8, "10.0.0.3")},
			want:  []want{{false, true, false}, {false, true, false}, {false, true, false}},
			after: map[string]rec{"a1": {8, "h1", "10.0.0.1", true}, "a2": {8, "h1", "10.0.0.2", true}, "a3": {8, "h1", "10.0.0.3", true}}},
		{name: "repeat", setup: `DELETE FROM node_registrations`,
			nodes: []*store.Node{node("a1", "h1", 8, "10.0.0.1"), node("a2", "h1", 8, "10.0.0.2"), node("a3", "h1", 8, "10.0.0.3")},
			want:  []want{{true, false, false}, {true, false, false}, {true, false, false}},
			after: map[string]rec{"a1": {8, "h1", "10.0.0.1", false}, "a2": {8, "h1", "10.0.0.2", false}, "a3": {8, "h1", "10.0.0.3", false}}},
		{name: "changed; in use on the same host keeps its ip", setup: `UPDATE nodes SET instance_uuid='i-2' WHERE name='a2'`,
			nodes: []*store.Node{node("a1", "h1", 16, "10.0.0.1"), node("a2", "h1", 16, "10.9.9.9"), node("a4", "h1", 4, "10.0.0.4")},
			want:  []want{{true, true, false}, {true, true, false}, {false, true, false}},
			after: map[string]rec{"a1": {16, "h1", "10.0.0.1", true}, "a2": {16, "h1", "10.0.0.2", true}, "a3": {8, "h1", "10.0.0.3", false},
				"a4": {4, "h1", "10.0.0.4", true}}},
		{name: "in use on another host", setup: `DELETE FROM node_registrations`,
			nodes: []*store.Node{node("a2", "h2", 32, "10.0.0.2"), node("a3", "h2", 32, "10.0.0.3")},
			want:  []want{{true, false, true}, {true, true, false}},
			after: map[string]rec{"a1": {16, "h1", "10.0.0.1", false}, "a2": {16, "h1", "10.0.0.2", false}, "a3": {32, "h2", "10.0.0.3", true},
				"a4": {4, "h1", "10.0.0.4", false}}},
	}
	for _, s := range steps {
		if s.setup != "" {
			if _, err := db.ExecContext(ctx, s.setup); err != nil {
				t.Fatal(err)
			}
		}
		got, err := st.UpsertNodes(ctx, s.nodes, pending)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		for i, u := range got {
			if w := (want{u.Old != nil, u.Changed, u.InUse}); w != s.want[i] {
				t.Errorf("%s: %s: %+v (old %v), want %+v", s.name, s.nodes[i].Name, w, u.Old, s.want[i])
			}
			if u.InUse && u.Old.InstanceUUID != "i-2" {
				t.Errorf("%s: %s in use, old record %+v", s.name, s.nodes[i].Name, u.Old)
			}
		}
		statuses, err := st.NodeStatuses(ctx, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		after := map[string]rec{}
		for _, ns := range statuses {
			r := ns.Registration
			after[ns.Node.Name] = rec{ns.Node.CPUs, ns.Node.ComputeHost, ns.Node.OriginalIP, r.State == store.RegistrationPending && r.Detail == pending}
		}
		if !maps.Equal(after, s.after) {
			t.Errorf("%s: nodes after\n %v\nwant\n %v", s.name, after, s.after)
		}
	}

	if _, err := st.UpsertNodes(ctx, []*store.Node{node("b1", "h1", 8, ""), node("b1", "h1", 9, "")}, ""); err == nil {
		t.Error("a batch naming b1 twice was written")
	}
	if _, err := st.Node(ctx, "b1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("b1 after the refused batch: %v", err)
	}
}

// TestUpsertNodesBesideALockedRow: while another transaction (a job's transition)
// holds one node's row, a batch writes the others at once, each in its own
// transaction, and the locked one once the other transaction ends. A batch that
// held its other rows while it waited could deadlock with a transition locking the
// same rows in another order. A batch of that one node waits for it and succeeds.
func TestUpsertNodesBesideALockedRow(t *testing.T) {
	t.Parallel()
	db, st := newStore(t)
	ctx := context.Background()
	nodes := func(cpus int) []*store.Node {
		var out []*store.Node
		for _, name := range []string{"a1", "a2", "a3"} {
			out = append(out, &store.Node{Name: name, ComputeHost: "h1", Mgt: "ipmi", CPUs: cpus})
		}
		return out
	}
	if _, err := st.UpsertNodes(ctx, nodes(8), ""); err != nil {
		t.Fatal(err)
	}
	holder, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if _, err := holder.ExecContext(ctx, `SELECT 1 FROM nodes WHERE name='a2' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	type result struct {
		got []store.NodeUpsert
		err error
	}
	done := make(chan result, 1)
	go func() {
		got, err := st.UpsertNodes(ctx, nodes(16), "")
		done <- result{got, err}
	}()
	cpus := func(name string) int {
		n, err := st.Node(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return n.CPUs
	}
	for deadline := time.Now().Add(10 * time.Second); cpus("a1") != 16; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a1 not written while a2 was locked: the batch waits holding a1")
		}
	}
	select {
	case r := <-done:
		t.Fatalf("the batch ended while a2 was locked: %+v, %v", r.got, r.err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := holder.Commit(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	for i, u := range r.got {
		if !u.Changed || u.Old == nil || u.Old.CPUs != 8 {
			t.Errorf("node %d: %+v", i, u)
		}
	}
	for _, name := range []string{"a1", "a2", "a3"} {
		if c := cpus(name); c != 16 {
			t.Errorf("%s: %d CPUs, want 16", name, c)
		}
	}

	// A batch of one node holds nothing else: it waits for its row.
	holder, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if _, err := holder.ExecContext(ctx, `SELECT 1 FROM nodes WHERE name='a2' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	go func() {
		got, err := st.UpsertNodes(ctx, nodes(32)[1:2], "")
		done <- result{got, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("a one-node batch ended while its row was locked: %+v, %v", r.got, r.err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := holder.Commit(); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || len(r.got) != 1 || !r.got[0].Changed {
		t.Fatalf("one-node batch: %+v, %v", r.got, r.err)
	}
	if c := cpus("a2"); c != 32 {
		t.Errorf("a2: %d CPUs, want 32", c)
	}
}
