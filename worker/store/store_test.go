package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
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
func newStore(t testing.TB) (*testdb.DB, *store.Store) {
	t.Helper()
	db := testdb.New(t, nil, "")
	if _, err := store.Migrate(context.Background(), db.DB); err != nil {
		t.Fatal(err)
	}
	return db, store.New(db.DB)
}

// TestLargeValuesCompressWithLZ4 checks that every column migration 0011 names is set
// to lz4, then stores a job whose request is past the TOAST threshold and a
// notification body as large, and reads back how PostgreSQL compressed each, on a
// server built with lz4 like the test one.
func TestLargeValuesCompressWithLZ4(t *testing.T) {
	t.Parallel()
	db, _ := newStore(t)
	var lz4 bool
	if err := db.QueryRow(`SELECT count(*) = 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)`).Scan(&lz4); err != nil {
		t.Fatal(err)
	}
	if !lz4 {
		t.Skip("this PostgreSQL is built without lz4: migration 0011 keeps pglz")
	}
	// Every column migration 0011 names, for the values written from now on.
	for _, col := range []struct{ table, column string }{
		{"jobs", "request"}, {"jobs", "data"}, {"outbox", "body"}, {"nova_outbox", "payload"},
	} {
		var method string
		if err := db.QueryRow(`SELECT attcompression::text FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2`,
			col.table, col.column).Scan(&method); err != nil {
			t.Fatalf("%s.%s: %v", col.table, col.column, err)
		}
		if method != "l" {
			t.Errorf("%s.%s compresses with %q, want l (lz4)", col.table, col.column, method)
		}
	}
	// Values that compress, as a cast's instance does: repeated keys, varied values.
	var b strings.Builder
	b.WriteString(`{"instance": {`)
	for i := range 200 {
		fmt.Fprintf(&b, `"field_%d": "value %d of the instance", `, i, i*7919)
	}
	b.WriteString(`"last": true}}`)
	big := b.String()
	var id int64
	if err := db.QueryRow(`INSERT INTO jobs (kind, compute_host, state, request, deadline) VALUES ('power_off', 'h', 'resolve', $1::jsonb, now() + interval '10 minutes') RETURNING id`, big).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO outbox (job_id, exchange, routing_key, message_id, body) VALUES ($1, 'nova', 'versioned_notifications.info', 'm1', $2)`, id, []byte(big)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ what, query string }{
		{"jobs.request", `SELECT pg_column_compression(request) FROM jobs WHERE id = $1`},
		{"outbox.body", `SELECT pg_column_compression(body) FROM outbox WHERE job_id = $1`},
	} {
		var got sql.NullString
		if err := db.QueryRow(c.query, id).Scan(&got); err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if got.String != "lz4" {
			t.Errorf("%s of %d bytes is stored with compression %q, want lz4", c.what, len(big), got.String)
		}
	}
	var back string
	if err := db.QueryRow(`SELECT request::text FROM jobs WHERE id = $1`, id).Scan(&back); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(back, `"field_199": "value 1575881 of the instance"`) {
		t.Errorf("request read back does not hold what was stored: %.200s", back)
	}
}
