package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"

	"xcatbm/internal/config"
)

// Node is xcatbm's record of one registered xCAT node.
type Node struct {
	Name          string
	ComputeHost   string
	MgmtNode      string
	Mgt           string
	MAC           string
	BMC           string
	BMCUsername   string
	BMCPassword   config.Secret
	CPUs          int
	MemoryMB      int
	DiskGB        int
	ResourceClass string
	OriginalIP    string
	InstanceUUID  string
	PowerState    string
	PowerMisses   int
	// Maintenance is "" for a node nova may schedule, else why it is held out
	// ("cleaning", "cleaning failed: ..."): its inventory stays reserved.
	Maintenance string
	UpdatedAt   time.Time
}

// ErrNotFound is returned when a row does not exist.
var ErrNotFound = errors.New("not found")

const nodeColumns = `name, compute_host, mgmt_node, mgt, mac, bmc, bmc_username, bmc_password, cpus, memory_mb, disk_gb,
	resource_class, original_ip, instance_uuid, power_state, power_misses, maintenance, updated_at`

func scanNode(row interface{ Scan(...any) error }) (*Node, error) {
	var n Node
	var pw string
	if err := row.Scan(&n.Name, &n.ComputeHost, &n.MgmtNode, &n.Mgt, &n.MAC, &n.BMC, &n.BMCUsername, &pw, &n.CPUs,
		&n.MemoryMB, &n.DiskGB, &n.ResourceClass, &n.OriginalIP, &n.InstanceUUID, &n.PowerState, &n.PowerMisses, &n.Maintenance, &n.UpdatedAt); err != nil {
		return nil, err
	}
	n.BMCPassword = config.NewSecret(pw)
	return &n, nil
}

// NodeUpsert is what UpsertNodes did with one node.
type NodeUpsert struct {
	// Old is the node's record before the write, nil when it was not registered.
	Old *Node
	// Changed says the record was inserted or changed (false: the same as before).
	Changed bool
	// InUse says the node was left alone: an instance uses it on another compute
	// host (Old's) than the new record's.
	InUse bool
}

// UpsertNodes inserts or updates nodes' registrations (not their instance or power
// state) in one transaction and reports, in nodes' order, what it did with each.
// The existing records are locked while read, so a node cannot be taken by an
// instance between the check and the write; a node an instance uses on another
// compute host is left alone (InUse). When pendingDetail is not empty, every
// changed node's registration is set pending with that detail in the same
// transaction (its compute node and inventory are not synced yet). Names must be
// unique.
//
// The batch never waits for a row while it holds others: a job's transition may be
// updating some of the same nodes, in another order, and the two would deadlock. When
// one of the rows is locked, the nodes are written one per transaction instead.
func (s *Store) UpsertNodes(ctx context.Context, nodes []*Node, pendingDetail string) ([]NodeUpsert, error) {
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		if seen[n.Name] {
			return nil, fmt.Errorf("upsert nodes: node %s named twice", n.Name)
		}
		seen[n.Name] = true
	}
	if len(nodes) == 1 { // it holds no other row while it waits for this one
		return s.upsertNodes(ctx, nodes, pendingDetail, "FOR UPDATE")
	}
	out, err := s.upsertNodes(ctx, nodes, pendingDetail, "FOR UPDATE NOWAIT")
	if pqErr := (*pq.Error)(nil); !errors.As(err, &pqErr) || pqErr.Code != pgLockNotAvailable {
		return out, err
	}
	out = make([]NodeUpsert, len(nodes))
	for i, n := range nodes {
		one, err := s.UpsertNodes(ctx, []*Node{n}, pendingDetail)
		if err != nil {
			return nil, err
		}
		out[i] = one[0]
	}
	return out, nil
}

// pgLockNotAvailable is PostgreSQL's error code for a NOWAIT lock a row did not give.
const pgLockNotAvailable = "55P03"

// upsertNodes is UpsertNodes in one transaction, reading the records with lock
// ("FOR UPDATE" or "FOR UPDATE NOWAIT").
func (s *Store) upsertNodes(ctx context.Context, nodes []*Node, pendingDetail, lock string) ([]NodeUpsert, error) {
	out := make([]NodeUpsert, len(nodes))
	names := make([]string, len(nodes))
	index := make(map[string]int, len(nodes))
	for i, n := range nodes {
		index[n.Name], names[i] = i, n.Name
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE name = ANY($1::text[]) ORDER BY name `+lock, pq.Array(names))
		if err != nil {
			return fmt.Errorf("read nodes: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			old, err := scanNode(rows)
			if err != nil {
				return fmt.Errorf("read nodes: %w", err)
			}
			out[index[old.Name]].Old = old
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read nodes: %w", err)
		}
		write := make([]*Node, 0, len(nodes))
		for i, n := range nodes {
			if old := out[i].Old; old != nil && old.InstanceUUID != "" && old.ComputeHost != n.ComputeHost {
				out[i].InUse = true
				continue
			}
			write = append(write, n)
		}
		changed, err := writeRegistrations(ctx, tx, write)
		if err != nil {
			return err
		}
		var pending []string
		for name := range changed {
			out[index[name]].Changed = true
			pending = append(pending, name)
		}
		if pendingDetail == "" || len(pending) == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO node_registrations (name, state, detail)
			SELECT unnest($1::text[]), $2, $3
			ON CONFLICT (name) DO UPDATE SET state=EXCLUDED.state, detail=EXCLUDED.detail, updated_at=now()
			WHERE (node_registrations.state, node_registrations.detail) IS DISTINCT FROM (EXCLUDED.state, EXCLUDED.detail)`,
			pq.Array(pending), RegistrationPending, pendingDetail); err != nil {
			return fmt.Errorf("mark %d registrations pending: %w", len(pending), err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("upsert %d nodes: %w", len(nodes), err)
	}
	return out, nil
}

// writeRegistrations writes nodes' registration columns in one statement and returns the
// names of those inserted or changed. An existing node keeps its original_ip while
// an instance uses it (the ip is then the tenant's).
func writeRegistrations(ctx context.Context, tx *sql.Tx, nodes []*Node) (map[string]bool, error) {
	if len(nodes) == 0 {
		return nil, nil
	}
	k := len(nodes)
	names, hosts, mgmt, mgt, macs, bmcs := make([]string, k), make([]string, k), make([]string, k), make([]string, k), make([]string, k), make([]string, k)
	users, passwords, classes, ips := make([]string, k), make([]string, k), make([]string, k), make([]string, k)
	cpus, memory, disk := make([]int64, k), make([]int64, k), make([]int64, k)
	for i, n := range nodes {
		names[i], hosts[i], mgmt[i], mgt[i], macs[i], bmcs[i] = n.Name, n.ComputeHost, n.MgmtNode, n.Mgt, n.MAC, n.BMC
		users[i], passwords[i], classes[i], ips[i] = n.BMCUsername, n.BMCPassword.Reveal(), n.ResourceClass, n.OriginalIP
		cpus[i], memory[i], disk[i] = int64(n.CPUs), int64(n.MemoryMB), int64(n.DiskGB)
	}
	rows, err := tx.QueryContext(ctx, `INSERT INTO nodes (name, compute_host, mgmt_node, mgt, mac, bmc, bmc_username, bmc_password,
			cpus, memory_mb, disk_gb, resource_class, original_ip)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
			$9::int[], $10::int[], $11::int[], $12::text[], $13::text[])
		ON CONFLICT (name) DO UPDATE SET compute_host=EXCLUDED.compute_host, mgmt_node=EXCLUDED.mgmt_node, mgt=EXCLUDED.mgt,
			mac=EXCLUDED.mac, bmc=EXCLUDED.bmc, bmc_username=EXCLUDED.bmc_username, bmc_password=EXCLUDED.bmc_password,
			cpus=EXCLUDED.cpus, memory_mb=EXCLUDED.memory_mb, disk_gb=EXCLUDED.disk_gb, resource_class=EXCLUDED.resource_class,
			original_ip=CASE WHEN nodes.instance_uuid = '' THEN EXCLUDED.original_ip ELSE nodes.original_ip END, updated_at=now()
		WHERE (nodes.compute_host, nodes.mgmt_node, nodes.mgt, nodes.mac, nodes.bmc, nodes.bmc_username, nodes.bmc_password,
			nodes.cpus, nodes.memory_mb, nodes.disk_gb, nodes.resource_class)
			IS DISTINCT FROM (EXCLUDED.compute_host, EXCLUDED.mgmt_node, EXCLUDED.mgt, EXCLUDED.mac, EXCLUDED.bmc,
			EXCLUDED.bmc_username, EXCLUDED.bmc_password, EXCLUDED.cpus, EXCLUDED.memory_mb, EXCLUDED.disk_gb, EXCLUDED.resource_class)
		RETURNING name`,
		pq.Array(names), pq.Array(hosts), pq.Array(mgmt), pq.Array(mgt), pq.Array(macs), pq.Array(bmcs), pq.Array(users),
		pq.Array(passwords), pq.Array(cpus), pq.Array(memory), pq.Array(disk), pq.Array(classes), pq.Array(ips))
	if err != nil {
		return nil, fmt.Errorf("write %d nodes: %w", k, err)
	}
	changed, err := returnedSet(rows)
	if err != nil {
		return nil, fmt.Errorf("write nodes: %w", err)
	}
	return changed, nil
}

// Node returns one node, or ErrNotFound.
func (s *Store) Node(ctx context.Context, name string) (*Node, error) {
	n, err := scanNode(s.db.QueryRowContext(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE name=$1`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("node %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	return n, nil
}

// NodesOf returns the nodes a compute host serves, by name.
func (s *Store) NodesOf(ctx context.Context, computeHost string) ([]*Node, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE compute_host=$1 ORDER BY name`, computeHost)
	if err != nil {
		return nil, fmt.Errorf("nodes of %s: %w", computeHost, err)
	}
	defer rows.Close()
	var out []*Node
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// DeleteNode removes a node that has no instance; it returns an error naming the
// instance otherwise.
func (s *Store) DeleteNode(ctx context.Context, name string) error {
	var inst string
	err := s.db.QueryRowContext(ctx, `DELETE FROM nodes WHERE name=$1 AND instance_uuid='' RETURNING instance_uuid`, name).Scan(&inst)
	if errors.Is(err, sql.ErrNoRows) {
		n, gerr := s.Node(ctx, name)
		if gerr != nil {
			return gerr
		}
		return fmt.Errorf("node %s is in use by instance %s", name, n.InstanceUUID)
	}
	if err != nil {
		return fmt.Errorf("delete node %s: %w", name, err)
	}
	return nil
}

// PowerObservation is what one sweep saw of a node's power.
type PowerObservation struct {
	Node     string
	State    string // on, off; "" when the BMC did not answer
	Answered bool
}

// RecordPower updates power states seen by a sweep in one transaction. Nodes with an
// unfinished job are left alone (the job is changing their power). A node that did
// not answer has its miss counter raised; one that answered is reset. notify builds
// the outbox rows for a changed node (written in the same transaction). It returns
// the nodes whose recorded state changed (with the new state) and those whose misses
// reached missLimit just now.
func (s *Store) RecordPower(ctx context.Context, obs []PowerObservation, missLimit int, notify func(n *Node, oldState string) []OutboxMessage) (changed map[string]string, unreachable []string, err error) {
	changed = map[string]string{}
	var names []string
	for _, o := range obs {
		if o.Answered {
			names = append(names, o.Node)
		}
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		for _, o := range obs {
			if o.Answered {
				continue
			}
			var misses int
			if err := tx.QueryRowContext(ctx, `UPDATE nodes SET power_misses = power_misses + 1 WHERE name=$1
				AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.node = nodes.name AND finished_at IS NULL) RETURNING power_misses`, o.Node).Scan(&misses); err != nil {
				if errors.Is(err, sql.ErrNoRows) {
					continue
				}
				return fmt.Errorf("node %s: %w", o.Node, err)
			}
			if misses == missLimit {
				unreachable = append(unreachable, o.Node)
			}
		}
		if len(names) == 0 {
			return nil
		}
		// The answered nodes without an open job, locked in name order, in one query
		// (a sweep of 10,000 nodes was 10,000 round trips even when nothing changed).
		rows, err := tx.QueryContext(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE name = ANY($1::text[])
			AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.node = nodes.name AND finished_at IS NULL) ORDER BY name FOR UPDATE`, pq.Array(names))
		if err != nil {
			return fmt.Errorf("nodes of the sweep: %w", err)
		}
		current := make(map[string]*Node, len(names))
		for rows.Next() {
			n, err := scanNode(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("nodes of the sweep: %w", err)
			}
			current[n.Name] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("nodes of the sweep: %w", err)
		}
		var upNames, upStates []string
		var msgs []OutboxMessage
		for _, o := range obs {
			n := current[o.Node]
			if !o.Answered || n == nil || (n.PowerState == o.State && n.PowerMisses == 0) {
				continue
			}
			upNames, upStates = append(upNames, o.Node), append(upStates, o.State)
			if n.PowerState != o.State {
				changed[o.Node] = o.State
				old := n.PowerState
				n.PowerState = o.State
				if notify != nil {
					msgs = append(msgs, notify(n, old)...)
				}
			}
		}
		if len(upNames) > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE nodes SET power_state = u.state, power_misses = 0, updated_at = now()
				FROM unnest($1::text[], $2::text[]) AS u(name, state) WHERE nodes.name = ANY($1::text[]) AND nodes.name = u.name`, pq.Array(upNames), pq.Array(upStates)); err != nil {
				return fmt.Errorf("record %d power states: %w", len(upNames), err)
			}
		}
		return insertOutbox(ctx, tx, 0, msgs)
	})
	return changed, unreachable, err
}

// NodeByInstance returns the node an instance runs on, or ErrNotFound.
func (s *Store) NodeByInstance(ctx context.Context, instanceUUID string) (*Node, error) {
	n, err := scanNode(s.db.QueryRowContext(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE instance_uuid=$1`, instanceUUID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("instance %s: %w", instanceUUID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", instanceUUID, err)
	}
	return n, nil
}

// NodesNamed returns the records of the named nodes that exist, by name, in one query.
func (s *Store) NodesNamed(ctx context.Context, names []string) (map[string]*Node, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE name = ANY($1::text[])`, pq.Array(names))
	if err != nil {
		return nil, fmt.Errorf("nodes %d: %w", len(names), err)
	}
	defer rows.Close()
	out := make(map[string]*Node, len(names))
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			return nil, fmt.Errorf("nodes: %w", err)
		}
		out[n.Name] = n
	}
	return out, rows.Err()
}

// MaintenanceCleaning is Node.Maintenance while the node's disks are cleaned.
const MaintenanceCleaning = "cleaning"

// NodesInMaintenance returns the nodes of computeHost held out of scheduling (all
// hosts when computeHost is ""), by name.
func (s *Store) NodesInMaintenance(ctx context.Context, computeHost string) ([]*Node, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE maintenance <> ''
		AND ($1 = '' OR compute_host = $1) ORDER BY name`, computeHost)
	if err != nil {
		return nil, fmt.Errorf("nodes in maintenance: %w", err)
	}
	defer rows.Close()
	var out []*Node
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			return nil, fmt.Errorf("nodes in maintenance: %w", err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// ClearMaintenance makes nodes schedulable again without cleaning them, and returns
// the names it changed (nodes whose cleaning job still runs are left alone).
func (s *Store) ClearMaintenance(ctx context.Context, names []string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `UPDATE nodes n SET maintenance = '', updated_at = now()
		WHERE n.name = ANY($1::text[]) AND n.maintenance <> ''
		  AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.node = n.name AND j.kind = 'clean' AND j.finished_at IS NULL)
		RETURNING n.name`, pq.Array(names))
	if err != nil {
		return nil, fmt.Errorf("clear maintenance: %w", err)
	}
	set, err := returnedSet(rows)
	if err != nil {
		return nil, fmt.Errorf("clear maintenance: %w", err)
	}
	var out []string
	for _, n := range names {
		if set[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// RetryCleaning puts a node held for a failed cleaning back into cleaning and
// records job (its clean job) in the same transaction. It reports false, changing
// nothing, when the node is not held for a failure (available, or cleaning).
func (s *Store) RetryCleaning(ctx context.Context, node string, job NewJob) (bool, error) {
	retried := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE nodes SET maintenance = $2, updated_at = now()
			WHERE name = $1 AND maintenance NOT IN ('', $2)`, node, MaintenanceCleaning)
		if err != nil {
			return fmt.Errorf("retry cleaning %s: %w", node, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		retried = true
		return insertFollowUp(ctx, tx, 0, &job)
	})
	return retried, err
}
