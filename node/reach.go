package node

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multihash"

	"github.com/meshsync/meshsync/store"
)

// Reaching devices beyond the LAN: DHT rendezvous, circuit relay v2 with autorelay, DCUtR
// hole punching, and the rule that bulk data never crosses a stingy relay.

// A relayed connection may carry sync sessions and pushes only when its relay grants at
// least this much (a relay of the person's own: `meshsync relay`); public relays grant
// 2 minutes and 128 KiB, which a bulk transfer would hit mid-way.
const (
	roomyRelayData     = 64 << 20
	roomyRelayDuration = 10 * time.Minute
)

// directWait is how long a sync attempt over a stingy relayed connection waits for hole
// punching to bring a direct one.
const directWait = 20 * time.Second

// ErrRelayLimited is returned for a device reached only through a relay whose limits are
// too small for data (a public relay): the node waits for a direct path (hole punching)
// and retries.
var ErrRelayLimited = errors.New("device reached only through a limited relay")

// parseAddrInfos parses multiaddrs ending in /p2p/<id>, merging addresses of one peer.
func parseAddrInfos(what string, addrs []string) ([]peer.AddrInfo, error) {
	var mas []ma.Multiaddr
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%s address %q: %w", what, s, err)
		}
		mas = append(mas, a)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(mas...)
	if err != nil {
		return nil, fmt.Errorf("%s addresses: %w", what, err)
	}
	return infos, nil
}

// reachOptions are the host options beyond the LAN: relay client, autorelay on the
// configured relays, hole punching, port mapping when asked. LAN-only: none. The host's
// hole-punch service lands in *hps once the host is built (direct.go retries with it).
func (n *Node) reachOptions(hps **holepunch.Service) ([]libp2p.Option, error) {
	if n.cfg.LANOnly {
		return nil, nil
	}
	opts := []libp2p.Option{libp2p.EnableRelay(), libp2p.EnableHolePunching(captureHolePunch(hps))}
	relays, err := parseAddrInfos("relay", n.cfg.Relays)
	if err != nil {
		return nil, err
	}
	if len(relays) > 0 {
		// A node told to use relays keeps its reservations whatever AutoNAT says: the
		// devices it serves are behind NATs, and AutoNAT needs public peers to decide.
		opts = append(opts,
			libp2p.EnableAutoRelayWithStaticRelays(relays, autorelay.WithBootDelay(0), autorelay.WithBackoff(10*time.Second)),
			libp2p.ForceReachabilityPrivate())
	} else {
		// No relay configured: once AutoNAT finds the node behind a NAT, autorelay takes
		// relays from the DHT (peers that offer circuit relay v2: `meshsync relay` and
		// the public network's relays). Their limits keep bulk data off them (see
		// awaitDataPath); they carry the hole punch.
		opts = append(opts, libp2p.EnableAutoRelayWithPeerSource(n.relayCandidates,
			autorelay.WithBootDelay(0), autorelay.WithBackoff(30*time.Second), autorelay.WithMinInterval(10*time.Second)))
	}
	if n.cfg.NATPortMap {
		opts = append(opts, libp2p.NATPortMap())
	}
	return opts, nil
}

// startReach starts the DHT and the rendezvous loop of r (not in LAN-only mode).
func (n *Node) startReach(r *netRun) error {
	h := r.host
	if n.cfg.LANOnly {
		return nil
	}
	boot, err := parseAddrInfos("bootstrap", n.cfg.Bootstrap)
	if err != nil {
		return err
	}
	d, err := dht.New(h, dht.Mode(n.cfg.DHTMode.opt()), dht.BootstrapPeers(boot...))
	if err != nil {
		return fmt.Errorf("dht: %w", err)
	}
	r.dht.Store(d)
	if _, err := n.st.Keys().DiscoveryKeys(); err != nil {
		return fmt.Errorf("rendezvous key: %w", err)
	}
	r.wg.Add(1)
	go func() { defer r.wg.Done(); n.rendezvousLoop(r.ctx, h, d, boot) }()
	return nil
}

// dhtServing reports whether this node answers DHT queries now (and so admits strangers'
// inbound connections).
func (n *Node) dhtServing() bool {
	d := n.dhtNow()
	return d != nil && d.Mode() == dht.ModeServer
}

// dhtNow is the running network's DHT; nil while the network is down or in LAN-only mode.
func (n *Node) dhtNow() *dht.IpfsDHT {
	if r := n.net.Load(); r != nil {
		return r.dht.Load()
	}
	return nil
}

// rendezvousLookKeys is how many discovery keys, newest first, a rendezvous round looks
// for the other devices under.
const rendezvousLookKeys = 2

// rendezvousCID is the DHT key a mesh's devices announce themselves under on day (UTC):
// a keyed hash of the day under a discovery key (store.DiscoveryKeys: one per key epoch),
// so that only members of the epoch can compute it and two days' keys cannot be linked.
func rendezvousCID(key []byte, day time.Time) cid.Cid {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("meshsync/v1/dht-rendezvous/"))
	m.Write([]byte(day.UTC().Format(time.DateOnly)))
	mh, _ := multihash.Encode(m.Sum(nil), multihash.SHA2_256) // a 32-byte digest always encodes
	return cid.NewCidV1(cid.Raw, mh)
}

// rendezvousLoop announces this device under today's key and looks for the others under
// today's and yesterday's (clocks near midnight disagree), every cfg.Rendezvous; a round
// that fails or misses a device is retried sooner. Each round takes the discovery keys
// anew: the current one to announce under, the newest two to look under (a device that
// has not adopted the newest key epoch yet announces under the previous one).
func (n *Node) rendezvousLoop(ctx context.Context, h host.Host, d *dht.IpfsDHT, boot []peer.AddrInfo) {
	retry := 2 * time.Second
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		ok := false
		if keys, err := n.st.Keys().DiscoveryKeys(); err != nil {
			n.log.Info("rendezvous: no discovery key", "err", err)
		} else {
			ok = n.rendezvousRound(ctx, h, d, boot, keys)
		}
		if ctx.Err() != nil {
			return
		}
		next := n.cfg.Rendezvous
		if !ok {
			next, retry = min(retry, n.cfg.Rendezvous), min(2*retry, time.Minute, n.cfg.Rendezvous)
		} else {
			retry = 2 * time.Second
		}
		timer.Reset(jitter(next, 0.1))
	}
}

// rendezvousRound runs one round; it reports whether the announce worked and every
// device of the mesh is connected.
func (n *Node) rendezvousRound(ctx context.Context, h host.Host, d *dht.IpfsDHT, boot []peer.AddrInfo, keys []store.DiscoveryKey) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, b := range boot {
		if h.Network().Connectedness(b.ID) != network.Connected {
			bctx, bcancel := context.WithTimeout(ctx, 10*time.Second)
			if err := h.Connect(bctx, b); err != nil {
				n.log.Debug("bootstrap peer unreachable", "peer", b.ID, "err", err)
			}
			bcancel()
		}
	}
	if len(d.RoutingTable().ListPeers()) == 0 {
		n.log.Debug("rendezvous: no DHT peers yet")
		return false
	}
	now := n.cfg.Now()
	ok := true
	if err := d.Provide(ctx, rendezvousCID(keys[0].Key, now), true); err != nil {
		n.log.Info("rendezvous: announce failed", "err", err)
		ok = false
	}
	found := 0
	var cids []cid.Cid
	for _, k := range keys[:min(rendezvousLookKeys, len(keys))] {
		cids = append(cids, rendezvousCID(k.Key, now), rendezvousCID(k.Key, now.Add(-24*time.Hour)))
	}
	for _, c := range cids {
		for pi := range d.FindProvidersAsync(ctx, c, 32) {
			// Only a hint: anyone who learnt the key could announce under it, so only
			// current devices are used, and they still prove membership (the gater, the
			// hello's mesh proof).
			if pi.ID == n.id {
				continue
			}
			if _, member := n.isMember(pi.ID); !member || len(pi.Addrs) == 0 {
				continue
			}
			found++
			n.hintAddrs(pi.ID, pi.Addrs, 30*time.Minute)
		}
	}
	n.log.Debug("rendezvous round", "announced", ok, "found", found)
	for _, dv := range n.devices.Load().byPeer {
		if _, member := n.isMember(dv.PeerID); member && h.Network().Connectedness(dv.PeerID) == network.NotConnected {
			ok = false
		}
	}
	return ok
}

// hintAddrs adds addresses learnt for a device and, when it is not connected, asks its
// loop to dial now.
func (n *Node) hintAddrs(p peer.ID, addrs []ma.Multiaddr, ttl time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := n.net.Load()
	if r == nil || n.closed {
		return
	}
	r.host.Peerstore().AddAddrs(p, addrs, ttl)
	if pl := r.peers[p]; pl != nil && r.host.Network().Connectedness(p) != network.Connected {
		pl.kickNow()
	}
}

// hasDirect reports whether nw has a connection to p that does not go through a relay.
func hasDirect(nw network.Network, p peer.ID) bool {
	for _, c := range nw.ConnsToPeer(p) {
		if !c.Stat().Limited && !isRelayed(c.RemoteMultiaddr()) {
			return true
		}
	}
	return false
}

// hasRelayed reports whether nw has a relayed connection to p.
func hasRelayed(nw network.Network, p peer.ID) bool {
	for _, c := range nw.ConnsToPeer(p) {
		if isRelayed(c.RemoteMultiaddr()) {
			return true
		}
	}
	return false
}

// roomy reports whether c may carry data: a connection that is not limited, or a relayed
// one whose relay grants at least roomyRelayData and roomyRelayDuration.
func roomy(c network.Conn) bool {
	st := c.Stat()
	if !st.Limited {
		return true
	}
	data, _ := st.Extra[client.StatLimitData].(uint64)
	dur, _ := st.Extra[client.StatLimitDuration].(time.Duration)
	return data >= roomyRelayData && dur >= roomyRelayDuration
}

// canBulk reports whether p is connected over a path that may carry data, and whether
// that path is a limited relayed connection (streams must then allow it).
func (n *Node) canBulk(p peer.ID) (ok, limited bool) {
	h := n.hostNow()
	if h == nil {
		return false, false
	}
	for _, c := range h.Network().ConnsToPeer(p) {
		if !c.Stat().Limited {
			return true, false
		}
		if roomy(c) {
			ok, limited = true, true
		}
	}
	return ok, limited
}

// dataCtx is ctx for opening a sync or push stream to p: it allows a limited connection
// when the only usable path is a roomy relay.
func (n *Node) dataCtx(ctx context.Context, p peer.ID) context.Context {
	if ok, limited := n.canBulk(p); ok && limited {
		return network.WithAllowLimitedConn(ctx, "meshsync: own relay")
	}
	return ctx
}

// refuseStingy reports (and resets the stream) when s runs over a relayed connection
// too limited for data; handlers call it first.
func refuseStingy(s network.Stream) bool {
	if roomy(s.Conn()) {
		return false
	}
	s.Reset()
	return true
}

// awaitDataPath waits, when p is connected only through a stingy relay, for hole
// punching to bring a direct connection; it returns ErrRelayLimited when none comes.
func (n *Node) awaitDataPath(ctx context.Context, p peer.ID) error {
	if ok, _ := n.canBulk(p); ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, directWait)
	defer cancel()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("sync with %s: %w (%s): data waits for a direct path (hole punching)", shortID(p), ErrRelayLimited, n.relayLimits(p))
		case <-t.C:
			if ok, _ := n.canBulk(p); ok {
				return nil
			}
		}
	}
}

// relayLimits describes the limits of the relayed connections to p, for messages.
func (n *Node) relayLimits(p peer.ID) string {
	h := n.hostNow()
	if h == nil {
		return "no connection"
	}
	for _, c := range h.Network().ConnsToPeer(p) {
		if st := c.Stat(); st.Limited {
			data, _ := st.Extra[client.StatLimitData].(uint64)
			dur, _ := st.Extra[client.StatLimitDuration].(time.Duration)
			durText, dataText := "no time limit", "no data limit"
			if dur > 0 {
				durText = dur.String()
			}
			if data > 0 {
				dataText = fmt.Sprintf("%d KiB", data>>10)
			}
			return fmt.Sprintf("it allows %s and %s a connection; data needs %s and %d MiB", durText, dataText, roomyRelayDuration, roomyRelayData>>20)
		}
	}
	return "no relayed connection left"
}

// watchAddrs keeps this device's record in the device list current with the host's
// addresses (relay addresses included, once reserved), so that other devices can dial it
// without having met it, and hands the addresses of devices in the list to the peerstore.
// It also keeps the records of the replicas this device admitted current with the
// addresses their identify reports (a replica cannot write its own record).
func (n *Node) watchAddrs(ctx context.Context, h host.Host) {
	sub, err := h.EventBus().Subscribe([]any{new(event.EvtLocalAddressesUpdated), new(event.EvtPeerIdentificationCompleted)})
	if err != nil {
		n.log.Warn("address updates", "err", err)
		return
	}
	defer sub.Close()
	var settle <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			if id, ok := e.(event.EvtPeerIdentificationCompleted); ok {
				// A session with a replica can end before this device has identified it
				// (the replica dialled, and only the dialler waits for identify), and an
				// identify push brings a replica's new addresses with no session at all:
				// both would leave its record without them until the next anti-entropy.
				if d, ok := n.isMember(id.Peer); ok && d.Role == RoleReplica && !n.blind {
					n.recordReplicaAddrs(d)
				}
				continue
			}
			// Addresses come in bursts (listeners, observed addresses, reservations).
			if settle == nil {
				settle = time.After(2 * time.Second)
			}
		case <-settle:
			settle = nil
			n.updateOwnAddrs(h.Addrs())
		}
	}
}

// relayCandidates is autorelay's peer source without configured relays: the peers of the
// DHT's routing table, with the addresses the peerstore holds for them. Autorelay itself
// checks which of them offer a relay and reserves a slot.
func (n *Node) relayCandidates(ctx context.Context, num int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo, num)
	defer close(out)
	d, h := n.dhtNow(), n.hostNow()
	if d == nil || h == nil {
		return out
	}
	for _, p := range d.RoutingTable().ListPeers() {
		if len(out) == num {
			break
		}
		if addrs := h.Peerstore().Addrs(p); len(addrs) > 0 {
			out <- peer.AddrInfo{ID: p, Addrs: addrs}
		}
	}
	return out
}
