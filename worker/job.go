package worker

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"xcatbm/messages"
	"xcatbm/worker/store"
)

// request is what a job was asked, as stored in jobs.request. It holds no secrets:
// the auth token and admin password of nova's request are never stored.
type request struct {
	// Method is the nova RPC method that made the job.
	Method string `json:"method"`
	// Instance is the Instance primitive as nova sent it, for notifications, with
	// its secrets (user data) nulled (messages.WithoutInstanceSecrets).
	Instance     json.RawMessage `json:"instance,omitempty"`
	InstanceUUID string          `json:"instance_uuid"`
	Hostname     string          `json:"hostname,omitempty"`
	// Node is nova's node name for the instance (the xCAT node), when known.
	Node string `json:"node,omitempty"`
	// MAC is the instance's first MAC, used to find the node when Node is empty.
	MAC string `json:"mac,omitempty"`
	// Image is the xCAT osimage name (the image property xcat_image_name).
	Image    string `json:"image,omitempty"`
	ImageRef string `json:"image_ref,omitempty"`
	// IP and Netmask are the tenant address for the node, when the request has one.
	IP      string `json:"ip,omitempty"`
	Netmask string `json:"netmask,omitempty"`
	// AddressError says why the request's address could not be read; the job fails
	// with it in resolve.
	AddressError string `json:"address_error,omitempty"`
	// Refused says why the worker will not do what the request asks (an option it
	// does not support, tenant data it cannot read); the job fails with it in
	// resolve, before any xCAT request.
	Refused string `json:"refused,omitempty"`
	// NodeSet is the nodeset argument of a job that boots the node: osimage=<image>
	// (spawn, rebuild, a rescue osimage), shell (genesis), boot (the installed OS).
	NodeSet string `json:"nodeset,omitempty"`
	// ConfigDrive is where the deployment's tenant data waits for the node
	// (configdrive.Location.Path); the tree goes when the job ends.
	ConfigDrive string `json:"config_drive,omitempty"`
	// RescueImageRef is rescue_instance's rescue_image_ref, for its notifications.
	RescueImageRef string `json:"rescue_image_ref,omitempty"`
	// RebootType is SOFT or HARD for reboots.
	RebootType string `json:"reboot_type,omitempty"`
	// CleanShutdown is stop_instance's clean_shutdown.
	CleanShutdown bool `json:"clean_shutdown,omitempty"`
	// Job holds the arguments of xcatbm's own jobs (register_nodes, register_images,
	// remove_nodes) as sent; JobID is the request's _unique_id, which the job's
	// notifications carry as their job_id so the sender can follow them.
	Job   json.RawMessage `json:"job,omitempty"`
	JobID string          `json:"job_id,omitempty"`
	// NetworkID and PortID are the first requested network of a spawn, used to find
	// or create its Neutron port when the request carries no fixed address.
	NetworkID string `json:"network_id,omitempty"`
	PortID    string `json:"port_id,omitempty"`
	// Call is set when the request was an RPC call whose caller waits for a reply.
	Call *callInfo `json:"call,omitempty"`
	// Context is the request context reduced to the keys notifications may carry.
	Context   map[string]json.RawMessage `json:"context,omitempty"`
	RequestID string                     `json:"request_id,omitempty"`
}

// encode returns the request as stored in jobs.request. The instance primitive, the
// bulk of it and already JSON, is put in as it is rather than run through
// encoding/json again (which would scan and compact it once more).
func (r *request) encode() ([]byte, error) {
	c := *r
	c.Instance = nil
	b, err := json.Marshal(&c)
	if err != nil || len(r.Instance) == 0 {
		return b, err
	}
	b = b[:len(b)-1] // the closing brace
	if len(b) > 1 {
		b = append(b, ',')
	}
	b = append(b, `"instance":`...)
	b = append(b, r.Instance...)
	return append(b, '}'), nil
}

// decode reads a stored request (encode's output, or what PostgreSQL gives back of
// it) as json.Unmarshal would, without its reflection over the whole text: the text
// is validated and split once, a member is found by its field's name, strings are
// read directly and raw values copied out whole, so that nothing of the request
// keeps b alive (a run waits for minutes, thousands at a time). Members the request
// has no field for are ignored, as encoding/json does.
func (r *request) decode(b []byte) error {
	members, err := messages.Members(b)
	if err != nil {
		return err
	}
	v := reflect.ValueOf(r).Elem()
	for _, f := range requestFields {
		raw, ok := members[f.name]
		if !ok {
			continue
		}
		fv := v.Field(f.index)
		switch f.kind {
		case fieldString:
			if s, ok := messages.MemberString(raw); ok {
				fv.SetString(s)
				continue
			}
		case fieldRaw:
			if string(raw) != "null" {
				fv.SetBytes(slices.Clone(raw))
				continue
			}
		case fieldBool:
			if string(raw) == "true" || string(raw) == "false" {
				fv.SetBool(string(raw) == "true")
				continue
			}
		case fieldRawMap:
			if m, err := messages.Members(raw); err == nil {
				for k, v := range m {
					m[k] = slices.Clone(v)
				}
				fv.Set(reflect.ValueOf(m))
				continue
			}
		}
		if err := json.Unmarshal(raw, fv.Addr().Interface()); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return nil
}

// requestFields are request's fields by their JSON names, for decode.
var requestFields = func() []requestField {
	var out []requestField
	t := reflect.TypeFor[request]()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		kind := fieldOther
		switch {
		case f.Type == reflect.TypeFor[json.RawMessage]():
			kind = fieldRaw
		case f.Type.Kind() == reflect.String:
			kind = fieldString
		case f.Type.Kind() == reflect.Bool:
			kind = fieldBool
		case f.Type == reflect.TypeFor[map[string]json.RawMessage]():
			kind = fieldRawMap
		}
		out = append(out, requestField{name: name, index: i, kind: kind})
	}
	return out
}()

type requestField struct {
	name  string
	index int
	kind  int
}

const (
	fieldOther  = iota // decoded by encoding/json
	fieldString        // a string
	fieldRaw           // json.RawMessage, kept as it is
	fieldBool          // a bool
	fieldRawMap        // map[string]json.RawMessage, its values parts of the text
)

// callInfo is where a call's reply goes.
type callInfo struct {
	ReplyQueue string `json:"reply_q"`
	MsgID      string `json:"msg_id"`
}

// jobData is what a job's steps learned, stored in jobs.data after each transition.
type jobData struct {
	Node       string `json:"node,omitempty"`
	Mgt        string `json:"mgt,omitempty"`
	OriginalIP string `json:"original_ip,omitempty"`
	// InSubnet is true when the tenant IP is in the node's xCAT management subnet and
	// replaces the node's ip; otherwise the postscript adds it as an alias.
	InSubnet bool `json:"in_subnet,omitempty"`
	// Entry is the config_ops_bmnode postbootscripts entry spawn adds.
	Entry string `json:"entry,omitempty"`
	// Stale are config_ops_bmnode entries found on the node, to remove.
	Stale []string `json:"stale,omitempty"`
	// StatusBefore/StatusTimeBefore are nodelist.status and statustime just before
	// rpower boot: if the status moved on, the boot happened.
	StatusBefore     string `json:"status_before,omitempty"`
	StatusTimeBefore string `json:"status_time_before,omitempty"`
	// LastStatus is the last nodelist.status seen while waiting for the install.
	LastStatus   string    `json:"last_status,omitempty"`
	LastStatusAt time.Time `json:"last_status_at,omitzero"`
	// WasOn is rpower stat's answer before destroy powered the node off.
	WasOn bool `json:"was_on,omitempty"`
	// What a spawn changed in xCAT, for its undo: the node's ip (set_ip), its
	// config_ops_bmnode entry (add_postscript), its boot state (nodeset), its next
	// boot device (set_boot) and whether it was booted.
	IPSet      bool `json:"ip_set,omitempty"`
	EntryAdded bool `json:"entry_added,omitempty"`
	NodeSet    bool `json:"nodeset,omitempty"`
	BootDevSet bool `json:"boot_dev_set,omitempty"`
	Booted     bool `json:"booted,omitempty"`
	// Undoing is set while a failed job runs its kind's undo steps; Failure is the
	// error that failed it, which the job ends with.
	Undoing bool   `json:"undoing,omitempty"`
	Failure string `json:"failure,omitempty"`
	// Results are the per-item outcomes of a registration job (register.go).
	Results []messages.JobItemResult `json:"results,omitempty"`
	// IP and Netmask are the tenant address a spawn took from its Neutron port
	// (neutron.go) when the request had none; PortID is that port.
	IP      string `json:"ip,omitempty"`
	Netmask string `json:"netmask,omitempty"`
	PortID  string `json:"port_id,omitempty"`
}

// run is one job being worked on in this process.
type run struct {
	job  *store.Job
	req  request
	data jobData
	out  outcome
	// lost is set when the job moved on elsewhere (lease lost): nothing is recorded.
	lost bool
	// chained is set when the run goes on from its previous step in the same batch,
	// its step already recorded as started.
	chained bool
	// bind is set by a step that found the node free for the job's instance: the
	// transition records the node as the instance's (nodeEffect.claim).
	bind bool
}

func newRun(j *store.Job) (*run, error) {
	r := &run{job: j}
	if err := r.req.decode(j.Request); err != nil {
		return nil, fmt.Errorf("job %d: stored request: %w", j.ID, err)
	}
	// The run reads r.req from here on. The raw request (a spawn's is several kB)
	// was the largest single thing a batch of claimed jobs kept alive while its
	// xCAT step ran; it goes now.
	j.Request = nil
	if len(j.Data) > 0 {
		if err := json.Unmarshal(j.Data, &r.data); err != nil {
			return nil, fmt.Errorf("job %d: stored data: %w", j.ID, err)
		}
	}
	if r.req.IP == "" && r.data.IP != "" {
		r.req.IP, r.req.Netmask = r.data.IP, r.data.Netmask
	}
	return r, nil
}

func (r *run) kind() Kind { return Kind(r.job.Kind) }

// changedXCAT reports whether the job changed anything in xCAT an undo takes back.
func (d *jobData) changedXCAT() bool {
	return d.IPSet || d.EntryAdded || d.NodeSet || d.BootDevSet || d.Booted
}
func (r *run) state() State { return State(r.job.State) }

// node is the xCAT node the job acts on: resolved, else what the request named.
func (r *run) node() string {
	if r.data.Node != "" {
		return r.data.Node
	}
	if r.job.Node != "" {
		return r.job.Node
	}
	return r.req.Node
}
