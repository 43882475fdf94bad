package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// NovaOp is one write a job owes nova (a conductor call, a scheduler cast, a
// placement request), queued in the transaction of the transition that caused it and
// performed afterwards, in order per instance, by the nova integration.
type NovaOp struct {
	InstanceUUID string
	// Op names the write (the nova integration's vocabulary).
	Op string
	// Payload is what the write needs, as JSON.
	Payload json.RawMessage
}

// PendingNovaOp is a queued NovaOp with its bookkeeping.
type PendingNovaOp struct {
	ID    int64
	JobID int64
	NovaOp
	Attempts int
}

func insertNovaOps(ctx context.Context, tx *sql.Tx, jobID int64, computeHost string, ops []NovaOp) error {
	for _, op := range ops {
		var job any
		if jobID != 0 {
			job = jobID
		}
		payload := op.Payload
		if len(payload) == 0 {
			payload = json.RawMessage("{}")
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO nova_outbox (job_id, compute_host, instance_uuid, op, payload) VALUES ($1,$2,$3,$4,$5)`,
			job, computeHost, op.InstanceUUID, op.Op, []byte(payload)); err != nil {
			return fmt.Errorf("nova outbox %s: %w", op.Op, err)
		}
	}
	return nil
}

// ClaimNovaOps leases, for up to limit instances of computeHost, the oldest pending op
// of each instance when it is due and not leased by another worker; ops of one
// instance are thus performed strictly in order.
func (s *Store) ClaimNovaOps(ctx context.Context, computeHost string, limit int, lease time.Duration) ([]PendingNovaOp, error) {
	rows, err := s.db.QueryContext(ctx, `WITH first AS (
			SELECT DISTINCT ON (instance_uuid) id, run_after, locked_until FROM nova_outbox
			WHERE compute_host=$1 AND done_at IS NULL ORDER BY instance_uuid, id),
		due AS (SELECT id FROM first WHERE run_after <= now() AND (locked_until IS NULL OR locked_until < now())
			ORDER BY id LIMIT $2)
		UPDATE nova_outbox o SET locked_until = now() + $3 * interval '1 millisecond'
		FROM due WHERE o.id = due.id AND o.done_at IS NULL
		RETURNING o.id, coalesce(o.job_id, 0), o.instance_uuid, o.op, o.payload, o.attempts`, computeHost, limit, lease.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("claim nova ops: %w", err)
	}
	defer rows.Close()
	var out []PendingNovaOp
	for rows.Next() {
		var p PendingNovaOp
		var payload []byte
		if err := rows.Scan(&p.ID, &p.JobID, &p.InstanceUUID, &p.Op, &payload, &p.Attempts); err != nil {
			return nil, err
		}
		p.Payload = payload
		out = append(out, p)
	}
	return out, rows.Err()
}

// NovaOpDone marks an op performed (note says how: "done", "skipped: ...").
func (s *Store) NovaOpDone(ctx context.Context, id int64, note string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE nova_outbox SET done_at=now(), locked_until=NULL, note=$2, attempts=attempts+1 WHERE id=$1`, id, note)
	if err != nil {
		return fmt.Errorf("nova op %d done: %w", id, err)
	}
	return nil
}

// NovaOpFailed records a failed attempt and when to try again.
func (s *Store) NovaOpFailed(ctx context.Context, id int64, cause error, runAfter time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE nova_outbox SET attempts=attempts+1, last_error=$2, run_after=$3, locked_until=NULL WHERE id=$1`,
		id, cause.Error(), runAfter)
	if err != nil {
		return fmt.Errorf("nova op %d failed: %w", id, err)
	}
	return nil
}

// NovaOpsPending counts the ops of computeHost not yet performed.
func (s *Store) NovaOpsPending(ctx context.Context, computeHost string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM nova_outbox WHERE compute_host=$1 AND done_at IS NULL`, computeHost).Scan(&n)
	return n, err
}
