#!/usr/bin/env bash
# Multi-host tests of how meshsync devices reach each other (TESTPLAN rows 20 and 21).
# Each daemon is its own process in its own network namespace, driven through the CLI.
#
#   lan   two paired devices on one LAN (a veth pair) find each other by mDNS alone: the
#         only addresses they remember are stale loopback ones from pairing, and they run
#         --lan-only (no DHT, no relay); a write crosses.
#   cut   on that LAN, a drop-all nftables rule turns the peer Offline; deleting it
#         returns the peer to UpToDate without a restart, and a write made during the
#         cut arrives.
#   nat   two homes behind nftables masquerade and a "public" namespace running
#         `meshsync relay` (relay and DHT bootstrap node): the devices find each other
#         through the DHT, sync through the relay, and the script reports whether hole
#         punching upgraded the path. NAT=preserve (default masquerade) or NAT=random
#         (masquerade random,fully-random); RUNS runs each (default 3).
#
# Usage (root; skips cleanly otherwise, or when ip or nft is missing):
#   scripts/netns-reach.sh [lan|cut|nat|all]      (default all)
#   RUNS=5 NAT=random scripts/netns-reach.sh nat
# Exit status: 0 when every scenario passed (hole punching failing is reported, not a
# failure: under NAT=random it is expected); 1 otherwise.
set -uo pipefail

skip() { echo "SKIP: $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
for t in ip nft go jq; do command -v "$t" >/dev/null || skip "$t is missing"; done

cd "$(dirname "$0")/.."
P="ms$$"                      # namespace prefix: ours only
T=$(mktemp -d /tmp/meshsync-netns.XXXXXX)
BIN="$T/meshsync"
PIDS=()
RUNS=${RUNS:-3}
NAT=${NAT:-preserve}
export MESHSYNC_PASSPHRASE="netns test passphrase"
unset MESHSYNC_DIR MESHSYNC_LISTEN MESHSYNC_BOOTSTRAP MESHSYNC_RELAY MESHSYNC_LAN_ONLY MESHSYNC_NO_MDNS

cleanup() {
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	sleep 0.5
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for ns in $(ip netns list | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$P-probe" 2>/dev/null || skip "cannot create network namespaces here"
ip netns del "$P-probe"

echo "== build"
go build -o "$BIN" ./cmd/meshsync || exit 1

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '%6ss  %s\n' "$(since "$START")" "$*"; }
START=$(now)

# ns NAME: a namespace with loopback up.
ns() { ip netns add "$P-$1" && ip -n "$P-$1" link set lo up; }
# nsx NAME CMD…: run CMD in namespace NAME.
nsx() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }

# spawn NS PIDFILE CMD…: start CMD in namespace NS in the background and record its own
# pid (`ip netns exec` forks, and a background job ignores SIGINT: signal the real pid).
spawn() {
	local n=$1 pf=$2; shift 2
	rm -f "$pf"
	nsx "$n" sh -c 'echo $$ >"$0"; exec "$@"' "$pf" "$@" &
	waitfile "$pf" && PIDS+=("$(cat "$pf")")
}

waitfile() { for _ in $(seq 300); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }

# daemon NS DIR FLAGS…: start a daemon of DIR in namespace NS.
daemon() {
	local n=$1 dir=$2; shift 2
	rm -f "$dir/meshsync.sock"
	spawn "$n" "$dir.pid" "$BIN" --dir "$dir" daemon --log-level debug "$@" >>"$dir.log" 2>&1
	waitfile "$dir/meshsync.sock" || { echo "daemon $dir did not start"; tail "$dir.log"; return 1; }
}
stop_all() {
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
	done
	PIDS=()
}

# pair DIR_A DIR_B: a mesh of two devices, paired over loopback in the root namespace
# (the addresses they remember are loopback ones, useless in the scenarios).
pair() {
	"$BIN" --dir "$1" init --name laptop >/dev/null || return 1
	"$BIN" --dir "$1" daemon --lan-only --no-mdns --listen /ip4/127.0.0.1/tcp/0 >"$1.pair.log" 2>&1 &
	local pid=$!
	waitfile "$1/meshsync.sock" || return 1
	local code
	code=$("$BIN" --dir "$1" --json pair --expires 5m | jq -r .code)
	"$BIN" --dir "$2" join "$code" --name phone --lan-only --no-mdns --listen /ip4/127.0.0.1/tcp/0 >/dev/null || return 1
	kill -TERM $pid; wait $pid
}

# status DIR: "<status> <relayed>" of the one other device, as DIR's daemon sees it.
status() { "$BIN" --dir "$1" --json status 2>/dev/null | jq -r '.devices[0] | "\(.status) \(.relayed)"'; }

# waitfor SECONDS CMD…: poll CMD every 0.2 s until it succeeds.
waitfor() {
	local end=$(( $(date +%s) + $1 )); shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -ge "$end" ] && return 1
		sleep 0.2
	done
}
has() { "$BIN" --dir "$1" get notes "$2"; }
is_status() { [ "$(status "$1" | cut -d' ' -f1)" = "$2" ]; }
is_direct() { [ "$(status "$1")" = "up-to-date false" ] || [ "$(status "$1")" = "conflict false" ]; }

FAIL=0
fail() { log "FAIL: $*"; FAIL=1; }

# The LAN: two namespaces on a veth pair.
lan_up() {
	ns l1 && ns l2
	ip link add "$P-a" type veth peer name "$P-b"
	ip link set "$P-a" netns "$P-l1"; ip link set "$P-b" netns "$P-l2"
	nsx l1 ip addr add 10.77.0.1/24 dev "$P-a"; nsx l1 ip link set "$P-a" up
	nsx l2 ip addr add 10.77.0.2/24 dev "$P-b"; nsx l2 ip link set "$P-b" up
}

scenario_lan() {
	echo "== lan: mDNS alone after the remembered addresses are gone"
	local A="$T/lan-a" B="$T/lan-b"
	pair "$A" "$B" || { fail "pairing"; return; }
	lan_up
	START=$(now)
	daemon l1 "$A" --lan-only --listen /ip4/10.77.0.1/tcp/4747 || { fail "daemon"; return; }
	daemon l2 "$B" --lan-only --listen /ip4/10.77.0.2/tcp/4747 || { fail "daemon"; return; }
	"$BIN" --dir "$A" put notes lan '{"via":"mdns"}' >/dev/null
	local t0; t0=$(now)
	if waitfor 60 has "$B" lan; then
		log "lan: write crossed by mDNS in $(since "$t0") s; B sees A: $(status "$B")"
	else
		fail "lan: no sync within 60 s"; tail -5 "$B.log"
	fi
	if [ "${1:-}" = cut ]; then scenario_cut "$A" "$B"; fi
	stop_all
	ip netns del "$P-l1"; ip netns del "$P-l2"
}

scenario_cut() {
	local A=$1 B=$2
	echo "== cut: drop-all in B's namespace, then heal"
	waitfor 30 is_status "$A" up-to-date || { fail "cut: not up-to-date before the cut"; return; }
	nsx l2 nft -f - <<-EOF
	table inet mscut {
		chain in { type filter hook input priority -10; policy drop; }
		chain out { type filter hook output priority -10; policy drop; }
	}
	EOF
	local t0; t0=$(now)
	log "cut"
	"$BIN" --dir "$A" put notes during-cut '{"written":"while cut"}' >/dev/null
	if waitfor 110 is_status "$A" offline; then
		log "cut: A sees B offline after $(since "$t0") s"
	else
		fail "cut: B not offline after 110 s (A sees: $(status "$A"))"
	fi
	nsx l2 nft delete table inet mscut
	t0=$(now)
	log "healed"
	if waitfor 120 has "$B" during-cut && waitfor 30 is_status "$A" up-to-date; then
		log "cut: back to up-to-date $(since "$t0") s after healing, the write made during the cut arrived"
	else
		fail "cut: not up-to-date 150 s after healing (A sees: $(status "$A"))"
	fi
}

# The internet: "pub" (7.0.0.0/24, addresses libp2p treats as public) with the relay on a
# bridge; two homes, each a router namespace (NAT) and a device namespace behind it.
nat_up() {
	local mode=$1
	ns pub
	nsx pub ip link add br0 type bridge; nsx pub ip link set br0 up
	nsx pub ip addr add 7.0.0.1/24 dev br0
	for i in 1 2; do
		ns "r$i"; ns "h$i"
		ip link add "$P-w$i" type veth peer name "$P-u$i"
		ip link set "$P-w$i" netns "$P-r$i"; ip link set "$P-u$i" netns "$P-pub"
		nsx pub ip link set "$P-u$i" master br0; nsx pub ip link set "$P-u$i" up
		nsx "r$i" ip addr add "7.0.0.1$i/24" dev "$P-w$i"; nsx "r$i" ip link set "$P-w$i" up
		ip link add "$P-l$i" type veth peer name "$P-d$i"
		ip link set "$P-l$i" netns "$P-r$i"; ip link set "$P-d$i" netns "$P-h$i"
		nsx "r$i" ip addr add "192.168.$i.1/24" dev "$P-l$i"; nsx "r$i" ip link set "$P-l$i" up
		nsx "h$i" ip addr add "192.168.$i.2/24" dev "$P-d$i"; nsx "h$i" ip link set "$P-d$i" up
		nsx "h$i" ip route add default via "192.168.$i.1"
		nsx "r$i" sysctl -qw net.ipv4.ip_forward=1
		local masq="masquerade"
		[ "$mode" = random ] && masq="masquerade random,fully-random"
		nsx "r$i" nft -f - <<-EOF
		table ip nat {
			chain mspost { type nat hook postrouting priority 100; oifname "$P-w$i" $masq; }
		}
		table inet fw {
			chain msfwd { type filter hook forward priority 0; policy drop;
				ct state established,related accept
				iifname "$P-l$i" accept
			}
		}
		EOF
	done
}

scenario_nat_once() {
	local mode=$1 run=$2
	local A="$T/nat-a" B="$T/nat-b"
	rm -rf "$A" "$B" "$A.log" "$B.log"
	cp -a "$T/pristine-a" "$A"; cp -a "$T/pristine-b" "$B"
	nat_up "$mode"
	START=$(now)
	spawn pub "$T/relay.pid" "$BIN" --dir "$T" relay --key "$T/relay.key" --listen /ip4/7.0.0.1/tcp/4001 --listen /ip4/7.0.0.1/udp/4001/quic-v1 >"$T/relay.out" 2>&1
	waitfor 10 grep -q '/p2p/' "$T/relay.out" || { fail "relay did not start"; cat "$T/relay.out"; return; }
	local RELAY; RELAY=$(grep '/tcp/4001/p2p/' "$T/relay.out" | head -1)
	local net=(--no-mdns --dht-mode client --bootstrap "$RELAY" --relay "$RELAY"
		--listen /ip4/0.0.0.0/tcp/4747,/ip4/0.0.0.0/udp/4747/quic-v1)
	daemon h1 "$A" "${net[@]}" || { fail "daemon"; return; }
	daemon h2 "$B" "${net[@]}" || { fail "daemon"; return; }
	"$BIN" --dir "$A" put notes "nat$run" '{"via":"dht and relay"}' >/dev/null
	local t0; t0=$(now)
	if waitfor 90 has "$B" "nat$run"; then
		local tsync; tsync=$(since "$t0")
		local path="relayed"
		if waitfor 20 is_direct "$A"; then path="direct after $(since "$t0") s"; fi
		log "nat $mode run $run: synced in $tsync s; path: $path"
		RESULTS+=("$mode $run ok $tsync $path")
		# A bulk write after the path settled still crosses (over the direct path, or
		# over the relay's roomy connection).
		"$BIN" --dir "$B" put notes "back$run" '{"from":"b"}' >/dev/null
		waitfor 60 has "$A" "back$run" || fail "nat $mode run $run: B's write did not reach A"
	else
		fail "nat $mode run $run: no sync within 90 s (A sees: $(status "$A"), B sees: $(status "$B"))"
		RESULTS+=("$mode $run failed")
		grep -iE "rendezvous|relay|sync" "$A.log" | tail -5
	fi
	stop_all
	for n in pub r1 r2 h1 h2; do ip netns del "$P-$n"; done
}

scenario_nat() {
	echo "== nat: two homes behind NAT ($NAT), relay and DHT bootstrap in public, $RUNS runs"
	pair "$T/pristine-a" "$T/pristine-b" || { fail "pairing"; return; }
	RESULTS=()
	for run in $(seq "$RUNS"); do scenario_nat_once "$NAT" "$run"; done
	local ok direct
	ok=$(printf '%s\n' "${RESULTS[@]}" | grep -c ' ok ')
	direct=$(printf '%s\n' "${RESULTS[@]}" | grep -c 'direct after')
	echo "nat $NAT: synced $ok/$RUNS, hole punching upgraded to direct $direct/$RUNS"
}

case "${1:-all}" in
lan) scenario_lan ;;
cut) scenario_lan cut ;;
nat) scenario_nat ;;
all) scenario_lan cut; scenario_nat ;;
*) echo "usage: $0 [lan|cut|nat|all]"; exit 2 ;;
esac
[ $FAIL = 0 ] && echo "PASS" || echo "FAIL"
exit $FAIL
