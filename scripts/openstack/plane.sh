#!/usr/bin/env bash
# plane.sh — a real OpenStack control plane on 127.0.0.1 for xcatbm's tests, without
# Keystone: nova-api, nova-conductor, nova-scheduler, placement-api, glance-api and
# neutron-server from Debian's packages, run by Debian's /usr/bin/python3.
#
# Usage:
#   plane.sh install          install the packages (idempotent; fast when installed)
#   plane.sh start DIR        write configs into DIR, recreate databases and vhost,
#                             start every service, wait until each answers, print the
#                             endpoints as shell variables (also written to DIR/env)
#   plane.sh stop DIR         stop exactly the processes recorded in DIR/pids
#   plane.sh purge DIR        stop, then drop the plane's databases and vhost
#   plane.sh status DIR       each service: pid, alive, port, memory
#   plane.sh discover DIR     map compute hosts into cell1 (nova-manage cell_v2
#                             discover_hosts --verbose)
#   plane.sh fake-compute DIR HOST   start nova's own nova-compute with its fake driver
#                             (compute_driver = fake.FakeDriver) as compute host HOST,
#                             wait until it serves its RPC topic, map it to cell1:
#                             the baseline of bench row 8 (stopped by stop and purge)
#   plane.sh fake-compute-stop DIR HOST   stop that nova-compute
#
# Nothing under /etc is read or edited: every config lives in DIR, every service binds
# 127.0.0.1, logs go to DIR/log/<service>.log, PIDs (each the leader of its own
# session, so its workers are found and stopped with it) to DIR/pids/<service>.pid.
#
# After start nova knows no compute host. A compute host (xcatbm's worker standing in
# for nova-compute) registers itself through nova-conductor on the bus given by
# OS_TRANSPORT_URL: a Service row (binary nova-compute) and a ComputeNode row per node.
# The host becomes schedulable only once it is mapped to cell1 in the API database:
#     nova-manage --config-file DIR/nova.conf cell_v2 discover_hosts --verbose
# which is what `plane.sh discover DIR` runs. The scheduler does not discover hosts by
# itself ([scheduler] discover_hosts_in_cells_interval = -1).
#
# Authentication (no Keystone):
#   nova-api, placement: [api] auth_strategy = noauth2; send X-Auth-Token: user:project,
#     user "admin" is admin (OS_TOKEN=admin:admin). nova-api copies the token into the
#     request context (DIR/python/xcatbm_noauth.py) so nova can call glance with it.
#   nova -> placement, neutron: keystoneauth admin_token plugin, token admin:admin.
#   glance: unauthenticated pipeline (paste flavor empty), policy file opening
#     publicize_image. neutron: auth_strategy = noauth, ml2 with local/flat types.
#
# Cost on this kind of machine (2 cores): schemas ~40 s and all services answering
# ~80 s after start when idle (~220 s under heavy load from other work); about 1.5 GB
# RSS (0.8-0.9 GB PSS) for the six services and their workers; stop takes ~10 s.
#
# Settings (environment, defaults in brackets):
#   XCATBM_OS_DB_PREFIX [xcatbm_os_]    database names: <prefix>nova_api, nova_cell0,
#                                       nova, placement, glance, neutron
#   XCATBM_OS_PG [postgres@127.0.0.1:5432]   PostgreSQL user@host:port (trusted loopback)
#   XCATBM_OS_VHOST [xcatbm-os]         RabbitMQ vhost of nova's bus
#   XCATBM_OS_AMQP [guest:guest@127.0.0.1:5672]  RabbitMQ user:password@host:port
#   XCATBM_OS_NOVA_PORT [8774] XCATBM_OS_PLACEMENT_PORT [8778]
#   XCATBM_OS_GLANCE_PORT [9292] XCATBM_OS_NEUTRON_PORT [9696]
#   XCATBM_OS_TIMEOUT [300]             seconds to wait for every service to answer
#   XCATBM_OS_DEBUG [false]             debug logging in every service
#   XCATBM_OS_WORKERS [cores, at most 8] placement's uwsgi processes and nova-conductor's
#                                       workers: Debian's placement-api-uwsgi.ini runs 8
#                                       processes (32 threads each) and nova-conductor one
#                                       worker per core; one process per core here, since
#                                       each is busy on one core at most (Python's lock)
#
# Variables printed by start and written to DIR/env:
#   OS_CONFIG_DIR OS_NOVA_CONF OS_NOVA_URL OS_PLACEMENT_URL OS_GLANCE_URL OS_NEUTRON_URL
#   OS_TRANSPORT_URL (rabbit://..., as nova has it) OS_AMQP_URL (amqp://..., same vhost)
#   OS_VHOST OS_DB_PREFIX OS_TOKEN OS_START_SECONDS
set -euo pipefail

# Debian's OpenStack programs run with /usr/bin/python3 and its dist-packages; keep any
# other python (pyenv, virtualenvs) out of their way.
export PATH=/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV PYENV_VERSION
export LC_ALL=C.UTF-8

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
services="placement glance neutron nova-conductor nova-api nova-scheduler"

log() { printf 'plane: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# settings fills the plane's settings from the environment, or, for a plane already
# started in $1, from its DIR/settings so stop/status/purge act on what start used.
settings() {
	local dir=${1:-}
	if [ -n "$dir" ] && [ -f "$dir/settings" ]; then
		# shellcheck disable=SC1091
		. "$dir/settings"
		return
	fi
	DB_PREFIX=${XCATBM_OS_DB_PREFIX:-xcatbm_os_}
	PG=${XCATBM_OS_PG:-postgres@127.0.0.1:5432}
	VHOST=${XCATBM_OS_VHOST:-xcatbm-os}
	AMQP=${XCATBM_OS_AMQP:-guest:guest@127.0.0.1:5672}
	NOVA_PORT=${XCATBM_OS_NOVA_PORT:-8774}
	PLACEMENT_PORT=${XCATBM_OS_PLACEMENT_PORT:-8778}
	GLANCE_PORT=${XCATBM_OS_GLANCE_PORT:-9292}
	NEUTRON_PORT=${XCATBM_OS_NEUTRON_PORT:-9696}
	TIMEOUT=${XCATBM_OS_TIMEOUT:-300}
	DEBUG=${XCATBM_OS_DEBUG:-false}
	WORKERS=${XCATBM_OS_WORKERS:-$(cores=$(nproc) && echo $((cores > 8 ? 8 : cores)))}
	case $WORKERS in *[!0-9]* | "" | 0) die "XCATBM_OS_WORKERS must be a positive number: $WORKERS" ;; esac
	case $DB_PREFIX in *[!a-z0-9_]* | "") die "XCATBM_OS_DB_PREFIX must be [a-z0-9_]+: $DB_PREFIX" ;; esac
	case $VHOST in *[!A-Za-z0-9_.-]* | "") die "XCATBM_OS_VHOST must be [A-Za-z0-9_.-]+: $VHOST" ;; esac
}

save_settings() {
	local dir=$1 v
	: >"$dir/settings"
	for v in DB_PREFIX PG VHOST AMQP NOVA_PORT PLACEMENT_PORT GLANCE_PORT NEUTRON_PORT TIMEOUT DEBUG WORKERS; do
		printf '%s=%q\n' "$v" "${!v}" >>"$dir/settings"
	done
}

# ---------------------------------------------------------------------------- install
packages="nova-api nova-conductor nova-scheduler placement-api glance-api neutron-server python3-psycopg2 uwsgi-core uwsgi-plugin-python3 curl"
optional_packages="python3-openstackclient"

cmd_install() {
	local missing="" p
	for p in $packages $optional_packages; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			missing="$missing $p"
		fi
	done
	if [ -z "$missing" ]; then
		return 0
	fi
	# Debian starts a package's services on install unless policy-rc.d says no; ours
	# must never run system-wide (they would grab the ports and /etc configs).
	local policy=/usr/sbin/policy-rc.d added_policy=""
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\n# xcatbm plane.sh: no service starts during package installs\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		added_policy=1
	elif ! grep -q 'exit 101' "$policy"; then
		log "warning: $policy exists and may let services start on install"
	fi
	log "installing:$missing"
	local apt_opts=(-o DPkg::Lock::Timeout=600 -y -q --no-install-recommends)
	local rc=0
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq || true
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install "${apt_opts[@]}" $packages >/dev/null || rc=$?
	if [ $rc -eq 0 ]; then
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive apt-get install "${apt_opts[@]}" $optional_packages >/dev/null ||
			log "optional packages not installed: $optional_packages"
	fi
	if [ -n "$added_policy" ]; then
		rm -f "$policy"
	fi
	[ $rc -eq 0 ] || die "apt-get install failed ($rc)"
	# The packages' own units must stay down even where an init system runs them.
	local unit
	for unit in nova-api nova-conductor nova-scheduler glance-api neutron-server neutron-rpc-server placement-api; do
		if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled "$unit" >/dev/null 2>&1; then
			systemctl disable --now "$unit" >/dev/null 2>&1 || true
		fi
	done
}

# ------------------------------------------------------------------------ databases
pg_user() { printf '%s' "${PG%%@*}"; }
pg_hostport() { printf '%s' "${PG#*@}"; }
pg_host() { local hp; hp=$(pg_hostport); printf '%s' "${hp%%:*}"; }
pg_port() { local hp; hp=$(pg_hostport); printf '%s' "${hp##*:}"; }
psql_admin() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h "$(pg_host)" -p "$(pg_port)" -U "$(pg_user)" -d postgres "$@"; }
db_url() { printf 'postgresql+psycopg2://%s/%s' "$PG" "$DB_PREFIX$1"; }
databases="nova_api nova_cell0 nova placement glance neutron"

recreate_databases() {
	local db
	for db in $databases; do
		psql_admin -c "DROP DATABASE IF EXISTS \"$DB_PREFIX$db\" WITH (FORCE)" -c "CREATE DATABASE \"$DB_PREFIX$db\"" ||
			die "cannot recreate database $DB_PREFIX$db on $PG"
	done
}

drop_databases() {
	local db
	for db in $databases; do
		psql_admin -c "DROP DATABASE IF EXISTS \"$DB_PREFIX$db\" WITH (FORCE)" || log "warning: drop $DB_PREFIX$db failed"
	done
}

amqp_user() { local up=${AMQP%%@*}; printf '%s' "${up%%:*}"; }
transport_url() { printf 'rabbit://%s/%s' "$AMQP" "$VHOST"; }

recreate_vhost() {
	rabbitmqctl -q delete_vhost "$VHOST" >/dev/null 2>&1 || true
	rabbitmqctl -q add_vhost "$VHOST" >/dev/null || die "rabbitmqctl add_vhost $VHOST failed"
	rabbitmqctl -q set_permissions -p "$VHOST" "$(amqp_user)" '.*' '.*' '.*' >/dev/null ||
		die "rabbitmqctl set_permissions on $VHOST failed"
}

# -------------------------------------------------------------------------- configs
write_configs() {
	local dir=$1
	local tr placement_url neutron_url glance_url
	tr=$(transport_url)
	placement_url=http://127.0.0.1:$PLACEMENT_PORT
	neutron_url=http://127.0.0.1:$NEUTRON_PORT
	glance_url=http://127.0.0.1:$GLANCE_PORT
	mkdir -p "$dir"/{log,pids,lock,python,state/nova,state/neutron,glance/images,glance/staging,conf.d/nova,conf.d/glance,conf.d/neutron,conf.d/placement,policy.d/nova,policy.d/placement,policy.d/glance,policy.d/neutron}

	# Every service gets policy_dirs of its own (empty): the default, policy.d, would
	# also be looked up under /etc/<project>/. An empty policy_dirs would mean DIR itself.
	# nova-api's noauth2 leaves the request context without a token, so keystoneauth
	# refuses to call glance on the user's behalf; keep the header's token in the
	# context (its meaning, user:project, is unchanged).
	cat >"$dir/python/xcatbm_noauth.py" <<'EOF'
"""noauth2 for nova-api that keeps X-Auth-Token in the request context."""
import webob.dec

from nova.api.openstack import auth
from nova.api.openstack import wsgi


class TokenNoAuthMiddleware(auth.NoAuthMiddleware):
    """NoAuthMiddleware that also sets context.auth_token from X-Auth-Token."""

    @webob.dec.wsgify(RequestClass=wsgi.Request)
    def __call__(self, req):
        resp = self.base_call(req, True, always_admin=False)
        ctx = req.environ.get('nova.context')
        if ctx is not None:
            ctx.auth_token = req.headers.get('X-Auth-Token')
        return resp
EOF
	sed -e 's|^paste.filter_factory = nova.api.openstack.auth:NoAuthMiddleware.factory|paste.filter_factory = xcatbm_noauth:TokenNoAuthMiddleware.factory|' \
		-e "s|/etc/nova/healthcheck_disable|$dir/nova-healthcheck-disable|" \
		/etc/nova/api-paste.ini >"$dir/nova-api-paste.ini"
	grep -q xcatbm_noauth "$dir/nova-api-paste.ini" || die "/etc/nova/api-paste.ini has no noauth2 filter to replace"

	cat >"$dir/nova.conf" <<EOF
[DEFAULT]
debug = $DEBUG
transport_url = $tr
state_path = $dir/state/nova
instances_path = $dir/state/nova/instances
my_ip = 127.0.0.1
enabled_apis = osapi_compute
osapi_compute_listen = 127.0.0.1
osapi_compute_listen_port = $NOVA_PORT
osapi_compute_workers = 1

[api]
auth_strategy = noauth2

[wsgi]
api_paste_config = $dir/nova-api-paste.ini

[api_database]
connection = $(db_url nova_api)

[database]
connection = $(db_url nova)

[conductor]
workers = $WORKERS

[scheduler]
workers = 1
discover_hosts_in_cells_interval = -1

[placement]
auth_type = admin_token
token = admin:admin
endpoint = $placement_url
endpoint_override = $placement_url

[neutron]
auth_type = admin_token
token = admin:admin
endpoint = $neutron_url
endpoint_override = $neutron_url

[glance]
endpoint_override = $glance_url

[notifications]
notification_format = both

[oslo_messaging_notifications]
driver = messagingv2

[oslo_concurrency]
lock_path = $dir/lock

[oslo_policy]
policy_dirs = $dir/policy.d/nova
EOF

	cat >"$dir/placement.conf" <<EOF
[DEFAULT]
debug = $DEBUG

[api]
auth_strategy = noauth2

[placement_database]
connection = $(db_url placement)

[oslo_policy]
policy_dirs = $dir/policy.d/placement
EOF
	# Placement as deployed: uwsgi's http-socket answers HTTP/1.1 without
	# "Connection: close" and then closes the connection, so clients that keep it
	# see requests reset. Nothing here hides that; xcatbm's clients must survive it.
	cat >"$dir/placement-uwsgi.ini" <<EOF
[uwsgi]
plugins = python3
http-socket = 127.0.0.1:$PLACEMENT_PORT
wsgi-file = /usr/bin/placement-api
env = OS_PLACEMENT_CONFIG_DIR=$dir
master = true
processes = $WORKERS
threads = 8
enable-threads = true
lazy-apps = true
die-on-term = true
no-orphans = true
buffer-size = 65535
http-auto-chunked = true
http-chunked-input = true
http-raw-body = true
wsgi-manage-chunked-input = true
chdir = $dir
EOF

	cp /etc/glance/glance-api-paste.ini "$dir/glance-api-paste.ini"
	sed -i "s|/etc/glance/healthcheck_disable|$dir/glance-healthcheck-disable|" "$dir/glance-api-paste.ini"
	cat >"$dir/glance-policy.yaml" <<'EOF'
# The unauthenticated pipeline's context has no roles; let it make images public.
"publicize_image": ""
EOF
	cat >"$dir/glance-api.conf" <<EOF
[DEFAULT]
debug = $DEBUG
bind_host = 127.0.0.1
bind_port = $GLANCE_PORT
workers = 1
node_staging_uri = file://$dir/glance/staging

[database]
connection = $(db_url glance)

[paste_deploy]
flavor =
config_file = $dir/glance-api-paste.ini

[glance_store]
stores = file
default_store = file
filesystem_store_datadir = $dir/glance/images

[oslo_policy]
policy_file = $dir/glance-policy.yaml
policy_dirs = $dir/policy.d/glance

[oslo_concurrency]
lock_path = $dir/lock
EOF

	cp /etc/neutron/api-paste.ini "$dir/neutron-api-paste.ini"
	sed -i "s|/etc/neutron/healthcheck_disable|$dir/neutron-healthcheck-disable|" "$dir/neutron-api-paste.ini"
	cat >"$dir/neutron.conf" <<EOF
[DEFAULT]
debug = $DEBUG
bind_host = 127.0.0.1
bind_port = $NEUTRON_PORT
api_workers = 1
rpc_workers = 1
rpc_state_report_workers = 0
auth_strategy = noauth
api_paste_config = $dir/neutron-api-paste.ini
core_plugin = ml2
service_plugins =
transport_url = fake:/
state_path = $dir/state/neutron
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
dhcp_agent_notification = false

[database]
connection = $(db_url neutron)

[ml2]
type_drivers = local,flat
tenant_network_types = local
mechanism_drivers =
extension_drivers =

[ml2_type_flat]
flat_networks = *

[oslo_concurrency]
lock_path = $dir/lock

[oslo_policy]
policy_dirs = $dir/policy.d/neutron
EOF
}

# ------------------------------------------------------------------- db schema syncs
# sync_run NAME CMD... runs one schema step with its output in DIR/log/sync-NAME.log.
sync_run() {
	local name=$1
	shift
	if ! "$@" >>"$dir/log/sync-$name.log" 2>&1; then
		log "schema step '$name' failed: $*"
		tail -n 30 "$dir/log/sync-$name.log" | sed 's/^/    /' >&2
		return 1
	fi
}

sync_nova() {
	local conf=$dir/nova.conf
	sync_run nova /usr/bin/nova-manage --config-file "$conf" --config-dir "$dir/conf.d/nova" api_db sync &&
		sync_run nova /usr/bin/nova-manage --config-file "$conf" --config-dir "$dir/conf.d/nova" cell_v2 map_cell0 \
			--database_connection "$(db_url nova_cell0)" &&
		sync_run nova /usr/bin/nova-manage --config-file "$conf" --config-dir "$dir/conf.d/nova" cell_v2 create_cell \
			--name cell1 --transport-url "$(transport_url)" --database_connection "$(db_url nova)" --verbose &&
		sync_run nova /usr/bin/nova-manage --config-file "$conf" --config-dir "$dir/conf.d/nova" db sync
}

sync_all() {
	local pids=() names=() i rc=0
	sync_nova &
	pids+=($!) names+=(nova)
	sync_run placement /usr/bin/placement-manage --config-file "$dir/placement.conf" --config-dir "$dir/conf.d/placement" db sync &
	pids+=($!) names+=(placement)
	sync_run glance /usr/bin/glance-manage --config-file "$dir/glance-api.conf" --config-dir "$dir/conf.d/glance" db_sync &
	pids+=($!) names+=(glance)
	sync_run neutron /usr/bin/neutron-db-manage --config-file "$dir/neutron.conf" --config-dir "$dir/conf.d/neutron" upgrade heads &
	pids+=($!) names+=(neutron)
	for i in "${!pids[@]}"; do
		if ! wait "${pids[$i]}"; then
			log "database schema of ${names[$i]} failed (see $dir/log/sync-${names[$i]}.log)"
			rc=1
		fi
	done
	return $rc
}

# ------------------------------------------------------------------------ processes
service_cmd() { # prints nothing; sets the array cmd for service $1
	case $1 in
	placement) cmd=(/usr/bin/uwsgi --ini "$dir/placement-uwsgi.ini") ;;
	glance) cmd=(/usr/bin/glance-api --config-file "$dir/glance-api.conf" --config-dir "$dir/conf.d/glance") ;;
	# neutron-server of Debian's neutron 21 lists ports through ORM backrefs
	# (Port.port_forwardings, Port.distributed_port_binding, ...) that exist only once
	# every model module is imported; with no service plugins nothing imports them and
	# GET /v2.0/ports answers 500 (which nova-api turns into a 500 on GET /servers/ID).
	# Import all models (the migration head does) before the server starts.
	neutron) cmd=(/usr/bin/python3 -c 'import sys; import neutron.cmd.eventlet; import neutron.db.migration.models.head; from sqlalchemy import orm; orm.configure_mappers(); from neutron.cmd.eventlet.server import main; sys.argv[0] = "neutron-server"; sys.exit(main())'
		--config-file "$dir/neutron.conf" --config-dir "$dir/conf.d/neutron") ;;
	nova-api) cmd=(/usr/bin/nova-api --config-file "$dir/nova.conf" --config-dir "$dir/conf.d/nova") ;;
	nova-conductor) cmd=(/usr/bin/nova-conductor --config-file "$dir/nova.conf" --config-dir "$dir/conf.d/nova") ;;
	nova-scheduler) cmd=(/usr/bin/nova-scheduler --config-file "$dir/nova.conf" --config-dir "$dir/conf.d/nova") ;;
	# Debian ships nova-compute's entry point in python3-nova and the program in the
	# nova-compute package, which pulls in a hypervisor; the fake driver needs neither.
	fake-compute-*) cmd=(/usr/bin/python3 -c 'import sys; from nova.cmd.compute import main; sys.argv[0] = "nova-compute"; sys.exit(main())'
		--config-file "$dir/nova.conf" --config-dir "$dir/conf.d/nova" --config-file "$dir/$1.conf") ;;
	*) die "unknown service $1" ;;
	esac
}

service_port() {
	case $1 in
	placement) echo "$PLACEMENT_PORT" ;;
	glance) echo "$GLANCE_PORT" ;;
	neutron) echo "$NEUTRON_PORT" ;;
	nova-api) echo "$NOVA_PORT" ;;
	*) echo "-" ;;
	esac
}

# launch NAME starts service NAME as the leader of a new session, so that it and every
# worker it forks share one process group that stop can signal as a whole.
launch() {
	local name=$1 cmd
	service_cmd "$name"
	env -i PATH="$PATH" LC_ALL=C.UTF-8 HOME="$dir/state" PYTHONPATH="$dir/python" \
		setsid "${cmd[@]}" >"$dir/log/$name.log" 2>&1 </dev/null &
	local pid=$! i
	echo "$pid" >"$dir/pids/$name.pid"
	# Until the child execs, its command line is this script's, which ours() does
	# not know: wait for the exec (a loaded machine can take a while to get there).
	for ((i = 0; i < 200; i++)); do
		ours "$pid" || [ ! -d "/proc/$pid" ] && return 0
		sleep 0.05
	done
}

# ours PID tells whether PID is alive and is one of this plane's processes (its command
# line names DIR), so a recycled PID is never signalled.
ours() {
	local pid=$1 cmdline
	[ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
	# Read it whole first: with pipefail, "tr | grep -q" may fail on a match.
	cmdline=$(tr "\0" " " <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmdline == *"$dir/"* ]]
}

# critical NAME tells whether service NAME logged a CRITICAL record (an unhandled
# start-up error), not merely an option whose value is CRITICAL (debug's option dump).
critical() { grep -Eq '^[0-9-]+ [0-9:.]+ [0-9]+ CRITICAL ' "$dir/log/$1.log" 2>/dev/null; }

service_pid() { cat "$dir/pids/$1.pid" 2>/dev/null || true; }

# fail_service NAME WHY [STOP...] reports why service NAME failed with its log's tail,
# runs STOP (default: stop the whole plane) and exits 1.
fail_service() {
	local name=$1 why=$2
	shift 2
	log "$name $why; last lines of $dir/log/$name.log:"
	tail -n 40 "$dir/log/$name.log" 2>/dev/null | sed 's/^/    /' >&2
	if [ $# -gt 0 ]; then "$@" || true; else cmd_stop "$dir" || true; fi
	exit 1
}

http_up() { # http_up URL: any HTTP answer below 500 means the server is serving
	local code
	code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$1" 2>/dev/null) || return 1
	[ "$code" != 000 ] && [ "$code" -lt 500 ]
}

# rpc_consumers prints "queue consumers" of the plane's vhost.
rpc_consumers() { rabbitmqctl -q list_queues -p "$VHOST" name consumers 2>/dev/null || true; }

# wait_ready NAME... polls each service until it answers, failing as soon as one dies
# or the deadline passes.
wait_ready() {
	local pending=" $* " deadline=$((SECONDS + TIMEOUT)) name queues
	while :; do
		queues=""
		for name in $pending; do
			ours "$(service_pid "$name")" || fail_service "$name" "exited during start-up"
			# oslo.log marks an unhandled start-up error CRITICAL; a WSGI server may
			# keep running without its application, so do not wait for the deadline.
			if critical "$name"; then
				fail_service "$name" "failed to start"
			fi
			case $name in
			placement) http_up "http://127.0.0.1:$PLACEMENT_PORT/" || continue ;;
			glance) http_up "http://127.0.0.1:$GLANCE_PORT/versions" || continue ;;
			neutron) http_up "http://127.0.0.1:$NEUTRON_PORT/" || continue ;;
			nova-api) http_up "http://127.0.0.1:$NOVA_PORT/" || continue ;;
			nova-conductor | nova-scheduler)
				# Ready once its RPC server consumes its topic queue.
				[ -n "$queues" ] || queues=$(rpc_consumers)
				printf '%s\n' "$queues" | awk -v q="${name#nova-}" '$1 == q && $2 > 0 { ok = 1 } END { exit !ok }' || continue
				;;
			esac
			log "$name ready after $((SECONDS - start_seconds))s"
			pending=${pending/ $name / }
		done
		[ -n "${pending// /}" ] || return 0
		if [ $SECONDS -ge $deadline ]; then
			for name in $pending; do
				fail_service "$name" "did not answer within ${TIMEOUT}s"
			done
		fi
		sleep 0.5
	done
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cmd_start() {
	dir=$1
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	start_seconds=$SECONDS
	if [ -d "$dir/pids" ]; then
		local s
		for s in $services; do
			if ours "$(service_pid "$s")"; then
				die "a plane is already running in $dir ($s); run: $0 stop $dir"
			fi
		done
	fi
	rm -rf "$dir/pids" "$dir/log" "$dir/env"
	settings
	local port
	for port in "$NOVA_PORT" "$PLACEMENT_PORT" "$GLANCE_PORT" "$NEUTRON_PORT"; do
		port_free "$port" || die "port 127.0.0.1:$port is already in use (another plane? see ss -ltnp)"
	done
	for p in /usr/bin/nova-api /usr/bin/nova-conductor /usr/bin/nova-scheduler /usr/bin/placement-api /usr/bin/glance-api /usr/bin/neutron-server /usr/bin/uwsgi; do
		[ -x "$p" ] || die "$p is missing; run: $0 install"
	done
	bash "$here/../services.sh" || die "PostgreSQL/RabbitMQ are not up"
	save_settings "$dir"
	write_configs "$dir"

	log "recreating databases ${DB_PREFIX}{${databases// /,}} and vhost $VHOST"
	recreate_databases
	recreate_vhost
	log "creating schemas and cells"
	sync_all || die "database schema set-up failed"
	log "schemas ready after $((SECONDS - start_seconds))s"

	# placement first: nova-scheduler exits when placement does not answer.
	local s
	for s in placement glance neutron nova-conductor nova-api; do
		launch "$s"
	done
	wait_ready placement
	launch nova-scheduler
	wait_ready glance neutron nova-conductor nova-api nova-scheduler

	local elapsed=$((SECONDS - start_seconds))
	{
		echo "OS_CONFIG_DIR=$dir"
		echo "OS_NOVA_CONF=$dir/nova.conf"
		echo "OS_NOVA_URL=http://127.0.0.1:$NOVA_PORT/v2.1"
		echo "OS_PLACEMENT_URL=http://127.0.0.1:$PLACEMENT_PORT"
		echo "OS_GLANCE_URL=http://127.0.0.1:$GLANCE_PORT"
		echo "OS_NEUTRON_URL=http://127.0.0.1:$NEUTRON_PORT"
		echo "OS_TRANSPORT_URL=$(transport_url)"
		echo "OS_AMQP_URL=amqp://$AMQP/$VHOST"
		echo "OS_VHOST=$VHOST"
		echo "OS_DB_PREFIX=$DB_PREFIX"
		echo "OS_TOKEN=admin:admin"
		echo "OS_START_SECONDS=$elapsed"
	} >"$dir/env.tmp"
	mv "$dir/env.tmp" "$dir/env"
	log "plane up in ${elapsed}s"
	cat "$dir/env"
}

# group_pids PID prints the PIDs of the session PID leads (the service and its workers).
group_pids() { ps -o pid= -s "$1" 2>/dev/null | tr -d ' ' || true; }

# stop_services NAME... signals each running service NAME of DIR (its whole process
# group) and waits until none of their processes is left, killing them after 10 s.
stop_services() {
	local s pid leaders=() p i
	for s in "$@"; do
		pid=$(service_pid "$s")
		if ours "$pid"; then
			kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
			leaders+=("$pid")
		fi
	done
	for ((i = 0; i < 60; i++)); do
		local left=""
		for pid in "${leaders[@]}"; do
			for p in $(group_pids "$pid"); do
				ours "$p" && left="$left $p"
			done
		done
		[ -n "$left" ] || break
		if [ $i -eq 40 ]; then
			log "still running after 10s, killing:$left"
			for pid in "${leaders[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
			# shellcheck disable=SC2086
			kill -KILL $left 2>/dev/null || true
		fi
		sleep 0.25
	done
	for s in "$@"; do rm -f "$dir/pids/$s.pid"; done
}

cmd_stop() {
	dir=$(cd "$1" 2>/dev/null && pwd) || die "no such directory: $1"
	[ -d "$dir/pids" ] || return 0
	local f names=() p
	for f in "$dir"/pids/*.pid; do
		[ -e "$f" ] && names+=("$(basename "$f" .pid)")
	done
	stop_services "${names[@]}"
	# Workers that left their session still name DIR on their command line.
	local stray=""
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		ours "$p" && [ "$p" != $$ ] && stray="$stray $p"
	done
	if [ -n "$stray" ]; then
		log "killing stray processes of $dir:$stray"
		# shellcheck disable=SC2086
		kill -KILL $stray 2>/dev/null || true
	fi
	log "stopped"
}

cmd_purge() {
	cmd_stop "$1"
	settings "$dir"
	drop_databases
	rabbitmqctl -q delete_vhost "$VHOST" >/dev/null 2>&1 || true
	log "dropped databases ${DB_PREFIX}* and vhost $VHOST"
}

# pss_kb PID... sums proportional set size (shared pages split among sharers).
pss_kb() {
	local p sum=0 v
	for p in "$@"; do
		v=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || true)
		sum=$((sum + ${v:-0}))
	done
	echo $sum
}

cmd_status() {
	dir=$(cd "$1" 2>/dev/null && pwd) || die "no such directory: $1"
	settings "$dir"
	local s pid state procs rss pss total_rss=0 total_pss=0 running=0
	printf '%-15s %-8s %-8s %-6s %6s %9s %9s\n' SERVICE PID STATE PORT PROCS RSS_MB PSS_MB
	for s in $services; do
		pid=$(service_pid "$s")
		state=stopped procs=0 rss=0 pss=0
		if ours "$pid"; then
			state=running
			running=$((running + 1))
			local ps_list
			ps_list=$(group_pids "$pid")
			procs=$(echo "$ps_list" | wc -w)
			rss=$(ps -o rss= -s "$pid" | awk '{ s += $1 } END { print s + 0 }')
			# shellcheck disable=SC2086
			pss=$(pss_kb $ps_list)
		fi
		total_rss=$((total_rss + rss))
		total_pss=$((total_pss + pss))
		printf '%-15s %-8s %-8s %-6s %6s %9d %9d\n' "$s" "${pid:--}" "$state" "$(service_port "$s")" "$procs" $((rss / 1024)) $((pss / 1024))
	done
	printf '%-15s %-8s %-8s %-6s %6s %9d %9d\n' total - "$running/6" - - $((total_rss / 1024)) $((total_pss / 1024))
	[ "$running" -eq 6 ]
}

cmd_discover() {
	dir=$(cd "$1" 2>/dev/null && pwd) || die "no such directory: $1"
	[ -f "$dir/nova.conf" ] || die "$dir/nova.conf missing: start a plane there first"
	/usr/bin/nova-manage --config-file "$dir/nova.conf" --config-dir "$dir/conf.d/nova" cell_v2 discover_hosts --verbose
}

# fake-compute DIR HOST starts nova-compute with nova's fake driver as compute host
# HOST on the plane in DIR and returns once it serves its RPC topic (its compute node
# and provider made) and cell1 has its host mapping.
cmd_fake_compute() {
	dir=$(cd "$1" 2>/dev/null && pwd) || die "no such directory: $1"
	local host=$2 name="fake-compute-$2"
	[[ $host =~ ^[A-Za-z0-9][A-Za-z0-9.-]*$ ]] || die "host name $host: letters, digits, dots and dashes only"
	[ -f "$dir/nova.conf" ] || die "$dir/nova.conf missing: start a plane there first"
	settings "$dir"
	if ours "$(service_pid "$name")"; then
		die "$name is already running; run: $0 fake-compute-stop $dir $host"
	fi
	cat >"$dir/$name.conf" <<EOF
[DEFAULT]
host = $host
compute_driver = fake.FakeDriver
debug = $DEBUG
instances_path = $dir/state/nova/instances-$host
EOF
	start_seconds=$SECONDS
	launch "$name"
	local deadline=$((SECONDS + TIMEOUT)) code
	while :; do
		ours "$(service_pid "$name")" || fail_service "$name" "exited during start-up" cmd_fake_compute_stop "$dir" "$host"
		critical "$name" && fail_service "$name" "failed to start" cmd_fake_compute_stop "$dir" "$host"
		# nova-compute consumes its topic once its resource tracker has created its
		# compute node and provider (nova.service.Service.start).
		rpc_consumers | awk -v q="compute.$host" '$1 == q && $2 > 0 { ok = 1 } END { exit !ok }' && break
		[ $SECONDS -lt $deadline ] || fail_service "$name" "did not consume compute.$host within ${TIMEOUT}s" cmd_fake_compute_stop "$dir" "$host"
		sleep 0.5
	done
	log "$name ready after $((SECONDS - start_seconds))s"
	cmd_discover "$dir" >/dev/null
}

cmd_fake_compute_stop() {
	dir=$(cd "$1" 2>/dev/null && pwd) || die "no such directory: $1"
	stop_services "fake-compute-$2"
	log "fake-compute-$2 stopped"
}

usage() {
	sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

[ $# -ge 1 ] || usage
case $1 in
install) cmd_install ;;
start | stop | purge | status | discover)
	[ $# -eq 2 ] || usage
	"cmd_$1" "$2"
	;;
fake-compute | fake-compute-stop)
	[ $# -eq 3 ] || usage
	"cmd_${1//-/_}" "$2" "$3"
	;;
*) usage ;;
esac
