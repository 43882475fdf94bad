package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"
)

// Registration states of a node in nova and placement (NodeRegistration.State).
const (
	// RegistrationReady: the node's compute node and its resource provider with
	// inventory exist; nova can schedule to it.
	RegistrationReady = "ready"
	// RegistrationPending: something is missing and the worker keeps trying (not
	// synced yet, or nova or placement did not answer).
	RegistrationPending = "pending"
	// RegistrationFailed: nova or placement refused; the detail says what to fix.
	RegistrationFailed = "failed"
)

// NodeRegistration is where one registered node stands in nova and placement.
type NodeRegistration struct {
	Name string
	// State is RegistrationReady, RegistrationPending or RegistrationFailed.
	State string
	// Detail says what exists, what is missing and why.
	Detail string
	// ComputeNode is the uuid of the node's compute node and resource provider, once
	// known.
	ComputeNode string
	// UpdatedAt is when the state last changed (zero: never synced).
	UpdatedAt time.Time
}

// SetNodeRegistrations records where nodes stand, in one statement, and returns the
// names it wrote. A node's row is written only when its state, detail or compute node
// differ from the record (a later state without a compute node keeps the known one);
// a node no longer in the nodes table (removed meanwhile) is left alone. Names must
// be unique.
func (s *Store) SetNodeRegistrations(ctx context.Context, regs []NodeRegistration) (map[string]bool, error) {
	if len(regs) == 0 {
		return map[string]bool{}, nil
	}
	names, states, details, nodes := make([]string, len(regs)), make([]string, len(regs)), make([]string, len(regs)), make([]string, len(regs))
	for i, r := range regs {
		names[i], states[i], details[i], nodes[i] = r.Name, r.State, r.Detail, r.ComputeNode
	}
	rows, err := s.db.QueryContext(ctx, `INSERT INTO node_registrations (name, state, detail, compute_node)
		SELECT u.name, u.state, u.detail, u.compute_node
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(name, state, detail, compute_node)
		WHERE EXISTS (SELECT 1 FROM nodes WHERE nodes.name = u.name)
		ON CONFLICT (name) DO UPDATE SET state=EXCLUDED.state, detail=EXCLUDED.detail,
			compute_node=CASE WHEN EXCLUDED.compute_node = '' THEN node_registrations.compute_node ELSE EXCLUDED.compute_node END,
			updated_at=now()
		WHERE (node_registrations.state, node_registrations.detail) IS DISTINCT FROM (EXCLUDED.state, EXCLUDED.detail)
			OR (EXCLUDED.compute_node <> '' AND node_registrations.compute_node <> EXCLUDED.compute_node)
		RETURNING name`,
		pq.Array(names), pq.Array(states), pq.Array(details), pq.Array(nodes))
	if err != nil {
		return nil, fmt.Errorf("registrations of %d nodes: %w", len(regs), err)
	}
	written, err := returnedSet(rows)
	if err != nil {
		return nil, fmt.Errorf("registrations of %d nodes: %w", len(regs), err)
	}
	return written, nil
}

// NodeStatus is a registered node with where it stands in nova and placement.
type NodeStatus struct {
	Node         *Node
	Registration NodeRegistration
}

// NodeStatuses returns the registered nodes of computeHost ("" for every host), or
// only those named when names is not empty, by name, each with its registration
// (state pending, zero UpdatedAt, when it was never synced).
func (s *Store) NodeStatuses(ctx context.Context, computeHost string, names []string) ([]NodeStatus, error) {
	var nameFilter any
	if len(names) > 0 {
		nameFilter = pq.Array(names)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+prefixed("n", nodeColumns)+`,
			COALESCE(r.state, ''), COALESCE(r.detail, ''), COALESCE(r.compute_node, ''), r.updated_at
		FROM nodes n LEFT JOIN node_registrations r ON r.name = n.name
		WHERE ($1 = '' OR n.compute_host = $1) AND ($2::text[] IS NULL OR n.name = ANY($2::text[]))
		ORDER BY n.name`, computeHost, nameFilter)
	if err != nil {
		return nil, fmt.Errorf("node registrations: %w", err)
	}
	defer rows.Close()
	var out []NodeStatus
	for rows.Next() {
		var st NodeStatus
		var at sql.NullTime
		st.Node, err = scanNode(scanTail{rows, []any{&st.Registration.State, &st.Registration.Detail, &st.Registration.ComputeNode, &at}})
		if err != nil {
			return nil, fmt.Errorf("node registrations: %w", err)
		}
		st.Registration.Name = st.Node.Name
		st.Registration.UpdatedAt = at.Time
		if st.Registration.State == "" {
			st.Registration.State = RegistrationPending
			st.Registration.Detail = "not synced to nova and placement yet"
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

// scanTail scans the node columns and then extra ones.
type scanTail struct {
	row   interface{ Scan(...any) error }
	extra []any
}

func (s scanTail) Scan(dest ...any) error { return s.row.Scan(append(dest, s.extra...)...) }

// prefixed qualifies a comma-separated column list with a table alias.
func prefixed(alias, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}
