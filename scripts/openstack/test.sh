#!/usr/bin/env bash
# Runs xcatbm's tests against a real OpenStack control plane (nova-api, -conductor,
# -scheduler, placement, Glance, Neutron from Debian's packages): installs what is
# missing, starts one plane for all the tests in a temporary directory, runs every test
# that needs it, and purges the plane (processes, databases, vhost) on the way out.
set -euo pipefail
cd "$(dirname "$0")/../.."
plane=scripts/openstack/plane.sh
bash "$plane" install
dir=$(mktemp -d /tmp/xcatbm-plane.XXXXXX)
trap 'bash "$plane" purge "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
bash "$plane" start "$dir"
XCATBM_TEST_OPENSTACK_DIR=$dir go test -count=1 -timeout 30m \
	-run 'TestPlane|OpenStack|Glance|Neutron' \
	./internal/testkit/testopenstack/ ./worker/ ./worker/nova/
