#!/usr/bin/env bash
# TESTPLAN row 2: power loss with unsynced writes dropped (root, privileged CI).
#
# For each ext4 configuration (mount option commit=1, 5, 1000) and RUNS times: a fresh ext4
# on a loop device under device-mapper, a store, a child writing to it that prints every
# acknowledged (committed) write, then at a random moment the table switches to dm-flakey
# drop_writes (the disk silently loses everything written from then on: a power cut for
# the data that was not yet on disk), the child is killed, the file system unmounted and
# mounted again on a healthy table, and the store is opened, verified and compared with
# the log of writes acknowledged before the switch.
#
# Usage: sudo scripts/dm-flakey.sh            (RUNS=200 CONFIGS="1 5 1000" by default)
#        sudo RUNS=5 scripts/dm-flakey.sh      (a quick look)
#        sudo FLAKEY_DRY=1 RUNS=3 scripts/dm-flakey.sh   (no device-mapper: the same steps
#        on the bare loop device with kill -9 only, to check the script itself)
# Prints passes per configuration, the database size and the time taken; exits 1 on any
# failure. Without root, or on a kernel without device-mapper or its flakey target, it
# says what is missing and exits 0.
set -euo pipefail

RUNS=${RUNS:-200}
CONFIGS=${CONFIGS:-"1 5 1000"}
SIZE_MB=${SIZE_MB:-128}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

skip() {
	echo "dm-flakey: SKIPPED: $*"
	exit 0
}

[ "$(id -u)" = 0 ] || skip "needs root (device-mapper, loop devices, mount)"
for t in dmsetup losetup mkfs.ext4 blockdev mount umount go; do
	command -v "$t" >/dev/null || skip "command $t not found (apt-get install -y dmsetup e2fsprogs util-linux)"
done
DRY=${FLAKEY_DRY:-}
missing=""
if ! dmsetup targets >/dev/null 2>&1; then
	command -v modprobe >/dev/null && modprobe dm-mod 2>/dev/null || true
fi
if ! dmsetup targets >/dev/null 2>&1; then
	missing="the kernel has no device-mapper driver (no /dev/mapper/control; needs CONFIG_BLK_DEV_DM and CONFIG_DM_FLAKEY, kernel $(uname -r))"
else
	if ! dmsetup targets | grep -q '^flakey'; then
		command -v modprobe >/dev/null && modprobe dm-flakey 2>/dev/null || true
	fi
	if ! dmsetup targets | grep -q '^flakey'; then
		missing="device-mapper has no flakey target (needs CONFIG_DM_FLAKEY or the dm-flakey module, kernel $(uname -r)); targets: $(dmsetup targets | awk '{print $1}' | tr '\n' ' ')"
	fi
fi
if [ -n "$missing" ]; then
	[ -n "$DRY" ] || skip "$missing"
	echo "dm-flakey: $missing; FLAKEY_DRY: running on the bare loop device with kill -9 only (no dropped writes)"
fi

WORK=$(mktemp -d /tmp/meshsync-flakey.XXXXXX)
MNT=$WORK/mnt
DEV=meshsync-flakey-$$
LOOP=""
mkdir -p "$MNT"
cleanup() {
	set +e
	[ -n "${CHILD:-}" ] && kill -9 "$CHILD" 2>/dev/null && wait "$CHILD" 2>/dev/null
	mountpoint -q "$MNT" && umount "$MNT"
	[ -n "$missing" ] || dmsetup remove "$DEV" 2>/dev/null
	[ -n "$LOOP" ] && losetup -d "$LOOP"
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "building the store test binary"
(cd "$ROOT" && go test -c -o "$WORK/storetest" ./store/)
BIN=$WORK/storetest

truncate -s "${SIZE_MB}M" "$WORK/disk.img"
LOOP=$(losetup -f --show "$WORK/disk.img")
SECTORS=$(blockdev --getsz "$LOOP")
LINEAR="0 $SECTORS linear $LOOP 0"
# up 0 s, down 3600 s: drop every write for the rest of the run
DROP="0 $SECTORS flakey $LOOP 0 0 3600 1 drop_writes"

table() { # table TABLE: switch the device to TABLE
	[ -z "$missing" ] || return 0
	dmsetup suspend --nolockfs "$DEV"
	dmsetup load "$DEV" --table "$1"
	dmsetup resume "$DEV"
}

SEED=${MESHSYNC_SEED:-$RANDOM}
RANDOM=$SEED
echo "seed=$SEED runs=$RUNS configs=$CONFIGS (replay: MESHSYNC_SEED=$SEED)"
failed=0
if [ -n "$missing" ]; then
	BLK=$LOOP
else
	dmsetup create "$DEV" --table "$LINEAR"
	BLK=/dev/mapper/$DEV
fi
for commit in $CONFIGS; do
	pass=0
	start=$(date +%s)
	size=0
	for run in $(seq 1 "$RUNS"); do
		table "$LINEAR"
		for try in 1 2 3; do # a device just attached can be busy for a moment
			mkfs.ext4 -q -F "$BLK" && break
			[ "$try" = 3 ] && exit 1
			sleep 1
		done
		mount -o "commit=$commit" "$BLK" "$MNT"
		MESHSYNC_FAULT_INIT=$MNT/s "$BIN"
		sync
		MESHSYNC_CRASH_CHILD=$MNT/s "$BIN" -test.run='^$' >"$WORK/acked" 2>"$WORK/child.err" &
		CHILD=$!
		sleep "$(printf '0.%03d' $((200 + RANDOM % 800)))"
		# Writes acknowledged so far were fsynced: they must survive what comes next.
		cp "$WORK/acked" "$WORK/acked.before"
		table "$DROP"
		sleep 0.2
		kill -9 "$CHILD" 2>/dev/null || true
		wait "$CHILD" 2>/dev/null || true
		CHILD=""
		umount "$MNT"
		table "$LINEAR"
		mount -o "commit=$commit" "$BLK" "$MNT"
		size=$(stat -c %s "$MNT/s/meshsync.db")
		if out=$(MESHSYNC_FAULT_CHECK=$MNT/s MESHSYNC_FAULT_ACKED=$WORK/acked.before "$BIN" 2>&1); then
			pass=$((pass + 1))
		else
			failed=$((failed + 1))
			echo "commit=$commit run $run: FAIL: $out"
			cp "$MNT/s/meshsync.db" "$ROOT/flakey-fail-commit$commit-run$run.db" || true
		fi
		umount "$MNT"
	done
	echo "ext4 commit=$commit: $pass/$RUNS passed, last DB $size bytes, $(($(date +%s) - start)) s"
done
[ -z "$missing" ] || echo "dm-flakey: DRY RUN ONLY: no writes were dropped ($missing)"
[ "$failed" = 0 ] || {
	echo "dm-flakey: $failed runs failed (databases kept as flakey-fail-*.db)"
	exit 1
}
echo "dm-flakey: all runs passed"
