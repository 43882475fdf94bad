# lib.sh: functions shared by xcatbm's maintainer scripts. The build prepends this file
# to each script under deb/ and rpm/, which only decide when to call what.
# POSIX sh; every function is safe to run again.

XCATBM_USER=xcatbm
XCATBM_SHIPPED=/usr/share/xcatbm/postscripts
XCATBM_XCAT_POSTSCRIPTS=/install/postscripts
XCATBM_UNIT=xcatbm-worker@.service

# systemd_running: true when systemd is the running init (not in a chroot or container
# build), the only time systemctl may touch running units.
systemd_running() {
	[ -d /run/systemd/system ]
}

# create_user: the unprivileged system user and group the worker runs as, without a
# home directory or a login shell.
create_user() {
	if ! getent group "$XCATBM_USER" >/dev/null; then
		groupadd --system "$XCATBM_USER"
	fi
	if ! getent passwd "$XCATBM_USER" >/dev/null; then
		useradd --system --gid "$XCATBM_USER" --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin --comment "xcatbm worker" "$XCATBM_USER"
	fi
}

# remove_user: the user and group create_user made.
remove_user() {
	if getent passwd "$XCATBM_USER" >/dev/null; then
		userdel "$XCATBM_USER" || echo "xcatbm: could not remove user $XCATBM_USER" >&2
	fi
	if getent group "$XCATBM_USER" >/dev/null; then
		groupdel "$XCATBM_USER" || echo "xcatbm: could not remove group $XCATBM_USER" >&2
	fi
}

# secure_secrets: /etc/xcatbm/secrets readable by root and the worker's group only.
secure_secrets() {
	if [ -d /etc/xcatbm/secrets ]; then
		chown root:"$XCATBM_USER" /etc/xcatbm/secrets
		chmod 0750 /etc/xcatbm/secrets
	fi
}

# place_postscripts: on an xCAT management node, put the shipped postscripts where
# xCAT serves them. A failure is reported, not fatal: the admin can run the command.
place_postscripts() {
	[ -e /etc/xCATMN ] || return 0
	/usr/bin/xcatbm install-postscripts --dir "$XCATBM_XCAT_POSTSCRIPTS" ||
		echo "xcatbm: could not place the postscripts; run: xcatbm install-postscripts --dir $XCATBM_XCAT_POSTSCRIPTS" >&2
}

# make_tenant_dir: on an xCAT management node, the directory under xCAT's install
# directory where the worker lays out each deployment's tenant data, owned by the
# worker's user; 0711, so a tree is reached only by its exact path (the worker keeps
# the mode it is configured for).
XCATBM_TENANT_DIR=/install/xcatbm
make_tenant_dir() {
	[ -e /etc/xCATMN ] || return 0
	if [ ! -d "$XCATBM_TENANT_DIR" ]; then
		if ! mkdir -p "$XCATBM_TENANT_DIR"; then
			echo "xcatbm: could not create $XCATBM_TENANT_DIR" >&2
			return 0
		fi
		chmod 0711 "$XCATBM_TENANT_DIR"
	fi
	chown "$XCATBM_USER:$XCATBM_USER" "$XCATBM_TENANT_DIR" ||
		echo "xcatbm: could not give $XCATBM_TENANT_DIR to $XCATBM_USER" >&2
}

# remove_tenant_dir: the tenant data trees and their directory (on purge: what is
# there is tenant data no one will fetch).
remove_tenant_dir() {
	rm -rf "$XCATBM_TENANT_DIR"
}

# take_back_postscripts: remove from /install/postscripts the scripts that are exactly
# the shipped ones; a script the admin changed stays. Runs while the shipped copies
# are still installed.
take_back_postscripts() {
	for shipped in "$XCATBM_SHIPPED"/*; do
		[ -f "$shipped" ] || continue
		placed="$XCATBM_XCAT_POSTSCRIPTS/$(basename "$shipped")"
		if [ -f "$placed" ] && [ ! -L "$placed" ] && cmp -s "$shipped" "$placed"; then
			rm -f "$placed"
		fi
	done
}

# daemon_reload: make a running systemd see the added, changed or removed unit.
daemon_reload() {
	if systemd_running; then
		systemctl daemon-reload || true
	fi
}

# restart_active: restart the worker instances that are running, and only those.
restart_active() {
	if systemd_running; then
		systemctl try-restart "xcatbm-worker@*.service" || true
	fi
}

# stop_all: stop every running worker instance (before the binary goes away).
stop_all() {
	if systemd_running; then
		systemctl stop "xcatbm-worker@*.service" || true
	fi
}

# enabled_instances: the worker instances enabled in /etc/systemd/system.
enabled_instances() {
	for link in /etc/systemd/system/*.wants/xcatbm-worker@*.service; do
		[ -L "$link" ] && basename "$link"
	done | sort -u
}

# disable_all: disable every enabled instance while the unit file is still installed.
disable_all() {
	for unit in $(enabled_instances); do
		systemctl --no-reload disable "$unit" || true
	done
}

# remove_enablement: after the unit file is gone, remove the links that enabled its
# instances (what `systemctl disable` would have removed).
remove_enablement() {
	for link in /etc/systemd/system/*.wants/xcatbm-worker@*.service; do
		[ -L "$link" ] || continue
		case "$(readlink "$link")" in
		*/"$XCATBM_UNIT") rm -f "$link" ;;
		esac
	done
}
