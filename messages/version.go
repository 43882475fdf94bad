package messages

// The compute RPC API version xcatbm serves. nova sends 6.0 for every method xcatbm
// handles; minors 6.1 to 6.4 only added arguments or methods xcatbm does not serve
// (rebuild_instance's reimage_boot_volume and target_state, remove_volume_connection's
// delete_attachment, allow_share/deny_share), so accepting them changes nothing for
// the methods we answer, while an unknown method gets NoSuchMethod. 6.5 is where nova
// starts sending some casts (external_instance_event among them) to the `compute-alt`
// topic, which xcatbm does not consume: advertising 6.5 would lose those casts, so
// xcatbm stops at 6.4.
const (
	ComputeRPCMajor   = 6
	ComputeRPCMinor   = 4
	ComputeRPCVersion = "6.4"
)

// ComputeRPCV5Minor is the highest 5.x minor xcatbm serves. nova-compute 26 keeps
// serving compute RPC 5.0 to 5.13 through its _ComputeV5Proxy for rolling upgrades (a
// conductor pinned to 5.x); for the methods xcatbm serves, the 5.x arguments are the
// 6.0 ones without what 6.x added (build_and_run_instance's accel_uuids became
// required in 6.0; rebuild_instance's reimage_boot_volume and target_state came in
// 6.0 and 6.1), and xcatbm reads every one of those as optional.
const ComputeRPCV5Minor = 13

// CheckComputeVersions is CheckVersion against every compute RPC version nova-compute
// 26 serves: 6.0 to ComputeRPCVersion, and 5.0 to 5.ComputeRPCV5Minor.
func CheckComputeVersions(requested string) error {
	if err := CheckVersion(requested, ComputeRPCMajor, ComputeRPCMinor); err == nil {
		return nil
	}
	return CheckVersion(requested, 5, ComputeRPCV5Minor)
}

// XCATBMNamespace and XCATBMVersion are the oslo namespace and version of xcatbm's own
// job requests.
const (
	XCATBMNamespace = "xcatbm"
	XCATBMVersion   = "1.0"
)

// CheckVersion reports whether a request for version requested can be served by an
// endpoint at supportedMajor.supportedMinor, by oslo's rule: same major, requested
// minor <= ours. It returns nil when it can, else an UnsupportedVersion *Failure
// (also when requested is not a version), ready to be sent in a failure reply.
func CheckVersion(requested string, supportedMajor, supportedMinor int) error {
	major, minor, err := ParseVersion(requested)
	if err != nil || major != supportedMajor || minor > supportedMinor {
		return UnsupportedVersion(requested)
	}
	return nil
}

// CheckComputeVersion is CheckVersion against ComputeRPCMajor.ComputeRPCMinor.
func CheckComputeVersion(requested string) error {
	return CheckVersion(requested, ComputeRPCMajor, ComputeRPCMinor)
}
