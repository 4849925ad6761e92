package node

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
	"golang.org/x/crypto/argon2"

	"github.com/meshsync/meshsync/node/internal/wire"
)

// Finding an inviting device whose code names no address it can use. The inviter
// announces its open invite, and the joiner looks for it:
//
//   - on the LAN by mDNS, under a service name derived from the inviter's peer id (a long
//     code) or from the nameplate of a short code: the name tells a LAN observer no more
//     than the announcement itself (a peer id and addresses, which mDNS shows anyway);
//   - on the DHT, as a provider of a key derived from the inviter's peer id and the day
//     (a long code), or from the whole short code and the day through Argon2id (64 MiB,
//     3 passes): the code never goes to the network, and testing one guess against the
//     key costs what guessing a store passphrase costs, about 2^32 of them being needed
//     within the code's ten minutes.
//
// The joiner tries the devices it finds in turn, moving on only from one it cannot reach:
// for a long code only the peer id the code names; for a short code the first device that
// answers the PAKE decides (two short codes open at once on one LAN with the same
// nameplate are rare, and a wrong guess would cost that other device one of its three
// attempts).

// inviteLookup says where an open invite is announced and looked for.
type inviteLookup struct {
	mdns string                      // DNS-SD service name
	dht  func(day time.Time) cid.Cid // the provider key of a day (UTC); nil for none
}

// longLookup is where the invite of device p is announced.
func longLookup(p peer.ID) inviteLookup {
	return inviteLookup{
		mdns: inviteMDNSName("meshsync/v1/invite/mdns/" + string(p)),
		dht: func(day time.Time) cid.Cid {
			return inviteCID(sha256.Sum256([]byte("meshsync/v1/invite/dht/" + string(p) + "/" + day.UTC().Format(time.DateOnly))))
		},
	}
}

// shortLookup is where the invite of a short code is announced.
func shortLookup(c wire.ShortCode) inviteLookup {
	code := []byte(c.String())
	return inviteLookup{
		mdns: inviteMDNSName("meshsync/v1/pair-short/mdns/" + strconv.Itoa(c.Nameplate)),
		dht: memoDays(func(day string) cid.Cid {
			salt := []byte("meshsync/v1/pair-short/dht/" + day)
			var k [32]byte
			copy(k[:], argon2.IDKey(code, salt, 3, 64<<10, 4, 32))
			return inviteCID(k)
		}),
	}
}

// memoDays computes key once per day.
func memoDays(key func(day string) cid.Cid) func(time.Time) cid.Cid {
	var mu sync.Mutex
	memo := map[string]cid.Cid{}
	return func(t time.Time) cid.Cid {
		day := t.UTC().Format(time.DateOnly)
		mu.Lock()
		defer mu.Unlock()
		c, ok := memo[day]
		if !ok {
			c = key(day)
			memo[day] = c
		}
		return c
	}
}

func inviteMDNSName(label string) string {
	m := hmac.New(sha256.New, []byte("meshsync/v1/invite-mdns"))
	m.Write([]byte(label))
	return "_m" + hex.EncodeToString(m.Sum(nil)[:6]) + "._udp"
}

func inviteCID(digest [32]byte) cid.Cid {
	mh, _ := multihash.Encode(digest[:], multihash.SHA2_256) // a 32-byte digest always encodes
	return cid.NewCidV1(cid.Raw, mh)
}

// dhtDays are the days a joiner looks under: today and, near midnight, the neighbour
// (the inviter's clock may be on the other side of it).
func dhtDays(now time.Time) []time.Time {
	days := []time.Time{now}
	if h := now.UTC().Hour(); h == 0 {
		days = append(days, now.Add(-24*time.Hour))
	} else if h == 23 {
		days = append(days, now.Add(24*time.Hour))
	}
	return days
}

// announceInvite makes the open invite findable by look until ctx ends: an mDNS
// announcement when cfg.EnableMDNS, a DHT provider record when the DHT runs. It runs on
// r's wait group.
func (n *Node) announceInvite(ctx context.Context, r *netRun, look inviteLookup) {
	defer r.wg.Done()
	if n.cfg.EnableMDNS {
		if srv, err := announceMDNS(r.host, look.mdns); err != nil {
			n.log.Info("invite: no mDNS announcement", "err", err)
		} else {
			defer srv.Shutdown()
		}
	}
	if d := r.dht.Load(); d != nil && look.dht != nil {
		for i := 0; ctx.Err() == nil; i++ {
			// Announce under today's key (and tomorrow's in the last hour of the day),
			// again every minute while the invite lives: the routing table fills as the
			// node starts.
			for _, day := range dhtDays(n.cfg.Now()) {
				if day.Before(n.cfg.Now().Add(-time.Hour)) {
					continue
				}
				pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				if err := d.Provide(pctx, look.dht(day), true); err != nil {
					n.log.Debug("invite: DHT announce", "err", err)
				}
				cancel()
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Minute):
			}
		}
	}
	<-ctx.Done()
}

// findInviter looks for devices announcing an invite under look until ctx ends and
// sends each one it finds (once per peer id, with its addresses) to found, then closes
// found. It browses mDNS when cfg.EnableMDNS, and asks the DHT through cfg.Bootstrap
// unless cfg.LANOnly.
func findInviter(ctx context.Context, h host.Host, cfg Config, look inviteLookup, found chan<- peer.AddrInfo) {
	defer close(found)
	infos := make(chan peer.AddrInfo, 16)
	done := make(chan struct{})
	sources := 0
	if cfg.EnableMDNS {
		sources++
		go func() {
			defer func() { done <- struct{}{} }()
			browseMDNS(ctx, look.mdns, func(pi peer.AddrInfo) {
				select {
				case infos <- pi:
				case <-ctx.Done():
				}
			})
		}()
	}
	if !cfg.LANOnly && len(cfg.Bootstrap) > 0 && look.dht != nil {
		sources++
		go func() {
			defer func() { done <- struct{}{} }()
			findOnDHT(ctx, h, cfg, look, infos)
		}()
	}
	seen := map[peer.ID]bool{h.ID(): true}
	for sources > 0 {
		select {
		case <-done:
			sources--
		case pi := <-infos:
			if seen[pi.ID] {
				continue
			}
			seen[pi.ID] = true
			select {
			case found <- pi:
			case <-ctx.Done():
			}
		}
	}
}

// findOnDHT joins the DHT as a client through cfg.Bootstrap and sends the providers of
// look's keys to infos.
func findOnDHT(ctx context.Context, h host.Host, cfg Config, look inviteLookup, infos chan<- peer.AddrInfo) {
	boot, err := parseAddrInfos("bootstrap", cfg.Bootstrap)
	if err != nil {
		return
	}
	d, err := dht.New(h, dht.Mode(dht.ModeClient), dht.BootstrapPeers(boot...))
	if err != nil {
		return
	}
	defer d.Close()
	for _, b := range boot {
		bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		h.Connect(bctx, b)
		cancel()
	}
	for ctx.Err() == nil {
		if len(d.RoutingTable().ListPeers()) > 0 {
			for _, day := range dhtDays(cfg.Now()) {
				for pi := range d.FindProvidersAsync(ctx, look.dht(day), 8) {
					if h.Network().Connectedness(pi.ID) == network.Connected || len(pi.Addrs) > 0 {
						select {
						case infos <- pi:
						case <-ctx.Done():
							return
						}
					}
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}
