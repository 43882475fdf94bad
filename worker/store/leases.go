package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AcquireLease takes role for holder until ttl from now, or renews it when holder
// has it already; it reports whether holder holds it now. A role whose holder did not
// renew in time passes to the first worker that asks.
func (s *Store) AcquireLease(ctx context.Context, role, holder string, ttl time.Duration) (bool, error) {
	var got string
	err := s.db.QueryRowContext(ctx, `INSERT INTO leases (role, holder, until, acquired_at)
		VALUES ($1, $2, now() + $3::interval, now())
		ON CONFLICT (role) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until,
			acquired_at = CASE WHEN leases.holder = EXCLUDED.holder THEN leases.acquired_at ELSE now() END
		WHERE leases.holder = EXCLUDED.holder OR leases.until < now()
		RETURNING holder`, role, holder, fmt.Sprintf("%d milliseconds", ttl.Milliseconds())).Scan(&got)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("lease %s: %w", role, err)
	}
	return got == holder, nil
}

// ReleaseLease gives role up if holder has it, so that another worker takes it at
// once.
func (s *Store) ReleaseLease(ctx context.Context, role, holder string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM leases WHERE role = $1 AND holder = $2`, role, holder); err != nil {
		return fmt.Errorf("release lease %s: %w", role, err)
	}
	return nil
}

// LeaseHolder returns who holds role and until when; "" when nobody does (or the
// holder's time is past).
func (s *Store) LeaseHolder(ctx context.Context, role string) (string, time.Time, error) {
	var holder string
	var until time.Time
	err := s.db.QueryRowContext(ctx, `SELECT holder, until FROM leases WHERE role = $1 AND until >= now()`, role).Scan(&holder, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("lease %s: %w", role, err)
	}
	return holder, until, nil
}
