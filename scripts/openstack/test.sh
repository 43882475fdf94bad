#!/usr/bin/env bash
# Runs xcatbm's tests against a real OpenStack control plane (nova-api, -conductor,
# -scheduler, placement, Glance, Neutron from Debian's packages) that with-plane.sh
# installs, starts for all the tests in a temporary directory, and purges (processes,
# databases, vhost) on the way out; then the bench's rows against that plane in their
# short form (registration of 200 nodes, 5 servers on nova's fake driver and on
# xcatbm), which checks that they run, not their targets (make bench-openstack).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash scripts/openstack/with-plane.sh sh -c '
	go test -count=1 -timeout 30m -run "TestPlane|OpenStack|Glance|Neutron" \
		./internal/testkit/testopenstack/ ./worker/ ./worker/nova/ ./cmd/xcatbm-worker/ &&
	go run ./cmd/xcatbm-bench --openstack "$XCATBM_TEST_OPENSTACK_DIR" --scale 0.02'
