package messages

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// xcatbm's own job requests, sent as oslo casts in namespace XCATBMNamespace at
// version XCATBMVersion, with their arguments as `args`.
const (
	MethodRegisterNodes  = "register_nodes"
	MethodRegisterImages = "register_images"
	MethodRemoveNodes    = "remove_nodes"
)

// Job notification event types, published on XCATBMTopic by "xcatbm-worker:<host>".
const (
	EventJobProgress = "xcatbm.job.progress"
	EventJobEnd      = "xcatbm.job.end"
	JobPublisher     = "xcatbm-worker"
)

// RegisterNodesArgs asks to register the xCAT nodes of NodeRange as bare metal
// nodes of ComputeHost with the given placement resource class; an empty
// ResourceClass asks the worker to derive one from each node's hardware inventory.
type RegisterNodesArgs struct {
	NodeRange     string `json:"noderange"`
	ComputeHost   string `json:"compute_host"`
	ResourceClass string `json:"resource_class"`
}

// Validate reports the first missing field, or a resource class that is not
// letters, digits, '_', '.' and '-' (at most 200; placement's CUSTOM_ prefix and
// upper case are added when it becomes a placement resource class).
func (a *RegisterNodesArgs) Validate() error {
	switch {
	case strings.TrimSpace(a.NodeRange) == "":
		return fieldErr("args.noderange", "empty", nil)
	case a.ComputeHost == "":
		return fieldErr("args.compute_host", "empty", nil)
	case a.ResourceClass != "" && !resourceClassRE.MatchString(a.ResourceClass):
		return fieldErr("args.resource_class", fmt.Sprintf("%q: use letters, digits, '_', '.' and '-' (at most 200)", a.ResourceClass), nil)
	}
	return nil
}

var resourceClassRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,200}$`)

// ImageRegistration maps an xCAT osimage to the glance image name to create.
type ImageRegistration struct {
	XCATName string `json:"xcat_name"`
	Name     string `json:"name"`
}

// RegisterImagesArgs asks to register xCAT osimages in the cloud's image service.
type RegisterImagesArgs struct {
	Images []ImageRegistration `json:"images"`
	Cloud  string              `json:"cloud"`
}

// Validate reports the first missing field.
func (a *RegisterImagesArgs) Validate() error {
	if len(a.Images) == 0 {
		return fieldErr("args.images", "empty", nil)
	}
	for i, im := range a.Images {
		if im.XCATName == "" {
			return fieldErr(fmt.Sprintf("args.images.%d.xcat_name", i), "empty", nil)
		}
		if im.Name == "" {
			return fieldErr(fmt.Sprintf("args.images.%d.name", i), "empty", nil)
		}
	}
	if a.Cloud == "" {
		return fieldErr("args.cloud", "empty", nil)
	}
	return nil
}

// RemoveNodesArgs asks to remove the bare metal nodes of NodeRange.
type RemoveNodesArgs struct {
	NodeRange string `json:"noderange"`
}

// Validate reports the first missing field.
func (a *RemoveNodesArgs) Validate() error {
	if strings.TrimSpace(a.NodeRange) == "" {
		return fieldErr("args.noderange", "empty", nil)
	}
	return nil
}

// JobArgs is implemented by the arguments of xcatbm's jobs (*RegisterNodesArgs,
// *RegisterImagesArgs, *RemoveNodesArgs).
type JobArgs interface{ Validate() error }

// NewJobRequest returns a cast of an xcatbm job: method is one of the Method*
// constants above and args the matching *Args value, validated; the `args` member is
// args' JSON object. ctx may be nil.
func NewJobRequest(method string, args JobArgs, ctx *Context) (*Request, error) {
	switch method {
	case MethodRegisterNodes, MethodRegisterImages, MethodRemoveNodes:
	default:
		return nil, fieldErr("method", fmt.Sprintf("%q is not an xcatbm job", method), nil)
	}
	if err := args.Validate(); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("encode %s args: %w", method, err)
	}
	m, err := decodeObject(raw)
	if err != nil {
		return nil, within("args", err)
	}
	if ctx == nil {
		ctx = NewContext()
	}
	return &Request{
		Method: method, Args: m, Version: XCATBMVersion, Namespace: XCATBMNamespace,
		UniqueID: NewUniqueID(), Context: ctx,
	}, nil
}

// jobArgs decodes r's args into dst after checking method and namespace.
func (r *Request) jobArgs(method string, dst JobArgs) error {
	if r.Namespace != XCATBMNamespace {
		return fieldErr("namespace", fmt.Sprintf("%q is not %q", r.Namespace, XCATBMNamespace), nil)
	}
	if r.Method != method {
		return fieldErr("method", fmt.Sprintf("%q is not %q", r.Method, method), nil)
	}
	raw, err := json.Marshal(r.Args)
	if err != nil {
		return fieldErr("args", "not JSON", err)
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fieldErr("args", "wrong shape for "+method, err)
	}
	return dst.Validate()
}

// RegisterNodes decodes and validates the arguments of a register_nodes job.
func (r *Request) RegisterNodes() (*RegisterNodesArgs, error) {
	a := &RegisterNodesArgs{}
	if err := r.jobArgs(MethodRegisterNodes, a); err != nil {
		return nil, err
	}
	return a, nil
}

// RegisterImages decodes and validates the arguments of a register_images job.
func (r *Request) RegisterImages() (*RegisterImagesArgs, error) {
	a := &RegisterImagesArgs{}
	if err := r.jobArgs(MethodRegisterImages, a); err != nil {
		return nil, err
	}
	return a, nil
}

// RemoveNodes decodes and validates the arguments of a remove_nodes job.
func (r *Request) RemoveNodes() (*RemoveNodesArgs, error) {
	a := &RemoveNodesArgs{}
	if err := r.jobArgs(MethodRemoveNodes, a); err != nil {
		return nil, err
	}
	return a, nil
}

// Statuses of one item of a job. ItemPending is a node recorded by register_nodes
// that is not yet a compute node with a resource provider and inventory (the worker
// keeps trying; the message says what is missing).
const (
	ItemOK      = "ok"
	ItemPending = "pending"
	ItemFailed  = "failed"
	ItemSkipped = "skipped"
)

// JobItemResult is the outcome for one node or image of a job.
type JobItemResult struct {
	Name    string `json:"name"`
	Status  string `json:"status"` // ItemOK, ItemPending, ItemFailed or ItemSkipped
	Message string `json:"message"`
}

// JobPayload is the payload of xcatbm.job.progress and xcatbm.job.end.
type JobPayload struct {
	JobID string `json:"job_id"`
	Kind  string `json:"kind"` // the job method, e.g. register_nodes
	// Results of xcatbm.job.end are every item's; those of xcatbm.job.progress the
	// items done since the job's previous progress notification.
	Results []JobItemResult `json:"results"`
	Done    int             `json:"done"`
	Total   int             `json:"total"`
}

// Validate checks the payload: job id and kind set, statuses known, 0 <= done <=
// total and at least as many done as results.
func (p *JobPayload) Validate() error {
	switch {
	case p.JobID == "":
		return fieldErr("payload.job_id", "empty", nil)
	case p.Kind == "":
		return fieldErr("payload.kind", "empty", nil)
	case p.Total < 0 || p.Done < 0 || p.Done > p.Total:
		return fieldErr("payload.done", fmt.Sprintf("%d of %d is not a valid count", p.Done, p.Total), nil)
	case len(p.Results) > p.Done:
		return fieldErr("payload.results", fmt.Sprintf("%d results for %d done", len(p.Results), p.Done), nil)
	}
	for i, r := range p.Results {
		if r.Name == "" {
			return fieldErr(fmt.Sprintf("payload.results.%d.name", i), "empty", nil)
		}
		switch r.Status {
		case ItemOK, ItemPending, ItemFailed, ItemSkipped:
		default:
			return fieldErr(fmt.Sprintf("payload.results.%d.status", i), fmt.Sprintf("%q is not ok, pending, failed or skipped", r.Status), nil)
		}
	}
	return nil
}

// NewJobNotification returns the xcatbm.job.progress (end false) or xcatbm.job.end
// (end true) notification of host's worker for p, priority INFO.
func NewJobNotification(host string, end bool, p JobPayload, at time.Time, ctx *Context) (*Notification, error) {
	if host == "" {
		return nil, fieldErr("publisher_id", "empty host", nil)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if p.Results == nil {
		p.Results = []JobItemResult{}
	}
	event := EventJobProgress
	if end {
		event = EventJobEnd
	}
	return NewNotification(XCATBMTopic, JobPublisher+":"+host, event, PriorityInfo, p, at, ctx)
}

// DecodeJobPayload decodes and validates a job notification payload.
func DecodeJobPayload(raw json.RawMessage) (*JobPayload, error) {
	p := &JobPayload{}
	if err := json.Unmarshal(raw, p); err != nil {
		return nil, fieldErr("payload", "not a job payload", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}
