#!/usr/bin/env bash
# Long fuzzing runs (TESTPLAN row 18): every FuzzXxx target of every package, one after the
# other, for DURATION each. Nightly: scripts/fuzz-long.sh 10m; pre-release: scripts/fuzz-long.sh 1h.
# A crasher is written by go test under the package's testdata/fuzz/FuzzXxx/: commit it, so
# that every later `go test` replays it. Exits non-zero if any target failed.
set -uo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10m}
pattern=${FUZZ_PKGS:-./...}
failed=()
total=0
start=$(date +%s)
echo "== fuzz every target for $duration (packages: $pattern)"
for pkg in $(go list $pattern); do
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		total=$((total + 1))
		echo "-- $pkg $target"
		if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$duration" "$pkg" 2>&1 | tail -n 4; then
			failed+=("$pkg $target")
		fi
	done
done
echo "== $total targets in $(( $(date +%s) - start )) s; failed: ${#failed[@]}"
for f in "${failed[@]}"; do echo "FAILED: $f"; done
[ ${#failed[@]} -eq 0 ]
