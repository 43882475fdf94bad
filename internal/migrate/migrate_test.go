package migrate_test

import (
	"context"
	"sync"
	"testing"
	"testing/fstest"

	"xcatbm/internal/migrate"
	"xcatbm/internal/testkit/testdb"
)

func TestUpAppliesOnceInOrder(t *testing.T) {
	t.Parallel()
	db := testdb.New(t, nil, "")
	fsys := fstest.MapFS{
		"m/0002_b.sql": {Data: []byte(`INSERT INTO things VALUES (2)`)},
		"m/0001_a.sql": {Data: []byte(`CREATE TABLE things (n int)`)},
		"m/README":     {Data: []byte(`not a migration`)},
	}
	ctx := context.Background()
	// Several processes starting at once must apply each migration exactly once.
	var wg sync.WaitGroup
	applied := make([][]string, 4)
	errs := make([]error, 4)
	for i := range applied {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = migrate.Up(ctx, db.DB, fsys, "m")
		}()
	}
	wg.Wait()
	total := 0
	for i := range applied {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		total += len(applied[i])
	}
	if total != 2 {
		t.Fatalf("applied %d migrations across concurrent runs, want 2: %v", total, applied)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM things WHERE n = 2`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("things rows = %d, %v", n, err)
	}
	var versions int
	if err := db.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&versions); err != nil || versions != 2 {
		t.Fatalf("schema_migrations = %d, %v", versions, err)
	}
}

func TestUpFailureLeavesSchemaUnchanged(t *testing.T) {
	t.Parallel()
	db := testdb.New(t, nil, "")
	fsys := fstest.MapFS{
		"m/0001_a.sql": {Data: []byte(`CREATE TABLE good (n int)`)},
		"m/0002_b.sql": {Data: []byte(`CREATE TABLE bad (n nosuchtype)`)},
	}
	_, err := migrate.Up(context.Background(), db.DB, fsys, "m")
	if err == nil {
		t.Fatal("want error from a broken migration")
	}
	var exists bool
	if err := db.QueryRow(`SELECT to_regclass('good') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Fatalf("table from the first migration exists=%v (%v); want rolled back", exists, err)
	}
}

func TestLoadRejectsBadNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fsys fstest.MapFS
	}{
		{"no version", fstest.MapFS{"m/init.sql": {Data: []byte("x")}}},
		{"duplicate", fstest.MapFS{"m/0001_a.sql": {Data: []byte("x")}, "m/1_b.sql": {Data: []byte("y")}}},
		{"zero", fstest.MapFS{"m/0000_a.sql": {Data: []byte("x")}}},
	}
	for _, tc := range tests {
		if _, err := migrate.Load(tc.fsys, "m"); err == nil {
			t.Errorf("%s: want error", tc.name)
		}
	}
}
