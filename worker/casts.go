package worker

import (
	"encoding/json"
	"errors"
	"fmt"

	"xcatbm/internal/config"
	"xcatbm/messages"
	"xcatbm/worker/configdrive"
)

// castDecoder reads the arguments of a request that makes a job into the job's
// stored request r, and returns the instance the request is about (nil for xcatbm's
// own jobs). Each row of kinds (machine.go) names its decoder. An error refuses the
// request, except errRetryBatch: the batch is tried again later.
type castDecoder func(w *Worker, req *messages.Request, r *request) (*messages.Instance, error)

// errRetryBatch marks a decoding failure that is the worker's, not the request's
// (the tenant data could not be written): the batch goes back to the queue.
var errRetryBatch = errors.New("cannot take the request now")

func decodeSpawn(w *Worker, req *messages.Request, r *request) (*messages.Instance, error) {
	a, err := req.BuildAndRunInstance()
	if err != nil {
		return nil, err
	}
	r.Node = a.Node
	if a.Image != nil {
		r.Image, r.ImageRef = a.Image.XCATImageName(), a.Image.ID
	}
	if r.Image != "" {
		r.NodeSet = "osimage=" + r.Image
	}
	var err2 error
	if r.IP, r.Netmask, r.MAC, err2 = tenantAddress(a.Instance, a.RequestedNetworks); err2 != nil {
		// The job is recorded and fails in resolve with this fault, so nova hears
		// of it as of any failed spawn.
		r.AddressError = err2.Error()
	}
	r.NetworkID, r.PortID = requestedNetwork(a.RequestedNetworks)
	return a.Instance, w.deliver(a.Instance, a.AdminPassword, r)
}

// decodeRebuild reinstalls with the image the instance now names: nova's API has put
// the new image's properties into its system metadata (image_<property>), the cast
// carries only the image's id. Keeping the ephemeral disk and evacuating are refused:
// a reinstall wipes the node, and a bare-metal node cannot move to another host.
func decodeRebuild(w *Worker, req *messages.Request, r *request) (*messages.Instance, error) {
	a, err := req.RebuildInstance()
	if err != nil {
		return nil, err
	}
	inst := a.Instance
	r.ImageRef = a.ImageRef
	r.Image = inst.SystemMetadata["image_"+messages.XCATImageProperty]
	if r.Image == "" {
		r.Image = inst.SystemMetadata["image_"+messages.LegacyXCATImageProperty]
	}
	if r.Image != "" {
		r.NodeSet = "osimage=" + r.Image
	}
	r.IP, r.Netmask, r.MAC, err = tenantAddress(inst, nil)
	if err != nil {
		r.AddressError = err.Error()
	}
	switch {
	case a.Recreate:
		r.Refused = "evacuation (rebuild with recreate) is not supported: a bare-metal node cannot move to another host"
		return inst, nil
	case a.PreserveEphemeral:
		r.Refused = "preserve_ephemeral is not supported: xCAT reinstalls the whole node"
		return inst, nil
	}
	return inst, w.deliver(inst, a.NewPassword, r)
}

// decodeRescue boots the site's rescue environment (Config.RescueOSImage), with
// the tenant's key and nova's rescue password delivered as a spawn's tenant data.
func decodeRescue(w *Worker, req *messages.Request, r *request) (*messages.Instance, error) {
	a, err := req.RescueInstance()
	if err != nil {
		return nil, err
	}
	inst := a.Instance
	r.RescueImageRef = a.RescueImageRef
	r.IP, r.Netmask, r.MAC, err = tenantAddress(inst, nil)
	if err != nil {
		r.AddressError = err.Error()
	}
	switch {
	case w.cfg.RescueOSImage == "":
		r.Refused = "rescue is not configured on this compute host (xcatbm-worker --rescue-osimage)"
		return inst, nil
	case a.RescueImageRef != "":
		r.Refused = "rescue with an image of the tenant's choice is not supported: xcatbm rescues with the site's rescue osimage"
		return inst, nil
	case w.cfg.RescueOSImage == "shell":
		r.NodeSet = "shell"
	default:
		r.NodeSet = "osimage=" + w.cfg.RescueOSImage
	}
	return inst, w.deliver(inst, a.RescuePassword, r)
}

// decodeUnrescue boots the installed OS from the node's disk again.
func decodeUnrescue(_ *Worker, req *messages.Request, r *request) (*messages.Instance, error) {
	a, err := req.UnrescueInstance()
	if err != nil {
		return nil, err
	}
	r.NodeSet = "boot"
	return a.Instance, nil
}

// deliver lays out the instance's tenant data (its config drive) and writes it where
// only its node will fetch it (configdrive.Store), keeping in r only where it is:
// the user data and the password go no further than the tree. Tenant data that
// does not read (bad user data) refuses the job; a tree that cannot be written is
// the worker's problem, and the batch is tried again.
func (w *Worker) deliver(inst *messages.Instance, password config.Secret, r *request) error {
	if w.drives == nil {
		return nil
	}
	in, err := configdrive.FromInstance(inst, password)
	if err != nil {
		r.Refused = "tenant data: " + err.Error()
		return nil
	}
	net, err := configdrive.NetworkFromVIFs(inst.NetworkInfo)
	if err != nil {
		r.Refused = "tenant network configuration: " + err.Error()
		return nil
	}
	tree, err := configdrive.Build(in, net, configdrive.Options{DHCPDomain: w.cfg.DHCPDomain})
	if err != nil {
		r.Refused = "tenant data: " + err.Error()
		return nil
	}
	loc, err := w.drives.Write(tree)
	if err != nil {
		return fmt.Errorf("%w: write the tenant data: %v", errRetryBatch, err)
	}
	r.ConfigDrive = loc.Path()
	return nil
}

func decodeDestroy(_ *Worker, req *messages.Request, _ *request) (*messages.Instance, error) {
	a, err := req.TerminateInstance()
	if err != nil {
		return nil, err
	}
	return a.Instance, nil
}

func decodePowerOn(_ *Worker, req *messages.Request, _ *request) (*messages.Instance, error) {
	a, err := req.StartInstance()
	if err != nil {
		return nil, err
	}
	return a.Instance, nil
}

func decodePowerOff(_ *Worker, req *messages.Request, r *request) (*messages.Instance, error) {
	a, err := req.StopInstance()
	if err != nil {
		return nil, err
	}
	r.CleanShutdown = a.CleanShutdown
	return a.Instance, nil
}

func decodeReboot(_ *Worker, req *messages.Request, r *request) (*messages.Instance, error) {
	a, err := req.RebootInstance()
	if err != nil {
		return nil, err
	}
	r.RebootType = a.RebootType
	return a.Instance, nil
}

// decodeRegisterNodes refuses a registration meant for another compute host: the
// nodes would be recorded against a host whose worker does not serve them.
func decodeRegisterNodes(w *Worker, req *messages.Request, r *request) (*messages.Instance, error) {
	a, err := req.RegisterNodes()
	if err != nil {
		return nil, err
	}
	if a.ComputeHost != w.cfg.ComputeHost {
		return nil, fmt.Errorf("%w: %s, this worker serves %s", ErrWrongHost, a.ComputeHost, w.cfg.ComputeHost)
	}
	return nil, r.setJob(req, a)
}

func decodeRegisterImages(_ *Worker, req *messages.Request, r *request) (*messages.Instance, error) {
	a, err := req.RegisterImages()
	if err != nil {
		return nil, err
	}
	return nil, r.setJob(req, a)
}

func decodeRemoveNodes(_ *Worker, req *messages.Request, r *request) (*messages.Instance, error) {
	a, err := req.RemoveNodes()
	if err != nil {
		return nil, err
	}
	return nil, r.setJob(req, a)
}

// setJob keeps the arguments of one of xcatbm's own jobs; the job's notifications
// carry the request's _unique_id as job_id, so the sender can follow them.
func (r *request) setJob(req *messages.Request, args messages.JobArgs) error {
	raw, err := json.Marshal(args)
	if err != nil {
		return err
	}
	r.Job, r.JobID = raw, req.UniqueID
	return nil
}

// checkVersion says whether a request's version is served in its namespace: compute
// RPC 6.0 to messages.ComputeRPCVersion and 5.0 to 5.13 (nova-compute 26's
// _ComputeV5Proxy), xcatbm's own jobs at 1.0, baseapi's ping at 1.x.
func checkVersion(namespace, version string) error {
	switch namespace {
	case "":
		return messages.CheckComputeVersions(version)
	case messages.XCATBMNamespace:
		return messages.CheckVersion(version, 1, 0)
	default:
		return messages.CheckVersion(version, 1, 99)
	}
}
