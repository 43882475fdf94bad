package worker

// Registration jobs: xcatbm's own casts in namespace "xcatbm" (messages.NewJobRequest),
// published by the admin commands opsaddbmnode, opsaddimage and rmbmnode to the worker
// of the compute host concerned. Each is one step (StateRegister) that handles every
// node or image of the request and records a result per item.
//
// The job id the notifications carry (payload job_id) is the request's _unique_id, so
// the sender, which made that id, can pick its job's xcatbm.job.progress and
// xcatbm.job.end out of xcatbm_notifications without a reply queue.
//
// register_nodes expands the noderange with one lsdef over the whole range, which
// also reads each node's resolved nodehm, ipmi, mac and hwinv attributes (group rows
// included, as xCAT resolves them), and reads the passwd table once with tabdump for
// the ipmi defaults. The nodes are then written to the nodes table upsertChunk to a
// transaction (store.UpsertNodes, which leaves alone a node an instance uses on
// another compute host); the compute node and resource provider follow from that
// table.
// A node's record is "registered", "updated: <fields>" or "unchanged", so a second
// run reports every node unchanged. A node without a MAC is skipped; one lacking an
// ipmi or hwinv value fails with the table.column names missing.
//
// With the nova integration (Worker's NovaWriter), the job then has it bring the
// recorded nodes into nova and placement at once (NovaWriter.SyncNodes), and a node
// is ok only once its compute node and its resource provider with inventory exist;
// otherwise it is pending (the worker keeps trying: nova or placement did not
// answer) or failed (they refused), with what exists and what is missing. Each
// node's state is kept in node_registrations, which `xcatbm nodes` lists.
//
// Resource class: the request's, else derived from the hardware as
// BAREMETAL_<cpus>C<memory GiB>G (hwinv.cpucount, hwinv.memory rounded down to whole
// GiB), e.g. BAREMETAL_32C128G for 32 CPUs and 131072 MB.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"xcatbm/internal/config"
	"xcatbm/messages"
	"xcatbm/worker/store"
	"xcatbm/xcat"
)

// registrationXCAT is what registration needs of xCAT beyond XCAT; xcat.Client has it.
type registrationXCAT interface {
	TabDump(ctx context.Context, table string, where ...string) ([]xcat.Attrs, error)
	LsDefOSImages(ctx context.Context, names []string, attrs ...string) (map[string]xcat.Attrs, error)
}

// progressEvery is the least number of items a registration job handles between two
// progress notifications; a large job reports every hundredth of its items instead
// (progressInterval), so 10,000 nodes cost 100 progress notifications, not 400.
const progressEvery = 25

// syncChunkMax bounds how many nodes one call to the nova integration's SyncNodes
// takes, so a job of 10,000 nodes reports them in bounded steps.
const syncChunkMax = 100

// progressInterval is how many items of a job of total items go between two progress
// notifications and log lines: max(25, total/100).
func progressInterval(total int) int { return max(progressEvery, total/100) }

// ErrWrongHost is the error of a registration job for another compute host.
var ErrWrongHost = errors.New("job is for another compute host")

// stepRegister runs each registration job of the batch with its kind's register
// function (machine.go).
func (w *Worker) stepRegister(ctx context.Context, runs []*run) {
	for _, r := range runs {
		var err error
		if reg := spec(r.kind()).register; reg != nil {
			err = reg(w, ctx, r)
		} else {
			err = fmt.Errorf("no registration step for %s", r.kind())
		}
		switch {
		case err == nil:
			r.out = advanced(summary(r.data.Results))
		case errors.Is(err, xcat.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, errTransient):
			r.out = transient(err)
		default:
			r.out = failed(err)
		}
	}
}

// errTransient marks errors worth retrying (a database or service hiccup).
var errTransient = errors.New("temporary failure")

// summary counts results by status, for the job's history.
func summary(res []messages.JobItemResult) string {
	n := map[string]int{}
	for _, r := range res {
		n[r.Status]++
	}
	return fmt.Sprintf("%d ok, %d pending, %d failed, %d skipped", n[messages.ItemOK], n[messages.ItemPending], n[messages.ItemFailed], n[messages.ItemSkipped])
}

// progress is the reporter of one registration job: it collects item results and
// publishes an xcatbm.job.progress notification every max(progressEvery, total/100)
// items. A progress notification carries the results since the previous one (and
// the count of all), so a job's notifications grow linearly with its items; the end
// notification carries every result.
type progress struct {
	w     *Worker
	r     *run
	total int
	every int // items between two progress notifications
	sent  int // results carried by progress notifications so far
	began time.Time
}

func (w *Worker) newProgress(r *run, total int) *progress {
	r.data.Results = nil
	return &progress{w: w, r: r, total: total, every: progressInterval(total), began: time.Now()}
}

// add records one item's result.
func (p *progress) add(ctx context.Context, name, status, msg string) {
	p.r.data.Results = append(p.r.data.Results, messages.JobItemResult{Name: name, Status: status, Message: msg})
	if n := len(p.r.data.Results); n-p.sent >= p.every && n < p.total {
		p.flush(ctx)
	}
}

// rate is the items handled per second since the job's step began.
func (p *progress) rate() float64 {
	if d := time.Since(p.began).Seconds(); d > 0 {
		return float64(len(p.r.data.Results)) / d
	}
	return 0
}

// done logs the step's end with its rate, measured in the worker.
func (p *progress) done() {
	p.w.jobLog(p.r).Info().Int("done", len(p.r.data.Results)).Int("total", p.total).
		Dur("took", time.Since(p.began)).Float64("items_per_s", p.rate()).Msg("registration step done")
}

// flush logs the progress and publishes a progress notification now (through the
// outbox table). A failure to record it is logged: progress is advisory, the end
// notification is not.
func (p *progress) flush(ctx context.Context) {
	fresh := p.r.data.Results[p.sent:]
	p.sent = len(p.r.data.Results)
	p.w.jobLog(p.r).Info().Int("done", p.sent).Int("total", p.total).
		Float64("items_per_s", p.rate()).Msg("registration progress")
	m, err := p.w.notify.jobProgress(p.r, false, fresh, p.sent, p.total)
	if err == nil {
		_, err = p.w.store.RecordMessage(ctx, "", []store.OutboxMessage{m})
	}
	if err != nil {
		p.w.jobLog(p.r).Warn().Err(err).Msg("progress notification not recorded")
		return
	}
	p.w.outbox.poke()
}

// --- register_nodes ----------------------------------------------------------------

// Node attributes registration reads with lsdef, and the table.column each is from.
var registerAttrs = []struct{ attr, column string }{
	{"mgt", "nodehm.mgt"}, {"power", "nodehm.power"},
	{"bmc", "ipmi.bmc"}, {"bmcusername", "ipmi.username"}, {"bmcpassword", "ipmi.password"},
	{"mac", "mac.mac"},
	{"cpucount", "hwinv.cpucount"}, {"memory", "hwinv.memory"}, {"disksize", "hwinv.disksize"},
	{attrIP, "hosts.ip"}, {attrServiceNode, "noderes.servicenode"}, {attrXCATMaster, "noderes.xcatmaster"},
}

func registerAttrNames() []string {
	out := make([]string, len(registerAttrs))
	for i, a := range registerAttrs {
		out[i] = a.attr
	}
	return out
}

func column(attr string) string {
	for _, a := range registerAttrs {
		if a.attr == attr {
			return a.column
		}
	}
	return attr
}

func (w *Worker) registerNodes(ctx context.Context, r *run) error {
	var a messages.RegisterNodesArgs
	if err := json.Unmarshal(r.req.Job, &a); err != nil {
		return fmt.Errorf("stored register_nodes args: %w", err)
	}
	if err := xcat.CheckNoderangeSize(a.NodeRange, w.cfg.XCATMaxNodes); err != nil {
		return err // before any xCAT request: a range this large would block xcatd
	}
	rx, ok := w.xc.(registrationXCAT)
	if !ok {
		return errors.New("the xCAT client cannot read tables (tabdump)")
	}
	cctx, cancel := context.WithTimeout(ctx, w.cfg.XCATTimeout)
	defer cancel()
	attrs, err := w.xc.LsDefNodes(cctx, a.NodeRange, nil, registerAttrNames()...)
	if err != nil {
		return fmt.Errorf("lsdef %s: %w", a.NodeRange, err)
	}
	if len(attrs) == 0 {
		return fmt.Errorf("noderange %s names no xCAT node", a.NodeRange)
	}
	passwd, err := rx.TabDump(cctx, "passwd")
	if err != nil {
		return fmt.Errorf("tabdump passwd: %w", err)
	}
	defUser, defPass := ipmiDefaults(passwd)
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	slices.Sort(names)
	p := w.newProgress(r, len(names))
	var recorded []recordedNode
	for chunk := range slices.Chunk(names, upsertChunk) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		items := make([]upsertItem, len(chunk))
		for i, name := range chunk {
			items[i].name = name
			items[i].node, items[i].status, items[i].msg = w.nodeRecord(name, attrs[name], a, defUser, defPass)
		}
		if err := w.upsert(ctx, items); err != nil {
			return fmt.Errorf("%w: %v", errTransient, err)
		}
		for _, it := range items {
			if it.node == nil || it.status != messages.ItemOK || w.nova == nil {
				p.add(ctx, it.name, it.status, it.msg)
				continue
			}
			recorded = append(recorded, recordedNode{name: it.name, msg: it.msg})
		}
	}
	if err := w.syncRegistered(ctx, p, recorded); err != nil {
		return err
	}
	p.done()
	slices.SortFunc(r.data.Results, func(a, b messages.JobItemResult) int { return strings.Compare(a.Name, b.Name) })
	return nil
}

// recordedNode is a node register_nodes wrote to the nodes table, with what the
// write did ("registered ...", "updated: ...", "unchanged").
type recordedNode struct{ name, msg string }

// syncRegistered has the nova integration bring recorded nodes into nova and
// placement in bounded chunks, and reports each: ok once its compute
// node and resource provider with inventory exist, pending while the worker keeps
// trying, failed when nova or placement refused. Chunks are the job's progress
// interval, at most syncChunkMax nodes.
func (w *Worker) syncRegistered(ctx context.Context, p *progress, nodes []recordedNode) error {
	for chunk := range slices.Chunk(nodes, min(p.every, syncChunkMax)) {
		names := make([]string, len(chunk))
		for i, n := range chunk {
			names[i] = n.name
		}
		regs := w.nova.SyncNodes(ctx, names)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, n := range chunk {
			reg, ok := regs[n.name]
			switch {
			case !ok:
				p.add(ctx, n.name, messages.ItemPending, n.msg+"; not yet synced to nova and placement")
			case reg.State == store.RegistrationReady:
				p.add(ctx, n.name, messages.ItemOK, n.msg+"; ready: "+reg.Detail)
			case reg.State == store.RegistrationFailed:
				p.add(ctx, n.name, messages.ItemFailed, n.msg+"; refused by nova or placement: "+reg.Detail)
			default:
				p.add(ctx, n.name, messages.ItemPending, n.msg+"; pending in nova and placement (the worker keeps trying): "+reg.Detail)
			}
		}
	}
	return nil
}

// ipmiDefaults returns the passwd table's ipmi username and password.
func ipmiDefaults(rows []xcat.Attrs) (user string, pass config.Secret) {
	for _, row := range rows {
		if row["key"] == "ipmi" && row["disable"] == "" {
			return row["username"], config.NewSecret(row["password"])
		}
	}
	return "", config.NewSecret("")
}

// nodeRecord builds the nodes table row of one xCAT node; a nil row comes with the
// item's status and message (skipped or failed).
func (w *Worker) nodeRecord(name string, at xcat.Attrs, a messages.RegisterNodesArgs, defUser string, defPass config.Secret) (*store.Node, string, string) {
	if owner := manager(at); owner != "" && w.cfg.MgmtNode != "" && owner != w.cfg.MgmtNode {
		return nil, messages.ItemFailed, fmt.Sprintf("managed by %s, this worker by %s", owner, w.cfg.MgmtNode)
	}
	mac, err := firstMAC(at["mac"])
	if err != nil {
		return nil, messages.ItemSkipped, err.Error()
	}
	mgt := at["power"]
	if mgt == "" {
		mgt = at["mgt"]
	}
	var missing []string
	if mgt == "" {
		missing = append(missing, "nodehm.power and nodehm.mgt")
	}
	n := &store.Node{Name: name, ComputeHost: a.ComputeHost, MgmtNode: w.cfg.MgmtNode, Mgt: mgt, MAC: mac, OriginalIP: at[attrIP]}
	if mgt == "ipmi" {
		n.BMC, n.BMCUsername, n.BMCPassword = at["bmc"], at["bmcusername"], config.NewSecret(at["bmcpassword"])
		if n.BMCUsername == "" {
			n.BMCUsername = defUser
		}
		if n.BMCPassword.Reveal() == "" {
			n.BMCPassword = defPass
		}
		if n.BMC == "" {
			missing = append(missing, column("bmc"))
		}
		if n.BMCUsername == "" {
			missing = append(missing, column("bmcusername")+" (and passwd key ipmi)")
		}
		if n.BMCPassword.Reveal() == "" {
			missing = append(missing, column("bmcpassword")+" (and passwd key ipmi)")
		}
	}
	var bad []string
	if v := at["cpucount"]; v == "" {
		missing = append(missing, column("cpucount"))
	} else if n.CPUs, err = strconv.Atoi(strings.TrimSpace(v)); err != nil || n.CPUs <= 0 {
		bad = append(bad, fmt.Sprintf("%s=%q", column("cpucount"), v))
	}
	if v := at["memory"]; v == "" {
		missing = append(missing, column("memory"))
	} else if n.MemoryMB, err = ParseMemoryMB(v); err != nil {
		bad = append(bad, fmt.Sprintf("%s=%q", column("memory"), v))
	}
	if v := at["disksize"]; v == "" {
		missing = append(missing, column("disksize"))
	} else if n.DiskGB, err = ParseFirstDiskGB(v); err != nil {
		bad = append(bad, fmt.Sprintf("%s=%q", column("disksize"), v))
	}
	switch {
	case len(missing) > 0 && len(bad) > 0:
		return nil, messages.ItemFailed, "missing " + strings.Join(missing, ", ") + "; unreadable " + strings.Join(bad, ", ")
	case len(missing) > 0:
		return nil, messages.ItemFailed, "missing " + strings.Join(missing, ", ")
	case len(bad) > 0:
		return nil, messages.ItemFailed, "unreadable " + strings.Join(bad, ", ")
	}
	n.ResourceClass = a.ResourceClass
	if n.ResourceClass == "" {
		n.ResourceClass = DeriveResourceClass(n.CPUs, n.MemoryMB)
	}
	return n, "", ""
}

// upsertChunk is how many nodes register_nodes writes in one transaction.
const upsertChunk = 500

// upsertItem is one node of a register_nodes chunk: its record (nil when nodeRecord
// refused it) and the item's status and message.
type upsertItem struct {
	name        string
	node        *store.Node
	status, msg string
}

// upsert writes the records of a chunk's items in one transaction and sets each
// written item's status and message to what changed. A node in use by an instance
// on another compute host is not written and fails. With the nova integration, a
// changed node's registration is pending until it has synced it (its inventory may
// be the old one until then).
func (w *Worker) upsert(ctx context.Context, items []upsertItem) error {
	var records []*store.Node
	for _, it := range items {
		if it.node != nil {
			records = append(records, it.node)
		}
	}
	if len(records) == 0 {
		return nil
	}
	var pending string
	if w.nova != nil {
		pending = "registration changed; not yet synced to nova and placement"
	}
	done, err := w.store.UpsertNodes(ctx, records, pending)
	if err != nil {
		return err
	}
	k := 0
	for i := range items {
		n := items[i].node
		if n == nil {
			continue
		}
		u := done[k]
		k++
		items[i].status = messages.ItemOK
		switch {
		case u.InUse:
			items[i].status, items[i].msg = messages.ItemFailed, fmt.Sprintf("in use by instance %s on compute host %s", u.Old.InstanceUUID, u.Old.ComputeHost)
		case u.Old == nil:
			items[i].msg = fmt.Sprintf("registered (resource class %s, %d CPUs, %d MB, %d GB)", n.ResourceClass, n.CPUs, n.MemoryMB, n.DiskGB)
		case !u.Changed:
			items[i].msg = "unchanged"
		default:
			items[i].msg = "updated: " + strings.Join(changedFields(u.Old, n), ", ")
		}
	}
	return nil
}

// changedFields names the registration fields that differ (never their secret values).
func changedFields(a, b *store.Node) []string {
	var out []string
	add := func(name string, differ bool) {
		if differ {
			out = append(out, name)
		}
	}
	add("compute_host", a.ComputeHost != b.ComputeHost)
	add("mgmt_node", a.MgmtNode != b.MgmtNode)
	add("mgt", a.Mgt != b.Mgt)
	add("mac", a.MAC != b.MAC)
	add("bmc", a.BMC != b.BMC)
	add("bmc_username", a.BMCUsername != b.BMCUsername)
	add("bmc_password", a.BMCPassword.Reveal() != b.BMCPassword.Reveal())
	add("cpus", a.CPUs != b.CPUs)
	add("memory_mb", a.MemoryMB != b.MemoryMB)
	add("disk_gb", a.DiskGB != b.DiskGB)
	add("resource_class", a.ResourceClass != b.ResourceClass)
	return out
}

// DeriveResourceClass is the resource class of a node registered without one:
// BAREMETAL_<cpus>C<memory GiB>G.
func DeriveResourceClass(cpus, memoryMB int) string {
	return fmt.Sprintf("BAREMETAL_%dC%dG", cpus, memoryMB/1024)
}

// firstMAC returns the first MAC of an xCAT mac.mac value ("aa:..|bb:..!name",
// entries separated by '|', each optionally followed by "!hostname"), lower case.
func firstMAC(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", errors.New("no MAC (mac.mac is empty)")
	}
	first := strings.TrimSpace(strings.SplitN(strings.SplitN(v, "|", 2)[0], "!", 2)[0])
	hw, err := net.ParseMAC(first)
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("mac.mac %q is not a MAC address", first)
	}
	return hw.String(), nil
}

// sizeRE reads a size with an optional unit: "131072MB", "128 GB", "1.5T", "16384".
var sizeRE = regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]?)(?:I?B)?\s*$`)

// parseSize returns v in units of MB (bare numbers are taken in defUnit).
func parseSize(v string, defUnit string) (float64, error) {
	m := sizeRE.FindStringSubmatch(strings.ToUpper(v))
	if m == nil {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (KB, MB, GB, TB)", v)
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil || math.IsInf(f, 0) || f > 1e12 {
		return 0, fmt.Errorf("size %q: out of range", v)
	}
	unit := m[2]
	if unit == "" {
		unit = defUnit
	}
	mult := map[string]float64{"K": 1.0 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024, "P": 1024 * 1024 * 1024}[unit]
	return f * mult, nil
}

// ParseMemoryMB reads hwinv.memory ("131072MB", "128GB"; a bare number is MB).
func ParseMemoryMB(v string) (int, error) {
	mb, err := parseSize(v, "M")
	if err != nil {
		return 0, err
	}
	if mb < 1 {
		return 0, fmt.Errorf("memory %q: less than 1 MB", v)
	}
	return int(mb), nil
}

// ParseFirstDiskGB reads the first disk's size from hwinv.disksize ("sda:480GB,sdb:1TB"
// or "480GB"; a bare number is GB), in whole GB.
func ParseFirstDiskGB(v string) (int, error) {
	first := strings.TrimSpace(strings.Split(v, ",")[0])
	if i := strings.LastIndexByte(first, ':'); i >= 0 {
		first = first[i+1:]
	}
	mb, err := parseSize(first, "G")
	if err != nil {
		return 0, err
	}
	gb := int(mb / 1024)
	if gb < 1 {
		return 0, fmt.Errorf("disk size %q: less than 1 GB", v)
	}
	return gb, nil
}

// --- remove_nodes ------------------------------------------------------------------

func (w *Worker) removeNodes(ctx context.Context, r *run) error {
	var a messages.RemoveNodesArgs
	if err := json.Unmarshal(r.req.Job, &a); err != nil {
		return fmt.Errorf("stored remove_nodes args: %w", err)
	}
	if err := xcat.CheckNoderangeSize(a.NodeRange, w.cfg.XCATMaxNodes); err != nil {
		return err
	}
	names, err := w.expandForRemoval(ctx, a.NodeRange)
	if err != nil {
		return err
	}
	p := w.newProgress(r, len(names))
	for _, name := range names {
		n, err := w.store.Node(ctx, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			p.add(ctx, name, messages.ItemSkipped, "not registered")
			continue
		case err != nil:
			return fmt.Errorf("%w: %v", errTransient, err)
		case n.ComputeHost != w.cfg.ComputeHost:
			p.add(ctx, name, messages.ItemFailed, "registered to compute host "+n.ComputeHost)
			continue
		case n.InstanceUUID != "":
			p.add(ctx, name, messages.ItemFailed, "in use by instance "+n.InstanceUUID)
			continue
		}
		if err := w.store.DeleteNode(ctx, name); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				p.add(ctx, name, messages.ItemSkipped, "not registered")
				continue
			}
			p.add(ctx, name, messages.ItemFailed, err.Error())
			continue
		}
		p.add(ctx, name, messages.ItemOK, "removed")
	}
	return nil
}

// expandForRemoval expands a noderange through xCAT (groups included); when xCAT
// does not know some names (a node deleted from xCAT before it was removed here), the
// noderange is expanded as written.
func (w *Worker) expandForRemoval(ctx context.Context, nr string) ([]string, error) {
	cctx, cancel := context.WithTimeout(ctx, w.cfg.XCATTimeout)
	defer cancel()
	attrs, err := w.xc.LsDefNodes(cctx, nr, nil, attrMgt)
	var cmdErr *xcat.CommandError
	if err == nil && len(attrs) > 0 {
		names := make([]string, 0, len(attrs))
		for n := range attrs {
			names = append(names, n)
		}
		slices.Sort(names)
		return names, nil
	}
	if err != nil && !errors.As(err, &cmdErr) {
		return nil, fmt.Errorf("lsdef %s: %w", nr, err)
	}
	names, eerr := xcat.ExpandNoderange(ctx, nr, nil)
	if eerr != nil {
		return nil, fmt.Errorf("noderange %s: %w", nr, eerr)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("noderange %s names no node", nr)
	}
	return names, nil
}
