#!/usr/bin/env bash
# package-test.sh: build the xcatbm packages and test them for real on this machine.
#
# The .deb is installed with dpkg, checked (files, modes, user, unit, example
# configuration, man pages, the commands from their installed paths, postscripts placed
# on a management node), installed again as an upgrade, then purged and checked to leave
# nothing behind. In between, with the xcatbm-sim .deb installed too, a worker is started
# the way xcatbm-worker@HOST.service would start it (systemd is not running here: the
# unit's user, environment file and command line are applied by hand) against the local
# RabbitMQ and PostgreSQL (a vhost and a database of the test's own) and xcatbm-sim,
# and nova's captured spawn cast must boot a simulated node. The .rpm is inspected with
# rpm (file list, config files, requirements, scriptlets). Needs root and a throwaway machine: it installs and purges the package
# and, while it runs, pretends to be an xCAT management node (/etc/xCATMN). It refuses
# to run where xcatbm is already installed or the xcatbm user exists, and undoes what
# it did on any exit. Ends with the line "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0 failed=0 skipped=0
pass() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
skip() { skipped=$((skipped + 1)); echo "skip $*"; }
check() { # check DESCRIPTION COMMAND...: pass when the command succeeds
	local what=$1
	shift
	if "$@" >/dev/null 2>&1; then pass "$what"; else fail "$what"; fi
}
equal() { # equal DESCRIPTION WANT HAVE
	if [[ $2 == "$3" ]]; then pass "$1"; else fail "$1: want $(printf %q "$2"), have $(printf %q "$3")"; fi
}

if [[ $(id -u) != 0 ]]; then
	echo "package-test: must run as root (it installs the package)" >&2
	exit 2
fi
if dpkg -s xcatbm >/dev/null 2>&1 || dpkg -s xcatbm-sim >/dev/null 2>&1 || getent passwd xcatbm >/dev/null || getent group xcatbm >/dev/null; then
	echo "package-test: xcatbm is installed or its user exists here; not touching it" >&2
	exit 2
fi
for tool in rpm systemd-analyze groff; do
	if ! command -v "$tool" >/dev/null; then
		echo "package-test: installing the package that provides $tool"
		case $tool in
		systemd-analyze) pkg=systemd ;;
		*) pkg=$tool ;;
		esac
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/dev/null || true
	fi
done

start=$SECONDS
work=$(mktemp -d)
PS=/install/postscripts
made_mn= made_install= made_ps= sentinel=$PS/site_local_script
wants=/etc/systemd/system/multi-user.target.wants
made_wants= link=$wants/xcatbm-worker@pkgtest.service
simpid= workerpid= made_db= made_vhost= envfile_admin= secret=
pgdb=xcatbm_pkgtest vhost=xcatbm-pkgtest
stop_e2e() { # stop the end-to-end worker and simulator, drop their database and vhost
	local pid
	for pid in $workerpid $simpid; do
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	[[ -n $made_db ]] && psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $pgdb" >/dev/null 2>&1
	[[ -n $made_vhost ]] && rabbitmqctl -q delete_vhost "$vhost" >/dev/null 2>&1
	[[ -n $envfile_admin ]] && rm -f "$envfile_admin" "$secret"
	made_db= made_vhost=
}
cleanup() {
	stop_e2e
	if dpkg -s xcatbm-sim >/dev/null 2>&1; then dpkg --purge xcatbm-sim >/dev/null 2>&1; fi
	if dpkg -s xcatbm >/dev/null 2>&1; then dpkg --purge xcatbm >/dev/null 2>&1; fi
	if getent passwd xcatbm >/dev/null; then userdel xcatbm 2>/dev/null; fi
	if getent group xcatbm >/dev/null; then groupdel xcatbm 2>/dev/null; fi
	rm -f "$link" "$sentinel" "$PS/config_ops_bmnode" "$PS/deconfig_ops_bmnode"
	[[ -n $made_wants ]] && rmdir "$wants" 2>/dev/null
	[[ -n $made_ps ]] && rmdir "$PS" 2>/dev/null
	[[ -n $made_install ]] && rmdir /install 2>/dev/null
	[[ -n $made_mn ]] && rm -f /etc/xCATMN
	rm -rf "$work"
	echo "package-test: $((SECONDS - start))s"
	echo "$passed passed, $failed failed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build ---------------------------------------------------------------------------
export DIST=$work/dist
if ! bash scripts/package.sh >"$work/build.log" 2>&1; then
	cat "$work/build.log"
	fail "make package builds"
	exit 1
fi
grep WARNING "$work/build.log"
pass "make package builds"
shopt -s nullglob
debs=("$DIST"/xcatbm_*.deb) rpms=("$DIST"/xcatbm-[0-9]*.rpm)
if ((${#debs[@]} != 1 || ${#rpms[@]} != 1)); then
	fail "one xcatbm .deb and one .rpm in dist: have ${debs[*]} ${rpms[*]}"
	exit 1
fi
deb=${debs[0]} rpm=${rpms[0]}
simdebs=("$DIST"/xcatbm-sim_*.deb) simdeb=${simdebs[0]:-}
pass "one xcatbm .deb and one .rpm built"

files="/etc/xcatbm/example.env
/usr/bin/opsaddbmnode
/usr/bin/opsaddimage
/usr/bin/xcatbm
/usr/bin/xcatbm-worker
/usr/lib/systemd/system/xcatbm-worker@.service
/usr/share/man/man1/opsaddbmnode.1.gz
/usr/share/man/man1/opsaddimage.1.gz
/usr/share/man/man8/xcatbm-worker.8.gz
/usr/share/man/man8/xcatbm.8.gz
/usr/share/xcatbm/monitoring/xcatbm-alerts.yml
/usr/share/xcatbm/monitoring/xcatbm-dashboard.json
/usr/share/xcatbm/postscripts/config_ops_bmnode
/usr/share/xcatbm/postscripts/deconfig_ops_bmnode"
dirs="/etc/xcatbm
/etc/xcatbm/secrets
/usr/share/xcatbm
/usr/share/xcatbm/monitoring
/usr/share/xcatbm/postscripts"

# --- the .rpm, inspected ---------------------------------------------------------------
equal "rpm file list" "$(sort <<<"$files"$'\n'"$dirs")" "$(rpm -qlp "$rpm" 2>/dev/null | sort)"
equal "rpm config files" "/etc/xcatbm/example.env" "$(rpm -qcp "$rpm" 2>/dev/null)"
rpmlist=$(rpm -qlvp "$rpm" 2>/dev/null)
check "rpm: /etc/xcatbm/secrets is drwxr-x--- root xcatbm" grep -Eq '^drwxr-x--- +[0-9]+ root +xcatbm .* /etc/xcatbm/secrets$' <<<"$rpmlist"
check "rpm: opsaddbmnode links to xcatbm" grep -q ' /usr/bin/opsaddbmnode -> xcatbm$' <<<"$rpmlist"
check "rpm: no xcatbm-sim in the production package" bash -c '! grep -q xcatbm-sim <<<"$1"' _ "$rpmlist"
reqs=$(rpm -qpR "$rpm" 2>/dev/null)
check "rpm requires diffutils (cmp) and shadow-utils (useradd)" bash -c 'grep -qx diffutils <<<"$1" && grep -qx shadow-utils <<<"$1"' _ "$reqs"
debver=$(dpkg-deb -f "$deb" Version)
equal "rpm and deb carry the same version" "$debver" "$(rpm -qp --qf '%{VERSION}-%{RELEASE}' "$rpm" 2>/dev/null)"
for tag in PREIN POSTIN PREUN POSTUN; do
	rpm -qp --qf "%{$tag}" "$rpm" >"$work/rpm.$tag" 2>/dev/null
	check "rpm %$tag scriptlet is valid sh" sh -n "$work/rpm.$tag"
done
check "rpm %pre creates the user" grep -qx 'create_user' "$work/rpm.PREIN"
check "rpm %post places the postscripts and reloads systemd, starts nothing" \
	bash -c 'grep -qx place_postscripts "$1" && grep -qx daemon_reload "$1" && ! grep -Eq "^[^#]*systemctl (start|enable|restart)" "$1"' _ "$work/rpm.POSTIN"
check "rpm %preun on erase (\$1 = 0) stops, disables, takes back postscripts" \
	bash -c 'grep -q "if \[ \"\$1\" -eq 0 \]" "$1" && grep -q "^	stop_all" "$1" && grep -q "^	disable_all" "$1" && grep -q "^	take_back_postscripts" "$1"' _ "$work/rpm.PREUN"
check "rpm %postun on upgrade (\$1 >= 1) try-restarts running instances only" \
	bash -c 'grep -q "if \[ \"\$1\" -ge 1 \]" "$1" && grep -q "^	restart_active" "$1" && grep -q "systemctl try-restart" "$1"' _ "$work/rpm.POSTUN"
check "rpm scriptlets guard systemctl with /run/systemd/system" grep -q '\[ -d /run/systemd/system \]' "$work/rpm.POSTUN"
if command -v shellcheck >/dev/null; then
	check "shellcheck of the rpm scriptlets" shellcheck -s sh -e SC2317 "$work"/rpm.*
else
	skip "shellcheck not installed"
fi

# --- the .deb, statically --------------------------------------------------------------
deblist=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#^\.##; s#/$##' | grep -v '^$')
for f in $files; do
	check "deb contains $f" grep -qx "$f" <<<"$deblist"
done
check "deb: no xcatbm-sim in the production package" bash -c '! grep -q xcatbm-sim <<<"$1"' _ "$deblist"
equal "deb conffiles" "/etc/xcatbm/example.env" "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)"
mkdir -p "$work/ctrl" && dpkg-deb -e "$deb" "$work/ctrl"
if command -v shellcheck >/dev/null; then
	check "shellcheck of the deb maintainer scripts" shellcheck -s sh -e SC2317 "$work"/ctrl/{preinst,postinst,prerm,postrm}
fi

# --- a management node with a script of the site's own in /install/postscripts ---------
[[ -e /etc/xCATMN ]] || { touch /etc/xCATMN && made_mn=1; }
[[ -d /install ]] || made_install=1
[[ -d $PS ]] || made_ps=1
mkdir -p "$PS"
[[ -e $sentinel ]] && { echo "package-test: $sentinel exists" >&2; exit 2; }
echo "#!/bin/sh" >"$sentinel"
before=$(ls -la --time-style=+ "$PS" | grep -v site_local_script | sha256sum)

# --- install ---------------------------------------------------------------------------
if dpkg -i "$deb" >"$work/install.log" 2>&1; then pass "dpkg -i"; else cat "$work/install.log"; fail "dpkg -i"; exit 1; fi
for f in $files; do
	check "installed: $f" test -e "$f"
done
equal "mode and owner of /usr/bin/xcatbm-worker" "755 root:root" "$(stat -c '%a %U:%G' /usr/bin/xcatbm-worker)"
equal "mode and owner of /etc/xcatbm/secrets" "750 root:xcatbm" "$(stat -c '%a %U:%G' /etc/xcatbm/secrets)"
equal "mode and owner of the tenant data directory /install/xcatbm" "711 xcatbm:xcatbm" "$(stat -c '%a %U:%G' /install/xcatbm)"
for l in opsaddbmnode opsaddimage; do
	equal "/usr/bin/$l resolves to /usr/bin/xcatbm" /usr/bin/xcatbm "$(readlink -f /usr/bin/$l)"
done
check "binaries are static" bash -c '! ldd /usr/bin/xcatbm-worker && ! ldd /usr/bin/xcatbm'

IFS=: read -r _ _ uid gid _ home shell < <(getent passwd xcatbm)
check "user xcatbm exists" test -n "${uid:-}"
check "user xcatbm is a system user (uid $uid < 1000)" test "${uid:-1000}" -lt 1000
equal "user xcatbm's group" xcatbm "$(getent group "${gid:-x}" | cut -d: -f1)"
equal "user xcatbm's shell" /usr/sbin/nologin "${shell:-}"
check "user xcatbm has no home directory ($home)" test ! -e "${home:-/nonexistent}"

# The unit: systemd's own verifier on an instance of the template, then the keys we rely on.
unit=/usr/lib/systemd/system/xcatbm-worker@.service
mkdir -p "$work/unit" && cp "$unit" "$work/unit/xcatbm-worker@pkgtest.service"
if command -v systemd-analyze >/dev/null; then
	out=$(systemd-analyze verify "$work/unit/xcatbm-worker@pkgtest.service" 2>&1)
	rc=$?
	if ((rc == 0)) && [[ -z $out ]]; then pass "systemd-analyze verify"; else fail "systemd-analyze verify (rc $rc): $out"; fi
else
	skip "systemd-analyze not available; the unit is checked only by its keys"
fi
for key in "User=xcatbm" "Group=xcatbm" "EnvironmentFile=/etc/xcatbm/%i.env" \
	"ExecStart=/usr/bin/xcatbm-worker --compute-host %i" "Restart=on-failure" "RestartPreventExitStatus=78 2" \
	NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes PrivateDevices=yes \
	ProtectKernelTunables=yes ProtectKernelModules=yes ProtectKernelLogs=yes ProtectControlGroups=yes \
	"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" RestrictNamespaces=yes LockPersonality=yes \
	MemoryDenyWriteExecute=yes RestrictRealtime=yes SystemCallArchitectures=native \
	"CapabilityBoundingSet=" "WantedBy=multi-user.target"; do
	check "unit has $key" grep -qxF "$key" "$unit"
done
check "unit grants no writable paths" bash -c '! grep -Eq "^(ReadWritePaths|StateDirectory|LogsDirectory)=" "$1"' _ "$unit"

# The example configuration: every flag of the installed worker, and its values parse.
help=$(/usr/bin/xcatbm-worker --help 2>&1)
nflags=0
while read -r flag; do
	nflags=$((nflags + 1))
	env=XCATBM_$(tr 'a-z-' 'A-Z_' <<<"$flag")
	grep -Eq "^#$env(_FILE)?=" /etc/xcatbm/example.env || fail "example.env lacks --$flag ($env)"
done < <(sed -n 's/^  --\([a-z0-9-]*\).*/\1/p' <<<"$help")
equal "example.env has one setting per worker flag ($nflags)" "$nflags" "$(grep -Ec '^#XCATBM_[A-Z0-9_]+=' /etc/xcatbm/example.env)"
grep -E '^#XCATBM_[A-Z0-9_]+_FILE=' /etc/xcatbm/example.env | sed 's/^#//' >"$work/secrets"
for secret in $(sed -n 's/.*env \(XCATBM_[A-Z0-9_]*\) (or .*/\1/p' <<<"$help"); do
	check "example.env names secret $secret by file in /etc/xcatbm/secrets" grep -q "^${secret}_FILE=/etc/xcatbm/secrets/" "$work/secrets"
done
# Uncomment every non-secret setting (quotes stripped as systemd does) and run the
# worker on them: it must get past flag parsing and stop only for want of --compute-host.
mapfile -t vars < <(grep -E '^#XCATBM_[A-Z0-9_]+=' /etc/xcatbm/example.env | grep -v '_FILE=' |
	grep -v '^#XCATBM_COMPUTE_HOST=' | sed 's/^#//; s/="\(.*\)"$/=\1/')
out=$(env -i PATH=/usr/bin:/bin "${vars[@]}" /usr/bin/xcatbm-worker 2>&1)
rc=$?
if ((rc == 2)) && grep -q -- '--compute-host (or XCATBM_COMPUTE_HOST) is required' <<<"$out"; then
	pass "every example.env value parses (${#vars[@]} settings)"
else
	fail "example.env values do not parse (rc $rc): $out"
fi

# Man pages: found by man, rendered by groff without warnings.
for page in xcatbm.8 xcatbm-worker.8 opsaddbmnode.1 opsaddimage.1; do
	name=${page%.*} sect=${page##*.}
	equal "man -w $sect $name" "/usr/share/man/man$sect/$page.gz" "$(man -w "$sect" "$name" 2>/dev/null)"
	out=$(zcat "/usr/share/man/man$sect/$page.gz" | groff -man -Tutf8 -ww -z 2>&1)
	if [[ -z $out ]]; then pass "groff renders $page cleanly"; else fail "groff on $page: $out"; fi
done
check "xcatbm-worker(8) lists --transport-url" bash -c 'zcat /usr/share/man/man8/xcatbm-worker.8.gz | grep -q "transport\\\\-url"'

# The commands from their installed paths.
check "/usr/bin/xcatbm --help" /usr/bin/xcatbm --help
check "/usr/bin/xcatbm version" /usr/bin/xcatbm version
# (The help is read whole first: grep -q quitting early would break the pipe, and
# pipefail would turn that into a miss.)
xcatbmhelp=$(/usr/bin/xcatbm --help 2>&1)
for cmd in opsaddbmnode opsaddimage; do
	if grep -q "^  $cmd " <<<"$xcatbmhelp"; then
		out=$("/usr/bin/$cmd" -h 2>&1)
		rc=$?
		if ((rc == 0)) && grep -q "usage:\|^SYNOPSIS" <<<"$out"; then pass "/usr/bin/$cmd -h"; else fail "/usr/bin/$cmd -h (rc $rc): $out"; fi
	else
		skip "xcatbm has no $cmd command yet: only checked that /usr/bin/$cmd runs xcatbm"
		out=$("/usr/bin/$cmd" --help 2>&1)
		if grep -q "^usage: xcatbm" <<<"$out"; then pass "/usr/bin/$cmd runs xcatbm"; else fail "/usr/bin/$cmd runs xcatbm: $out"; fi
	fi
done

# Postscripts placed on the management node, the site's own script untouched.
for s in config_ops_bmnode deconfig_ops_bmnode; do
	check "postinst placed $PS/$s as shipped" cmp "/usr/share/xcatbm/postscripts/$s" "$PS/$s"
	equal "mode of $PS/$s" 755 "$(stat -c %a "$PS/$s")"
done
equal "the site's own postscript is untouched" "#!/bin/sh" "$(cat "$sentinel")"

# --- a worker as its unit runs it, against RabbitMQ, PostgreSQL and xcatbm-sim ---------
# systemd itself is not running here, so the worker is started the way the unit would
# start it: the unit's User, Group, UMask, EnvironmentFile and ExecStart, read from the
# installed unit. A spawn cast captured from nova is published to compute.HOST and must
# boot a simulated node, finish its job in the database and be announced by nova's
# versioned notification instance.create.end.
e2e() {
	local host=pkgtest node=node01 osimage=rhels9.4-x86_64-install-compute
	local uuid=0b7a9b1c-3f3e-4c55-9d3a-00000000e2e1
	if [[ -z $simdeb ]]; then
		skip "no xcatbm-sim .deb built: no end-to-end spawn"
		return
	fi
	# Debian's python3-pika serves the system's python3, not one first on PATH.
	local py=/usr/bin/python3
	if ! "$py" -c 'import pika' 2>/dev/null; then
		echo "package-test: installing python3-pika to speak AMQP to the worker"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-pika >/dev/null 2>&1
	fi
	if ! "$py" -c 'import pika' 2>/dev/null; then
		skip "python3-pika not available: no end-to-end spawn"
		return
	fi
	if dpkg -i "$simdeb" >"$work/sim-install.log" 2>&1; then pass "dpkg -i xcatbm-sim"; else cat "$work/sim-install.log"; fail "dpkg -i xcatbm-sim"; return; fi
	check "installed: /usr/bin/xcatbm-sim" test -x /usr/bin/xcatbm-sim
	echo "note: systemd is not running here; the worker is started as its unit would start it"

	# Free ports for the simulator and the worker's /readyz.
	read -r simport listenport < <("$py" -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')

	# The simulated management node mn1, run as xcatbm so the worker can read its
	# client credentials.
	chmod 0711 "$work"
	install -d -o xcatbm -g xcatbm -m 0700 "$work/xcat"
	cat >"$work/cluster.yaml" <<-YAML
		site: {master: 10.0.0.1, domain: cluster}
		passwd:
		  ipmi: {username: ADMIN, password: admin}
		osimages:
		  $osimage:
		    {profile: compute, imagetype: linux, provmethod: install, osname: Linux, osvers: rhels9.4, osarch: x86_64}
		timeline: {poweringOn: 500ms, installing: 2s, postbooting: 500ms}
		latency: {fixed: 5ms}
		nodes:
		  - {name: node01, groups: [all, compute], attrs: {mgt: ipmi, bmc: 10.1.0.1, mac: "52:54:00:00:00:01", ip: 10.0.0.11, servicenode: mn1, xcatmaster: mn1}}
		  - {name: node02, groups: [all, compute], attrs: {mgt: ipmi, bmc: 10.1.0.2, mac: "52:54:00:00:00:02", ip: 10.0.0.12, servicenode: mn1, xcatmaster: mn1}}
	YAML
	chmod 0644 "$work/cluster.yaml"
	setpriv --reuid=xcatbm --regid=xcatbm --init-groups -- /usr/bin/xcatbm-sim --cluster "$work/cluster.yaml" \
		--listen "127.0.0.1:$simport" --xcat-cred-dir "$work/xcat" --install-dir /install >"$work/sim.log" 2>&1 &
	simpid=$!
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -s $work/xcat/client-cred.pem ]] && /usr/bin/xcatbm xcat --xcat-host "127.0.0.1:$simport" --xcat-cred-dir "$work/xcat" \
			nodels node01 >/dev/null 2>&1 && break
		sleep 0.1
	done
	check "xcatbm-sim answers the installed xcatbm CLI" /usr/bin/xcatbm xcat --xcat-host "127.0.0.1:$simport" --xcat-cred-dir "$work/xcat" nodels all

	# A database and a vhost of the test's own.
	if psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $pgdb" >"$work/psql.log" 2>&1; then made_db=1; fi
	check "PostgreSQL database $pgdb created" test -n "$made_db"
	if rabbitmqctl -q add_vhost "$vhost" >"$work/rmq.log" 2>&1 &&
		rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*' >>"$work/rmq.log" 2>&1; then made_vhost=1; fi
	check "RabbitMQ vhost $vhost created" test -n "$made_vhost"
	if [[ -z $made_db || -z $made_vhost ]]; then
		cat "$work/psql.log" "$work/rmq.log"
		return
	fi

	# /etc/xcatbm/HOST.env as an admin writes it from example.env: the transport URL (it
	# holds the broker password) in a secret file readable by group xcatbm only.
	envfile_admin=/etc/xcatbm/$host.env secret=/etc/xcatbm/secrets/$host-transport-url
	echo "rabbit://guest:guest@127.0.0.1:5672/$vhost" | install -m 0640 -o root -g xcatbm /dev/stdin "$secret"
	cp /etc/xcatbm/example.env "$envfile_admin"
	local setting
	for setting in "XCATBM_TRANSPORT_URL_FILE=$secret" \
		"XCATBM_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$pgdb?sslmode=disable" \
		"XCATBM_XCAT_HOST=127.0.0.1:$simport" "XCATBM_XCAT_CRED_DIR=$work/xcat" XCATBM_MGMT_NODE=mn1 \
		"XCATBM_LISTEN=127.0.0.1:$listenport" XCATBM_POLL_INTERVAL=300ms XCATBM_POWER_POLL_INTERVAL=300ms \
		XCATBM_LOG_FORMAT=json; do
		# Uncomment the setting where example.env shows it, else add it.
		if grep -q "^#${setting%%=*}=" "$envfile_admin"; then
			sed -i "s|^#${setting%%=*}=.*|$setting|" "$envfile_admin"
		else
			echo "$setting" >>"$envfile_admin"
		fi
	done
	chmod 0644 "$envfile_admin"
	equal "$envfile_admin sets 9 settings" 9 "$(grep -c '^XCATBM_' "$envfile_admin")"
	equal "mode and owner of the transport URL secret" "640 root:xcatbm" "$(stat -c '%a %U:%G' "$secret")"
	check "user xcatbm reads the secret" setpriv --reuid=xcatbm --regid=xcatbm --init-groups -- test -r "$secret"
	check "other users cannot read the secret" setpriv --reuid=nobody --regid=nogroup --clear-groups -- test ! -r "$secret"

	# The instance unit, verified by systemd's own tool with its EnvironmentFile in place.
	if command -v systemd-analyze >/dev/null; then
		out=$(systemd-analyze verify "xcatbm-worker@$host.service" 2>&1)
		rc=$?
		if ((rc == 0)) && [[ -z $out ]]; then pass "systemd-analyze verify xcatbm-worker@$host.service"; else fail "systemd-analyze verify xcatbm-worker@$host.service (rc $rc): $out"; fi
	fi

	# Start the worker from the unit's own settings, with %i = HOST.
	local user group umask envfile exec
	user=$(sed -n 's/^User=//p' "$unit") group=$(sed -n 's/^Group=//p' "$unit") umask=$(sed -n 's/^UMask=//p' "$unit")
	envfile=$(sed -n 's/^EnvironmentFile=//p' "$unit") exec=$(sed -n 's/^ExecStart=//p' "$unit")
	envfile=${envfile//%i/$host} exec=${exec//%i/$host}
	equal "the unit's EnvironmentFile is the admin's file" "$envfile_admin" "$envfile"
	local -a vars cmd
	mapfile -t vars < <(grep -E '^[A-Z_][A-Z0-9_]*=' "$envfile" | sed 's/="\(.*\)"$/=\1/')
	read -ra cmd <<<"$exec"
	echo "starting: env -i <${#vars[@]} settings of $envfile> setpriv --reuid=$user --regid=$group ${cmd[*]}"
	(umask "${umask:-0077}" && exec env -i PATH=/usr/bin:/bin "${vars[@]}" \
		setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs -- "${cmd[@]}") >"$work/worker.log" 2>&1 &
	workerpid=$!
	local ready=
	for ((i = 0; i < 300; i++)); do
		if curl -fsS "http://127.0.0.1:$listenport/readyz" >/dev/null 2>&1; then ready=1 && break; fi
		kill -0 "$workerpid" 2>/dev/null || break
		sleep 0.1
	done
	if [[ -n $ready ]]; then pass "the worker's /readyz answers"; else fail "the worker's /readyz answers"; tail -20 "$work/worker.log"; return; fi
	equal "the worker runs as user xcatbm" xcatbm "$(ps -o user= -p "$workerpid" | tr -d ' ')"
	check "the worker read the transport URL from its secret file (it consumes compute.$host)" \
		bash -c 'rabbitmqctl -q list_queues -p "$1" name | grep -qx "compute.$2"' _ "$vhost" "$host"

	# The spawn, as nova casts it; then nova's versioned notification that it ended.
	cat >"$work/spawn.py" <<'PY'
import json, sys, time, uuid as uuidlib
import pika
vhost, host, node, inst, image = sys.argv[1:]
vec = json.load(open("messages/novacast/vectors/cast-build_and_run_instance.json"))
env = json.loads(vec["body"])
msg = json.loads(env["oslo.message"])
args = msg["args"]
data = args["instance"]["nova_object.data"]
args["node"] = data["node"] = node
data["uuid"] = inst
data["hostname"] = "tenant-" + node
args["image"]["properties"] = {"xcat_image_name": image}
msg["_unique_id"] = uuidlib.uuid4().hex
env["oslo.message"] = json.dumps(msg)
conn = pika.BlockingConnection(pika.URLParameters(
    "amqp://guest:guest@127.0.0.1:5672/" + vhost))
ch = conn.channel()
q = ch.queue_declare("", exclusive=True).method.queue
ch.queue_bind(q, "nova", "versioned_notifications.*")
p = vec["properties"]
ch.basic_publish("nova", "compute." + host, json.dumps(env), pika.BasicProperties(
    content_type=p["content_type"], content_encoding=p["content_encoding"],
    delivery_mode=p["delivery_mode"], priority=p["priority"]))
print("published build_and_run_instance for", inst, "on", node)
deadline = time.time() + 60
while time.time() < deadline:
    m, _, body = ch.basic_get(q, auto_ack=True)
    if m is None:
        conn.sleep(0.2)
        continue
    n = json.loads(json.loads(body)["oslo.message"])
    payload = n.get("payload", {}).get("nova_object.data", {})
    print("notification", m.routing_key, n.get("event_type"), payload.get("uuid"))
    if n.get("event_type") == "instance.create.end" and payload.get("uuid") == inst:
        sys.exit(0)
sys.exit("no instance.create.end for " + inst + " within 60s")
PY
	if "$py" "$work/spawn.py" "$vhost" "$host" "$node" "$uuid" "$osimage" >"$work/spawn.log" 2>&1; then
		pass "instance.create.end published on $vhost after the spawn cast"
	else
		fail "instance.create.end published on $vhost after the spawn cast"
		cat "$work/spawn.log"
		tail -20 "$work/worker.log"
	fi
	equal "xCAT status of $node" "$node: booted" \
		"$(/usr/bin/xcatbm xcat --xcat-host "127.0.0.1:$simport" --xcat-cred-dir "$work/xcat" nodels "$node" nodelist.status 2>&1)"
	equal "the spawn job in PostgreSQL" "spawn|$node|done|$host" \
		"$(psql -h 127.0.0.1 -U postgres -d "$pgdb" -tAc "SELECT kind, node, state, compute_host FROM jobs WHERE instance_uuid = '$uuid'" 2>&1)"
	check "the worker logged no error" bash -c '! grep -q "\"level\":\"error\"" "$1"' _ "$work/worker.log"

	stop_e2e
	check "worker and simulator stopped" bash -c '! kill -0 "$1" 2>/dev/null && ! kill -0 "$2" 2>/dev/null' _ "$workerpid" "$simpid"
	check "database $pgdb dropped" bash -c '! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '"'$pgdb'"'" | grep -q 1'
	check "vhost $vhost deleted" bash -c '! rabbitmqctl -q list_vhosts name | grep -qx "$1"' _ "$vhost"
	check "the admin's $envfile_admin and secret removed" test ! -e "$envfile_admin" -a ! -e "$secret"
	if dpkg --purge xcatbm-sim >"$work/sim-purge.log" 2>&1; then pass "dpkg --purge xcatbm-sim"; else cat "$work/sim-purge.log"; fail "dpkg --purge xcatbm-sim"; fi
	check "purged: /usr/bin/xcatbm-sim" test ! -e /usr/bin/xcatbm-sim
}
e2e

# --- the .rpm's scriptlets, run against the installed files with rpm's $1 -------------
# (rpm cannot install here: Debian has no rpm database of the system's packages.)
check "rpm %pre on upgrade (\$1 = 2) with the user present" sh "$work/rpm.PREIN" 2
check "rpm %preun on upgrade (\$1 = 1)" sh "$work/rpm.PREUN" 1
check "rpm %preun on upgrade keeps the placed postscripts" test -e "$PS/config_ops_bmnode"
check "rpm %preun on erase (\$1 = 0)" sh "$work/rpm.PREUN" 0
check "rpm %preun on erase takes back the placed postscripts" \
	test ! -e "$PS/config_ops_bmnode" -a ! -e "$PS/deconfig_ops_bmnode" -a -e "$sentinel"
check "rpm %postun on erase (\$1 = 0)" sh "$work/rpm.POSTUN" 0
check "rpm %postun on erase keeps the user (rpm has no purge)" getent passwd xcatbm
check "rpm %post on install (\$1 = 1)" sh "$work/rpm.POSTIN" 1
check "rpm %post placed the postscripts" cmp /usr/share/xcatbm/postscripts/config_ops_bmnode "$PS/config_ops_bmnode"

# --- upgrade (the same package again: postinst configure <old-version>) -----------------
[[ -d $wants ]] || made_wants=1
mkdir -p "$wants" && ln -s "$unit" "$link" # an instance the admin enabled
if dpkg -i "$deb" >"$work/upgrade.log" 2>&1; then pass "dpkg -i again (upgrade)"; else cat "$work/upgrade.log"; fail "dpkg -i again (upgrade)"; fi
check "upgrade keeps the user" getent passwd xcatbm
check "upgrade keeps the postscripts" cmp /usr/share/xcatbm/postscripts/config_ops_bmnode "$PS/config_ops_bmnode"
check "upgrade keeps the enabled instance" test -L "$link"

# --- remove and purge -----------------------------------------------------------------
echo "# changed by the site" >>"$PS/deconfig_ops_bmnode" # the admin's edit must survive
if dpkg --remove xcatbm >"$work/remove.log" 2>&1; then pass "dpkg --remove"; else cat "$work/remove.log"; fail "dpkg --remove"; fi
check "remove keeps the user until purge" getent passwd xcatbm
check "remove keeps /etc/xcatbm/example.env (a conffile) until purge" test -e /etc/xcatbm/example.env
if dpkg --purge xcatbm >"$work/purge.log" 2>&1; then pass "dpkg --purge"; else cat "$work/purge.log"; fail "dpkg --purge"; fi
check "dpkg forgot xcatbm" bash -c '! dpkg -s xcatbm'
for f in $files $dirs; do
	check "purged: $f" test ! -e "$f" -a ! -L "$f"
done
check "purge removed the tenant data directory /install/xcatbm" test ! -e /install/xcatbm
check "purge removed user xcatbm" bash -c '! getent passwd xcatbm'
check "purge removed group xcatbm" bash -c '! getent group xcatbm'
check "purge removed the enabled instance's link" test ! -L "$link"
check "removal took back config_ops_bmnode (as shipped)" test ! -e "$PS/config_ops_bmnode"
check "removal left deconfig_ops_bmnode (changed by the site)" grep -q "changed by the site" "$PS/deconfig_ops_bmnode"
equal "the site's own postscript is untouched" "#!/bin/sh" "$(cat "$sentinel")"
rm -f "$PS/deconfig_ops_bmnode"
equal "nothing else in $PS changed" "$before" "$(ls -la --time-style=+ "$PS" | grep -v site_local_script | sha256sum)"

exit $((failed > 0))
