// Command delayfwd is a TCP forwarder that delays every byte by a fixed time in each
// direction: the delay half of a bad link for the multi-host tests
// (scripts/netns-reach.sh badlink, faults), on kernels without the netem qdisc.
//
// It runs in a router namespace between two devices. An nftables rule there redirects the
// devices' TCP connections to it (`tcp dport 4747 redirect to :4700`); delayfwd reads each
// connection's original destination (SO_ORIGINAL_DST, Linux only), dials it, and copies
// both directions through a delay line: a chunk read at time t is written at t+delay,
// in order. With -to it forwards every connection to one fixed address instead.
//
// # Usage
//
//	delayfwd -listen :4700 -delay 100ms            # transparent (behind an nft redirect)
//	delayfwd -listen 127.0.0.1:9000 -to 127.0.0.1:4747 -delay 50ms
//
// The delay is one-way: a 100 ms delay makes a round trip 200 ms longer. It prints
// "listening ADDR" on standard output once it accepts connections, and stops on SIGINT or
// SIGTERM.
//
// # Caveats
//
// TCP only: UDP (QUIC) is not forwarded, so a scenario that uses delayfwd runs meshsync
// over TCP alone. Each direction buffers at most -queue chunks of up to 32 KiB; when the
// queue is full the reader stops reading, and TCP flow control pushes back on the sender,
// so throughput is capped at about queue×32 KiB per delay. Loss is not its job: the
// scenarios drop packets with nftables (`numgen random mod 100 < N drop`).
package main
