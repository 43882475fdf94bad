#!/usr/bin/env bash
# Makes sure the PostgreSQL and RabbitMQ servers xcatbm's tests and demo talk to are
# installed, running and answering on 127.0.0.1. Installs them from Debian's packages
# when missing, starts them when stopped, and waits until each answers.
set -euo pipefail

log() { printf 'services: %s\n' "$*" >&2; }

apt_updated=""
apt_install() {
	if [ -z "$apt_updated" ]; then
		log "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		apt_updated=1
	fi
	log "installing $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() { # wait_for <what> <seconds> <command...>
	local what=$1 secs=$2; shift 2
	local i
	for ((i = 0; i < secs * 4; i++)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.25
	done
	log "$what did not answer within ${secs}s"
	return 1
}

# --- PostgreSQL ---------------------------------------------------------------
if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
	apt_install postgresql postgresql-client
fi
pgver=$(ls /etc/postgresql | sort -V | tail -n 1)
hba=/etc/postgresql/$pgver/main/pg_hba.conf
if ! grep -q '^# xcatbm: trust loopback' "$hba"; then
	# Tests connect as postgres over TCP on loopback without a password, as on the
	# machines this project runs on. Only loopback is trusted.
	log "trusting loopback connections in $hba"
	tmp=$(mktemp)
	{
		echo '# xcatbm: trust loopback'
		echo 'host all all 127.0.0.1/32 trust'
		echo 'host all all ::1/128 trust'
		cat "$hba"
	} >"$tmp"
	cat "$tmp" >"$hba"
	rm -f "$tmp"
	if pg_isready -q -h 127.0.0.1 -p 5432; then
		pg_ctlcluster --skip-systemctl-redirect "$pgver" main reload
	fi
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
	log "starting PostgreSQL $pgver"
	pg_ctlcluster --skip-systemctl-redirect "$pgver" main start || true
fi
wait_for PostgreSQL 60 pg_isready -q -h 127.0.0.1 -p 5432
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1 from pg_database where datname='test'" | grep -q 1; then
	log "creating database test"
	psql -h 127.0.0.1 -U postgres -d postgres -qc 'create database test'
fi
log "PostgreSQL $pgver is up on 127.0.0.1:5432"

# --- RabbitMQ -----------------------------------------------------------------
if ! command -v rabbitmq-server >/dev/null 2>&1; then
	apt_install rabbitmq-server
fi
if ! timeout 20 rabbitmqctl -q status >/dev/null 2>&1; then
	log "starting RabbitMQ"
	rabbitmq-server -detached || true
	wait_for "RabbitMQ node" 90 rabbitmqctl -q status
fi
timeout 120 rabbitmqctl -q await_startup >/dev/null 2>&1 || true
wait_for "RabbitMQ on 5672" 60 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672'
log "RabbitMQ is up on 127.0.0.1:5672"
