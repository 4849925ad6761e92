package node

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
)

// TestDiscoveryFollowsKeyEpoch: removing a device starts a key epoch, and with it new
// discovery keys. The remaining devices and the blind replica (told by the members
// message) move to the new key; a's mDNS announcement moves to a new name of its own;
// the removed device can compute neither the new key nor a's new name.
func TestDiscoveryFollowsKeyEpoch(t *testing.T) {
	nodes := newMeshWith(t, 3, func(c *Config) { c.EnableMDNS = hasMulticast() })
	a, b, d := nodes[0], nodes[1], nodes[2]
	rcode, _, err := a.InviteReplica(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Join(ctxT(t, 30*time.Second), testConfig(t, "r"), rcode, "box")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	mustStart(t, r)
	for _, n := range nodes {
		waitSynced(t, n)
	}
	before, err := a.st.Keys().DiscoveryKeys()
	if err != nil {
		t.Fatal(err)
	}
	var name0 string
	if md, ok := mdnsOf(a).(*meshMDNS); ok {
		name0 = md.self
		if name0 != mdnsName(before[0].Key, a.id) || name0 == mdnsName(before[0].Key, b.id) {
			t.Errorf("a announces %q", name0)
		}
	}

	if err := a.RemoveDevice(d.DeviceID()); err != nil {
		t.Fatal(err)
	}
	after, err := a.st.Keys().DiscoveryKeys()
	if err != nil {
		t.Fatal(err)
	}
	if after[0].Epoch < 1 || bytes.Equal(after[0].Key, before[0].Key) {
		t.Fatalf("a's current discovery key after the removal: epoch %d", after[0].Epoch)
	}
	// b may start an epoch of its own at the same time (concurrent rotations): compare
	// with a's current key each time.
	eventually(t, "b and the replica move to the new discovery key", func() error {
		if after, err = a.st.Keys().DiscoveryKeys(); err != nil {
			return err
		}
		for _, n := range []*Node{b, r} {
			k, err := n.st.Keys().DiscoveryKeys()
			if err != nil {
				return err
			}
			if !bytes.Equal(k[0].Key, after[0].Key) {
				a.SyncNow(context.Background())
				return fmt.Errorf("%s at epoch %d", n.self.Name, k[0].Epoch)
			}
		}
		return nil
	})
	held, err := d.st.Keys().DiscoveryKeys()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range held {
		if bytes.Equal(k.Key, after[0].Key) {
			t.Fatal("the removed device holds the new discovery key")
		}
	}
	if md, ok := mdnsOf(a).(*meshMDNS); ok {
		if err := md.refresh(); err != nil {
			t.Fatal(err)
		}
		if md.self == name0 || md.self != mdnsName(after[0].Key, a.id) {
			t.Errorf("a's mDNS name after the rotation: %q (before %q)", md.self, name0)
		}
		for _, k := range held {
			if mdnsName(k.Key, a.id) == md.self {
				t.Error("the removed device computes a's new mDNS name")
			}
		}
		md.mu.Lock()
		browsing := len(md.browsing)
		md.mu.Unlock()
		// b and the replica, each under the newest two keys; d no more.
		if want := 2 * min(mdnsBrowseKeys, len(after)); browsing != want {
			t.Errorf("a browses %d names, want %d", browsing, want)
		}
	} else {
		t.Log("no multicast interface: mDNS names not checked")
	}
}

// mdnsOf is the running network's mDNS service of n (nil while the network is down).
func mdnsOf(n *Node) mdns.Service {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.net.Load(); r != nil {
		return r.mdns
	}
	return nil
}
