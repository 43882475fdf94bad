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
# Databases, vhost and ports of this run's own: plane.sh start recreates its databases
# and vhost, so two runs on one machine sharing the defaults would drop each other's.
id=${dir##*.}
id=${id,,}
export XCATBM_OS_DB_PREFIX="xcatbm_os_${id}_" XCATBM_OS_VHOST="xcatbm-os-${id}"
for svc in NOVA PLACEMENT GLANCE NEUTRON; do
	port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	export "XCATBM_OS_${svc}_PORT=$port"
done
bash "$plane" start "$dir"
XCATBM_TEST_OPENSTACK_DIR=$dir go test -count=1 -timeout 30m \
	-run 'TestPlane|OpenStack|Glance|Neutron' \
	./internal/testkit/testopenstack/ ./worker/ ./worker/nova/
