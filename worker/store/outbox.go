package store

import (
	"context"
	"fmt"

	"github.com/lib/pq"
)

// PendingMessage is an outbox row not yet published.
type PendingMessage struct {
	ID int64
	OutboxMessage
}

// PublishOutbox takes up to limit unpublished outbox rows (oldest first, skipping rows
// another worker is publishing), hands them to publish, and marks as published those
// whose ids publish returns — all while holding the rows' locks, so two workers never
// publish the same row at once. It returns how many rows were marked.
func (s *Store) PublishOutbox(ctx context.Context, limit int, publish func([]PendingMessage) []int64) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("outbox: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, `SELECT id, exchange, routing_key, message_id, body, expiration FROM outbox
		WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, limit)
	if err != nil {
		return 0, fmt.Errorf("outbox: select: %w", err)
	}
	var msgs []PendingMessage
	for rows.Next() {
		var m PendingMessage
		if err := rows.Scan(&m.ID, &m.Exchange, &m.RoutingKey, &m.MessageID, &m.Body, &m.Expiration); err != nil {
			rows.Close()
			return 0, fmt.Errorf("outbox: scan: %w", err)
		}
		msgs = append(msgs, m)
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("outbox: select: %w", err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	done := publish(msgs)
	if len(done) == 0 {
		return 0, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY($1::bigint[])`, pq.Array(done)); err != nil {
		return 0, fmt.Errorf("outbox: mark published: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("outbox: commit: %w", err)
	}
	return len(done), nil
}

// PurgePublished deletes outbox rows published before the given age in seconds, to
// keep the table small.
func (s *Store) PurgePublished(ctx context.Context, olderThanSeconds int) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)`, olderThanSeconds)
	if err != nil {
		return 0, fmt.Errorf("outbox: purge: %w", err)
	}
	return res.RowsAffected()
}
