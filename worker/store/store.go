// Package store is xcatbm's PostgreSQL store: the schema (versioned SQL migrations
// embedded in the binary) and the queries the worker runs on nodes, jobs, their
// history, the outbox and processed message ids.
package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	_ "github.com/lib/pq" // the PostgreSQL driver

	"xcatbm/internal/migrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations returns the embedded migrations and the folder that holds them, for
// migrate.Up and test databases.
func Migrations() (embed.FS, string) { return migrations, "migrations" }

// Migrate applies the migrations the database lacks and returns their names.
func Migrate(ctx context.Context, db *sql.DB) ([]string, error) {
	applied, err := migrate.Up(ctx, db, migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return applied, nil
}
