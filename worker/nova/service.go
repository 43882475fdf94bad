package nova

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"xcatbm/internal/broker"
	"xcatbm/internal/loop"
	"xcatbm/messages"
	"xcatbm/worker/store"
)

// DefaultServiceVersion is the nova-compute service version reported: 64, nova 26
// (Zed). nova-api and nova-conductor of Zed refuse to start while a nova-compute older
// than 61 (Yoga) is registered and cap their compute RPC by it (61..63 → 6.0, 64 →
// 6.1); every cast xcatbm serves is 6.0, so 61..64 all work with Zed. A newer nova
// needs the version of its own release (see its SERVICE_VERSION_HISTORY).
const DefaultServiceVersion = 64

// DefaultSyncParallel is Config.SyncParallel's default.
const DefaultSyncParallel = 16

// Config configures the nova integration of one compute host.
type Config struct {
	// ComputeHost is the nova compute host name (the worker's).
	ComputeHost string
	// ServiceVersion is the nova-compute service version reported (default 64).
	ServiceVersion int
	// HostIP is the compute node's host_ip (default 127.0.0.1).
	HostIP string
	// HeartbeatInterval is report_interval (default 10 s); SyncInterval the period of
	// the compute node and resource provider sync (default 60 s); OpsInterval how
	// often queued instance writes are looked for (default 200 ms).
	HeartbeatInterval time.Duration
	SyncInterval      time.Duration
	OpsInterval       time.Duration
	// RegistrationWait bounds how long SyncNodes waits for the service record
	// (default 2 min).
	RegistrationWait time.Duration
	// SyncParallel is how many nodes a sync brings into nova and placement at once
	// (default 16): each node costs a conductor call and a few placement requests,
	// answered by services that serve many requests at a time.
	SyncParallel int
	// Backoff paces retries of failed writes.
	Backoff broker.Backoff
	// Holder names this process when several workers serve one compute host: only
	// the one holding the host's nova-compute lease (store.AcquireLease) registers
	// the service, heartbeats it and syncs the nodes; the others perform queued
	// writes only, and one of them takes the role over once the holder stops
	// renewing. LeaseTTL is how long a holder keeps the role without renewing
	// (default 20 s: well under nova's service_down_time of 60 s); it renews every
	// LeaseTTL/4. Default holder: hostname:pid.
	Holder   string
	LeaseTTL time.Duration
}

// Deps are what the integration uses.
type Deps struct {
	// Conn is the AMQP connection to nova's bus (its own).
	Conn      *broker.Conn
	Store     *store.Store
	Placement *Placement
	Log       zerolog.Logger
}

// Service keeps the compute host registered in nova and performs the instance writes
// the worker's jobs queue. It implements worker.NovaWriter.
type Service struct {
	cfg   Config
	cond  *Conductor
	place *Placement
	store *store.Store
	log   zerolog.Logger
	now   func() time.Time

	// syncMu makes node syncs (the periodic one, SyncNodes) take turns; classes are
	// the custom resource classes known to exist in placement (under syncMu).
	syncMu  sync.Mutex
	classes map[string]bool
	mu      sync.Mutex
	svc     *messages.Object
	nodes   map[string]*computeNode
	ready   chan struct{}
	// syncer, beater and writer are the background passes: the node sync and the
	// heartbeat while this process holds the service role, the queued nova writes
	// always.
	syncer, beater, writer *loop.Loop
	// readyOnce closes ready; leading says this process holds the service role.
	readyOnce sync.Once
	leading   atomic.Bool
}

// computeNode is what is known of one node's compute node and resource provider.
type computeNode struct {
	obj       *messages.Object // the ComputeNode as nova has it
	rpGen     int
	inventory map[string]Inventory
	traitsSet bool
}

// New returns the integration; it runs with Run.
func New(cfg Config, d Deps) (*Service, error) {
	if cfg.ComputeHost == "" || d.Conn == nil || d.Store == nil || d.Placement == nil {
		return nil, errors.New("nova integration needs a compute host, a broker connection, a store and placement")
	}
	if cfg.ServiceVersion == 0 {
		cfg.ServiceVersion = DefaultServiceVersion
	}
	if cfg.HostIP == "" {
		cfg.HostIP = "127.0.0.1"
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = 60 * time.Second
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 20 * time.Second
	}
	if cfg.Holder == "" {
		h, _ := os.Hostname()
		cfg.Holder = fmt.Sprintf("%s:%d", h, os.Getpid())
	}
	if cfg.OpsInterval <= 0 {
		cfg.OpsInterval = 200 * time.Millisecond
	}
	if cfg.RegistrationWait <= 0 {
		cfg.RegistrationWait = 2 * time.Minute
	}
	if cfg.SyncParallel <= 0 {
		cfg.SyncParallel = DefaultSyncParallel
	}
	if cfg.Backoff.Min == 0 {
		cfg.Backoff = broker.Backoff{Min: time.Second, Max: 30 * time.Second}
	}
	log := d.Log.With().Str("component", "nova").Logger()
	s := &Service{cfg: cfg, place: d.Placement, store: d.Store, log: log, now: time.Now,
		cond:  NewConductor(ConductorConfig{Conn: d.Conn, Log: log, Backoff: cfg.Backoff}),
		nodes: map[string]*computeNode{}, classes: map[string]bool{}, ready: make(chan struct{})}
	s.syncer = &loop.Loop{Name: "compute node sync", Interval: cfg.SyncInterval, Backoff: cfg.Backoff, Log: log,
		Pass: func(ctx context.Context) (bool, error) { _, err := s.syncNodes(ctx, nil); return false, err }}
	s.beater = &loop.Loop{Name: "heartbeat", Interval: cfg.HeartbeatInterval, Log: log, Pass: s.beat}
	s.writer = &loop.Loop{Name: "nova writes", Interval: cfg.OpsInterval, Backoff: cfg.Backoff, Log: log, Pass: s.performDue}
	return s, nil
}

// Conductor is the integration's conductor client.
func (s *Service) Conductor() *Conductor { return s.cond }

// Ready is closed once the service record exists and the nodes were synced once.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// Run serves the compute host until ctx ends: it performs the queued instance writes
// and, while this process holds the host's nova-compute lease, registers the service,
// heartbeats it and syncs the nodes. On return the heartbeat stops (nova sees the
// service go down after service_down_time) and the lease is given up, so another
// worker of the host takes the role over at once.
func (s *Service) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { s.cond.Run(gctx); return nil })
	g.Go(func() error {
		if err := s.cond.Ping(gctx); err != nil {
			return nil
		}
		g.Go(func() error {
			select {
			case <-gctx.Done():
				return nil
			case <-s.ready:
			}
			return s.writer.Run(gctx)
		})
		return s.lead(gctx)
	})
	return g.Wait()
}

// leaseRole is the lease of a compute host's nova-compute role.
func (s *Service) leaseRole() string { return "nova-compute:" + s.cfg.ComputeHost }

// Leading reports whether this process holds the host's nova-compute role now.
func (s *Service) Leading() bool { return s.leading.Load() }

// lead keeps asking for the host's nova-compute lease until ctx ends. Holding it, it
// registers the service, heartbeats and syncs; losing it (the database unreachable
// past the lease's time), it stops doing so. Not holding it, it looks the service
// record up so that the writes it performs can proceed.
func (s *Service) lead(ctx context.Context) error {
	var stop context.CancelFunc
	var done chan struct{}
	stopLeading := func(why string) {
		if stop == nil {
			return
		}
		stop()
		<-done
		stop, done = nil, nil
		s.leading.Store(false)
		s.log.Warn().Str("holder", s.cfg.Holder).Str("why", why).Msg("no longer the nova-compute service of this host")
	}
	defer func() {
		stopLeading("stopping")
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.store.ReleaseLease(rctx, s.leaseRole(), s.cfg.Holder); err != nil {
			s.log.Warn().Err(err).Msg("releasing the nova-compute lease failed; it expires on its own")
		}
	}()
	renew := time.NewTicker(s.cfg.LeaseTTL / 4)
	defer renew.Stop()
	held, lastHeld := false, time.Time{}
	for {
		got, err := s.store.AcquireLease(ctx, s.leaseRole(), s.cfg.Holder, s.cfg.LeaseTTL)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			s.log.Warn().Err(err).Msg("nova-compute lease not renewed")
			// Past the lease's time another worker may hold the role: stop.
			if held && time.Since(lastHeld) > s.cfg.LeaseTTL*3/4 {
				stopLeading("the lease could not be renewed in time")
				held = false
			}
		case got:
			lastHeld = time.Now()
			if !held {
				held = true
				lctx, cancel := context.WithCancel(ctx)
				stop, done = cancel, make(chan struct{})
				s.leading.Store(true)
				s.log.Info().Str("holder", s.cfg.Holder).Msg("this worker is the nova-compute service of its host")
				go func() {
					defer close(done)
					s.serve(lctx)
				}()
			}
		default:
			if held {
				stopLeading("another worker holds the lease")
				held = false
			}
			s.follow(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-renew.C:
		}
	}
}

// serve is the holder's work: register the service, sync the nodes once, then
// heartbeat and sync until ctx ends.
func (s *Service) serve(ctx context.Context) {
	for attempt := 0; ; attempt++ {
		err := s.register(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn().Err(err).Msg("registering nova-compute service failed; retrying")
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.Backoff.Delay(attempt)):
		}
	}
	if _, err := s.syncNodes(ctx, nil); err != nil {
		s.log.Warn().Err(err).Msg("first compute node sync failed")
	}
	s.readyOnce.Do(func() { close(s.ready) })
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = s.beater.Run(ctx) }()
	go func() { defer wg.Done(); _ = s.syncer.Run(ctx) }()
	wg.Wait()
}

// follow looks up the service record another worker registered, once, so this one is
// ready to perform writes.
func (s *Service) follow(ctx context.Context) {
	select {
	case <-s.ready:
		return
	default:
	}
	res, err := s.cond.ObjectClassAction(ctx, "Service", "get_by_host_and_binary", []any{s.cfg.ComputeHost, "nova-compute"}, nil)
	if err != nil || string(res) == "null" {
		return // not registered yet: the holder is at it
	}
	svc, err := messages.DecodeObject(res)
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.svc == nil {
		s.svc = svc
	}
	s.mu.Unlock()
	s.readyOnce.Do(func() { close(s.ready) })
}

// register finds or creates the nova-compute service record of the host.
func (s *Service) register(ctx context.Context) error {
	res, err := s.cond.ObjectClassAction(ctx, "Service", "get_by_host_and_binary", []any{s.cfg.ComputeHost, "nova-compute"}, nil)
	if err != nil {
		return fmt.Errorf("service get_by_host_and_binary: %w", err)
	}
	var svc *messages.Object
	if string(res) != "null" {
		if svc, err = messages.DecodeObject(res); err != nil {
			return fmt.Errorf("service record: %w", err)
		}
		if v, _ := svc.Int("version"); int(v) != s.cfg.ServiceVersion {
			_ = svc.Set("version", s.cfg.ServiceVersion)
			svc.Changes = []string{"version"}
			upd, _, err := s.cond.ObjectAction(ctx, svc, "save", nil, nil, nil)
			if err != nil {
				return fmt.Errorf("service save version: %w", err)
			}
			merge(svc, upd)
		}
	} else {
		svc, _ = messages.NewObject("Service", objectVersions["Service"], map[string]any{
			"binary": "nova-compute", "host": s.cfg.ComputeHost, "report_count": 0, "topic": "compute", "version": s.cfg.ServiceVersion})
		svc.Changes = []string{"report_count", "version", "host", "binary", "topic"}
		upd, _, err := s.cond.ObjectAction(ctx, svc, "create", nil, nil, nil)
		if err != nil {
			return fmt.Errorf("service create: %w", err)
		}
		merge(svc, upd)
	}
	svc.Changes = nil
	s.mu.Lock()
	s.svc = svc
	s.mu.Unlock()
	id, _ := svc.Int("id")
	s.log.Info().Int64("service_id", id).Int("version", s.cfg.ServiceVersion).Msg("nova-compute service registered")
	return nil
}

// merge applies object_action updates to obj.
func merge(obj *messages.Object, updates map[string]json.RawMessage) {
	for k, v := range updates {
		obj.Data[k] = v
	}
}

// beat is one report_state: Service.save with report_count incremented. A failed
// beat is tried again at the next interval, as nova-compute does.
func (s *Service) beat(ctx context.Context) (bool, error) {
	s.mu.Lock()
	svc := s.svc.Clone()
	s.mu.Unlock()
	n, _ := svc.Int("report_count")
	_ = svc.Set("report_count", n+1)
	svc.Changes = []string{"report_count"}
	hctx, cancel := context.WithTimeout(ctx, s.cfg.HeartbeatInterval*3)
	defer cancel()
	upd, _, err := s.cond.ObjectAction(hctx, svc, "save", nil, nil, nil)
	if err != nil {
		return false, err
	}
	merge(svc, upd)
	svc.Changes = nil
	s.mu.Lock()
	s.svc = svc
	s.mu.Unlock()
	return false, nil
}

// NodesChanged asks for a node sync now (worker.NovaWriter).
func (s *Service) NodesChanged() { s.Kick() }

// SyncNodes brings the named nodes into nova and placement now and returns where
// each stands (worker.NovaWriter). It first waits for the nova-compute service
// record, at most Config.RegistrationWait; past that every named node is recorded
// and returned pending. Nodes not in the nodes table are left out.
func (s *Service) SyncNodes(ctx context.Context, names []string) map[string]store.NodeRegistration {
	wait := time.NewTimer(s.cfg.RegistrationWait)
	defer wait.Stop()
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil
	case <-wait.C:
		known, err := s.store.NodesNamed(ctx, names)
		if err != nil {
			s.log.Warn().Err(err).Msg("cannot read the registered nodes")
			return nil
		}
		var regs []store.NodeRegistration
		for name, n := range known {
			if n.ComputeHost == s.cfg.ComputeHost {
				regs = append(regs, store.NodeRegistration{Name: name, State: store.RegistrationPending,
					Detail: "the nova-compute service of " + s.cfg.ComputeHost + " is not registered yet (nova-conductor has not answered)"})
			}
		}
		s.record(ctx, regs)
		out := make(map[string]store.NodeRegistration, len(regs))
		for _, reg := range regs {
			out[reg.Name] = reg
		}
		return out
	}
	regs, err := s.syncNodes(ctx, names)
	if err != nil && ctx.Err() == nil {
		s.log.Warn().Err(err).Msg("registered nodes not all ready in nova and placement")
	}
	return regs
}

// Kick asks for a node sync now.
func (s *Service) Kick() { s.syncer.Poke() }

// nodeUUID is the compute node (and resource provider) uuid of a node: stable, derived
// from the host and node names, as the ironic driver's node uuids are.
func nodeUUID(host, node string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("xcatbm://"+host+"/"+node)).String()
}

// syncNodes makes nova's compute nodes and placement's providers match the nodes
// table (every node of the host, or those named when only is not empty), writing
// only what differs, and records where each node stands (store.NodeRegistration).
// It returns the states by name, and an error naming the nodes that are not ready.
func (s *Service) syncNodes(ctx context.Context, only []string) (map[string]store.NodeRegistration, error) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	nodes, err := s.nodesToSync(ctx, only)
	if err != nil {
		return nil, err
	}
	out := make(map[string]store.NodeRegistration, len(nodes))
	if len(nodes) == 0 {
		return out, nil
	}
	known, err := s.computeNodes(ctx, nodes, len(only) > 0)
	if err != nil {
		regs := make([]store.NodeRegistration, len(nodes))
		for i, n := range nodes {
			regs[i] = store.NodeRegistration{Name: n.Name, State: registrationState(err), Detail: "compute node: " + err.Error()}
		}
		s.record(ctx, regs)
		for _, reg := range regs {
			out[reg.Name] = reg
		}
		return out, err
	}
	classes := s.ensureClasses(ctx, nodes)
	// The nodes are synced SyncParallel at a time; each node's result lands in its
	// own slot (named once synced), so the errors come back in the nodes' order.
	// Finished nodes are recorded recordBatch at a time, in one statement each, while
	// the others sync.
	regs := make([]store.NodeRegistration, len(nodes))
	finished := make(chan int, s.cfg.SyncParallel)
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		var batch []store.NodeRegistration
		for i := range finished {
			if batch = append(batch, regs[i]); len(batch) == recordBatch {
				s.record(ctx, batch)
				batch = batch[:0]
			}
		}
		s.record(ctx, batch)
	}()
	var g errgroup.Group
	g.SetLimit(s.cfg.SyncParallel)
	for i, n := range nodes {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if ctx.Err() != nil {
				return nil
			}
			regs[i] = s.syncNode(ctx, n, known[n.Name], classes)
			finished <- i
			return nil
		})
	}
	_ = g.Wait()
	close(finished)
	<-recorded
	regs = slices.DeleteFunc(regs, func(r store.NodeRegistration) bool { return r.Name == "" }) // not synced: ctx ended first
	var errs []error
	for _, reg := range regs {
		out[reg.Name] = reg
		if reg.State != store.RegistrationReady {
			errs = append(errs, fmt.Errorf("node %s %s: %s", reg.Name, reg.State, reg.Detail))
		}
	}
	if len(errs) > 0 {
		clear(s.classes) // one may have been deleted: the next sync makes them again
	}
	if ctx.Err() != nil {
		return out, ctx.Err()
	}
	return out, errors.Join(errs...)
}

// ensureClasses creates the custom resource classes of nodes once, and returns
// those that exist; a class that could not be created is left to each node's
// provider sync, which reports the failure on the node. A class made once is not
// asked for again while every sync succeeds (placement refuses to delete a class
// that inventories use); a sync with a node not ready forgets them all.
func (s *Service) ensureClasses(ctx context.Context, nodes []*store.Node) map[string]bool {
	exist := map[string]bool{} // every class of nodes: true when it exists
	for _, n := range nodes {
		rc := ResourceClass(n.ResourceClass)
		if _, seen := exist[rc]; seen {
			continue
		}
		if !s.classes[rc] {
			if err := s.place.EnsureResourceClass(ctx, rc); err != nil {
				s.log.Warn().Err(err).Str("resource_class", rc).Msg("cannot create the resource class; each node's sync tries again")
				exist[rc] = false
				continue
			}
			s.classes[rc] = true
		}
		exist[rc] = true
	}
	return exist
}

// nodesToSync returns the host's nodes, or those named in only (in only's order),
// from the nodes table.
func (s *Service) nodesToSync(ctx context.Context, only []string) ([]*store.Node, error) {
	if len(only) == 0 {
		return s.store.NodesOf(ctx, s.cfg.ComputeHost)
	}
	named, err := s.store.NodesNamed(ctx, only)
	if err != nil {
		return nil, err
	}
	nodes := make([]*store.Node, 0, len(named))
	for _, name := range only {
		if n := named[name]; n != nil && n.ComputeHost == s.cfg.ComputeHost {
			nodes = append(nodes, n)
			delete(named, name) // a name given twice is synced once
		}
	}
	return nodes, nil
}

// computeNodes returns the compute nodes nova has for nodes, by hypervisor_hostname
// (none when nova knows no compute node of the host). The whole host's list is asked for (ComputeNodeList.get_all_by_host) unless named
// is set: a sync of some nodes, such as a registration job's chunk of 100 out of
// 10,000, asks for those nodes' compute nodes by their uuids
// (ComputeNodeList.get_all_by_uuids), so a large registration does not read the
// whole host's list once per chunk. xcatbm creates every compute node with its
// nodeUUID, so the uuids find them; the periodic sync lists the whole host.
func (s *Service) computeNodes(ctx context.Context, nodes []*store.Node, named bool) (map[string]*messages.Object, error) {
	method, args := "get_all_by_host", []any{s.cfg.ComputeHost}
	kwargs := map[string]any{"use_slave": true}
	if named {
		uuids := make([]string, len(nodes))
		for i, n := range nodes {
			uuids[i] = nodeUUID(s.cfg.ComputeHost, n.Name)
		}
		method, args, kwargs = "get_all_by_uuids", []any{uuids}, nil
	}
	res, err := s.cond.ObjectClassAction(ctx, "ComputeNodeList", method, args, kwargs)
	switch {
	case errors.Is(err, ErrComputeHostNotFound):
		return map[string]*messages.Object{}, nil
	case err != nil:
		return nil, fmt.Errorf("ComputeNodeList.%s: %w", method, err)
	}
	return computeNodesByName(res)
}

// computeNodesByName decodes a ComputeNodeList by hypervisor_hostname.
func computeNodesByName(res json.RawMessage) (map[string]*messages.Object, error) {
	list, err := messages.DecodeObject(res)
	if err != nil {
		return nil, fmt.Errorf("compute node list: %w", err)
	}
	objs, err := list.Objects()
	if err != nil {
		return nil, fmt.Errorf("compute node list: %w", err)
	}
	known := make(map[string]*messages.Object, len(objs))
	for _, o := range objs {
		name, _ := o.Str("hypervisor_hostname")
		known[name] = o
	}
	return known, nil
}

// recordBatch is how many nodes' registration states a sync records in one statement.
const recordBatch = 100

// record writes the registration states of nodes (those that changed, in one
// statement) and logs each change.
func (s *Service) record(ctx context.Context, regs []store.NodeRegistration) {
	written, err := s.store.SetNodeRegistrations(ctx, regs)
	switch {
	case err != nil && ctx.Err() != nil:
		// Stopping cut the sync short: the next sync records where the nodes stand;
		// one warning per node of a 10,000-node host would bury the stop's reason.
		s.log.Debug().Err(err).Int("nodes", len(regs)).Msg("registration states not recorded: stopping")
	case err != nil:
		s.log.Warn().Err(err).Int("nodes", len(regs)).Msg("cannot record the nodes' registration states")
	}
	for _, reg := range regs {
		switch {
		case !written[reg.Name]:
		case reg.State == store.RegistrationReady:
			s.log.Info().Str("node", reg.Name).Str("compute_node", reg.ComputeNode).Msg("node ready in nova and placement")
		default:
			s.log.Warn().Str("node", reg.Name).Str("state", reg.State).Str("detail", reg.Detail).Msg("node not ready in nova and placement")
		}
	}
}

// registrationState is the state an error leaves a node in: failed when nova or
// placement refused (a 4xx, a provider name taken, an exception in nova), pending
// when it may pass (no answer, a broken connection, a 5xx).
func registrationState(err error) string {
	var he *HTTPError
	var re *RemoteError
	switch {
	case errors.Is(err, ErrNameTaken):
		return store.RegistrationFailed
	case errors.As(err, &he):
		if he.Status >= 400 && he.Status < 500 && he.Status != http.StatusRequestTimeout && he.Status != http.StatusTooManyRequests {
			return store.RegistrationFailed
		}
	case errors.Is(err, ErrTimeout):
	case errors.As(err, &re):
		return store.RegistrationFailed
	}
	return store.RegistrationPending
}

// syncNode brings one node's compute node and resource provider in line and says
// where the node stands.
func (s *Service) syncNode(ctx context.Context, n *store.Node, have *messages.Object, classes map[string]bool) store.NodeRegistration {
	reg := store.NodeRegistration{Name: n.Name}
	created := have == nil // nova has no compute node for it: one is created now
	cn, err := s.ensureComputeNode(ctx, n, have)
	if err != nil {
		reg.State, reg.Detail = registrationState(err), "compute node: "+err.Error()
		return reg
	}
	rpUUID, _ := cn.Str("uuid")
	reg.ComputeNode = rpUUID
	s.mu.Lock()
	state := s.nodes[n.Name]
	if state == nil {
		state = &computeNode{}
		s.nodes[n.Name] = state
	}
	state.obj = cn
	s.mu.Unlock()
	rc := ResourceClass(n.ResourceClass)
	if err := s.syncProvider(ctx, state, rpUUID, n, classes[rc], created); err != nil {
		provider := "no resource provider"
		var pe *ProviderError
		if errors.As(err, &pe) && pe.Exists {
			provider = "resource provider exists"
		}
		reg.State = registrationState(err)
		reg.Detail = fmt.Sprintf("compute node %s exists, %s; %v", rpUUID, provider, err)
		return reg
	}
	reg.State = store.RegistrationReady
	reg.Detail = fmt.Sprintf("compute node and resource provider %s, inventory %s: 1", rpUUID, rc)
	return reg
}

// ensureComputeNode creates the node's compute node through the conductor, or saves
// the usage fields of the one nova has when they differ, and returns it.
func (s *Service) ensureComputeNode(ctx context.Context, n *store.Node, have *messages.Object) (*messages.Object, error) {
	used := 0
	if n.InstanceUUID != "" {
		used = 1
	}
	want := map[string]any{
		"vcpus": n.CPUs, "memory_mb": n.MemoryMB, "local_gb": n.DiskGB, "running_vms": used,
		"vcpus_used": used * n.CPUs, "memory_mb_used": used * n.MemoryMB, "local_gb_used": used * n.DiskGB,
		"free_ram_mb": (1 - used) * n.MemoryMB, "free_disk_gb": (1 - used) * n.DiskGB, "current_workload": 0,
	}
	var cn *messages.Object
	if have == nil {
		fields := map[string]any{
			"uuid": nodeUUID(s.cfg.ComputeHost, n.Name), "host": s.cfg.ComputeHost, "hypervisor_hostname": n.Name,
			"hypervisor_type": "xcat", "hypervisor_version": 1, "host_ip": s.cfg.HostIP, "disk_available_least": 0,
			"cpu_allocation_ratio": 1.0, "ram_allocation_ratio": 1.0, "disk_allocation_ratio": 1.0, "cpu_info": "",
			"numa_topology": nil, "stats": map[string]string{}, "supported_hv_specs": []any{}, "metrics": "[]",
		}
		for k, v := range want {
			fields[k] = v
		}
		cn, _ = messages.NewObject("ComputeNode", objectVersions["ComputeNode"], fields)
		cn.Changes = cn.Keys()
		upd, _, err := s.cond.ObjectAction(ctx, cn, "create", nil, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("ComputeNode.create: %w", err)
		}
		merge(cn, upd)
		s.log.Info().Str("node", n.Name).Msg("compute node created")
	} else {
		cn = have
		var changed []string
		for k, v := range want {
			raw, _ := json.Marshal(v)
			var a, b any
			_ = json.Unmarshal(raw, &a)
			_ = json.Unmarshal(cn.Data[k], &b)
			if !reflect.DeepEqual(a, b) {
				cn.Data[k] = raw
				changed = append(changed, k)
			}
		}
		if len(changed) > 0 {
			slices.Sort(changed)
			cn.Changes = changed
			upd, _, err := s.cond.ObjectAction(ctx, cn, "save", nil, nil, nil)
			if err != nil {
				return nil, fmt.Errorf("ComputeNode.save: %w", err)
			}
			merge(cn, upd)
		}
	}
	cn.Changes = nil
	return cn, nil
}

// syncProvider makes a node's resource provider carry the node's single custom
// resource class, reserved while the node runs an instance (as nova's ironic driver
// does) or is in maintenance (cleaned between tenants), and the COMPUTE_NODE trait.
// classKnown says the node's resource class exists in placement (ensured for the
// whole sync); created says its compute node was just created, so its provider is
// new too.
func (s *Service) syncProvider(ctx context.Context, st *computeNode, rpUUID string, n *store.Node, classKnown, created bool) error {
	rc := ResourceClass(n.ResourceClass)
	reserved := 0
	if n.InstanceUUID != "" || n.Maintenance != "" { // in use, or held out (cleaning)
		reserved = 1
	}
	want := map[string]Inventory{rc: {Total: 1, Reserved: reserved, MinUnit: 1, MaxUnit: 1, StepSize: 1, AllocationRatio: 1.0}}
	if st.inventory != nil && reflect.DeepEqual(st.inventory, want) && st.traitsSet {
		return nil
	}
	res, err := s.place.EnsureProvider(ctx, ProviderSpec{UUID: rpUUID, Name: n.Name, Inventory: want, Traits: []string{"COMPUTE_NODE"}, ClassesExist: classKnown, New: created})
	if err != nil {
		return err
	}
	if res.Created {
		s.log.Info().Str("node", n.Name).Str("provider", rpUUID).Msg("resource provider created")
	}
	st.inventory, st.rpGen, st.traitsSet = want, res.Generation, true
	return nil
}

// NodeUUID returns the compute node uuid of a node, once synced.
func (s *Service) NodeUUID(node string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.nodes[node]; st != nil && st.obj != nil {
		u, _ := st.obj.Str("uuid")
		return u
	}
	return ""
}
