package store

import (
	"context"
	"testing"

	"xcatbm/internal/testkit/testdb"
)

// TestInsertNodesLeavesExistingOnes: insertNodes, the path for nodes an UPDATE did not
// find, inserts the new nodes with the columns' defaults for what the update leaves
// out, and hands back (unchanged) a node another transaction inserted meanwhile, for
// upsertNodes to update.
func TestInsertNodesLeavesExistingOnes(t *testing.T) {
	t.Parallel()
	db := testdb.New(t, nil, "")
	ctx := context.Background()
	if _, err := Migrate(ctx, db.DB); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO nodes (name, compute_host, mgt, power_state) VALUES ('old', 'mn1', 'ipmi', 'on')`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	inst := "i-1"
	existing, err := insertNodes(ctx, tx, []*NodeUpdate{
		{Name: "new", ComputeHost: "mn1", InstanceUUID: &inst, MAC: "aa:01"},
		{Name: "old", ComputeHost: "mn2", Mgt: "blade"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(existing) != 1 || existing[0].Name != "old" {
		t.Fatalf("existing = %+v, want the update of old", existing)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, want := range [][5]string{{"new", "mn1", "i-1", "unknown", "aa:01"}, {"old", "mn1", "", "on", ""}} {
		var got [5]string
		if err := db.QueryRow(`SELECT name, compute_host, instance_uuid, power_state, mac FROM nodes WHERE name = $1`, want[0]).
			Scan(&got[0], &got[1], &got[2], &got[3], &got[4]); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("row %q, want %q", got, want)
		}
	}
}
