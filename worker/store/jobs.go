package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/lib/pq"
)

// Store runs xcatbm's queries on a PostgreSQL pool. It is safe for concurrent use.
type Store struct {
	db *sql.DB
}

// New returns a Store on db, which must be migrated (Migrate).
func New(db *sql.DB) *Store { return &Store{db: db} }

// DB returns the pool.
func (s *Store) DB() *sql.DB { return s.db }

// Job is one row of the jobs table.
type Job struct {
	ID              int64
	Kind            string
	ComputeHost     string
	Node            string
	InstanceUUID    string
	State           string
	StepStarted     bool
	Attempts        int
	Request         json.RawMessage
	Data            json.RawMessage
	Error           string
	MessageID       string
	CancelRequested bool
	Deadline        time.Time
	RunAfter        time.Time
	CreatedAt       time.Time
	FinishedAt      *time.Time
	// ClaimStarted says the claim that returned the job also recorded its step as
	// starting (ClaimJobsStarting): StepStarted still says whether an earlier run had
	// started it (it had not), and Attempts counts this attempt.
	ClaimStarted bool
}

// Finished reports whether the job has ended.
func (j *Job) Finished() bool { return j.FinishedAt != nil }

// NewJob is a job to insert.
type NewJob struct {
	Kind         string
	ComputeHost  string
	Node         string
	InstanceUUID string
	// State is the job's first state (its first step).
	State   string
	Request json.RawMessage
	// MessageID is the envelope's _unique_id; a second job with the same id is not
	// inserted. Empty means no deduplication (an id of the store's own is recorded).
	MessageID string
	Deadline  time.Time
	// CancelEarlier marks the instance's last word (a destroy): every unfinished
	// earlier job of the instance stops at its next step boundary (the spawn in
	// flight is cancelled), and every later job of the instance other than another
	// last word is cancelled before its first step.
	CancelEarlier bool
	// Outbox holds messages to publish once the job is committed (start notifications).
	Outbox []OutboxMessage
	// NovaOps are the writes to nova the job owes once committed (nova integration).
	NovaOps []NovaOp
}

// Inserted says what became of one NewJob.
type Inserted struct {
	ID        int64
	Duplicate bool // its MessageID was seen before; nothing was written
}

// OutboxMessage is a message to publish after commit.
type OutboxMessage struct {
	Exchange   string
	RoutingKey string
	MessageID  string
	Body       []byte
	Expiration string
}

// InsertJobs inserts jobs in one transaction, skipping those whose MessageID was
// processed before (or appears earlier in the same call), and records their message
// ids and outbox rows. It runs a constant number of statements however many jobs
// there are. The result has one entry per job, in order.
func (s *Store) InsertJobs(ctx context.Context, jobs []NewJob) ([]Inserted, error) {
	out := make([]Inserted, len(jobs))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Which message ids are new: the first of each in this call, not seen before.
		var mids []string
		first := map[string]int{}
		for i := range jobs {
			if jobs[i].MessageID == "" {
				// A message without _unique_id cannot be deduplicated; give it an id of
				// its own so its row can still be correlated.
				var b [16]byte
				_, _ = rand.Read(b[:])
				jobs[i].MessageID = "xcatbm-" + hex.EncodeToString(b[:])
			}
			j := jobs[i]
			if _, dup := first[j.MessageID]; dup {
				out[i] = Inserted{Duplicate: true}
				continue
			}
			first[j.MessageID] = i
			mids = append(mids, j.MessageID)
		}
		rows, err := tx.QueryContext(ctx, `INSERT INTO processed_messages (unique_id) SELECT unnest($1::text[])
			ON CONFLICT DO NOTHING RETURNING unique_id`, pq.Array(mids))
		if err != nil {
			return fmt.Errorf("record messages: %w", err)
		}
		fresh, err := returnedSet(rows)
		if err != nil {
			return fmt.Errorf("record messages: %w", err)
		}
		var idx []int
		var kind, host, node, inst, state, mid []string
		var deadline []time.Time
		var last []bool
		for _, i := range first {
			if !fresh[jobs[i].MessageID] {
				out[i] = Inserted{Duplicate: true}
				continue
			}
			idx = append(idx, i)
		}
		sort.Ints(idx)
		if len(idx) == 0 {
			return nil
		}
		// The requests go as one JSON array, each request as it is, rather than as a
		// text[] whose literal escapes every quote of every request (and which the
		// server then unescapes before parsing each request): one copy of the bytes.
		size := 2
		for _, i := range idx {
			size += len(jobs[i].Request) + 1
		}
		reqs := make([]byte, 0, size)
		reqs = append(reqs, '[')
		for n, i := range idx {
			j := jobs[i]
			kind, host, node, inst, state = append(kind, j.Kind), append(host, j.ComputeHost), append(node, j.Node), append(inst, j.InstanceUUID), append(state, j.State)
			mid, deadline = append(mid, j.MessageID), append(deadline, j.Deadline)
			last = append(last, j.CancelEarlier)
			if n > 0 {
				reqs = append(reqs, ',')
			}
			reqs = append(reqs, j.Request...)
		}
		reqs = append(reqs, ']')
		rows, err = tx.QueryContext(ctx, `INSERT INTO jobs (kind, compute_host, node, instance_uuid, state, request, message_id, deadline, last_word)
			SELECT u.k, u.h, u.n, u.i, u.s, r.v, u.m, u.d, u.l
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $7::text[], $8::timestamptz[], $9::boolean[])
				WITH ORDINALITY AS u(k, h, n, i, s, m, d, l, o)
			JOIN jsonb_array_elements($6::jsonb) WITH ORDINALITY AS r(v, o) ON r.o = u.o
			ORDER BY u.o
			RETURNING id, message_id`,
			pq.Array(kind), pq.Array(host), pq.Array(node), pq.Array(inst), pq.Array(state), reqs, pq.Array(mid), pq.Array(deadline), pq.Array(last))
		if err != nil {
			return fmt.Errorf("insert %d jobs: %w", len(idx), err)
		}
		byMessage := map[string]int64{}
		for rows.Next() {
			var id int64
			var m string
			if err := rows.Scan(&id, &m); err != nil {
				rows.Close()
				return fmt.Errorf("insert jobs: %w", err)
			}
			byMessage[m] = id
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("insert jobs: %w", err)
		}
		var h history
		var msgs []jobMessage
		var jobIDs []int64
		var cancelUUIDs []string
		var cancelBefore []int64
		for _, i := range idx {
			j := jobs[i]
			id := byMessage[j.MessageID]
			out[i] = Inserted{ID: id}
			jobIDs = append(jobIDs, id)
			h.add(id, "", j.State, "", "accepted")
			for _, m := range j.Outbox {
				msgs = append(msgs, jobMessage{id, m})
			}
			if j.CancelEarlier && j.InstanceUUID != "" {
				cancelUUIDs, cancelBefore = append(cancelUUIDs, j.InstanceUUID), append(cancelBefore, id)
			}
			if err := insertNovaOps(ctx, tx, id, j.ComputeHost, j.NovaOps); err != nil {
				return err
			}
		}
		if len(cancelUUIDs) > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE jobs j SET cancel_requested = true, run_after = now(), updated_at = now()
				FROM unnest($1::text[], $2::bigint[]) AS c(uuid, before)
				WHERE j.instance_uuid = ANY($1::text[]) AND j.instance_uuid = c.uuid AND j.id < c.before AND j.finished_at IS NULL`,
				pq.Array(cancelUUIDs), pq.Array(cancelBefore)); err != nil {
				return fmt.Errorf("cancel earlier jobs: %w", err)
			}
		}
		// A job for an instance whose last word was already recorded never runs.
		if _, err := tx.ExecContext(ctx, `UPDATE jobs j SET cancel_requested = true, updated_at = now()
			WHERE j.id = ANY($1::bigint[]) AND NOT j.last_word AND j.instance_uuid <> ''
			  AND EXISTS (SELECT 1 FROM jobs d WHERE d.last_word AND d.instance_uuid = j.instance_uuid AND d.id < j.id)`,
			pq.Array(jobIDs)); err != nil {
			return fmt.Errorf("cancel jobs after their instance's terminate: %w", err)
		}
		if err := h.insert(ctx, tx); err != nil {
			return err
		}
		return insertMessages(ctx, tx, msgs)
	})
	return out, err
}

// RecordMessage marks a message id processed without a job (a rejected message), and
// queues outbox messages with it. It reports false when the id was seen before.
func (s *Store) RecordMessage(ctx context.Context, uniqueID string, outbox []OutboxMessage) (bool, error) {
	return s.RecordRejected(ctx, uniqueID, outbox, "", nil)
}

// RecordRejected is RecordMessage for a message refused before it became a job: the
// nova writes its refusal owes (ops, for computeHost) are queued in the same
// transaction, once, with no job.
func (s *Store) RecordRejected(ctx context.Context, uniqueID string, outbox []OutboxMessage, computeHost string, ops []NovaOp) (bool, error) {
	fresh := true
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if uniqueID != "" {
			res, err := tx.ExecContext(ctx, `INSERT INTO processed_messages (unique_id) VALUES ($1) ON CONFLICT DO NOTHING`, uniqueID)
			if err != nil {
				return fmt.Errorf("record message %s: %w", uniqueID, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				fresh = false
				return nil
			}
		}
		if err := insertNovaOps(ctx, tx, 0, computeHost, ops); err != nil {
			return err
		}
		return insertOutbox(ctx, tx, 0, outbox)
	})
	return fresh, err
}

func insertOutbox(ctx context.Context, tx *sql.Tx, jobID int64, msgs []OutboxMessage) error {
	jm := make([]jobMessage, len(msgs))
	for i, m := range msgs {
		jm[i] = jobMessage{jobID, m}
	}
	return insertMessages(ctx, tx, jm)
}

const jobColumns = `id, kind, compute_host, node, instance_uuid, state, step_started, attempts, request, data, error,
	coalesce(message_id,''), cancel_requested, deadline, run_after, created_at, finished_at`

// claimedColumns are jobColumns of a claim's rows: step_started as it was before the
// claim, then whether the claim started the step.
var claimedColumns = strings.Replace(jobColumns, "step_started", "was_started", 1) + ", start"

// scanJob scans jobColumns, then the extra columns into extra.
func scanJob(row interface{ Scan(...any) error }, extra ...any) (*Job, error) {
	var j Job
	var req, data []byte
	dest := append([]any{&j.ID, &j.Kind, &j.ComputeHost, &j.Node, &j.InstanceUUID, &j.State, &j.StepStarted, &j.Attempts,
		&req, &data, &j.Error, &j.MessageID, &j.CancelRequested, &j.Deadline, &j.RunAfter, &j.CreatedAt, &j.FinishedAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	j.Request, j.Data = req, data
	return &j, nil
}

// ClaimJobs leases up to limit runnable jobs of computeHost to worker for lease: jobs
// not finished, due (run_after passed), not leased by a live worker, and first in line
// for their node and their instance (jobs of one node, or of one instance, run one at
// a time, in arrival order). Jobs in exclude (already running in this process) are
// skipped.
func (s *Store) ClaimJobs(ctx context.Context, worker, computeHost string, limit int, lease time.Duration, exclude []int64) ([]*Job, error) {
	return s.ClaimJobsStarting(ctx, worker, computeHost, limit, lease, exclude, nil)
}

// StartRule says which of the jobs a claim takes have their step recorded as starting
// by the claim itself: a job whose step has not started, not cancelled, in one of
// States, and whose deadline is not before Now, or whose state is one of PastDeadline
// (steps that run past the deadline). It is the executor's own rule for a job it has
// just claimed, so that a job the rule leaves out is one the executor fails or
// recovers rather than runs.
type StartRule struct {
	Now          time.Time
	States       []string
	PastDeadline []string
}

// ClaimJobsStarting is ClaimJobs that also records, for the claimed jobs start
// selects, that their step is starting, with its "started" history row, as
// MarkStarted does, in the same statement: a fresh job costs one write of its row
// before its step runs, not two. Those jobs come back with ClaimStarted set and
// StepStarted as it was (false). A nil start records nothing.
func (s *Store) ClaimJobsStarting(ctx context.Context, worker, computeHost string, limit int, lease time.Duration, exclude []int64, start *StartRule) ([]*Job, error) {
	var now time.Time
	var states, pastDeadline []string
	if start != nil {
		now, states, pastDeadline = start.Now, start.States, start.PastDeadline
	}
	rows, err := s.db.QueryContext(ctx, `
		WITH candidates AS (
			SELECT j.id AS cid, j.step_started AS was_started,
				($6::boolean AND NOT j.step_started AND NOT j.cancel_requested AND j.state = ANY($7::text[])
					AND (j.deadline >= $8::timestamptz OR j.state = ANY($9::text[]))) AS start
			FROM jobs j
			WHERE j.compute_host = $1 AND j.finished_at IS NULL AND j.run_after <= now()
			  AND (j.locked_until IS NULL OR j.locked_until < now() OR j.locked_by = $2)
			  AND NOT (j.id = ANY(coalesce($5::bigint[], '{}')))
			  AND (j.node = '' OR NOT EXISTS (SELECT 1 FROM jobs p
			      WHERE p.finished_at IS NULL AND p.node = j.node AND p.id < j.id))
			  AND (j.instance_uuid = '' OR NOT EXISTS (SELECT 1 FROM jobs p
			      WHERE p.finished_at IS NULL AND p.instance_uuid = j.instance_uuid AND p.id < j.id))
			ORDER BY j.run_after, j.id
			LIMIT $3
			FOR UPDATE SKIP LOCKED
		), claimed AS (
			UPDATE jobs SET locked_by = $2, locked_until = now() + $4::interval,
				step_started = jobs.step_started OR c.start,
				attempts = jobs.attempts + CASE WHEN c.start THEN 1 ELSE 0 END,
				updated_at = CASE WHEN c.start THEN now() ELSE jobs.updated_at END
			FROM candidates c WHERE jobs.id = c.cid
			RETURNING jobs.*, c.was_started, c.start
		), started AS (
			INSERT INTO job_history (job_id, from_state, to_state, step, detail)
			SELECT id, state, state, state, 'started' FROM claimed WHERE start ORDER BY id
		)
		SELECT `+claimedColumns+` FROM claimed`,
		computeHost, worker, limit, fmt.Sprintf("%d milliseconds", lease.Milliseconds()), pq.Array(exclude),
		start != nil, pq.Array(states), now, pq.Array(pastDeadline))
	if err != nil {
		return nil, fmt.Errorf("claim jobs: %w", err)
	}
	defer rows.Close()
	var jobs []*Job
	for rows.Next() {
		var claimStarted bool
		j, err := scanJob(rows, &claimStarted)
		if err != nil {
			return nil, fmt.Errorf("claim jobs: %w", err)
		}
		j.ClaimStarted = claimStarted
		jobs = append(jobs, j)
	}
	return jobs, rows.Err()
}

// RenewLease extends worker's lease on ids and returns the ids it still holds.
func (s *Store) RenewLease(ctx context.Context, worker string, ids []int64, lease time.Duration) ([]int64, error) {
	// Lock in id order, as Apply and MarkStarted do, so concurrent renewals and
	// transitions cannot deadlock.
	rows, err := s.db.QueryContext(ctx, `UPDATE jobs SET locked_until = now() + $3::interval
		WHERE id IN (SELECT id FROM jobs WHERE id = ANY($1::bigint[]) AND locked_by = $2 AND finished_at IS NULL
			ORDER BY id FOR UPDATE)
		RETURNING id`,
		pq.Array(ids), worker, fmt.Sprintf("%d milliseconds", lease.Milliseconds()))
	if err != nil {
		return nil, fmt.Errorf("renew lease: %w", err)
	}
	defer rows.Close()
	var held []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		held = append(held, id)
	}
	return held, rows.Err()
}

// ReleaseLeases gives up worker's leases (a clean stop), so another worker can take
// the jobs at once.
func (s *Store) ReleaseLeases(ctx context.Context, worker string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE jobs SET locked_by='', locked_until=NULL WHERE locked_by=$1 AND finished_at IS NULL`, worker)
	return err
}

// MarkStarted records, for each job, that its current step is about to call xCAT. Only
// jobs still in the given state and leased by worker are marked; the ids marked are
// returned. It runs two statements however many jobs there are.
func (s *Store) MarkStarted(ctx context.Context, worker string, jobs []StepStart) ([]int64, error) {
	ids, states := make([]int64, len(jobs)), make([]string, len(jobs))
	for i, j := range jobs {
		ids[i], states[i] = j.JobID, j.State
	}
	var marked []int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		marked = marked[:0]
		rows, err := tx.QueryContext(ctx, `UPDATE jobs j SET step_started = true, attempts = j.attempts + 1, updated_at = now()
			FROM unnest($1::bigint[], $2::text[]) AS u(id, state)
			WHERE j.id = ANY($1::bigint[]) AND j.id = u.id AND j.state = u.state AND j.locked_by = $3 AND j.finished_at IS NULL
			RETURNING j.id, j.state`, pq.Array(ids), pq.Array(states), worker)
		if err != nil {
			return fmt.Errorf("start steps: %w", err)
		}
		var h history
		for rows.Next() {
			var id int64
			var st string
			if err := rows.Scan(&id, &st); err != nil {
				rows.Close()
				return fmt.Errorf("start steps: %w", err)
			}
			marked = append(marked, id)
			h.add(id, st, st, st, "started")
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("start steps: %w", err)
		}
		return h.insert(ctx, tx)
	})
	return marked, err
}

// StepStart names a job and the step it is starting.
type StepStart struct {
	JobID int64
	State string
}

// Transition is one job's move from one state to another (or a wait in place).
type Transition struct {
	JobID int64
	// From is the state the job must still be in (compare-and-set).
	From string
	// To is the new state; equal to From for a wait (no history row unless Detail is set).
	To string
	// Detail is a human-readable note for the history row.
	Detail string
	// Data, when not nil, replaces the job's data.
	Data json.RawMessage
	// Node, when not empty, records the resolved xCAT node.
	Node string
	// Error records the reason of a failure (or of a transient retry).
	Error string
	// RunAfter delays the job's next step (zero: at once).
	RunAfter time.Time
	// Finish ends the job.
	Finish bool
	// KeepAttempts keeps the step's attempt counter (a retry of the same step).
	KeepAttempts bool
	// StartNext records, in the same transaction, that the new state's step is
	// starting: the caller runs it at once without another round trip.
	StartNext bool
	// Outbox messages are queued in the same transaction.
	Outbox []OutboxMessage
	// NovaOps are queued in the same transaction, for ComputeHost.
	NovaOps     []NovaOp
	ComputeHost string
	// NodeUpdate, when not nil, is applied to the nodes table in the same transaction.
	NodeUpdate *NodeUpdate
	// FollowUp, when not nil, is a job inserted in the same transaction (the
	// cleaning a destroy leaves behind). It is not deduplicated: the transition
	// that carries it is applied once.
	FollowUp *NewJob
}

// NodeUpdate changes xcatbm's record of a node, creating the record when missing.
type NodeUpdate struct {
	Name         string
	ComputeHost  string
	InstanceUUID *string
	PowerState   *string
	Maintenance  *string
	// Mgt, MAC and OriginalIP are set when not empty; OriginalIP only while the node
	// has no instance (it is the node's own xCAT address, not a tenant's).
	Mgt, MAC, OriginalIP string
}

// upsertNodes applies node updates, each keeping what it leaves out (nil, ""): the
// nodes that exist with one UPDATE, the others inserted with one INSERT. A node
// updated twice in one batch takes its updates one at a time, in order, so the later
// one wins.
func upsertNodes(ctx context.Context, tx *sql.Tx, us []*NodeUpdate) error {
	seen := make(map[string]bool, len(us))
	for _, u := range us {
		if seen[u.Name] {
			for _, one := range us {
				if err := upsertNodes(ctx, tx, []*NodeUpdate{one}); err != nil {
					return err
				}
			}
			return nil
		}
		seen[u.Name] = true
	}
	missing, err := updateNodes(ctx, tx, us)
	if err != nil || len(missing) == 0 {
		return err
	}
	// Inserted meanwhile by another transaction: then they are there to update.
	raced, err := insertNodes(ctx, tx, missing)
	if err != nil || len(raced) == 0 {
		return err
	}
	_, err = updateNodes(ctx, tx, raced)
	return err
}

// updateNodes applies the updates to the nodes that exist and returns the updates of
// the nodes that do not.
func updateNodes(ctx context.Context, tx *sql.Tx, us []*NodeUpdate) (missing []*NodeUpdate, err error) {
	if len(us) == 0 {
		return nil, nil
	}
	rows, err := tx.QueryContext(ctx, `UPDATE nodes n SET
			original_ip = CASE WHEN u.original_ip <> '' AND n.instance_uuid = '' THEN u.original_ip ELSE n.original_ip END,
			instance_uuid = coalesce(u.instance_uuid, n.instance_uuid),
			power_state = coalesce(u.power_state, n.power_state),
			maintenance = coalesce(u.maintenance, n.maintenance),
			mgt = CASE WHEN u.mgt <> '' THEN u.mgt ELSE n.mgt END,
			mac = CASE WHEN u.mac <> '' THEN u.mac ELSE n.mac END,
			updated_at = now()
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
			AS u(name, compute_host, instance_uuid, power_state, mgt, mac, original_ip, maintenance)
		WHERE n.name = ANY($1::text[]) AND n.name = u.name
		RETURNING n.name`, nodeUpdateColumns(us)...)
	if err != nil {
		return nil, fmt.Errorf("update %d nodes: %w", len(us), err)
	}
	updated, err := returnedSet(rows)
	if err != nil {
		return nil, fmt.Errorf("update nodes: %w", err)
	}
	return notIn(us, updated), nil
}

// insertNodes inserts the nodes of the updates, what an update leaves out getting the
// column's default, and returns the updates of the nodes that were there already.
func insertNodes(ctx context.Context, tx *sql.Tx, us []*NodeUpdate) (existing []*NodeUpdate, err error) {
	rows, err := tx.QueryContext(ctx, `INSERT INTO nodes (name, compute_host, instance_uuid, power_state, mgt, mac, original_ip, maintenance)
		SELECT name, compute_host, coalesce(instance_uuid, ''), coalesce(power_state, 'unknown'), mgt, mac, original_ip, coalesce(maintenance, '')
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
			AS u(name, compute_host, instance_uuid, power_state, mgt, mac, original_ip, maintenance)
		ON CONFLICT (name) DO NOTHING
		RETURNING name`, nodeUpdateColumns(us)...)
	if err != nil {
		return nil, fmt.Errorf("insert %d nodes: %w", len(us), err)
	}
	inserted, err := returnedSet(rows)
	if err != nil {
		return nil, fmt.Errorf("insert nodes: %w", err)
	}
	return notIn(us, inserted), nil
}

// notIn returns the updates whose node is not in names.
func notIn(us []*NodeUpdate, names map[string]bool) []*NodeUpdate {
	var out []*NodeUpdate
	for _, u := range us {
		if !names[u.Name] {
			out = append(out, u)
		}
	}
	return out
}

// nodeUpdateColumns returns us as the array parameters of updateNodes' and
// insertNodes' statements: name, compute_host, instance_uuid, power_state, mgt, mac,
// original_ip, with instance_uuid and power_state NULL where an update leaves them
// out.
func nodeUpdateColumns(us []*NodeUpdate) []any {
	n := len(us)
	names, hosts, mgts, macs, ips := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	insts, powers, maint := make([]sql.NullString, n), make([]sql.NullString, n), make([]sql.NullString, n)
	for i, u := range us {
		names[i], hosts[i], mgts[i], macs[i], ips[i] = u.Name, u.ComputeHost, u.Mgt, u.MAC, u.OriginalIP
		if u.InstanceUUID != nil {
			insts[i] = sql.NullString{String: *u.InstanceUUID, Valid: true}
		}
		if u.PowerState != nil {
			powers[i] = sql.NullString{String: *u.PowerState, Valid: true}
		}
		if u.Maintenance != nil {
			maint[i] = sql.NullString{String: *u.Maintenance, Valid: true}
		}
	}
	return []any{pq.Array(names), pq.Array(hosts), pq.Array(insts), pq.Array(powers), pq.Array(mgts), pq.Array(macs), pq.Array(ips), pq.Array(maint)}
}

// returnedSet reads a statement's single text column (its RETURNING) into a set and
// closes rows.
func returnedSet(rows *sql.Rows) (map[string]bool, error) {
	defer rows.Close()
	set := map[string]bool{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		set[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return set, rows.Close()
}

// ErrLostLease is returned for transitions of jobs no longer in the expected state or
// no longer leased by the worker; their changes were not written.
var ErrLostLease = errors.New("job moved on or lease lost")

// Apply writes transitions in one transaction, with a constant number of statements
// however many there are (one UPDATE over all jobs, one INSERT each for history and
// outbox rows), so a step that ran for hundreds of jobs costs one commit. A transition
// whose job is no longer in From or no longer leased by worker is skipped; its id is
// returned in lost. The ids of jobs whose cancellation was requested meanwhile are
// returned in cancel. A job must appear at most once in ts.
func (s *Store) Apply(ctx context.Context, worker string, ts []Transition) (lost, cancel []int64, err error) {
	if len(ts) == 0 {
		return nil, nil, nil
	}
	n := len(ts)
	ids := make([]int64, n)
	from, to, data, node, errs, runAfter := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	finish, keep, startNext := make([]bool, n), make([]bool, n), make([]bool, n)
	byID := make(map[int64]*Transition, n)
	for i := range ts {
		t := &ts[i]
		ids[i], from[i], to[i], node[i], errs[i] = t.JobID, t.From, t.To, t.Node, t.Error
		data[i] = string(t.Data)
		if !t.RunAfter.IsZero() {
			runAfter[i] = t.RunAfter.UTC().Format(time.RFC3339Nano)
		}
		finish[i], keep[i], startNext[i] = t.Finish, t.KeepAttempts, t.StartNext
		byID[t.JobID] = t
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		lost, cancel = lost[:0], cancel[:0]
		rows, err := tx.QueryContext(ctx, `UPDATE jobs j SET
				state = u.to_state,
				step_started = CASE WHEN u.start_next THEN true WHEN u.to_state = j.state AND u.keep THEN j.step_started ELSE false END,
				attempts = CASE WHEN u.start_next THEN 1 WHEN u.keep THEN j.attempts ELSE 0 END,
				data = coalesce(nullif(u.data, '')::jsonb, j.data),
				node = CASE WHEN u.node <> '' THEN u.node ELSE j.node END,
				error = u.error,
				run_after = CASE WHEN u.start_next AND u.run_after = '' THEN j.run_after ELSE coalesce(nullif(u.run_after, '')::timestamptz, now()) END,
				finished_at = CASE WHEN u.finish THEN now() ELSE NULL END,
				locked_by = CASE WHEN u.finish THEN '' ELSE j.locked_by END,
				locked_until = CASE WHEN u.finish THEN NULL ELSE j.locked_until END,
				updated_at = now()
			FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bool[], $9::bool[], $10::bool[])
				AS u(id, from_state, to_state, data, node, error, run_after, finish, keep, start_next)
			WHERE j.id = ANY($1::bigint[]) AND j.id = u.id AND j.state = u.from_state AND j.locked_by = $11 AND j.finished_at IS NULL
			RETURNING j.id, j.cancel_requested`,
			pq.Array(ids), pq.Array(from), pq.Array(to), pq.Array(data), pq.Array(node), pq.Array(errs), pq.Array(runAfter),
			pq.Array(finish), pq.Array(keep), pq.Array(startNext), worker)
		if err != nil {
			return fmt.Errorf("apply %d transitions: %w", n, err)
		}
		applied := map[int64]bool{}
		for rows.Next() {
			var id int64
			var cancelRequested bool
			if err := rows.Scan(&id, &cancelRequested); err != nil {
				rows.Close()
				return fmt.Errorf("apply transitions: %w", err)
			}
			applied[id] = true
			if cancelRequested {
				cancel = append(cancel, id)
			}
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("apply transitions: %w", err)
		}
		var h history
		var out []jobMessage
		for i := range ts {
			t := &ts[i]
			if !applied[t.JobID] {
				lost = append(lost, t.JobID)
				continue
			}
			switch {
			case t.StartNext: // its row says the next step started with it
				h.addStartedNext(t.JobID, t.From, t.To, t.Detail)
			case t.From != t.To || t.Detail != "" || t.Finish:
				h.add(t.JobID, t.From, t.To, t.From, t.Detail)
			}
			for _, m := range t.Outbox {
				out = append(out, jobMessage{t.JobID, m})
			}
			if err := insertNovaOps(ctx, tx, t.JobID, t.ComputeHost, t.NovaOps); err != nil {
				return err
			}
		}
		if err := h.insert(ctx, tx); err != nil {
			return err
		}
		var nodes []*NodeUpdate
		for i := range ts {
			if u := ts[i].NodeUpdate; u != nil && applied[ts[i].JobID] {
				nodes = append(nodes, u)
			}
		}
		if err := upsertNodes(ctx, tx, nodes); err != nil {
			return err
		}
		for i := range ts {
			if f := ts[i].FollowUp; f != nil && applied[ts[i].JobID] {
				if err := insertFollowUp(ctx, tx, ts[i].JobID, f); err != nil {
					return err
				}
			}
		}
		// The outbox rows go last, so that they are written as close to the commit
		// as the transaction allows.
		if err := insertMessages(ctx, tx, out); err != nil {
			return err
		}
		return nil
	})
	return lost, cancel, err
}

// history collects job_history rows to insert with one statement.
type history struct {
	job                    []int64
	from, to, step, detail []string
	startedNext            []bool
}

func (h *history) add(job int64, from, to, step, detail string) {
	h.job = append(h.job, job)
	h.from, h.to, h.step, h.detail = append(h.from, from), append(h.to, to), append(h.step, step), append(h.detail, detail)
	h.startedNext = append(h.startedNext, false)
}

// addStartedNext adds the row of a transition from step from whose next step, to,
// started in the same transaction.
func (h *history) addStartedNext(job int64, from, to, detail string) {
	h.add(job, from, to, from, detail)
	h.startedNext[len(h.startedNext)-1] = true
}

func (h *history) insert(ctx context.Context, tx *sql.Tx) error {
	if len(h.job) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO job_history (job_id, from_state, to_state, step, detail, started_next)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[])`,
		pq.Array(h.job), pq.Array(h.from), pq.Array(h.to), pq.Array(h.step), pq.Array(h.detail), pq.Array(h.startedNext))
	if err != nil {
		return fmt.Errorf("job history: %w", err)
	}
	return nil
}

// jobMessage is an outbox message of a job (0: none).
type jobMessage struct {
	job int64
	OutboxMessage
}

// insertMessages writes outbox rows with one statement, in order. The bodies go as
// one bytea, cut into rows by their lengths in the statement: as a bytea[] each body
// was escaped into an array literal that PostgreSQL parsed back, about 40 % of an
// outbox row's insert time (BENCHMARKS.md, 2026-12-06).
func insertMessages(ctx context.Context, tx *sql.Tx, msgs []jobMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	n := len(msgs)
	jobs := make([]sql.NullInt64, n)
	exch, keys, ids, exp := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	lens := make([]int64, n)
	size := 0
	for _, m := range msgs {
		size += len(m.Body)
	}
	bodies := make([]byte, 0, size)
	for i, m := range msgs {
		jobs[i] = sql.NullInt64{Int64: m.job, Valid: m.job != 0}
		exch[i], keys[i], ids[i], exp[i] = m.Exchange, m.RoutingKey, m.MessageID, m.Expiration
		bodies = append(bodies, m.Body...)
		lens[i] = int64(len(m.Body))
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO outbox (job_id, exchange, routing_key, message_id, body, expiration)
		SELECT j, e, k, i, substring($5::bytea FROM (sum(l) OVER (ORDER BY o) - l + 1)::int FOR l::int), x
		FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $7::bigint[], $6::text[])
			WITH ORDINALITY AS m(j, e, k, i, l, x, o)
		ORDER BY o`,
		pq.Array(jobs), pq.Array(exch), pq.Array(keys), pq.Array(ids), bodies, pq.Array(exp), pq.Array(lens))
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// Job returns one job.
func (s *Store) Job(ctx context.Context, id int64) (*Job, error) {
	j, err := scanJob(s.db.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id=$1`, id))
	if err != nil {
		return nil, fmt.Errorf("job %d: %w", id, err)
	}
	return j, nil
}

// JobsByInstance returns the jobs of an instance in arrival order.
func (s *Store) JobsByInstance(ctx context.Context, uuid string) ([]*Job, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE instance_uuid=$1 ORDER BY id`, uuid)
	if err != nil {
		return nil, fmt.Errorf("jobs of %s: %w", uuid, err)
	}
	defer rows.Close()
	var out []*Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// HistoryEntry is one row of job_history: a transition, or a step started on its
// own ("started"). StartedNext says the transition started its To step at once, in
// the same transaction.
type HistoryEntry struct {
	From, To, Step, Detail string
	StartedNext            bool
	At                     time.Time
}

// History returns a job's transitions in order.
func (s *Store) History(ctx context.Context, jobID int64) ([]HistoryEntry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT from_state, to_state, step, detail, started_next, at FROM job_history WHERE job_id=$1 ORDER BY id`, jobID)
	if err != nil {
		return nil, fmt.Errorf("history of job %d: %w", jobID, err)
	}
	defer rows.Close()
	var out []HistoryEntry
	for rows.Next() {
		var h HistoryEntry
		if err := rows.Scan(&h.From, &h.To, &h.Step, &h.Detail, &h.StartedNext, &h.At); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// QueueStats are the open-job figures exported as metrics.
type QueueStats struct {
	Open          int
	OldestOpenAge time.Duration
	OutboxPending int
	OutboxLag     time.Duration
}

// Stats returns QueueStats for computeHost.
func (s *Store) Stats(ctx context.Context, computeHost string) (QueueStats, error) {
	var st QueueStats
	var oldest, outboxOldest float64
	err := s.db.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM jobs WHERE compute_host=$1 AND finished_at IS NULL),
		coalesce((SELECT extract(epoch FROM now()-min(created_at)) FROM jobs WHERE compute_host=$1 AND finished_at IS NULL),0),
		(SELECT count(*) FROM outbox WHERE published_at IS NULL),
		coalesce((SELECT extract(epoch FROM now()-min(created_at)) FROM outbox WHERE published_at IS NULL),0)`, computeHost).
		Scan(&st.Open, &oldest, &st.OutboxPending, &outboxOldest)
	st.OldestOpenAge = time.Duration(oldest * float64(time.Second))
	st.OutboxLag = time.Duration(outboxOldest * float64(time.Second))
	return st, err
}

func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// OpenConfigDrives returns the tenant data locations (request.config_drive) of every
// unfinished job, whatever its compute host: the trees a sweeper must leave alone.
func (s *Store) OpenConfigDrives(ctx context.Context) (map[string]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT request->>'config_drive' FROM jobs
		WHERE finished_at IS NULL AND request ? 'config_drive'`)
	if err != nil {
		return nil, fmt.Errorf("open config drives: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("open config drives: %w", err)
		}
		out[p] = true
	}
	return out, rows.Err()
}

// insertFollowUp inserts a job a transition of job from leaves behind (from 0: an
// admin asked for it).
func insertFollowUp(ctx context.Context, tx *sql.Tx, from int64, j *NewJob) error {
	var b [16]byte
	_, _ = rand.Read(b[:])
	var id int64
	if err := tx.QueryRowContext(ctx, `INSERT INTO jobs (kind, compute_host, node, instance_uuid, state, request, message_id, deadline)
		VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8) RETURNING id`,
		j.Kind, j.ComputeHost, j.Node, j.InstanceUUID, j.State, string(j.Request), "xcatbm-"+hex.EncodeToString(b[:]), j.Deadline).Scan(&id); err != nil {
		return fmt.Errorf("insert the job that job %d leaves: %w", from, err)
	}
	var h history
	why := "asked for again"
	if from != 0 {
		why = fmt.Sprintf("left by job %d", from)
	}
	h.add(id, "", j.State, "", why)
	return h.insert(ctx, tx)
}
