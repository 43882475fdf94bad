package store_test

import (
	"context"
	"testing"

	"xcatbm/internal/testkit/testdb"
	"xcatbm/worker/store"
)

func TestMigrateCreatesSchemaIdempotently(t *testing.T) {
	t.Parallel()
	db := testdb.New(t, nil, "")
	ctx := context.Background()
	first, err := store.Migrate(ctx, db.DB)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) == 0 {
		t.Fatal("first run applied nothing")
	}
	again, err := store.Migrate(ctx, db.DB)
	if err != nil || len(again) != 0 {
		t.Fatalf("second run applied %v, %v; want nothing", again, err)
	}
	for _, table := range []string{"nodes", "jobs", "job_history", "outbox", "processed_messages"} {
		var ok bool
		if err := db.QueryRow(`SELECT to_regclass($1) IS NOT NULL`, table).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing (%v)", table, err)
		}
	}
}

// newStore returns a store on a fresh migrated schema, and the schema's database.
func newStore(t *testing.T) (*testdb.DB, *store.Store) {
	t.Helper()
	db := testdb.New(t, nil, "")
	if _, err := store.Migrate(context.Background(), db.DB); err != nil {
		t.Fatal(err)
	}
	return db, store.New(db.DB)
}
