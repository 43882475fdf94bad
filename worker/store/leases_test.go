package store_test

import (
	"context"
	"testing"
	"time"

	"xcatbm/internal/testkit/testdb"
	"xcatbm/worker/store"
)

func TestLeases(t *testing.T) {
	t.Parallel()
	fsys, dir := store.Migrations()
	st := store.New(testdb.New(t, fsys, dir).DB)
	ctx := context.Background()
	const role = "nova-compute:mn1"
	steps := []struct {
		name   string
		holder string
		ttl    time.Duration
		want   bool
		sleep  time.Duration
	}{
		{"a takes it", "a", 400 * time.Millisecond, true, 0},
		{"b cannot while a holds it", "b", time.Second, false, 0},
		{"a renews", "a", 400 * time.Millisecond, true, 0},
		{"b still cannot", "b", time.Second, false, 600 * time.Millisecond},
		{"a's time is past: b takes it", "b", time.Second, true, 0},
		{"a cannot take it back", "a", time.Second, false, 0},
	}
	for _, s := range steps {
		got, err := st.AcquireLease(ctx, role, s.holder, s.ttl)
		if err != nil || got != s.want {
			t.Fatalf("%s: %v %v, want %v", s.name, got, err, s.want)
		}
		time.Sleep(s.sleep)
	}
	if h, _, err := st.LeaseHolder(ctx, role); err != nil || h != "b" {
		t.Fatalf("holder %q %v, want b", h, err)
	}
	if err := st.ReleaseLease(ctx, role, "a"); err != nil { // not a's to release
		t.Fatal(err)
	}
	if h, _, _ := st.LeaseHolder(ctx, role); h != "b" {
		t.Fatalf("a released b's lease")
	}
	if err := st.ReleaseLease(ctx, role, "b"); err != nil {
		t.Fatal(err)
	}
	if got, err := st.AcquireLease(ctx, role, "a", time.Second); err != nil || !got {
		t.Fatalf("after b released, a takes it: %v %v", got, err)
	}
}
