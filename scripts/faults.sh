#!/usr/bin/env bash
# The long crash and fault runs of TESTPLAN rows 1-3 (and row 10), one command.
#
# Usage: scripts/faults.sh            (nightly sizes: 1,000 kills each, full strace sweep)
#        KILLS=100 scripts/faults.sh  (smaller)
#        MESHSYNC_SEED=N scripts/faults.sh  replays the kill schedules of a run
# Needs strace for row 3 (apt-get install -y strace) and root for the disk-full tmpfs,
# the unmounted-path case and dm-flakey (row 2, which also needs a kernel with dm-flakey;
# without it the script says so and goes on). Prints every test's figures; exits non-zero
# when any run fails.
set -uo pipefail
cd "$(dirname "$0")/.."
KILLS=${KILLS:-1000}
fail=0
step() {
	echo "== $*"
	"$@" || { echo "== FAILED: $*"; fail=1; }
}
# Row 1: SIGKILL during local writes (store), then the daemon during writes, sync, apply.
step env MESHSYNC_KILLS="$KILLS" go test -run 'TestKillDuringWrites$' -v -timeout 3h ./store/
step env MESHSYNC_KILLS="$KILLS" go test -race -run 'TestCrashDaemonDuringSync$' -v -timeout 12h ./cmd/meshsync/
# Row 3: every call of pwrite64, fdatasync, fsync, ftruncate, fallocate, mmap failed in turn.
step env MESHSYNC_FAULTS=full go test -race -run 'TestFaultNthCall$' -v -timeout 2h ./store/
# Disk full on a real tmpfs; missing, emptied and unmounted stores (row 10).
step go test -race -run 'DiskFull|TestFaultMissingStore' -v ./store/ ./cmd/meshsync/
# Row 2: power loss under dm-flakey.
step scripts/dm-flakey.sh
exit $fail
