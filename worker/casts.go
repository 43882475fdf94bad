package worker

import (
	"encoding/json"
	"fmt"

	"xcatbm/messages"
)

// castDecoder reads the arguments of a request that makes a job into the job's
// stored request r, and returns the instance the request is about (nil for xcatbm's
// own jobs). Each row of kinds (machine.go) names its decoder.
type castDecoder func(w *Worker, req *messages.Request, r *request) (*messages.Instance, error)

func decodeSpawn(_ *Worker, req *messages.Request, r *request) (*messages.Instance, error) {
	a, err := req.BuildAndRunInstance()
	if err != nil {
		return nil, err
	}
	r.Node = a.Node
	if a.Image != nil {
		r.Image, r.ImageRef = a.Image.XCATImageName(), a.Image.ID
	}
	var err2 error
	if r.IP, r.Netmask, r.MAC, err2 = tenantAddress(a.Instance, a.RequestedNetworks); err2 != nil {
		// The job is recorded and fails in resolve with this fault, so nova hears
		// of it as of any failed spawn.
		r.AddressError = err2.Error()
	}
	r.NetworkID, r.PortID = requestedNetwork(a.RequestedNetworks)
	return a.Instance, nil
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
