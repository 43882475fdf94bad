package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"xcatbm/worker/store"
	"xcatbm/xcat"
)

// XCAT is what the worker needs of xCAT; xcat.Client satisfies it. Every call takes a
// noderange and answers per node, so one call serves many jobs.
type XCAT interface {
	Power(ctx context.Context, noderange string, action xcat.PowerAction) (xcat.Results, error)
	SetBoot(ctx context.Context, noderange, device string) (xcat.Results, error)
	BootSeq(ctx context.Context, noderange, order string) (xcat.Results, error)
	NetBoot(ctx context.Context, noderange string) (xcat.Results, error)
	NodeSet(ctx context.Context, noderange, state string) (xcat.Results, error)
	ChDef(ctx context.Context, noderange string, op xcat.ChDefOp, attrs xcat.Attrs) (xcat.Results, error)
	ChDefEach(ctx context.Context, op xcat.ChDefOp, attrs map[string]xcat.Attrs) (xcat.Results, error)
	MakeHosts(ctx context.Context, noderange string, remove bool) (xcat.Results, error)
	NodeLs(ctx context.Context, noderange string, attrs ...string) (map[string]xcat.Attrs, xcat.Results, error)
	LsDefNodes(ctx context.Context, noderange string, where []string, attrs ...string) (map[string]xcat.Attrs, error)
	UpdateNode(ctx context.Context, noderange string, scripts ...string) (xcat.Results, error)
}

// stepFunc runs one step for a batch of jobs in the same state and sets each run's
// outcome. Calls with the same arguments are made once over the union noderange.
type stepFunc func(w *Worker, ctx context.Context, runs []*run)

// Attribute names read from lsdef and nodels.
const (
	attrMgt             = "mgt"
	attrIP              = "ip"
	attrMAC             = "mac"
	attrXCATMaster      = "xcatmaster"
	attrServiceNode     = "servicenode"
	attrPostbootscripts = "postbootscripts"
	attrStatus          = "nodelist.status"
	attrStatusTime      = "nodelist.statustime"

	postscriptName   = "config_ops_bmnode"
	deconfigName     = "deconfig_ops_bmnode"
	statusBooted     = "booted"
	statusFailed     = "failed"
	powerOn, powerOf = "on", "off"
)

// Errors that fail a job at once.
var (
	ErrUnknownNode    = errors.New("unknown xCAT node")
	ErrNotOwned       = errors.New("node is managed by another management node")
	ErrNoImage        = errors.New("image has no xcat_image_name property")
	ErrUnsupportedMgt = errors.New("nodehm.mgt not supported")
	ErrInstallFailed  = errors.New("install failed")
	ErrDeadline       = errors.New("deadline passed")
	ErrNodeInUse      = errors.New("node is in use by another instance")
	ErrNotInstances   = errors.New("node does not run the instance")
)

// supportedMgt lists the nodehm.mgt values spawn can boot from the network.
var supportedMgt = map[string]bool{"ipmi": true, "blade": true, "fsp": true, "hmc": true}

// --- shared helpers ---------------------------------------------------------------

func nodesOf(runs []*run) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range runs {
		if n := r.node(); n != "" && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// call runs fn once over the union noderange of nodes. When xCAT refuses the whole
// request (an unknown node makes xcatd reject it all), it falls back to one call per
// node so that one bad node does not fail the others. The result has an entry for
// every node: its NodeResult, or a NodeResult whose Err is the call's error.
//
// More nodes than Config.XCATMaxNodes go out as several requests of at most that
// many, one after another.
func (w *Worker) call(ctx context.Context, nodes []string, fn func(ctx context.Context, nr string) (xcat.Results, error)) xcat.Results {
	out := xcat.Results{}
	if max := w.cfg.XCATMaxNodes; max > 0 && len(nodes) > max {
		for i := 0; i < len(nodes); i += max {
			for n, r := range w.call(ctx, nodes[i:min(i+max, len(nodes))], fn) {
				out[n] = r
			}
		}
		return out
	}
	if len(nodes) == 0 {
		return out
	}
	res, err := w.timed(ctx, fn, nodes)
	var cmdErr *xcat.CommandError
	if errors.As(err, &cmdErr) && len(nodes) > 1 {
		var mu sync.Mutex
		w.parallel(ctx, len(nodes), func(ctx context.Context, i int) {
			r, err := w.timed(ctx, fn, nodes[i:i+1])
			mu.Lock()
			defer mu.Unlock()
			out[nodes[i]] = pick(r, nodes[i], err)
		})
		return out
	}
	for _, n := range nodes {
		out[n] = pick(res, n, err)
	}
	return out
}

func (w *Worker) timed(ctx context.Context, fn func(ctx context.Context, nr string) (xcat.Results, error), nodes []string) (xcat.Results, error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.XCATTimeout)
	defer cancel()
	return fn(ctx, xcat.CompressNoderange(nodes))
}

func pick(res xcat.Results, node string, err error) xcat.NodeResult {
	if r, ok := res[node]; ok && (r.Err != nil || err == nil) {
		return r
	}
	if err != nil {
		return xcat.NodeResult{Err: err}
	}
	return xcat.NodeResult{Err: fmt.Errorf("%w: no answer for node %s", xcat.ErrUnavailable, node)}
}

// chdefRuns makes each run's own attribute change (attrs(r)) with one chdef -z
// request for the batch (xcat ChDefEach), op applying to every node, and returns the
// runs whose change was made. Every other run's outcome is set to its node's result,
// judged as the step what ("chdef ip").
//
// When the request fails as a whole (xCAT refuses it with a *CommandError, the answer
// does not complete, a value is refused before sending) no run is judged by it: the
// changes are made again node by node, as one chdef each, so every run gets its own
// verdict. Repeating what the failed request may have applied is harmless: a set is
// idempotent, -p of an entry already there is a warning and -m of one already gone
// does nothing. Runs that share a node (their changes could not both go in one
// stanza) are also made one by one, and so is a lone change, as a plain chdef.
func (w *Worker) chdefRuns(ctx context.Context, op xcat.ChDefOp, what string, runs []*run, attrs func(*run) xcat.Attrs) []*run {
	out := make(map[*run]xcat.NodeResult, len(runs))
	perNode := map[string]int{}
	for _, r := range runs {
		perNode[r.node()]++
	}
	var batch, single []*run
	for _, r := range runs {
		if perNode[r.node()] == 1 {
			batch = append(batch, r)
		} else {
			single = append(single, r)
		}
	}
	if len(batch) == 1 {
		single, batch = append(single, batch...), nil
	}
	if len(batch) > 0 {
		each := make(map[string]xcat.Attrs, len(batch))
		for _, r := range batch {
			each[r.node()] = attrs(r)
		}
		cctx, cancel := context.WithTimeout(ctx, w.cfg.XCATTimeout)
		res, err := w.xc.ChDefEach(cctx, op, each)
		cancel()
		if err == nil || ctx.Err() != nil {
			for _, r := range batch {
				out[r] = pick(res, r.node(), err)
			}
		} else {
			single = append(single, batch...)
		}
	}
	var mu sync.Mutex
	w.parallel(ctx, len(single), func(ctx context.Context, i int) {
		r := single[i]
		res := w.call(ctx, []string{r.node()}, func(ctx context.Context, nr string) (xcat.Results, error) {
			return w.xc.ChDef(ctx, nr, op, attrs(r))
		})
		mu.Lock()
		defer mu.Unlock()
		out[r] = res[r.node()]
	})
	var done []*run
	for _, r := range runs {
		if ok, o := verdict(what, out[r]); !ok {
			r.out = o
			continue
		}
		done = append(done, r)
	}
	return done
}

// verdict turns one node's result into an outcome: nil error → ok.
func verdict(what string, r xcat.NodeResult) (ok bool, o outcome) {
	if r.Err == nil {
		return true, outcome{}
	}
	err := fmt.Errorf("%s: %w", what, r.Err)
	var ne *xcat.NodeError
	switch {
	case errors.As(r.Err, &ne) && ne.Transient,
		errors.Is(r.Err, xcat.ErrUnavailable),
		errors.Is(r.Err, context.DeadlineExceeded):
		return false, transient(err)
	default:
		return false, failed(err)
	}
}

// parallel runs fn(i) for i in [0,n) with at most cfg.XCATParallel at once.
func (w *Worker) parallel(ctx context.Context, n int, fn func(ctx context.Context, i int)) {
	sem := make(chan struct{}, max(1, w.cfg.XCATParallel))
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(ctx, i)
		}()
	}
	wg.Wait()
}

// eachRun runs fn for every run concurrently (bounded) and stores its outcome.
func (w *Worker) eachRun(ctx context.Context, runs []*run, fn func(ctx context.Context, r *run) outcome) {
	w.parallel(ctx, len(runs), func(ctx context.Context, i int) { runs[i].out = fn(ctx, runs[i]) })
}

// groupBy splits runs by key, keeping order.
func groupBy(runs []*run, key func(*run) string) (keys []string, groups map[string][]*run) {
	groups = map[string][]*run{}
	for _, r := range runs {
		k := key(r)
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	return keys, groups
}

// applyResults sets each run's outcome from its node's result: advance(detail) when
// it succeeded.
func applyResults(runs []*run, res xcat.Results, what, detail string) {
	for _, r := range runs {
		if ok, o := verdict(what, res[r.node()]); !ok {
			r.out = o
			continue
		}
		r.out = advanced(detail)
	}
}

// --- resolve ---------------------------------------------------------------------

var resolveAttrs = []string{attrMgt, attrIP, attrMAC, attrXCATMaster, attrServiceNode, attrPostbootscripts}

func (w *Worker) stepResolve(ctx context.Context, runs []*run) {
	// Nothing a request carries reaches xCAT unchecked (validate.go).
	for _, r := range runs {
		if err := checkRequest(r); err != nil {
			r.out = failed(err)
		}
	}
	runs = slices.DeleteFunc(slices.Clone(runs), func(r *run) bool { return r.out.err != nil })
	// A spawn without a fixed address takes its Neutron port's (neutron.go).
	w.neutronAddresses(ctx, runs)
	runs = slices.DeleteFunc(runs, func(r *run) bool { return r.out.err != nil })
	// Name the node of every job: nova's node, the node of the instance, or the node
	// whose MAC matches.
	var named []*run
	for _, r := range runs {
		if r.req.Node == "" && !spec(r.kind()).node.claim {
			if n, err := w.store.NodeByInstance(ctx, r.req.InstanceUUID); err == nil {
				r.data.Node = n.Name
			} else if !errors.Is(err, store.ErrNotFound) {
				r.out = transient(err)
				continue
			}
		}
		if r.node() == "" && r.req.MAC != "" {
			found, err := w.xc.LsDefNodes(ctx, "", []string{"mac=~" + strings.ToLower(r.req.MAC)}, attrMAC)
			if err != nil {
				r.out = transient(fmt.Errorf("lsdef -w mac=%s: %w", r.req.MAC, err))
				continue
			}
			names := make([]string, 0, len(found))
			for n := range found {
				names = append(names, n)
			}
			switch len(names) {
			case 0:
				r.out = failed(fmt.Errorf("%w: no xCAT node has MAC %s", ErrUnknownNode, r.req.MAC))
				continue
			case 1:
				r.data.Node = names[0]
			default:
				sort.Strings(names)
				r.out = failed(fmt.Errorf("MAC %s matches several xCAT nodes: %s", r.req.MAC, strings.Join(names, ",")))
				continue
			}
		}
		if r.node() == "" {
			r.out = failed(fmt.Errorf("%w: the request names no node and no MAC", ErrUnknownNode))
			continue
		}
		if err := xcat.ValidateNodeName(r.node()); err != nil {
			r.out = failed(err)
			continue
		}
		r.data.Node = r.node()
		named = append(named, r)
	}
	if len(named) == 0 {
		return
	}
	nodes := nodesOf(named)
	// xcatbm's records of all the nodes in one query (who runs what, original IPs).
	records, err := w.store.NodesNamed(ctx, nodes)
	if err != nil {
		for _, r := range named {
			r.out = transient(err)
		}
		return
	}
	attrs, err := w.lsdefEach(ctx, nodes)
	for _, r := range named {
		a, ok := attrs[r.node()]
		switch {
		case !ok && err != nil:
			r.out = transient(fmt.Errorf("lsdef %s: %w", r.node(), err))
			continue
		case !ok:
			r.out = failed(fmt.Errorf("%w %s", ErrUnknownNode, r.node()))
			continue
		}
		if owner := manager(a); owner != "" && owner != w.cfg.MgmtNode {
			r.out = failed(fmt.Errorf("%w: %s is managed by %s, this worker by %s", ErrNotOwned, r.node(), owner, w.cfg.MgmtNode))
			continue
		}
		r.data.Mgt = a[attrMgt]
		r.data.Stale = entries(a[attrPostbootscripts], postscriptName)
		rec := records[r.node()] // nil when xcatbm has no record of the node yet
		if ks := spec(r.kind()); ks.node.claim || ks.node.owned {
			r.out = w.resolveBoot(r, a, rec)
			r.bind = ks.node.claim && r.out.is(advance)
			continue
		}
		if spec(r.kind()).node.free && rec != nil && rec.OriginalIP != "" && rec.OriginalIP != a[attrIP] {
			r.data.OriginalIP = rec.OriginalIP
		}
		r.out = advanced("node " + r.node())
	}
}

// lsdefEach reads the resolve attributes of nodes in one lsdef; when xCAT refuses the
// request because a node is unknown, it asks node by node.
func (w *Worker) lsdefEach(ctx context.Context, nodes []string) (map[string]xcat.Attrs, error) {
	cctx, cancel := context.WithTimeout(ctx, w.cfg.XCATTimeout)
	defer cancel()
	attrs, err := w.xc.LsDefNodes(cctx, xcat.CompressNoderange(nodes), nil, resolveAttrs...)
	var cmdErr *xcat.CommandError
	if err == nil || !errors.As(err, &cmdErr) {
		return attrs, err
	}
	out := map[string]xcat.Attrs{}
	var mu sync.Mutex
	var lastErr error
	w.parallel(ctx, len(nodes), func(ctx context.Context, i int) {
		cctx, cancel := context.WithTimeout(ctx, w.cfg.XCATTimeout)
		defer cancel()
		a, err := w.xc.LsDefNodes(cctx, nodes[i], nil, resolveAttrs...)
		mu.Lock()
		defer mu.Unlock()
		if err != nil && !errors.As(err, &cmdErr) {
			lastErr = err
		}
		for k, v := range a {
			out[k] = v
		}
	})
	return out, lastErr
}

// resolveBoot checks a job that boots its node (spawn, rebuild, rescue, unrescue):
// a mgt xCAT can boot, something to boot (nodeset), and the node free for a spawn
// or the instance's own for the others; and it makes the config_ops_bmnode entry
// that gives the node its hostname, tenant address and tenant data.
func (w *Worker) resolveBoot(r *run, a xcat.Attrs, rec *store.Node) outcome {
	if !supportedMgt[r.data.Mgt] {
		return failed(fmt.Errorf("%w: %s has nodehm.mgt=%q (supported: ipmi, blade, fsp, hmc)", ErrUnsupportedMgt, r.node(), r.data.Mgt))
	}
	if r.req.NodeSet == "" {
		return failed(ErrNoImage)
	}
	if img, ok := strings.CutPrefix(r.req.NodeSet, "osimage="); ok {
		if err := xcat.ValidateOSImageName(img); err != nil {
			return failed(fmt.Errorf("%w: osimage %q: %v", ErrBadInput, img, err))
		}
	}
	owner := ""
	if rec != nil {
		owner = rec.InstanceUUID
	}
	switch {
	case spec(r.kind()).node.claim && owner != "" && owner != r.req.InstanceUUID:
		return failed(fmt.Errorf("%w: %s runs instance %s", ErrNodeInUse, r.node(), owner))
	case spec(r.kind()).node.owned && owner != r.req.InstanceUUID:
		return failed(fmt.Errorf("%w: %s runs %q, not instance %s", ErrNotInstances, r.node(), owner, r.req.InstanceUUID))
	}
	if spec(r.kind()).node.claim {
		r.data.OriginalIP = a[attrIP]
	} else if rec != nil {
		r.data.OriginalIP = rec.OriginalIP
	}
	hostname := r.req.Hostname
	if hostname == "" {
		hostname = r.node()
	}
	args := []string{postscriptName}
	if r.req.ConfigDrive != "" {
		args = append(args, "--config-drive", r.req.ConfigDrive)
		if w.cfg.LoginUser != "" && w.cfg.LoginUser != "root" {
			args = append(args, "--login-user", w.cfg.LoginUser)
		}
	}
	args = append(args, hostname)
	if r.req.IP != "" && r.req.Netmask != "" {
		if sameSubnet(r.req.IP, r.data.OriginalIP, r.req.Netmask) {
			r.data.InSubnet = true
		} else {
			args = append(args, r.req.IP, r.req.Netmask)
		}
	}
	r.data.Entry = strings.Join(args, " ")
	return advanced(fmt.Sprintf("node %s mgt %s nodeset %s", r.node(), r.data.Mgt, r.req.NodeSet))
}

// manager returns the management node named by a node's noderes (servicenode, else
// xcatmaster); "" means the management node itself.
func manager(a xcat.Attrs) string {
	if sn := strings.TrimSpace(strings.Split(a[attrServiceNode], ",")[0]); sn != "" {
		return sn
	}
	return strings.TrimSpace(a[attrXCATMaster])
}

// entries returns the entries of a comma-separated postscripts list that run script.
func entries(list, script string) []string {
	var out []string
	for _, e := range strings.Split(list, ",") {
		e = strings.TrimSpace(e)
		if e == script || strings.HasPrefix(e, script+" ") {
			out = append(out, e)
		}
	}
	return out
}

func sameSubnet(a, b, mask string) bool {
	ipA, ipB, m := net.ParseIP(a).To4(), net.ParseIP(b).To4(), net.ParseIP(mask).To4()
	if ipA == nil || ipB == nil || m == nil {
		return false
	}
	return ipA.Mask(net.IPMask(m)).Equal(ipB.Mask(net.IPMask(m)))
}

// --- spawn -------------------------------------------------------------------------

func (w *Worker) stepSetIP(ctx context.Context, runs []*run) {
	w.setIPs(ctx, runs, func(r *run) (string, string) {
		switch {
		case r.req.IP == "":
			return "", "no tenant IP (no tenant network): the node keeps its xCAT ip"
		case !r.data.InSubnet:
			return "", "tenant IP is not in the node's xCAT subnet; the postscript adds it as an alias"
		}
		return r.req.IP, ""
	})
}

// setIPs sets each run's node's xCAT ip (chdef ip=, one request for the batch), then
// runs makehosts over the nodes changed. ip gives a run's address, or why it is
// skipped.
func (w *Worker) setIPs(ctx context.Context, runs []*run, ip func(*run) (addr, skip string)) {
	var change []*run
	addrs := map[*run]string{}
	for _, r := range runs {
		addr, skip := ip(r)
		if skip != "" {
			r.out = skipped(skip)
			continue
		}
		addrs[r] = addr
		change = append(change, r)
	}
	for _, r := range w.chdefRuns(ctx, xcat.ChDefSet, "chdef ip", change, func(r *run) xcat.Attrs { return xcat.Attrs{attrIP: addrs[r]} }) {
		r.out = advanced("ip " + addrs[r])
		// The node's ip is the tenant's (set_ip) or its own again (restore_ip).
		r.data.IPSet = addrs[r] != r.data.OriginalIP
	}
	w.makeHosts(ctx, change, false)
}

// makeHosts runs one makehosts over the runs that advanced so far.
func (w *Worker) makeHosts(ctx context.Context, runs []*run, remove bool) {
	var ok []*run
	for _, r := range runs {
		if r.out.is(advance) {
			ok = append(ok, r)
		}
	}
	res := w.call(ctx, nodesOf(ok), func(ctx context.Context, nr string) (xcat.Results, error) { return w.xc.MakeHosts(ctx, nr, remove) })
	for _, r := range ok {
		if good, o := verdict("makehosts", res[r.node()]); !good {
			r.out = o
		}
	}
}

// stepAddPostscript removes each node's stale config_ops_bmnode entries (one chdef -m
// for the batch) and then adds the job's own entry where it is missing (one chdef -p).
func (w *Worker) stepAddPostscript(ctx context.Context, runs []*run) {
	stale := make(map[*run][]string, len(runs))
	present := make(map[*run]bool, len(runs))
	var remove, clean []*run // with stale entries to remove first; without
	for _, r := range runs {
		for _, e := range r.data.Stale {
			if e == r.data.Entry {
				present[r] = true
			} else {
				stale[r] = append(stale[r], e)
			}
		}
		if len(stale[r]) > 0 {
			remove = append(remove, r)
		} else {
			clean = append(clean, r)
		}
	}
	removed := w.chdefRuns(ctx, xcat.ChDefRemove, "chdef -m postbootscripts", remove, func(r *run) xcat.Attrs {
		return xcat.Attrs{attrPostbootscripts: strings.Join(stale[r], ",")}
	})
	var ready, add []*run // the runs left to succeed; those of them missing their entry
	for _, r := range append(clean, removed...) {
		if present[r] {
			ready = append(ready, r)
		} else {
			add = append(add, r)
		}
	}
	ready = append(ready, w.chdefRuns(ctx, xcat.ChDefAdd, "chdef -p postbootscripts", add, func(r *run) xcat.Attrs {
		return xcat.Attrs{attrPostbootscripts: r.data.Entry}
	})...)
	for _, r := range ready {
		r.data.Stale = nil
		r.data.EntryAdded = true
		r.out = advanced(r.data.Entry)
	}
}

func (w *Worker) stepNodeSet(ctx context.Context, runs []*run) {
	states, byState := groupBy(runs, func(r *run) string { return r.req.NodeSet })
	for _, state := range states {
		group := byState[state]
		res := w.call(ctx, nodesOf(group), func(ctx context.Context, nr string) (xcat.Results, error) {
			return w.xc.NodeSet(ctx, nr, state)
		})
		applyResults(group, res, "nodeset "+state, state)
		for _, r := range group {
			r.data.NodeSet = r.data.NodeSet || r.out.is(advance)
		}
	}
}

func (w *Worker) stepSetBoot(ctx context.Context, runs []*run) {
	keys, byKey := groupBy(runs, func(r *run) string { return r.data.Mgt + "/" + bootDevice(r.kind()) })
	for _, k := range keys {
		group := byKey[k]
		mgt, dev, _ := strings.Cut(k, "/")
		switch mgt {
		case "ipmi":
			res := w.call(ctx, nodesOf(group), func(ctx context.Context, nr string) (xcat.Results, error) { return w.xc.SetBoot(ctx, nr, dev) })
			applyResults(group, res, "rsetboot "+dev, "rsetboot "+dev)
		case "blade", "fsp":
			res := w.call(ctx, nodesOf(group), func(ctx context.Context, nr string) (xcat.Results, error) { return w.xc.BootSeq(ctx, nr, dev) })
			applyResults(group, res, "rbootseq "+dev, "rbootseq "+dev)
		default: // hmc boots from the network with rnetboot in the next step
			for _, r := range group {
				r.out = skipped("rnetboot sets the boot device")
			}
		}
	}
	for _, r := range runs {
		r.data.BootDevSet = r.data.BootDevSet || r.out.is(advance) && r.data.Mgt != "hmc"
	}
}

// bootDevice is the device a kind's set_boot makes the node boot from next.
func bootDevice(k Kind) string {
	if d := spec(k).bootFrom; d != "" {
		return d
	}
	return "net"
}

// stepNoteStatus notes each node's nodelist.status and statustime just before a boot
// or reboot: rpower sets the status (powering-on), so when a crashed worker's boot
// step is recovered, a status that moved on means the command reached the node and
// is not sent again.
func (w *Worker) stepNoteStatus(ctx context.Context, runs []*run) {
	status, err := w.status(ctx, nodesOf(runs))
	for _, r := range runs {
		s, found := status[r.node()]
		if !found {
			r.out = transient(fmt.Errorf("nodels %s: %w", r.node(), orNoAnswer(err)))
			continue
		}
		r.data.StatusBefore, r.data.StatusTimeBefore = s[attrStatus], s[attrStatusTime]
		r.out = advanced(fmt.Sprintf("status %q at %q", s[attrStatus], s[attrStatusTime]))
	}
}

func orNoAnswer(err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: no answer", xcat.ErrUnavailable)
}

// status reads nodelist.status and statustime of nodes in one nodels.
func (w *Worker) status(ctx context.Context, nodes []string) (map[string]xcat.Attrs, error) {
	if len(nodes) == 0 {
		return nil, nil
	}
	cctx, cancel := context.WithTimeout(ctx, w.cfg.XCATTimeout)
	defer cancel()
	attrs, _, err := w.xc.NodeLs(cctx, xcat.CompressNoderange(nodes), attrStatus, attrStatusTime)
	return attrs, err
}

// bootIssued reports whether a node's status moved on since the boot step began,
// which means a crashed worker's rpower boot reached the node.
func bootIssued(d jobData, now xcat.Attrs) bool {
	return now[attrStatus] != d.StatusBefore || now[attrStatusTime] != d.StatusTimeBefore
}

func (w *Worker) stepBoot(ctx context.Context, runs []*run) {
	mgts, byMgt := groupBy(runs, func(r *run) string { return r.data.Mgt })
	for _, mgt := range mgts {
		group := byMgt[mgt]
		if mgt == "hmc" {
			res := w.call(ctx, nodesOf(group), func(ctx context.Context, nr string) (xcat.Results, error) { return w.xc.NetBoot(ctx, nr) })
			applyResults(group, res, "rnetboot", "rnetboot")
			continue
		}
		res := w.call(ctx, nodesOf(group), func(ctx context.Context, nr string) (xcat.Results, error) { return w.xc.Power(ctx, nr, xcat.PowerBoot) })
		applyResults(group, res, "rpower boot", "rpower boot")
	}
	for _, r := range runs {
		if r.out.is(advance) {
			r.data.LastStatus, r.data.LastStatusAt, r.data.Booted = "", w.now(), true
		}
	}
}

// recoverBoot decides, for boot and reboot steps a crashed worker had started, which
// were already issued (the status noted by note_status moved on); those advance
// without calling rpower boot again. It returns the runs that still need the step.
func (w *Worker) recoverBoot(ctx context.Context, runs []*run) []*run {
	status, err := w.status(ctx, nodesOf(runs))
	var rerun []*run
	for _, r := range runs {
		s, ok := status[r.node()]
		switch {
		case !ok:
			r.out = transient(fmt.Errorf("check status before repeating boot of %s: %w", r.node(), orNoAnswer(err)))
		case bootIssued(r.data, s):
			r.out = advanced(fmt.Sprintf("%s already issued (status %s); not repeated", r.job.State, s[attrStatus]))
			r.data.LastStatusAt, r.data.Booted = w.now(), true
		default:
			rerun = append(rerun, r)
		}
	}
	return rerun
}

func (w *Worker) stepWaitBooted(ctx context.Context, runs []*run) {
	status, err := w.status(ctx, nodesOf(runs))
	now := w.now()
	for _, r := range runs {
		s, ok := status[r.node()]
		if !ok {
			r.out = transient(fmt.Errorf("nodels %s nodelist.status: %w", r.node(), orNoAnswer(err)))
			continue
		}
		st := s[attrStatus]
		want := statusBooted
		if r.req.NodeSet == "shell" { // genesis reports its shell, not a boot
			want = "shell"
		}
		switch {
		case st == want:
			r.out = advanced(want)
			continue
		case st == statusFailed:
			r.out = failed(fmt.Errorf("%w: xCAT reports node %s status failed", ErrInstallFailed, r.node()))
			continue
		}
		if st != r.data.LastStatus {
			r.data.LastStatus, r.data.LastStatusAt = st, now
			r.out = waiting(w.cfg.PollInterval).withDetail("status " + st)
		} else {
			r.out = waiting(w.cfg.PollInterval)
		}
		if now.After(r.job.Deadline) {
			r.out = failed(fmt.Errorf("%w: node %s still %q since %s", ErrDeadline, r.node(), st, r.data.LastStatusAt.Format(time.RFC3339)))
		}
	}
}

// --- destroy -----------------------------------------------------------------------

func (w *Worker) powerStat(ctx context.Context, runs []*run) xcat.Results {
	return w.call(ctx, nodesOf(runs), func(ctx context.Context, nr string) (xcat.Results, error) { return w.xc.Power(ctx, nr, xcat.PowerStat) })
}

func (w *Worker) stepDeconfig(ctx context.Context, runs []*run) {
	var alias []*run
	for _, r := range runs {
		if ip := aliasIP(r.data.Stale); ip != "" {
			alias = append(alias, r)
			continue
		}
		r.out = skipped("no tenant address alias to remove")
	}
	stat := w.powerStat(ctx, alias)
	w.eachRun(ctx, alias, func(ctx context.Context, r *run) outcome {
		st := stat[r.node()]
		if st.Err != nil || st.Value != powerOn {
			return skipped("node is not on, so not reachable")
		}
		r.data.WasOn = true
		ip := aliasIP(r.data.Stale)
		res := w.call(ctx, []string{r.node()}, func(ctx context.Context, nr string) (xcat.Results, error) {
			return w.xc.UpdateNode(ctx, nr, deconfigName+" "+ip)
		})
		if ok, o := verdict("updatenode -P "+deconfigName, res[r.node()]); !ok {
			// The node is reinstalled before its next tenant: a failed clean-up is
			// recorded, not fatal.
			return advanced("warning: " + o.err.Error())
		}
		return advanced(deconfigName + " " + ip)
	})
}

// aliasIP returns the tenant IP of a config_ops_bmnode entry that added an alias:
// its positional arguments, options aside, are hostname, IP and netmask.
func aliasIP(entries []string) string {
	for _, e := range entries {
		var pos []string
		f := strings.Fields(e)
		for i := 1; i < len(f); i++ {
			if strings.HasPrefix(f[i], "--") {
				i++ // the option's value
				continue
			}
			pos = append(pos, f[i])
		}
		if len(pos) == 3 {
			return pos[1]
		}
	}
	return ""
}

func (w *Worker) stepPowerOff(ctx context.Context, runs []*run) {
	runs = skipIf(runs, func(r *run) string {
		if r.data.Undoing && !r.data.Booted {
			return "the spawn did not boot the node"
		}
		return ""
	})
	stat := w.powerStat(ctx, runs)
	var on []*run
	for _, r := range runs {
		st := stat[r.node()]
		if ok, o := verdict("rpower stat", st); !ok {
			r.out = o
			continue
		}
		if st.Value == powerOf {
			r.out = skipped("rpower stat says off")
			continue
		}
		on = append(on, r)
	}
	res := w.call(ctx, nodesOf(on), func(ctx context.Context, nr string) (xcat.Results, error) { return w.xc.Power(ctx, nr, xcat.PowerOff) })
	applyResults(on, res, "rpower off", "rpower off")
}

// stepRemovePostscript removes a destroyed instance's config_ops_bmnode entries
// (found by resolve), or, undoing a spawn, the entry the spawn added.
func (w *Worker) stepRemovePostscript(ctx context.Context, runs []*run) {
	gone := func(r *run) []string {
		if r.data.Undoing {
			if r.data.EntryAdded {
				return []string{r.data.Entry}
			}
			return nil
		}
		return r.data.Stale
	}
	var change []*run
	for _, r := range runs {
		if len(gone(r)) == 0 {
			r.out = skipped("no " + postscriptName + " entry")
			continue
		}
		change = append(change, r)
	}
	removed := w.chdefRuns(ctx, xcat.ChDefRemove, "chdef -m postbootscripts", change, func(r *run) xcat.Attrs {
		return xcat.Attrs{attrPostbootscripts: strings.Join(gone(r), ",")}
	})
	for _, r := range removed {
		r.out = advanced("removed " + strings.Join(gone(r), ","))
		if r.data.Undoing {
			r.data.EntryAdded = false
		}
	}
}

func (w *Worker) stepRestoreIP(ctx context.Context, runs []*run) {
	w.setIPs(ctx, runs, func(r *run) (string, string) {
		if r.data.OriginalIP == "" || r.data.Undoing && !r.data.IPSet {
			return "", "xCAT ip unchanged"
		}
		return r.data.OriginalIP, ""
	})
	// Ports spawn created in Neutron go with the instance (neutron.go).
	w.releasePorts(ctx, runs)
}

// stepResetBoot takes back a failed spawn's boot settings: nodeset offline where it
// ran nodeset (the node must not install the image at its next network boot), and
// rsetboot default where it set the next boot device without booting (ipmi).
func (w *Worker) stepResetBoot(ctx context.Context, runs []*run) {
	done := map[*run][]string{}
	var offline []*run
	for _, r := range runs {
		r.out = advanced("")
		if r.data.NodeSet {
			offline = append(offline, r)
		}
	}
	res := w.call(ctx, nodesOf(offline), func(ctx context.Context, nr string) (xcat.Results, error) { return w.xc.NodeSet(ctx, nr, "offline") })
	for _, r := range offline {
		if ok, o := verdict("nodeset offline", res[r.node()]); !ok {
			r.out = o
			continue
		}
		r.data.NodeSet = false
		done[r] = append(done[r], "nodeset offline")
	}
	var def []*run
	for _, r := range runs {
		if r.out.is(advance) && r.data.BootDevSet && !r.data.Booted && r.data.Mgt == "ipmi" {
			def = append(def, r)
		}
	}
	res = w.call(ctx, nodesOf(def), func(ctx context.Context, nr string) (xcat.Results, error) { return w.xc.SetBoot(ctx, nr, "default") })
	for _, r := range def {
		if ok, o := verdict("rsetboot default", res[r.node()]); !ok {
			r.out = o
			continue
		}
		r.data.BootDevSet = false
		done[r] = append(done[r], "rsetboot default")
	}
	for _, r := range runs {
		switch {
		case !r.out.is(advance):
		case len(done[r]) == 0:
			r.out = skipped("no boot setting to take back")
		default:
			r.out = advanced(strings.Join(done[r], "; "))
		}
	}
}

// skipIf sets the outcome of runs for which why says a reason to skip the step, and
// returns the others.
func skipIf(runs []*run, why func(*run) string) []*run {
	var rest []*run
	for _, r := range runs {
		if w := why(r); w != "" {
			r.out = skipped(w)
			continue
		}
		rest = append(rest, r)
	}
	return rest
}

// --- power -------------------------------------------------------------------------

// powerAction is the rpower action of a power job and the state it should end in
// (the kind's row in machine.go).
func powerAction(k Kind) (xcat.PowerAction, string) {
	ks := spec(k)
	return ks.rpower, ks.node.power
}

func (w *Worker) stepPower(ctx context.Context, runs []*run) {
	kinds, byKind := groupBy(runs, func(r *run) string { return string(r.kind()) })
	for _, k := range kinds {
		group := byKind[k]
		action, _ := powerAction(Kind(k))
		res := w.call(ctx, nodesOf(group), func(ctx context.Context, nr string) (xcat.Results, error) { return w.xc.Power(ctx, nr, action) })
		applyResults(group, res, "rpower "+string(action), "rpower "+string(action))
	}
}

// stepReboot reboots the nodes of reboot jobs with rpower boot, whatever their
// nodehm.mgt.
func (w *Worker) stepReboot(ctx context.Context, runs []*run) {
	res := w.call(ctx, nodesOf(runs), func(ctx context.Context, nr string) (xcat.Results, error) { return w.xc.Power(ctx, nr, xcat.PowerBoot) })
	applyResults(runs, res, "rpower boot", "rpower boot")
}

func (w *Worker) stepVerifyPower(ctx context.Context, runs []*run) {
	stat := w.powerStat(ctx, runs)
	now := w.now()
	for _, r := range runs {
		st := stat[r.node()]
		if ok, o := verdict("rpower stat", st); !ok {
			r.out = o
			continue
		}
		_, want := powerAction(r.kind())
		switch {
		case st.Value == want:
			r.out = advanced("rpower stat: " + want)
		case now.After(r.job.Deadline):
			r.out = failed(fmt.Errorf("%w: node %s power is %q, want %q", ErrDeadline, r.node(), st.Value, want))
		default:
			r.out = waiting(w.cfg.PowerPollInterval)
		}
	}
}
