#!/usr/bin/env bash
# Nightly figures for meshsync (not per PR: the 1M bench alone takes minutes on 2 cores).
#
#   scripts/nightly.sh [OUTDIR]
#
# Runs `meshsync bench` at 1,000,000 records with a CPU, block and mutex profile of each
# phase, and writes OUTDIR/bench-1m.json (one JSON object per row), OUTDIR/bench-1m.txt
# (the progress lines) and OUTDIR/profiles/PHASE.{cpu,block,mutex}. It prints the rows
# issue 18 sets goals for and exits non-zero only when the bench itself fails: the
# figures are for a person to read beside docs/perf.md, not a gate on a shared machine.
#
# RECORDS=N overrides the record count; BENCH_ARGS adds flags.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-nightly-$(date -u +%Y%m%dT%H%M%SZ)}
records=${RECORDS:-1000000}
mkdir -p "$out/profiles"
bin="$out/meshsync"
go build -o "$bin" ./cmd/meshsync
# shellcheck disable=SC2086
"$bin" --json bench --records "$records" --idle 5s --writes 1000 \
	--profile-dir "$out/profiles" ${BENCH_ARGS:-} >"$out/bench-1m.json" 2>"$out/bench-1m.txt"
echo "== rows with a goal in issue 18 (records=$records)"
grep -E '"row":"(initial_sync|reconnect|push|rest)"' "$out/bench-1m.json"
echo "== profiles: go tool pprof -top $out/profiles/initial_sync.cpu"
