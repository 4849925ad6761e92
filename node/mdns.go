package node

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/zeroconf/v2"
	ma "github.com/multiformats/go-multiaddr"
)

// LAN discovery. Each device announces itself under a DNS-SD service name of its own,
// derived from the current discovery key (store.DiscoveryKeys) and its peer id, and looks
// for each other device of the mesh under that device's name, under the newest two
// discovery keys (a device that has not adopted the newest key epoch yet still announces
// under the previous one). Siblings can compute every name; an outsider, or a device
// removed before the current epoch, cannot tell which names belong to one mesh, and a
// device's name changes with each key epoch.
//
// What an observer on the LAN still sees: each announcement carries its device's peer id
// and addresses in clear (as libp2p's mDNS does), and the multicast queries a device sends
// for its siblings' names come from its address; watching the queries links the devices
// of one mesh for as long as the epoch lasts.

// mdnsRefresh is how often the names announced and browsed are recomputed (a new device,
// a new key epoch).
const mdnsRefresh = 30 * time.Second

// mdnsBrowseKeys is how many discovery keys, newest first, siblings are looked for under.
const mdnsBrowseKeys = 2

// mdnsName is the service name device p announces under discovery key key.
func mdnsName(key []byte, p peer.ID) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("meshsync/v2/mdns/"))
	m.Write([]byte(p))
	return "_m" + hex.EncodeToString(m.Sum(nil)[:6]) + "._udp"
}

// meshMDNS is the node's mDNS service: one announcement, one browser per sibling name.
type meshMDNS struct {
	n      *Node
	h      host.Host
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex // guards the fields below
	self     string     // the name this device announces under
	server   *zeroconf.Server
	browsing map[string]*mdnsBrowse // service name -> its browser
}

type mdnsBrowse struct {
	peer   peer.ID
	cancel context.CancelFunc
}

var _ mdns.Service = (*meshMDNS)(nil)

func newMeshMDNS(n *Node, h host.Host) *meshMDNS {
	m := &meshMDNS{n: n, h: h, browsing: map[string]*mdnsBrowse{}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m
}

// Start announces the device and starts the browsers, then keeps them current.
func (m *meshMDNS) Start() error {
	if err := m.refresh(); err != nil {
		return err
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(mdnsRefresh)
		defer t.Stop()
		for {
			select {
			case <-m.ctx.Done():
				return
			case <-t.C:
				if err := m.refresh(); err != nil {
					m.n.log.Debug("mdns refresh", "err", err)
				}
			}
		}
	}()
	return nil
}

// Close stops the announcement and every browser.
func (m *meshMDNS) Close() error {
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.server != nil {
		m.server.Shutdown()
		m.server = nil
	}
	return nil
}

// refresh recomputes the names: it re-announces under a new name when the current
// discovery key changed, and starts and stops browsers as devices and keys come and go.
func (m *meshMDNS) refresh() error {
	keys, err := m.n.st.Keys().DiscoveryKeys()
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return errors.New("no discovery key")
	}
	want := map[string]peer.ID{}
	for _, d := range m.n.devices.Load().list {
		if d.Removed || d.PeerID == m.h.ID() || d.PeerID == "" {
			continue
		}
		for _, k := range keys[:min(mdnsBrowseKeys, len(keys))] {
			want[mdnsName(k.Key, d.PeerID)] = d.PeerID
		}
	}
	self := mdnsName(keys[0].Key, m.h.ID())

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx.Err() != nil {
		return nil
	}
	if self != m.self || m.server == nil {
		if m.server != nil {
			m.server.Shutdown()
			m.server = nil
		}
		srv, err := m.announce(self)
		if err != nil {
			return err
		}
		m.server, m.self = srv, self
	}
	for name, b := range m.browsing {
		if want[name] != b.peer {
			b.cancel()
			delete(m.browsing, name)
		}
	}
	for name, p := range want {
		if m.browsing[name] == nil {
			m.browsing[name] = m.browse(name, p)
		}
	}
	return nil
}

// announce registers this device under name.
func (m *meshMDNS) announce(name string) (*zeroconf.Server, error) {
	return announceMDNS(m.h, name)
}

// announceMDNS registers h under the service name, its addresses in TXT records (as
// libp2p's mDNS does: "dnsaddr=/ip4/…/p2p/<id>").
func announceMDNS(h host.Host, name string) (*zeroconf.Server, error) {
	listen, err := h.Network().InterfaceListenAddresses()
	if err != nil {
		return nil, err
	}
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: listen})
	if err != nil {
		return nil, err
	}
	var txts, ips []string
	var ip4, ip6 bool
	for _, a := range addrs {
		first, _ := ma.SplitFirst(a)
		if first == nil || isRelayed(a) {
			continue
		}
		switch first.Protocol().Code {
		case ma.P_IP4:
			if !ip4 {
				ips, ip4 = append(ips, first.Value()), true
			}
		case ma.P_IP6:
			if !ip6 {
				ips, ip6 = append(ips, first.Value()), true
			}
		default:
			continue
		}
		txts = append(txts, "dnsaddr="+a.String())
	}
	if len(ips) == 0 {
		return nil, errors.New("no IP address to announce")
	}
	inst := make([]byte, 16)
	rand.Read(inst)
	instance := hex.EncodeToString(inst) // random, as libp2p's: names nothing
	// The port is required by DNS-SD; libp2p peers use only the TXT records.
	return zeroconf.RegisterProxy(instance, name, "local", 4001, instance, ips, txts, nil)
}

// browse looks for device p under name until the browser is stopped.
func (m *meshMDNS) browse(name string, p peer.ID) *mdnsBrowse {
	ctx, cancel := context.WithCancel(m.ctx)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		browseMDNS(ctx, name, func(info peer.AddrInfo) {
			// Only the device the name belongs to: an answer under its name that
			// names another peer is not from the mesh.
			if info.ID == p {
				mdnsNotifee{m.n}.HandlePeerFound(info)
			}
		})
	}()
	return &mdnsBrowse{peer: p, cancel: cancel}
}

// browseMDNS looks for the service name until ctx ends and calls found with every peer
// an answer names (its peer id and addresses from the TXT records).
func browseMDNS(ctx context.Context, name string, found func(peer.AddrInfo)) {
	entries := make(chan *zeroconf.ServiceEntry, 16)
	browsed := make(chan struct{})
	go func() {
		defer close(browsed)
		zeroconf.Browse(ctx, name, "local", entries) // an error (no interface) ends the browse
	}()
	for {
		var e *zeroconf.ServiceEntry
		select {
		case <-browsed: // Browse closes entries when it ran, not when it failed to start
			return
		case e = <-entries:
		}
		if e == nil {
			<-browsed
			return
		}
		var addrs []ma.Multiaddr
		for _, txt := range e.Text {
			s, ok := strings.CutPrefix(txt, "dnsaddr=")
			if !ok {
				continue
			}
			if a, err := ma.NewMultiaddr(s); err == nil {
				addrs = append(addrs, a)
			}
		}
		infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
		if err != nil {
			continue
		}
		for _, info := range infos {
			found(info)
		}
	}
}
