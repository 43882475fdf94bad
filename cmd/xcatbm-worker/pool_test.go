package main

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"xcatbm/internal/testkit/testdb"
)

// TestPoolKeepsBusyConnections runs bursts of concurrent queries through the
// worker's pool and counts the server's backends of that pool between bursts: every
// connection a burst opened is still there for the next one, not closed and opened
// again.
func TestPoolKeepsBusyConnections(t *testing.T) {
	u, err := url.Parse(testdb.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	app := "xcatbm-pool-" + uuid.NewString()[:8]
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	const conns = 6
	db, err := openDatabase(u.String(), conns)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	backends := func() (n int, pids map[int]bool) {
		rows, err := db.QueryContext(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, app)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		pids = map[int]bool{}
		for rows.Next() {
			var pid int
			if err := rows.Scan(&pid); err != nil {
				t.Fatal(err)
			}
			pids[pid] = true
		}
		return len(pids), pids
	}
	burst := func() {
		var wg sync.WaitGroup
		for range conns {
			wg.Go(func() {
				if _, err := db.ExecContext(ctx, `SELECT pg_sleep(0.2)`); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	burst()
	n, first := backends()
	if n != conns {
		t.Fatalf("after a burst of %d queries the pool holds %d connections, want %d", conns, n, conns)
	}
	burst()
	_, second := backends()
	for pid := range second {
		if !first[pid] {
			t.Errorf("backend %d was opened by the second burst: the first burst's connections were not kept", pid)
		}
	}
}
