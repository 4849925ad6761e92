package node

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Resource limits: a phone-sized budget for the whole host.
const (
	hostMemory = 128 << 20
	hostFDs    = 256
)

func defaultListenAddrs(port int) []string {
	p := strconv.Itoa(port)
	return []string{
		"/ip4/0.0.0.0/tcp/" + p, "/ip4/0.0.0.0/udp/" + p + "/quic-v1",
		"/ip6/::/tcp/" + p, "/ip6/::/udp/" + p + "/quic-v1",
	}
}

// baseOptions are the options every meshsync host uses: the device key, TCP and QUIC,
// TLS and Noise, the resource manager, no relay (reachOptions turns the client on beyond
// the LAN), no ping service, no connection trimming, and TCP dialled before QUIC.
//
// TLS comes first: a dialler proposes its security protocols in this order and the
// listener takes the first it has, so two meshsync hosts speak TLS 1.3, whose AES-GCM
// runs on the AES instructions of a phone's or laptop's CPU (5.8 GB/s on the CI
// machine's cores, against 2.3 GB/s for Noise's ChaCha20-Poly1305). At a million records
// the transport seals and opens 1.2 GB: Noise cost an initial sync 1.1 s of CPU
// (docs/perf.md). Noise stays offered, so a host that proposes it first (an older
// meshsync) still connects.
func baseOptions(key crypto.PrivKey, rm network.ResourceManager) []libp2p.Option {
	return []libp2p.Option{
		libp2p.Identity(key),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.ResourceManager(rm),
		libp2p.Ping(false),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		// A mesh has a handful of devices and the gater admits no one else: nothing to
		// trim, and the default manager's trim ticker would wake an idle node every 10 s.
		libp2p.ConnectionManager(&connmgr.NullConnMgr{}),
		libp2p.SwarmOpts(swarm.WithDialRanker(preferTCP)),
	}
}

// tcpFirst is how long a dial waits for TCP before it tries QUIC as well.
const tcpFirst = 250 * time.Millisecond

// preferTCP ranks TCP addresses first and the others tcpFirst later. An idle connection
// costs less over TCP: yamux pings every 30 s, where QUIC keeps alive every 15 s with
// acknowledgements both ways (about 2.5 times the wake-ups of an idle node, measured).
// QUIC stays the fallback where TCP does not get through.
func preferTCP(addrs []ma.Multiaddr) []network.AddrDelay {
	out := swarm.DefaultDialRanker(addrs)
	for i := range out {
		if _, err := out[i].Addr.ValueForProtocol(ma.P_TCP); err == nil {
			out[i].Delay = 0
		} else {
			out[i].Delay += tcpFirst
		}
	}
	return out
}

// peerFDs and peerConnsOut are how many file descriptors and outbound connections (dials
// included) one peer may hold (libp2p's defaults are 8 and 8 at hostFDs). A hole punch
// dials every address the peerstore has for the device at once: loopback and home
// network addresses, IPv4 and IPv6, TCP and QUIC, the ones it had before a restart. Those
// of another network hang until their dial timeout, and with 8 the punched address was
// found to get none ("cannot reserve file descriptor", "cannot reserve connection"): the
// path stayed relayed. Inbound connections per peer keep libp2p's limit.
const (
	peerFDs      = 32
	peerConnsOut = 32
)

func newResourceManager() (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	limits.PeerBaseLimit.FD = peerFDs - int(float64(hostFDs)*limits.PeerLimitIncrease.FDFraction)
	limits.PeerBaseLimit.ConnsOutbound = peerConnsOut
	limits.PeerBaseLimit.Conns = peerConnsOut + limits.PeerBaseLimit.ConnsInbound
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.Scale(hostMemory, hostFDs)))
}

// portTaken reports (as an error) whether another socket holds TCP port: libp2p listens
// with SO_REUSEPORT, so a second node on the same machine (a second device's daemon, or
// `meshsync join` beside a running daemon) would otherwise share the port with the first,
// and the kernel would hand each incoming connection to either of them at random: dials
// between them failed half the time, and the first change after a pairing waited for the
// retries (~4.7 s). A plain listen, without SO_REUSEPORT, fails when anyone holds it.
func portTaken(port int) error {
	l, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return err
	}
	return l.Close()
}

// newHost builds the node's host: listening, gated, with the node's identity. It returns
// the host's hole-punch service too (nil in LAN-only mode).
func (n *Node) newHost() (host.Host, *holepunch.Service, error) {
	try := func(addrs []string) (host.Host, *holepunch.Service, error) {
		rm, err := newResourceManager()
		if err != nil {
			return nil, nil, fmt.Errorf("resource manager: %w", err)
		}
		opts := append(baseOptions(n.key, rm), libp2p.ListenAddrStrings(addrs...), libp2p.ConnectionGater(&gater{n: n}))
		var hps *holepunch.Service
		reach, err := n.reachOptions(&hps)
		if err != nil {
			rm.Close()
			return nil, nil, err
		}
		h, err := libp2p.New(append(opts, reach...)...)
		if err != nil {
			rm.Close()
			return nil, nil, err
		}
		return h, hps, nil
	}
	if len(n.cfg.ListenAddrs) > 0 {
		h, hps, err := try(n.cfg.ListenAddrs)
		if err != nil {
			return nil, nil, fmt.Errorf("listen on %v: %w", n.cfg.ListenAddrs, err)
		}
		return h, hps, nil
	}
	var h host.Host
	var hps *holepunch.Service
	err := portTaken(DefaultPort)
	if err == nil {
		h, hps, err = try(defaultListenAddrs(DefaultPort))
	}
	if err != nil {
		n.log.Info("default port taken, using a random port", "port", DefaultPort, "err", err)
		h, hps, err = try(defaultListenAddrs(0))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listen: %w", err)
	}
	return h, hps, nil
}

// registerHandlers installs the protocol handlers and the connection notifications.
func (n *Node) registerHandlers(h host.Host) {
	h.SetStreamHandler(SyncProtocol, n.handleSync)
	h.SetStreamHandler(PushProtocol, n.handlePush)
	if n.blind {
		h.SetStreamHandler(MembersProtocol, n.handleMembers)
	}
	// Pairing never runs on a connection this node dialled to a share destination.
	h.SetStreamHandler(PairProtocol, n.refuseOnShareConns(n.handlePair))
	h.SetStreamHandler(PairShortProtocol, n.refuseOnShareConns(n.handlePairShort))
	h.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(nw network.Network, c network.Conn) {
			if _, ok := n.isMember(c.RemotePeer()); !ok {
				return
			}
			// Relayed: no direct connection to the device (a hole punch that succeeded
			// adds one, and this notice then clears the flag).
			relayed := !hasDirect(nw, c.RemotePeer())
			if relayed {
				// Before libp2p's hole punch reads them (it waits for identify).
				forgetPublicAddrs(h.Peerstore(), c.RemotePeer())
			}
			// A direct connection to a public address that comes while a relayed one is
			// up was punched: its address is a NAT's mapping, not worth remembering
			// (direct.go). One found on the LAN (mDNS) is.
			punched := !relayed && hasRelayed(nw, c.RemotePeer()) && manet.IsPublicAddr(c.RemoteMultiaddr())
			n.track.connected(c.RemotePeer(), c.Stat().Direction, c.RemoteMultiaddr(), relayed, punched)
		},
		DisconnectedF: func(nw network.Network, c network.Conn) {
			if _, ok := n.isMember(c.RemotePeer()); !ok {
				return
			}
			if nw.Connectedness(c.RemotePeer()) != network.Connected {
				n.track.disconnected(c.RemotePeer())
				n.peerDisconnected(c.RemotePeer())
			}
		},
	})
	n.seedPeerstore(h)
	n.updateOwnAddrs(h.Addrs())
}

// seedPeerstore adds the known addresses of every device to the peerstore.
func (n *Node) seedPeerstore(h host.Host) {
	remembered := n.track.rememberedAddrs()
	for _, d := range n.devices.Load().list {
		if d.Removed || d.PeerID == n.id {
			continue
		}
		var addrs []ma.Multiaddr
		for _, s := range d.Addrs {
			if a, err := ma.NewMultiaddr(s); err == nil {
				addrs = append(addrs, a)
			}
		}
		for _, s := range remembered[d.PeerID] {
			a, err := ma.NewMultiaddr(s)
			// A remembered public address the device does not announce is a NAT's
			// mapping (an older release remembered punched connections): dialled at
			// start, it leaves router state that breaks the next hole punch (direct.go).
			if err != nil || (manet.IsPublicAddr(a) && !slices.Contains(d.Addrs, s)) {
				continue
			}
			addrs = append(addrs, a)
		}
		// Replace, not add: a device that restarts on a new port would otherwise leave
		// every old address behind, and each dial would try them all (a restarted device
		// was found unreachable after ~170 restarts: dials used up the resource limits).
		h.Peerstore().UpdateAddrs(d.PeerID, peerstore.PermanentAddrTTL, 0)
		h.Peerstore().AddAddrs(d.PeerID, addrs, peerstore.PermanentAddrTTL)
	}
}

// gater admits, once the secure handshake has authenticated the peer, only current
// devices of the mesh, and strangers only while an invite is open (they can then open the
// pairing protocol and nothing else: the handlers check again).
type gater struct{ n *Node }

var _ connmgr.ConnectionGater = (*gater)(nil)

func (g *gater) InterceptPeerDial(p peer.ID) bool {
	if !g.n.cfg.LANOnly {
		// DHT peers and relays are dialled too; they get no meshsync stream (the handlers
		// check membership) and their answers are only hints (rendezvous.go).
		return true
	}
	_, ok := g.n.isMember(p)
	// Consent shares (share_hooks.go): this node may dial the destination of an active
	// grant, which is not a device of the mesh.
	return ok || g.n.isShareDestination(p)
}
func (g *gater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool  { return true }
func (g *gater) InterceptSecured(dir network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	if _, ok := g.n.isMember(p); ok {
		return true
	}
	if dir == network.DirInbound && g.n.invites.open(g.n.cfg.Now()) {
		return true
	}
	// Consent shares: an outbound connection to the destination of an active grant carries
	// the share protocol only (sync and push check membership, pairing is refused on it by
	// refuseOnShareConns). A destination can never dial in.
	if dir == network.DirOutbound && g.n.isShareDestination(p) {
		return true
	}
	// Beyond the LAN: outbound connections to DHT peers and relays; inbound ones from
	// strangers only while this node serves the DHT.
	if !g.n.cfg.LANOnly && (dir == network.DirOutbound || g.n.dhtServing()) {
		return true
	}
	g.n.track.refused()
	return false
}
func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

type mdnsNotifee struct{ n *Node }

func (m mdnsNotifee) HandlePeerFound(pi peer.AddrInfo) {
	if _, ok := m.n.isMember(pi.ID); !ok {
		return
	}
	m.n.mdnsFound.Add(1)
	m.n.hintAddrs(pi.ID, pi.Addrs, 10*time.Minute)
}

// startMDNSLocked starts LAN discovery (mdns.go) on r. n.mu is held.
func (n *Node) startMDNSLocked(r *netRun) {
	svc := newMeshMDNS(n, r.host)
	if err := svc.Start(); err != nil {
		svc.Close()
		n.log.Warn("mdns disabled", "err", err)
		return
	}
	r.mdns = svc
}

func isRelayed(a ma.Multiaddr) bool {
	return a != nil && strings.Contains(a.String(), "/p2p-circuit")
}
