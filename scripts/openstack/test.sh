#!/usr/bin/env bash
# Runs xcatbm's tests against a real OpenStack control plane (nova-api, -conductor,
# -scheduler, placement, Glance, Neutron from Debian's packages) that with-plane.sh
# installs, starts for all the tests in a temporary directory, and purges (processes,
# databases, vhost) on the way out.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash scripts/openstack/with-plane.sh go test -count=1 -timeout 30m \
	-run 'TestPlane|OpenStack|Glance|Neutron' \
	./internal/testkit/testopenstack/ ./worker/ ./worker/nova/ ./cmd/xcatbm-worker/
