#!/usr/bin/env bash
# Multi-host tests of how meshsync devices reach each other (TESTPLAN rows 20 and 21, issue 8).
# Each daemon is its own process in its own network namespace, driven through the CLI.
#
# Scenarios (FIRST ARGUMENT; several may be given):
#   lan         two paired devices on one LAN (a veth pair) find each other by mDNS alone: the
#               only addresses they remember are stale loopback ones from pairing, and they run
#               --lan-only (no DHT, no relay); a write crosses.
#   cut         lan, then a drop-all nftables rule turns the peer Offline; deleting it returns
#               the peer to UpToDate without a restart, and a write made during the cut arrives.
#   badlink     two devices on two subnets joined by a router namespace: DELAY_MS (100) ms of
#               delay EACH WAY (so the round trip is 2×DELAY_MS longer) and LOSS (2) % loss each
#               way; A holds RECORDS (10000) records written before B starts, and the time until
#               B holds all of them is reported. Delay: netem on the router's interfaces where
#               the kernel has it, otherwise scripts/delayfwd in the router behind an nft
#               redirect (TCP only: meshsync listens on TCP alone here, UDP is dropped). Loss:
#               `numgen random mod 100 < LOSS drop` on each device's input hook.
#   nat         two homes behind nftables masquerade (port-preserving), each router dropping
#               unsolicited input like a home router, and a "public" namespace running
#               `meshsync relay` (relay and DHT bootstrap): the devices find each other through
#               the DHT, sync both ways, and the run reports whether DCUtR hole punching made the
#               path direct and how long it took. RUNS (1) runs.
#   nat-dht     nat with no relay given: the devices find the relay through the DHT
#               (autorelay's peer source), so no address but the bootstrap is typed.
#   nat-random  the same behind `masquerade random,fully-random`: hole punching cannot work,
#               so the devices sync through the (roomy, own) relay and status shows "relayed";
#               one device retries hole punching on its backoff and status and --json say so,
#               with the attempts and the last error (the other: "the device tries direct");
#               then, with a relay capped like a public one (2 min, 128 KiB), status still shows
#               "relayed" and no record crosses the limited connection. RUNS (1) runs.
#   nat-order   issue 19's race, behind port-preserving NATs, with devices that already know
#               each other's relayed address: the device started second dials the first
#               through the relay at once, before it knows a public address, so libp2p's one
#               hole punch fails; for A first, B first and both at once (a fresh network each
#               time), the path must turn direct on both sides within ORDER_WAIT (30) s.
#   nat-public  the same race through a relay capped like a public one (2 min, 128 KiB) with
#               RECORDS (10000) records on A: B must hold them all within PUBLIC_WAIT (180) s.
#   relay-restart  behind random NATs (relayed only), the relay restarts under two synced
#               devices: a write crosses within RESTART_WAIT (90) s of its return.
#   replica     three devices on one LAN, one a blind replica (`meshsync pair --replica`,
#               `join`, `meshsync replica`): B goes away, A writes canary records and goes away,
#               B comes back and gets them from the replica; the replica's files hold no canary.
#   faults      (long; TESTPLAN row 20) three devices on one bridged LAN; for each loss level in
#               LOSSES ("0 5 30") %: writes on every device while one device after another is
#               partitioned for PERIOD (30) s and healed for PERIOD s, for DURATION (600) s; then
#               the time to converge after the last heal and the divergence (records that
#               differ between devices: must be 0), bytes sent, failed sessions, the slowest
#               local write (a write that waits more than 30 s for the network fails the
#               run). CONVERGE_WAIT (300) s for convergence. No delay here (see badlink).
#   pr          the CI set: lan+cut, badlink, nat, nat-dht, nat-random, nat-order, nat-public,
#               relay-restart, replica (about 6-11 minutes).
#   all         pr and faults.
#
# Usage (root; skips cleanly otherwise, or when ip, nft, jq or go is missing):
#   scripts/netns-reach.sh pr                       # what scripts/ci-netns.sh runs
#   RUNS=5 scripts/netns-reach.sh nat nat-random    # hole-punching success rate
#   RECORDS=10000 DELAY_MS=100 LOSS=2 scripts/netns-reach.sh badlink
#   scripts/netns-reach.sh faults                   # 3 × 10 min, prints the row 20 figures
#   LOSSES=5 DURATION=120 scripts/netns-reach.sh faults   # a short run of one level
# Environment: BUDGET (seconds; a scenario that would start after it is skipped and counts
# as a failure), KEEP=1 (keep the work directory with every log), BIN (a prebuilt meshsync).
#
# Exit status: 0 when every promise held; 1 when one broke (no convergence, a lost write, a
# wrong state, a canary on the replica). Hole punching failing is reported, not a failure,
# except in nat-order and nat-public, where the NATs allow it (issue 19).
# Every run uses its own namespace prefix (ms<pid>-); namespaces left by a run that died
# are removed at the next start, and this run's namespaces, processes and nftables tables
# (all inside its namespaces) go on any exit.
set -uo pipefail

skip() { echo "SKIP: $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
for t in ip nft go jq; do command -v "$t" >/dev/null || skip "$t is missing"; done

cd "$(dirname "$0")/.."
P="ms$$"                      # namespace prefix: ours only
T=$(mktemp -d /tmp/meshsync-netns.XXXXXX)
PIDS=()
RUNS=${RUNS:-1}
BUDGET=${BUDGET:-0}
export MESHSYNC_PASSPHRASE="netns test passphrase"
unset MESHSYNC_DIR MESHSYNC_LISTEN MESHSYNC_BOOTSTRAP MESHSYNC_RELAY MESHSYNC_LAN_ONLY MESHSYNC_NO_MDNS MESHSYNC_DHT_MODE

# reap_stale removes namespaces (and their processes) of earlier runs whose script is gone.
reap_stale() {
	local ns pid
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^ms[0-9]+-'); do
		pid=${ns%%-*}; pid=${pid#ms}
		[ "$pid" = $$ ] && continue
		kill -0 "$pid" 2>/dev/null && continue
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
		ip netns del "$ns" 2>/dev/null && echo "removed a stale namespace $ns"
	done
	for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^ms[0-9]+-'); do
		pid=${l%%-*}; pid=${pid#ms}
		kill -0 "$pid" 2>/dev/null || ip link del "$l" 2>/dev/null
	done
}

# del_ns NAME…: kill what runs in the namespaces and delete them (their nft tables and
# veths go with them).
del_ns() {
	local n
	for n in "$@"; do
		ip netns pids "$P-$n" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
		ip netns del "$P-$n" 2>/dev/null
	done
}

RESULTS="$T/results"
: >"$RESULTS"
TABLE_SHOWN=0
show_table() {
	[ "$TABLE_SHOWN" = 1 ] && return
	TABLE_SHOWN=1
	echo
	echo "== figures"
	printf '%-12s %-4s %-6s %s\n' scenario run result figures
	while IFS='|' read -r s r res fig; do printf '%-12s %-4s %-6s %s\n' "$s" "$r" "$res" "$fig"; done <"$RESULTS"
}

cleanup() {
	trap - EXIT INT TERM
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	sleep 0.5
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P-"); do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
		ip netns del "$ns"
	done
	show_table
	if [ "${KEEP:-0}" = 1 ]; then echo "logs kept in $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'echo "interrupted"; FAIL=1; exit 130' INT TERM

reap_stale
ip netns add "$P-probe" 2>/dev/null || skip "cannot create network namespaces here"
ip netns del "$P-probe"

echo "== build"
if [ -n "${BIN:-}" ]; then
	[ -x "$BIN" ] || { echo "BIN=$BIN is not executable"; exit 1; }
else
	BIN="$T/meshsync"
	go build -o "$BIN" ./cmd/meshsync || exit 1
fi
FWD="$T/delayfwd"; FILL="$T/netns-fill"
go build -o "$FWD" ./scripts/delayfwd || exit 1
go build -o "$FILL" ./scripts/netns-fill || exit 1

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
SUITE_START=$(now)
START=$SUITE_START
log() { printf '%6ss  %s\n' "$(since "$START")" "$*"; }

FAIL=0
fail() { log "FAIL: $*"; FAIL=1; }
# record SCENARIO RUN ok|FAIL|info FIGURES
record() { echo "$1|$2|$3|$4" >>"$RESULTS"; }

# in_budget SCENARIO: whether the suite's BUDGET leaves room to start SCENARIO.
in_budget() {
	[ "$BUDGET" -gt 0 ] || return 0
	local used; used=$(awk -v a="$SUITE_START" -v b="$(now)" 'BEGIN { printf "%d", b - a }')
	if [ "$used" -ge "$BUDGET" ]; then
		fail "$1: not started, the budget of $BUDGET s is spent"; record "$1" - FAIL "not run (budget)"
		return 1
	fi
}

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

# daemon NS DIR [--replica] FLAGS…: start the daemon (or the replica) of DIR in namespace NS.
daemon() {
	local n=$1 dir=$2 cmd=daemon; shift 2
	if [ "${1:-}" = --replica ]; then cmd=replica; shift; fi
	rm -f "$dir/meshsync.sock"
	spawn "$n" "$dir.pid" "$BIN" --dir "$dir" $cmd --log-level debug "$@" >>"$dir.log" 2>&1
	waitfile "$dir/meshsync.sock" || { echo "daemon $dir did not start"; tail "$dir.log"; return 1; }
}
# stop DIR: stop the daemon of DIR and wait for it.
stop() {
	local p; p=$(cat "$1.pid" 2>/dev/null) || return 0
	kill -TERM "$p" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null
	rm -f "$1.pid"
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
	PIDS+=("$pid")
	waitfile "$1/meshsync.sock" || return 1
	local code
	code=$("$BIN" --dir "$1" --json pair --expires 5m | jq -r .code)
	"$BIN" --dir "$2" join "$code" --name phone --lan-only --no-mdns --listen /ip4/127.0.0.1/tcp/0 >/dev/null || return 1
	kill -TERM $pid; wait $pid
}

# status DIR [NAME]: "<status> <relayed>" of device NAME (default: the first other device),
# as DIR's daemon sees it.
status() {
	"$BIN" --dir "$1" --json status 2>/dev/null |
		jq -r --arg n "${2:-}" '[.devices[] | select($n == "" or .name == $n)][0] | "\(.status) \(.relayed)"'
}

# waitfor SECONDS CMD…: poll CMD every 0.2 s until it succeeds.
waitfor() {
	local end=$(( $(date +%s) + $1 )); shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -ge "$end" ] && return 1
		sleep 0.2
	done
}
has() { "$BIN" --dir "$1" get "${3:-notes}" "$2"; }
is_status() { [ "$(status "$1" | cut -d' ' -f1)" = "$2" ]; }
is_direct() { case "$(status "$1")" in "up-to-date false" | "conflict false" | "syncing false") return 0 ;; esac; return 1; }
count() { "$BIN" --dir "$1" --json ls "$2" 2>/dev/null | jq '.records | length'; }
has_count() { [ "$(count "$1" "$2")" = "$3" ]; }

# loss NS PCT: drop PCT % of the packets coming into namespace NS (0 removes the rule).
loss() {
	nsx "$1" nft delete table inet msloss 2>/dev/null
	[ "$2" -gt 0 ] || return 0
	nsx "$1" nft -f - <<-EOF
	table inet msloss {
		chain in { type filter hook input priority -20; numgen random mod 100 < $2 drop; }
	}
	EOF
}
# cut_ns NS / heal_ns NS: drop everything in and out of namespace NS, and stop doing so.
cut_ns() {
	nsx "$1" nft -f - <<-EOF
	table inet mscut {
		chain in { type filter hook input priority -10; policy drop; iif lo accept; }
		chain out { type filter hook output priority -10; policy drop; oif lo accept; }
	}
	EOF
}
heal_ns() { nsx "$1" nft delete table inet mscut 2>/dev/null; }

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
	rm -rf "$A" "$B"
	pair "$A" "$B" || { fail "pairing"; record lan 1 FAIL "pairing failed"; return; }
	lan_up
	START=$(now)
	if daemon l1 "$A" --lan-only --listen /ip4/10.77.0.1/tcp/4747 && daemon l2 "$B" --lan-only --listen /ip4/10.77.0.2/tcp/4747; then
		"$BIN" --dir "$A" put notes lan '{"via":"mdns"}' >/dev/null
		local t0; t0=$(now)
		if waitfor 60 has "$B" lan; then
			local t; t=$(since "$t0")
			log "lan: write crossed by mDNS in $t s; B sees A: $(status "$B")"
			record lan 1 ok "write crossed by mDNS in $t s"
			if [ "${1:-}" = cut ]; then scenario_cut "$A" "$B"; fi
		else
			fail "lan: no sync within 60 s"; tail -5 "$B.log"; record lan 1 FAIL "no sync within 60 s"
		fi
	else
		fail "lan: daemon"; record lan 1 FAIL "daemon did not start"
	fi
	stop_all
	del_ns l1 l2
}

scenario_cut() {
	local A=$1 B=$2
	echo "== cut: drop-all in B's namespace, then heal"
	waitfor 30 is_status "$A" up-to-date || { fail "cut: not up-to-date before the cut"; record cut 1 FAIL "not up-to-date before the cut"; return; }
	cut_ns l2
	local t0; t0=$(now)
	log "cut"
	"$BIN" --dir "$A" put notes during-cut '{"written":"while cut"}' >/dev/null
	local toff
	if waitfor 110 is_status "$A" offline; then
		toff=$(since "$t0")
		log "cut: A sees B offline after $toff s"
	else
		fail "cut: B not offline after 110 s (A sees: $(status "$A"))"
		record cut 1 FAIL "not offline after 110 s"; heal_ns l2; return
	fi
	heal_ns l2
	t0=$(now)
	log "healed"
	if waitfor 120 has "$B" during-cut && waitfor 30 is_status "$A" up-to-date; then
		local th; th=$(since "$t0")
		log "cut: back to up-to-date $th s after healing, the write made during the cut arrived"
		record cut 1 ok "offline after $toff s; up-to-date $th s after healing"
	else
		fail "cut: not up-to-date 150 s after healing (A sees: $(status "$A"))"
		record cut 1 FAIL "offline after $toff s; not up-to-date 150 s after healing"
	fi
}

# have_netem NS IFACE: whether the kernel takes a netem qdisc (probed on a real interface).
have_netem() {
	nsx "$1" tc qdisc add dev "$2" root netem delay 1ms 2>/dev/null || return 1
	nsx "$1" tc qdisc del dev "$2" root 2>/dev/null
}

# A bad link: devices d1 (10.78.1.2) and d2 (10.78.2.2) on two subnets, routed by "mid".
badlink_up() {
	ns d1; ns mid; ns d2
	for i in 1 2; do
		ip link add "$P-m$i" type veth peer name "$P-d$i"
		ip link set "$P-m$i" netns "$P-mid"; ip link set "$P-d$i" netns "$P-d$i"
		nsx mid ip addr add "10.78.$i.1/24" dev "$P-m$i"; nsx mid ip link set "$P-m$i" up
		nsx "d$i" ip addr add "10.78.$i.2/24" dev "$P-d$i"; nsx "d$i" ip link set "$P-d$i" up
		nsx "d$i" ip route add default via "10.78.$i.1"
	done
	nsx mid sysctl -qw net.ipv4.ip_forward=1
}

scenario_badlink() {
	local delay=${DELAY_MS:-100} pct=${LOSS:-2} n=${RECORDS:-10000}
	echo "== badlink: $delay ms each way, $pct % loss each way, $n records"
	local A="$T/bad-a" B="$T/bad-b"
	rm -rf "$A" "$B" "$A.log" "$B.log"
	badlink_up
	START=$(now)
	local how
	if have_netem mid "$P-m1"; then
		how="netem ${delay}ms on both router interfaces"
		nsx mid tc qdisc add dev "$P-m1" root netem delay "${delay}ms" limit 100000
		nsx mid tc qdisc add dev "$P-m2" root netem delay "${delay}ms" limit 100000
	else
		how="delayfwd ${delay}ms each way (no netem), TCP only"
		spawn mid "$T/fwd.pid" "$FWD" -listen :4700 -delay "${delay}ms" -v >"$T/fwd.log" 2>&1
		waitfor 10 grep -q listening "$T/fwd.log" || { fail "badlink: delayfwd did not start"; cat "$T/fwd.log"; record badlink 1 FAIL "delayfwd did not start"; del_ns d1 mid d2; return; }
		nsx mid nft -f - <<-EOF
		table ip msdelay {
			chain mspre { type nat hook prerouting priority -100; tcp dport 4747 redirect to :4700; }
			chain msfwd { type filter hook forward priority 0; meta l4proto udp drop; }
		}
		EOF
	fi
	log "delay: $how"
	# Pairing across the router (the invite and the join carry the real addresses).
	local net=(--lan-only --no-mdns)
	"$BIN" --dir "$A" init --name laptop >/dev/null || { fail "badlink: init"; record badlink 1 FAIL init; del_ns d1 mid d2; return; }
	daemon d1 "$A" "${net[@]}" --listen /ip4/10.78.1.2/tcp/4747 || { fail "badlink: daemon"; record badlink 1 FAIL daemon; stop_all; del_ns d1 mid d2; return; }
	local code; code=$("$BIN" --dir "$A" --json pair --expires 5m | jq -r .code)
	if ! nsx d2 "$BIN" --dir "$B" join "$code" --name phone "${net[@]}" --listen /ip4/10.78.2.2/tcp/4747 >"$B.join.log" 2>&1; then
		fail "badlink: join across the router"; cat "$B.join.log"; record badlink 1 FAIL "join failed"; stop_all; del_ns d1 mid d2; return
	fi
	stop "$A"
	"$FILL" -dir "$A" -collection bulk -n "$n" || { fail "badlink: fill"; record badlink 1 FAIL "fill failed"; stop_all; del_ns d1 mid d2; return; }
	loss d1 "$pct"; loss d2 "$pct"
	daemon d1 "$A" "${net[@]}" --listen /ip4/10.78.1.2/tcp/4747 &&
		daemon d2 "$B" "${net[@]}" --listen /ip4/10.78.2.2/tcp/4747 || { fail "badlink: daemon"; record badlink 1 FAIL daemon; stop_all; del_ns d1 mid d2; return; }
	local t0; t0=$(now)
	if waitfor "${BADLINK_WAIT:-300}" has_count "$B" bulk "$n"; then
		local t; t=$(since "$t0")
		log "badlink: $n records converged on B in $t s"
		if [ "${how#delayfwd}" != "$how" ] && ! grep -q '^delayfwd: conn' "$T/fwd.log"; then
			fail "badlink: no connection went through delayfwd"; record badlink 1 FAIL "no connection through delayfwd"; stop_all; del_ns d1 mid d2; return
		fi
		record badlink 1 ok "$n records in $t s ($how; ${pct} % loss each way)"
	else
		fail "badlink: B holds $(count "$B" bulk)/$n records after ${BADLINK_WAIT:-300} s"
		record badlink 1 FAIL "$(count "$B" bulk)/$n records after ${BADLINK_WAIT:-300} s"
		grep -E 'sync (failed|done)|level=(WARN|ERROR)' "$A.log" "$B.log" | tail -5
	fi
	stop_all
	del_ns d1 mid d2
}

# The internet: "pub" (7.0.0.0/24, addresses libp2p treats as public) with the relay on a
# bridge; two homes, each a router namespace (NAT, and a firewall that drops what nobody
# asked for, like a home router: a hole-punching SYN that arrives before the router's own
# SYN went out must be dropped, not answered with a RST) and a device namespace behind it.
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
			chain msin { type filter hook input priority 0; policy accept;
				iifname "$P-w$i" ct state established,related accept
				iifname "$P-w$i" drop
			}
		}
		EOF
	done
}

# relay_up [FLAGS…]: start `meshsync relay` in pub; sets RELAY to its TCP address.
relay_up() {
	rm -f "$T/relay.out"
	spawn pub "$T/relay.pid" "$BIN" --dir "$T" relay --key "$T/relay.key" --listen /ip4/7.0.0.1/tcp/4001 --listen /ip4/7.0.0.1/udp/4001/quic-v1 "$@" >"$T/relay.out" 2>&1
	waitfor 10 grep -q '/p2p/' "$T/relay.out" || { cat "$T/relay.out"; return 1; }
	RELAY=$(grep '/tcp/4001/p2p/' "$T/relay.out" | head -1)
}

# nat_daemon NS DIR: start a device's daemon behind the NAT of home NS, through RELAY.
# NAT_PORT (4747) is the port to listen on.
nat_daemon() {
	local port=${NAT_PORT:-4747}
	local net=(--no-mdns --dht-mode client --bootstrap "$RELAY"
		--listen "/ip4/0.0.0.0/tcp/$port,/ip4/0.0.0.0/udp/$port/quic-v1")
	# NAT_RELAY=dht: no relay is given; the devices find it through the DHT.
	[ "${NAT_RELAY:-given}" = dht ] || net+=(--relay "$RELAY")
	daemon "$1" "$2" "${net[@]}"
}
# nat_devices: start both devices' daemons behind their NATs, through RELAY.
nat_devices() { nat_daemon h1 "$1" && nat_daemon h2 "$2"; }

# nat_once MODE RUN: one run of nat (MODE preserve) or nat-random (MODE random).
nat_once() {
	local mode=$1 run=$2 name=${3:-nat}
	[ "$mode" = random ] && name=nat-random
	local A="$T/nat-a" B="$T/nat-b"
	rm -rf "$A" "$B" "$A.log" "$B.log"
	cp -a "$T/pristine-a" "$A"; cp -a "$T/pristine-b" "$B"
	nat_up "$mode"
	START=$(now)
	relay_up || { fail "$name run $run: relay did not start"; record "$name" "$run" FAIL "relay did not start"; stop_all; del_ns pub r1 r2 h1 h2; return; }
	nat_devices "$A" "$B" || { fail "$name run $run: daemon"; record "$name" "$run" FAIL daemon; stop_all; del_ns pub r1 r2 h1 h2; return; }
	"$BIN" --dir "$A" put notes "nat$run" '{"via":"dht and relay"}' >/dev/null
	local t0; t0=$(now)
	if ! waitfor 90 has "$B" "nat$run"; then
		fail "$name run $run: A's write did not reach B within 90 s (A sees: $(status "$A"), B sees: $(status "$B"))"
		record "$name" "$run" FAIL "no sync within 90 s"
		grep -iE "rendezvous|relay|sync" "$A.log" | grep -v logger= | tail -5
		stop_all; del_ns pub r1 r2 h1 h2; return
	fi
	local tsync; tsync=$(since "$t0")
	local path="relayed" tdirect=""
	if waitfor 30 is_direct "$A"; then tdirect=$(since "$t0"); path="direct after $tdirect s"; fi
	log "$name run $run: A→B in $tsync s; path: $path (A sees: $(status "$A"))"
	# A write the other way after the path settled: over the direct path, or over the
	# relay's roomy connection. 120 s covers a session retry; longer counts as lost.
	"$BIN" --dir "$B" put notes "back$run" '{"from":"b"}' >/dev/null
	t0=$(now)
	if ! waitfor 120 has "$A" "back$run"; then
		fail "$name run $run: B's write did not reach A within 120 s (A sees: $(status "$A"), B sees: $(status "$B"))"
		record "$name" "$run" FAIL "A→B $tsync s; B→A lost (120 s); path $path"
		stop_all; del_ns pub r1 r2 h1 h2; return
	fi
	local tback; tback=$(since "$t0")
	local res=ok fig="A→B $tsync s, B→A $tback s, path: $path"
	if [ "$mode" = random ]; then
		# Random ports: no direct path is expected; once synced, status must say up to
		# date and relayed.
		local st
		if [ -z "$tdirect" ] && ! waitfor 30 eval '[ "$(status "$A")" = "up-to-date true" ]'; then
			st=$(status "$A")
			fail "$name run $run: A reaches B only through the relay, synced, but status says \"$st\""; res=FAIL
		fi
		st=$(status "$A")
		fig="$fig; status \"$st\""
		# A clear state: one side retries hole punching on its backoff and says why the
		# last attempt failed; the other says that side tries.
		local t1; t1=$(now)
		if waitfor 90 eval 'tried_direct "$A" || tried_direct "$B"'; then
			log "$name run $run: A's row: $(status_row "$A"); B's row: $(status_row "$B")"
			fig="$fig; hole punching retried, first failure after $(since "$t1") s: A \"$(direct_try "$A")\", B \"$(direct_try "$B")\""
		else
			fail "$name run $run: no device reports a failed hole punch 90 s after the sync (A: $(direct_try "$A"); B: $(direct_try "$B"))"; res=FAIL
		fi
	fi
	record "$name" "$run" "$res" "$fig"
	stop_all
	if [ "$mode" = random ]; then nat_stingy "$run"; fi
	del_ns pub r1 r2 h1 h2
}

# nat_stingy RUN: under random NAT, a relay capped like a public one (2 min, 128 KiB):
# status shows "relayed", and no record crosses the limited connection.
nat_stingy() {
	local run=$1 A="$T/nat-a" B="$T/nat-b"
	log "nat-random run $run: a relay capped at 2 min and 128 KiB"
	relay_up --max-duration 2m --max-data 131072 || { fail "stingy relay did not start"; record nat-stingy "$run" FAIL "relay did not start"; return; }
	nat_devices "$A" "$B" || { fail "nat-stingy: daemon"; record nat-stingy "$run" FAIL daemon; stop_all; return; }
	"$BIN" --dir "$A" put notes "stingy$run" '{"must":"not cross a limited relay"}' >/dev/null
	local t0; t0=$(now)
	if ! waitfor 90 eval '[ "$(status "$A" | cut -d" " -f2)" = true ]'; then
		fail "nat-stingy run $run: A never reported B as relayed (A sees: $(status "$A"))"
		record nat-stingy "$run" FAIL "status never relayed: $(status "$A")"; stop_all; return
	fi
	local trel; trel=$(since "$t0")
	# Waiting longer than the node waits for a direct path (20 s) before it gives up.
	sleep 40
	local st; st=$(status "$A")
	if has "$B" "stingy$run" >/dev/null 2>&1; then
		if is_direct "$A"; then
			log "nat-stingy run $run: crossed over a direct path (hole punching worked under random NAT)"
			record nat-stingy "$run" ok "crossed over a direct path"
		else
			fail "nat-stingy run $run: a record crossed a limited relayed connection"
			record nat-stingy "$run" FAIL "data crossed a limited relay; status \"$st\""
		fi
	else
		local why; why=$(grep -c 'limited relay' "$A.log" "$B.log" | awk -F: '{s+=$2} END {print s+0}')
		local row; row=$(status_row "$A")
		log "nat-stingy run $run: relayed after $trel s, no data crossed in 40 s (A's row: $row; $why 'limited relay' refusals logged)"
		record nat-stingy "$run" ok "status \"$st\" after $trel s; 0 records crossed in 40 s; A's row: $row"
	fi
	stop_all
}

scenario_nat() {
	local mode=$1 name=${2:-nat}
	[ "$mode" = random ] && name=nat-random
	echo "== $name: two homes behind NAT ($mode), relay and DHT bootstrap in public, $RUNS runs"
	if [ ! -d "$T/pristine-a" ]; then
		pair "$T/pristine-a" "$T/pristine-b" || { fail "pairing"; record "$name" - FAIL pairing; return; }
	fi
	for run in $(seq "$RUNS"); do nat_once "$mode" "$run" "$name"; done
	local ok direct
	ok=$(grep -c "^$name|.*|ok|" "$RESULTS")
	direct=$(grep "^$name|.*|ok|" "$RESULTS" | grep -c 'direct after')
	echo "$name: passed $ok/$RUNS, hole punching made the path direct $direct/$RUNS"
	record "$name" all info "passed $ok/$RUNS; direct $direct/$RUNS"
}

# knows_circuits DIR: every device record DIR holds names a relayed (circuit) address, as
# after a first run through the relay: a daemon started later dials them at once.
knows_circuits() {
	"$BIN" --dir "$1" --json devices 2>/dev/null |
		jq -e '[.devices[] | (.addrs // []) | any(contains("p2p-circuit"))] | all' >/dev/null
}
# direct_try DIR: "<state> <attempts> <last error>" of DIR's view of the other device's
# attempts to make the path direct ("-" when it makes none).
direct_try() {
	"$BIN" --dir "$1" --json status 2>/dev/null |
		jq -r '.devices[0].direct | if . == null then "-" else "\(.state) \(.attempts) \(.last_error // "")" end'
}
# status_row DIR: the row of the other device in DIR's `meshsync status` table.
status_row() { "$BIN" --dir "$1" status 2>/dev/null | grep -E '^(laptop|phone) ' | tr -s ' '; }
both_direct() { is_direct "$1" && is_direct "$2"; }
# tried_direct DIR: DIR's device retries hole punching and has a failed attempt to show.
tried_direct() {
	"$BIN" --dir "$1" --json status 2>/dev/null | jq -e '.devices[0].direct | . != null and .attempts >= 1 and .last_error != ""' >/dev/null
}

# nat_warm A B: run both devices once through the relay until each knows the other's
# relayed address (the state after pairing through a relay), then stop them.
nat_warm() {
	nat_devices "$1" "$2" || return 1
	waitfor 60 knows_circuits "$1" && waitfor 60 knows_circuits "$2" || return 1
	stop "$1"; stop "$2"
}

# scenario_nat_order: issue 19's race. Two homes behind port-preserving NATs whose
# devices already know each other's relayed address. The device started second dials the
# first through the relay at once, before it knows a public address of its own, so
# libp2p's one hole punch fails ("protocols not supported: [/libp2p/dcutr]"); meshsync
# retries. For each order (A first, B first, both at once) the path must turn direct on
# both sides within ORDER_WAIT (30) s of the second start, and a write must cross.
scenario_nat_order() {
	local wait=${ORDER_WAIT:-30}
	echo "== nat-order: either device started first, the path turns direct within $wait s"
	if [ ! -d "$T/pristine-a" ]; then
		pair "$T/pristine-a" "$T/pristine-b" || { fail "pairing"; record nat-order - FAIL pairing; return; }
	fi
	local A="$T/ord-a" B="$T/ord-b"
	rm -rf "$A" "$B" "$A.log" "$B.log"
	cp -a "$T/pristine-a" "$A"; cp -a "$T/pristine-b" "$B"
	nat_up preserve
	START=$(now)
	relay_up || { fail "nat-order: relay did not start"; record nat-order - FAIL "relay did not start"; stop_all; del_ns pub r1 r2 h1 h2; return; }
	nat_warm "$A" "$B" || { fail "nat-order: the devices never learnt each other's relayed address"; record nat-order - FAIL "warm-up"; stop_all; del_ns pub r1 r2 h1 h2; return; }
	stop_all; del_ns pub r1 r2 h1 h2
	local order
	for order in a-first b-first together; do
		# A new network each time (the same addresses): the routers' connection tracking
		# and the hosts' TIME_WAIT sockets of the last run's direct connection would
		# otherwise meet the next punch, which a person restarting after a while never sees.
		nat_up preserve
		relay_up || { fail "nat-order $order: relay did not start"; record nat-order "$order" FAIL "relay did not start"; stop_all; del_ns pub r1 r2 h1 h2; continue; }
		local gap=${ORDER_GAP:-5}
		case $order in
		a-first) nat_daemon h1 "$A" && sleep "$gap" && nat_daemon h2 "$B" ;;
		b-first) nat_daemon h2 "$B" && sleep "$gap" && nat_daemon h1 "$A" ;;
		together) nat_daemon h1 "$A" & local bg=$!; nat_daemon h2 "$B"; wait $bg ;;
		esac
		local t0; t0=$(now)
		local res=ok fig
		if waitfor "$wait" both_direct "$A" "$B"; then
			fig="direct on both sides $(since "$t0") s after the second start"
		else
			fail "nat-order $order: not direct within $wait s (A: $(status_row "$A"); B: $(status_row "$B"))"
			res=FAIL; fig="not direct within $wait s; A tries: $(direct_try "$A"); B tries: $(direct_try "$B")"
		fi
		"$BIN" --dir "$A" put notes "order-$order" '{"from":"a"}' >/dev/null
		if ! waitfor 60 has "$B" "order-$order"; then
			fail "nat-order $order: A's write did not reach B in 60 s"; res=FAIL; fig="$fig; write lost"
		fi
		local retried; retried=$(cat "$A.log" "$B.log" | grep -c 'path made direct')
		log "nat-order $order: $fig (paths made direct by a retry so far: $retried)"
		record nat-order "$order" "$res" "$fig"
		stop_all
		del_ns pub r1 r2 h1 h2
	done
}

# scenario_nat_public: the race of nat-order with a relay capped like a public one (2
# min, 128 KiB per connection) and 10,000 records on A: the sync must complete (over the
# direct path once hole punching makes it) within PUBLIC_WAIT (180) s, or fail with status
# saying why.
scenario_nat_public() {
	local n=${RECORDS:-10000} wait=${PUBLIC_WAIT:-180}
	echo "== nat-public: a relay capped at 2 min and 128 KiB, $n records from A to B"
	if [ ! -d "$T/pristine-a" ]; then
		pair "$T/pristine-a" "$T/pristine-b" || { fail "pairing"; record nat-public - FAIL pairing; return; }
	fi
	local A="$T/pub-a" B="$T/pub-b"
	rm -rf "$A" "$B" "$A.log" "$B.log"
	cp -a "$T/pristine-a" "$A"; cp -a "$T/pristine-b" "$B"
	nat_up preserve
	START=$(now)
	relay_up --max-duration 2m --max-data 131072 || { fail "nat-public: relay did not start"; record nat-public - FAIL "relay did not start"; stop_all; del_ns pub r1 r2 h1 h2; return; }
	nat_warm "$A" "$B" || { fail "nat-public: the devices never learnt each other's relayed address"; record nat-public - FAIL "warm-up"; stop_all; del_ns pub r1 r2 h1 h2; return; }
	"$FILL" -dir "$A" -collection bulk -n "$n" || { fail "nat-public: fill"; record nat-public - FAIL "fill failed"; stop_all; del_ns pub r1 r2 h1 h2; return; }
	# A new network (see nat-order), B started right after A: the race.
	stop_all; del_ns pub r1 r2 h1 h2
	nat_up preserve
	relay_up --max-duration 2m --max-data 131072 || { fail "nat-public: relay did not start"; record nat-public - FAIL "relay did not start"; stop_all; del_ns pub r1 r2 h1 h2; return; }
	nat_daemon h1 "$A" && nat_daemon h2 "$B" || { fail "nat-public: daemon"; record nat-public - FAIL daemon; stop_all; del_ns pub r1 r2 h1 h2; return; }
	local t0; t0=$(now) td="-"
	if waitfor "$wait" has_count "$B" bulk "$n"; then
		local t; t=$(since "$t0")
		waitfor 5 both_direct "$A" "$B" && td=direct
		log "nat-public: $n records on B $t s after the start (path: $td; A: $(status_row "$A"))"
		record nat-public 1 ok "$n records in $t s through hole punching (path $td)"
	else
		local row; row=$(status_row "$A")
		fail "nat-public: B holds $(count "$B" bulk)/$n records after $wait s (A: $row; A tries: $(direct_try "$A"))"
		record nat-public 1 FAIL "$(count "$B" bulk)/$n records after $wait s; A: $row"
	fi
	stop_all
	del_ns pub r1 r2 h1 h2
}

# scenario_relay_restart: behind `masquerade random` NATs (relayed only) the relay is
# restarted under the devices: both come back through it (new reservations, a new relayed
# connection) and a write crosses within RESTART_WAIT (90) s; status shows the path
# relayed with hole punching retried and its last error.
scenario_relay_restart() {
	local wait=${RESTART_WAIT:-90}
	echo "== relay-restart: random NAT, the relay restarts under two synced devices"
	if [ ! -d "$T/pristine-a" ]; then
		pair "$T/pristine-a" "$T/pristine-b" || { fail "pairing"; record relay-restart - FAIL pairing; return; }
	fi
	local A="$T/rr-a" B="$T/rr-b"
	rm -rf "$A" "$B" "$A.log" "$B.log"
	cp -a "$T/pristine-a" "$A"; cp -a "$T/pristine-b" "$B"
	nat_up random
	START=$(now)
	relay_up || { fail "relay-restart: relay did not start"; record relay-restart - FAIL "relay did not start"; stop_all; del_ns pub r1 r2 h1 h2; return; }
	nat_devices "$A" "$B" || { fail "relay-restart: daemon"; record relay-restart - FAIL daemon; stop_all; del_ns pub r1 r2 h1 h2; return; }
	"$BIN" --dir "$A" put notes before '{"relay":"first"}' >/dev/null
	if ! waitfor 90 has "$B" before; then
		fail "relay-restart: no sync before the restart (A: $(status_row "$A"))"; record relay-restart 1 FAIL "no sync before the restart"
		stop_all; del_ns pub r1 r2 h1 h2; return
	fi
	stop "$T/relay"
	log "relay-restart: relay stopped"
	sleep 2
	relay_up || { fail "relay-restart: relay did not start again"; record relay-restart 1 FAIL "relay did not restart"; stop_all; del_ns pub r1 r2 h1 h2; return; }
	local t0; t0=$(now)
	"$BIN" --dir "$A" put notes after '{"relay":"restarted"}' >/dev/null
	if waitfor "$wait" has "$B" after; then
		local t; t=$(since "$t0")
		log "relay-restart: a write crossed $t s after the relay came back (A: $(status_row "$A"); B: $(status_row "$B"))"
		record relay-restart 1 ok "write crossed $t s after the relay restart; A: $(direct_try "$A"); B: $(direct_try "$B")"
	else
		fail "relay-restart: A's write did not reach B $wait s after the relay came back (A: $(status_row "$A"))"
		record relay-restart 1 FAIL "write lost $wait s after the restart"
	fi
	stop_all
	del_ns pub r1 r2 h1 h2
}

# lan3_up N…: a bridged LAN in namespace "sw" with device namespaces N… (10.79.0.K).
lan3_up() {
	ns sw
	nsx sw ip link add br0 type bridge; nsx sw ip link set br0 up
	local k=1
	for n in "$@"; do
		ns "$n"
		ip link add "$P-s$k" type veth peer name "$P-e$k"
		ip link set "$P-s$k" netns "$P-sw"; ip link set "$P-e$k" netns "$P-$n"
		nsx sw ip link set "$P-s$k" master br0; nsx sw ip link set "$P-s$k" up
		nsx "$n" ip addr add "10.79.0.$k/24" dev "$P-e$k"; nsx "$n" ip link set "$P-e$k" up
		k=$((k + 1))
	done
}

scenario_replica() {
	echo "== replica: A writes and goes away, B comes back and gets A's writes from the blind replica"
	if ! "$BIN" replica --help >/dev/null 2>&1; then
		log "replica: this meshsync has no replica command"; record replica - info "no meshsync replica yet"; return
	fi
	local A="$T/rep-a" B="$T/rep-b" R="$T/rep-r"
	rm -rf "$A" "$B" "$R"
	lan3_up ra rb rr
	START=$(now)
	local net=(--lan-only --listen /ip4/0.0.0.0/tcp/4747)
	"$BIN" --dir "$A" init --name laptop >/dev/null
	daemon ra "$A" "${net[@]}" || { fail "replica: daemon"; record replica 1 FAIL daemon; stop_all; del_ns sw ra rb rr; return; }
	local code; code=$("$BIN" --dir "$A" --json pair --expires 5m | jq -r .code)
	nsx rb "$BIN" --dir "$B" join "$code" --name phone "${net[@]}" >"$B.join.log" 2>&1 || { fail "replica: join B"; cat "$B.join.log"; record replica 1 FAIL "join B"; stop_all; del_ns sw ra rb rr; return; }
	code=$("$BIN" --dir "$A" --json pair --replica --expires 5m | jq -r .code)
	MESHSYNC_PASSPHRASE="the box has its own passphrase" nsx rr "$BIN" --dir "$R" join "$code" --name box "${net[@]}" >"$R.join.log" 2>&1 || { fail "replica: join R"; cat "$R.join.log"; record replica 1 FAIL "join replica"; stop_all; del_ns sw ra rb rr; return; }
	MESHSYNC_PASSPHRASE="the box has its own passphrase" daemon rr "$R" --replica "${net[@]}" || { fail "replica: replica daemon"; record replica 1 FAIL "replica daemon"; stop_all; del_ns sw ra rb rr; return; }
	daemon rb "$B" "${net[@]}" || { fail "replica: daemon B"; record replica 1 FAIL daemon; stop_all; del_ns sw ra rb rr; return; }
	# B learns of the replica (the device list), then goes away.
	if ! waitfor 60 "$BIN" --dir "$B" sync --wait --timeout 20s; then
		fail "replica: B never up to date with A and the replica ($("$BIN" --dir "$B" status 2>&1 | tail -3))"
		record replica 1 FAIL "B not up to date before going away"; stop_all; del_ns sw ra rb rr; return
	fi
	stop "$B"
	local canary="canary-$RANDOM$RANDOM"
	local k
	for k in 1 2 3; do "$BIN" --dir "$A" put "secret$canary" "key-$canary-$k" "{\"v\":\"value-$canary-$k\"}" >/dev/null; done
	local t0; t0=$(now)
	if ! waitfor 60 eval '[ "$(status "$A" box | cut -d" " -f1)" = up-to-date ]'; then
		fail "replica: A never up to date with the replica (A sees: $(status "$A" box))"
		record replica 1 FAIL "A→replica not up to date"; stop_all; del_ns sw ra rb rr; return
	fi
	stop "$A"
	daemon rb "$B" "${net[@]}" || { fail "replica: daemon B"; record replica 1 FAIL daemon; stop_all; del_ns sw ra rb rr; return; }
	t0=$(now)
	local got=0
	if waitfor 90 has "$B" "key-$canary-3" "secret$canary"; then
		got=$(count "$B" "secret$canary")
	fi
	local leaks; leaks=$(grep -rlaF "$canary" "$R" 2>/dev/null | wc -l)
	local fig="B got $got/3 records from the replica in $(since "$t0") s; replica files with the canary: $leaks"
	if [ "$got" = 3 ] && [ "$leaks" = 0 ]; then
		log "replica: $fig"; record replica 1 ok "$fig"
	else
		fail "replica: $fig"; record replica 1 FAIL "$fig"
		grep -rlaF "$canary" "$R" | head -3
	fi
	stop_all
	del_ns sw ra rb rr
}

# digest DIR: one line per record (collection, key, value, conflict, version vector), sorted.
digest() {
	"$BIN" --dir "$1" --json ls 2>/dev/null |
		jq -c '.records[] | [.collection, .key, .value, (.conflict != null), .version.vector]' | sort
}
# diverged A B C: how many records differ between the three devices (0: converged).
diverged() {
	digest "$1" >"$T/dg1"; digest "$2" >"$T/dg2"; digest "$3" >"$T/dg3"
	cat "$T/dg1" "$T/dg2" "$T/dg3" | sort | uniq -c | awk '$1 != 3' | wc -l
}
converged() { [ "$(diverged "$@")" = 0 ] && [ -s "$T/dg1" ]; }

scenario_faults() {
	local dur=${DURATION:-600} period=${PERIOD:-30}
	for pct in ${LOSSES:-0 5 30}; do
		in_budget "faults-$pct" || return
		echo "== faults: 3 devices, $pct % loss, partition/heal every $period s for $dur s"
		local D1="$T/f$pct-1" D2="$T/f$pct-2" D3="$T/f$pct-3"
		rm -rf "$D1" "$D2" "$D3"
		lan3_up f1 f2 f3
		START=$(now)
		local net=(--lan-only --listen /ip4/0.0.0.0/tcp/4747,/ip4/0.0.0.0/udp/4747/quic-v1)
		"$BIN" --dir "$D1" init --name one >/dev/null
		daemon f1 "$D1" "${net[@]}" || { fail "faults: daemon"; record "faults-$pct" 1 FAIL daemon; stop_all; del_ns sw f1 f2 f3; continue; }
		local code ok=1
		for k in 2 3; do
			local D="$T/f$pct-$k"
			code=$("$BIN" --dir "$D1" --json pair --expires 5m | jq -r .code)
			nsx "f$k" "$BIN" --dir "$D" join "$code" --name "dev$k" "${net[@]}" >"$D.join.log" 2>&1 || ok=0
			daemon "f$k" "$D" "${net[@]}" || ok=0
		done
		[ $ok = 1 ] || { fail "faults: pairing"; record "faults-$pct" 1 FAIL pairing; stop_all; del_ns sw f1 f2 f3; continue; }
		for k in 1 2 3; do
			loss "f$k" "$pct"
			nsx "f$k" nft add table inet msbytes
			nsx "f$k" nft add chain inet msbytes out '{ type filter hook output priority 0; }'
			nsx "f$k" nft add rule inet msbytes out oif != lo counter
		done
		local end=$(( $(date +%s) + dur )) round=0 writes=0 deletes=0 victim theal maxput=0 cutnow=no
		local -a prev=()
		# write_for SECONDS: every device writes about once a second: a key of its own,
		# a key all share (concurrent writes: conflicts to settle), and now and then a delete.
		write_for() {
			local until=$(( $(date +%s) + $1 )) k
			while [ "$(date +%s)" -lt "$until" ]; do
				for k in 1 2 3; do
					local t1=${EPOCHREALTIME/./} dt
					"$BIN" --dir "$T/f$pct-$k" put faults "k$k-$writes" "{\"d\":$k,\"w\":$writes}" >/dev/null 2>&1 && writes=$((writes + 1))
					dt=$(( ${EPOCHREALTIME/./} - t1 ))
					if [ "$dt" -gt "$maxput" ]; then maxput=$dt; fi
					[ "$dt" -gt 5000000 ] && log "slow write: a put on f$k took $((dt / 1000000)) s (f$victim partitioned: $cutnow)"
					"$BIN" --dir "$T/f$pct-$k" put faults shared "{\"d\":$k,\"w\":$writes}" >/dev/null 2>&1
					if [ $((writes % 5)) = 0 ] && [ -n "${prev[$k]:-}" ]; then
						"$BIN" --dir "$T/f$pct-$k" del faults "${prev[$k]}" >/dev/null 2>&1 && deletes=$((deletes + 1))
					fi
					prev[$k]="k$k-$((writes - 1))"
				done
				sleep 1
			done
		}
		while :; do
			victim=$(( round % 3 + 1 ))
			cut_ns "f$victim"; cutnow=yes
			log "round $round: f$victim partitioned"
			write_for "$period"
			heal_ns "f$victim"; cutnow=no
			theal=$(now)
			round=$((round + 1))
			[ $(( $(date +%s) + period )) -lt "$end" ] || break
			log "round $((round - 1)): healed"
			write_for "$period"
		done
		log "last heal"
		local conv=${CONVERGE_WAIT:-300}
		local bytes retries
		if waitfor "$conv" converged "$D1" "$D2" "$D3"; then
			local t; t=$(since "$theal")
			bytes=$(for k in 1 2 3; do nsx "f$k" nft -j list table inet msbytes | jq '[.. | .counter? | objects | .bytes] | add'; done | awk '{s+=$1} END {printf "%.1f MiB", s/1048576}')
			retries=$(grep -h 'sync failed' "$D1.log" "$D2.log" "$D3.log" | wc -l)
			log "faults $pct %: converged $t s after the last heal; $writes writes, $(wc -l <"$T/dg1") records, divergence 0; sent $bytes; $retries failed sessions"
			local res=ok mp=$((maxput / 1000))
			# A local write must not wait for the network.
			if [ "$maxput" -gt 30000000 ]; then fail "faults $pct %: a local write took $mp ms"; res=FAIL; fi
			record "faults-$pct" 1 $res "converged $t s after the last heal; divergence 0; $round partitions, $writes writes (slowest $mp ms), $deletes deletes, $(wc -l <"$T/dg1") records; sent $bytes; $retries failed sessions retried"
		else
			local dv; dv=$(diverged "$D1" "$D2" "$D3")
			fail "faults $pct %: $dv records still differ $conv s after the last heal"
			record "faults-$pct" 1 FAIL "divergence $dv records $conv s after the last heal"
		fi
		stop_all
		del_ns sw f1 f2 f3
	done
}

run_scenario() {
	in_budget "$1" || return 0
	case "$1" in
	lan) scenario_lan ;;
	cut) scenario_lan cut ;;
	badlink) scenario_badlink ;;
	nat) scenario_nat preserve ;;
	nat-random) scenario_nat random ;;
	nat-dht) NAT_RELAY=dht scenario_nat preserve nat-dht ;;
	nat-order) scenario_nat_order ;;
	nat-public) scenario_nat_public ;;
	relay-restart) scenario_relay_restart ;;
	replica) scenario_replica ;;
	faults) scenario_faults ;;
	*) echo "unknown scenario $1"; FAIL=1 ;;
	esac
}

PR_SET="cut badlink nat nat-dht nat-random nat-order nat-public relay-restart replica"
[ $# -gt 0 ] || set -- pr
for s in "$@"; do
	case "$s" in
	pr) for x in $PR_SET; do run_scenario "$x"; done ;;
	all) for x in $PR_SET faults; do run_scenario "$x"; done ;;
	lan | cut | badlink | nat | nat-dht | nat-random | nat-order | nat-public | relay-restart | replica | faults) run_scenario "$s" ;;
	*) echo "usage: $0 [lan|cut|badlink|nat|nat-dht|nat-random|nat-order|nat-public|relay-restart|replica|faults|pr|all]…"; exit 2 ;;
	esac
done
show_table
echo "total $(since "$SUITE_START") s"
[ $FAIL = 0 ] && echo "PASS" || echo "FAIL"
exit $FAIL
