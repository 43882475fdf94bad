// Package testdb gives each test its own PostgreSQL schema on the real server,
// migrated, and dropped when the test ends.
//
// The server is the one named by XCATBM_TEST_DATABASE_URL, by default the local one
// (postgres://postgres@127.0.0.1:5432/test). A schema per test keeps tests isolated
// while letting them run in parallel within and across packages: every connection of
// the returned URL has search_path set to that schema.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/lib/pq" // the PostgreSQL driver

	"xcatbm/internal/migrate"
)

// DefaultURL is the server used when XCATBM_TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// ServerURL returns the URL of the test server.
func ServerURL() string {
	if u := os.Getenv("XCATBM_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// DB is a fresh schema on the test server.
type DB struct {
	// DB is a pool whose connections all use the schema.
	*sql.DB
	// URL connects to the schema (search_path set); hand it to a worker process.
	URL string
	// Schema is the schema's name.
	Schema string
}

// New creates a fresh schema, applies the migrations in dir of fsys (when fsys is not
// nil) and registers its removal with t.Cleanup. It fails the test when the server
// cannot be reached.
func New(t testing.TB, fsys fs.FS, dir string) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sql.Open("postgres", ServerURL())
	if err != nil {
		t.Fatalf("testdb: open %s: %v", ServerURL(), err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + sanitize(t.Name()) + "_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA "`+schema+`"`); err != nil {
		t.Fatalf("testdb: create schema (is PostgreSQL up? run make services): %v", err)
	}
	u, err := url.Parse(ServerURL())
	if err != nil {
		t.Fatalf("testdb: parse %s: %v", ServerURL(), err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", schema)
	u.RawQuery = q.Encode()
	db, err := sql.Open("postgres", u.String())
	if err != nil {
		t.Fatalf("testdb: open schema: %v", err)
	}
	t.Cleanup(func() {
		_ = db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Connections of worker processes started by the test may still hold locks;
		// every connection made through URL carries the schema as application_name.
		_, _ = admin.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE pid <> pg_backend_pid() AND application_name = $1`, schema)
		if _, err := admin.ExecContext(ctx, `DROP SCHEMA "`+schema+`" CASCADE`); err != nil {
			t.Errorf("testdb: drop schema %s: %v", schema, err)
		}
	})
	if fsys != nil {
		if _, err := migrate.Up(ctx, db, fsys, dir); err != nil {
			t.Fatalf("testdb: %v", err)
		}
	}
	return &DB{DB: db, URL: u.String(), Schema: schema}
}

func sanitize(name string) string {
	var sb strings.Builder
	for _, r := range strings.ToLower(name) {
		if sb.Len() >= 30 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			sb.WriteRune(r)
		default:
			sb.WriteByte('_')
		}
	}
	return sb.String()
}
