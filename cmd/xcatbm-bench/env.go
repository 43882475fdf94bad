package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"time"

	_ "github.com/lib/pq" // the PostgreSQL driver

	"xcatbm/worker/store"
)

// env holds what the bench creates on the real servers — PostgreSQL schemas and one
// RabbitMQ vhost — so that close removes all of it, also after an error.
type env struct {
	dbURL   string
	admin   *sql.DB
	schemas []string
	pools   []*sql.DB

	amqpURL string // the vhost's URL once created
	vhost   string
	logf    func(format string, args ...any)
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newEnv(ctx context.Context, dbURL, amqpURL string, logf func(string, ...any)) (*env, error) {
	admin, err := sql.Open("postgres", dbURL)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dbURL, err)
	}
	if err := admin.PingContext(ctx); err != nil {
		_ = admin.Close()
		return nil, fmt.Errorf("PostgreSQL at %s (run make services): %w", dbURL, err)
	}
	e := &env{dbURL: dbURL, admin: admin, logf: logf}
	e.vacuumCatalog(ctx)
	if err := e.addVhost(ctx, amqpURL); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// catalogTables are the system catalogs that creating and dropping schemas of tables
// leaves dead rows in.
var catalogTables = []string{"pg_class", "pg_attribute", "pg_attrdef", "pg_depend", "pg_type", "pg_index",
	"pg_constraint", "pg_trigger", "pg_sequence", "pg_namespace"}

// vacuumCatalog vacuums the system catalogs before the rows run. Every schema a test
// or a bench row creates and drops leaves dead catalog rows, and on a server without
// autovacuum (this machine's) nothing removes them: they pile up from run to run, and
// every new connection's catalog lookups, hence every row's PostgreSQL CPU, grow with
// them. Measuring on a catalog as a server with autovacuum keeps it is what a row is
// for. Vacuuming them needs a superuser; without one the bench says so and goes on.
func (e *env) vacuumCatalog(ctx context.Context) {
	began := time.Now()
	if _, err := e.admin.ExecContext(ctx, `VACUUM pg_catalog.`+strings.Join(catalogTables, `, pg_catalog.`)); err != nil {
		e.logf("system catalogs not vacuumed (rows may measure dead catalog rows left by earlier runs): %v", err)
		return
	}
	e.logf("system catalogs vacuumed in %v", time.Since(began).Round(time.Millisecond))
}

// schema creates a fresh migrated schema and returns a store whose connections use it.
func (e *env) schema(ctx context.Context, tag string) (*store.Store, error) {
	st, _, err := e.schemaURL(ctx, tag)
	return st, err
}

// schemaURL is schema that also returns the database URL whose connections use the
// schema (for a worker in another process).
func (e *env) schemaURL(ctx context.Context, tag string) (*store.Store, string, error) {
	name := "bench_" + tag + "_" + randomSuffix()
	if _, err := e.admin.ExecContext(ctx, `CREATE SCHEMA "`+name+`"`); err != nil {
		return nil, "", fmt.Errorf("create schema %s: %w", name, err)
	}
	e.schemas = append(e.schemas, name)
	u, err := url.Parse(e.dbURL)
	if err != nil {
		return nil, "", fmt.Errorf("parse database URL: %w", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	db, err := sql.Open("postgres", u.String())
	if err != nil {
		return nil, "", fmt.Errorf("open schema %s: %w", name, err)
	}
	db.SetMaxOpenConns(32)
	// A finished row's pool must not sit on idle connections: the rows after it
	// (ten scale-out workers among them) share PostgreSQL's max_connections (100 by
	// default) with everything else on the machine.
	db.SetMaxIdleConns(schemaIdleConns)
	db.SetConnMaxIdleTime(5 * time.Second)
	e.pools = append(e.pools, db)
	if _, err := store.Migrate(ctx, db); err != nil {
		return nil, "", err
	}
	return store.New(db), u.String(), nil
}

func (e *env) addVhost(ctx context.Context, amqpURL string) error {
	u, err := url.Parse(amqpURL)
	if err != nil {
		return fmt.Errorf("parse AMQP URL: %w", err)
	}
	name := "xcatbm-bench-" + randomSuffix()
	user := u.User.Username()
	if user == "" {
		user = "guest"
	}
	if err := rabbitmqctl(ctx, "add_vhost", name); err != nil {
		return err
	}
	e.vhost = name
	if err := rabbitmqctl(ctx, "set_permissions", "-p", name, user, ".*", ".*", ".*"); err != nil {
		return err
	}
	u.Path = "/" + name
	u.RawPath = "/" + url.PathEscape(name)
	e.amqpURL = u.String()
	return nil
}

func rabbitmqctl(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-q"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("rabbitmqctl %s: %w: %s (is RabbitMQ up? run make services)", strings.Join(args, " "), err, out)
	}
	return nil
}

// close drops the schemas and deletes the vhost. It uses its own context so that it
// also cleans up after an interrupt.
func (e *env) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, p := range e.pools {
		_ = p.Close()
	}
	for _, s := range e.schemas {
		_, _ = e.admin.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE pid <> pg_backend_pid() AND application_name = $1`, s)
		if _, err := e.admin.ExecContext(ctx, `DROP SCHEMA "`+s+`" CASCADE`); err != nil {
			e.logf("drop schema %s: %v", s, err)
		}
	}
	_ = e.admin.Close()
	if e.vhost != "" {
		if err := rabbitmqctl(ctx, "delete_vhost", e.vhost); err != nil {
			e.logf("%v", err)
		}
	}
}

// schemaIdleConns is how many idle connections a schema's pool keeps between uses.
const schemaIdleConns = 4
