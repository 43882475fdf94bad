#!/usr/bin/env bash
# with-plane.sh CMD [ARGS...] — runs CMD beside a real OpenStack control plane (nova-api,
# -conductor, -scheduler, placement, Glance, Neutron from Debian's packages): installs
# what is missing, starts a plane in a temporary directory with databases, vhost and
# ports of its own, runs CMD with XCATBM_TEST_OPENSTACK_DIR set to that directory, and
# purges the plane (processes, databases, vhost) on the way out, also when CMD fails.
# The exit status is CMD's.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -gt 0 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
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
export XCATBM_TEST_OPENSTACK_DIR=$dir
"$@"
