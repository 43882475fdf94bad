#!/bin/sh
# xcatbm's disk cleaning between tenants, run by xCAT's genesis environment
# (nodeset <node> runimage=http://<master>/<installdir>/xcatbm/clean-<mode>.tgz):
# genesis fetches the image, unpacks it and runs ./runme.sh from its folder.
#
# ./mode says how much to erase:
#   metadata  every disk's filesystem, RAID and partition-table signatures (wipefs),
#             and its first and last MiB (the GPT and its backup), as Ironic's
#             erase_devices_metadata does;
#   full      every disk whole (blkdiscard where the device supports it, else
#             zeros written over it).
#
# Success powers the node off: the worker waits for that. A failure tells xCAT the
# node failed (installstatus failed through site.xcatiport, as genesis scripts do)
# and leaves the node on for an administrator to look at.
#
# Environment (genesis sets MASTER; the rest is for tests): XCATIPORT (3002),
# XCATBM_CLEAN_POWEROFF (the command that powers off, default "poweroff -f").
set -u

here=$(dirname "$0")
mode=$(cat "$here/mode" 2>/dev/null || echo metadata)

log() { echo "xcatbm-clean: $*" >&2; }

failed() {
	log "failed: $*"
	if [ -n "${MASTER:-}" ] && [ -x /bin/updateflag.awk ]; then
		/bin/updateflag.awk "$MASTER" "${XCATIPORT:-3002}" "installstatus failed" || log "could not report the failure to $MASTER"
	fi
	exit 1
}

case $mode in
metadata | full) ;;
*) failed "unknown mode '$mode'" ;;
esac

# Whole disks, writable, not removable media in use: lsblk's disk type.
disks=$(lsblk -dnpo NAME,TYPE,RO 2>/dev/null | awk '$2 == "disk" && $3 == "0" { print $1 }') ||
	failed "cannot list the disks"
[ -n "$disks" ] || log "no disk found; nothing to erase"

zero() { # device offset-in-MiB count-in-MiB
	dd if=/dev/zero of="$1" bs=1048576 seek="$2" count="$3" conv=fsync 2>/dev/null
}

for dev in $disks; do
	size=$(blockdev --getsize64 "$dev") || failed "cannot read the size of $dev"
	mib=$((size / 1048576))
	case $mode in
	metadata)
		wipefs -af "$dev" >/dev/null || failed "wipefs $dev"
		zero "$dev" 0 1 || failed "zero the start of $dev"
		if [ "$mib" -gt 1 ]; then
			zero "$dev" $((mib - 1)) 1 || failed "zero the end of $dev"
		fi
		;;
	full)
		if ! blkdiscard -f "$dev" 2>/dev/null; then
			# dd stops with "no space left" at the end of the device: that is done.
			dd if=/dev/zero of="$dev" bs=1048576 conv=fsync 2>/dev/null
			[ "$(wipefs -n "$dev" 2>/dev/null | wc -l)" -le 1 ] || failed "erase $dev"
		fi
		;;
	esac
	log "$dev erased ($mode)"
done
sync
${XCATBM_CLEAN_POWEROFF:-poweroff -f}
