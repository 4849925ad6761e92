package node

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
)

// A change to the device list closes the connections of peers that are no longer
// devices, and only those: the connection to a relay (and with it the reservation and
// every relayed connection to a sibling behind a NAT) and to DHT peers stays up. Closing
// it made two devices behind NATs lose their relayed path each time a device record
// changed (every address update), and a write then waited for the next retry.
func TestRelayConnSurvivesDeviceListChange(t *testing.T) {
	relay, err := StartRelay(RelayConfig{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, NoDHT: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	var raddrs []string
	for _, a := range relay.Addrs() {
		raddrs = append(raddrs, a.String())
	}
	nodes := newMeshWith(t, 2, func(c *Config) {
		c.LANOnly = false
		c.Relays = raddrs
		c.Bootstrap = raddrs
		c.DHTMode = DHTClient
	})
	a, b := nodes[0], nodes[1]
	nw := a.Host().Network()
	eventually(t, "connected to the relay", func() error {
		if nw.Connectedness(relay.PeerID()) != network.Connected {
			return errors.New("not connected")
		}
		return nil
	})
	var dropped atomic.Int32
	nw.Notify(&network.NotifyBundle{DisconnectedF: func(_ network.Network, c network.Conn) {
		if c.RemotePeer() == relay.PeerID() {
			dropped.Add(1)
		}
	}})
	a.CancelInvite()
	if err := a.RemoveDevice(b.DeviceID()); err != nil {
		t.Fatal(err)
	}
	if nw.Connectedness(b.PeerID()) == network.Connected {
		t.Error("still connected to the removed device")
	}
	if nw.Connectedness(relay.PeerID()) != network.Connected || dropped.Load() > 0 {
		t.Errorf("the device list change closed the connection to the relay (%d closed)", dropped.Load())
	}
}
