package node

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// A device that stops its network and starts it again on the same address (a daemon on
// its port, a laptop waking up) with nothing to send either way syncs without writing
// anything on either device: no commit for its states, its last contact, its progress or
// its device record. What the reconnects learnt still reaches the store at Close.
func TestReconnectWithNothingToSendWritesNothing(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	nodes := newMeshEach(t, 2, func(i int, c *Config) {
		if i == 1 {
			c.ListenAddrs = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)}
		}
	})
	a, b := nodes[0], nodes[1]
	for i := range 20 {
		mustDo(t, a.PutRaw("notes", fmt.Sprint(i), []byte("v")))
	}
	eventually(t, "b holds a's records", func() error { return hasValue(b, "notes", "19", "v") })
	waitSynced(t, b)

	commits := func() uint64 {
		return a.Store().Replication().Commits() + b.Store().Replication().Commits()
	}
	var last time.Time
	reconnect := func() {
		t.Helper()
		mustDo(t, b.Stop())
		t0 := time.Now()
		mustStart(t, b)
		mustDo(t, b.SyncNow(ctxT(t, 10*time.Second)))
		eventually(t, "a session after the restart", func() error {
			for _, d := range b.States().Devices {
				if d.PeerID == a.PeerID() && d.LastSync.After(t0) && d.Status == StatusUpToDate {
					last = d.LastSync
					return nil
				}
			}
			return fmt.Errorf("b's states: %+v", b.States().Devices)
		})
	}
	// The first reconnects may still write what the sync before them moved: b's progress
	// past a's sequence numbers that echo b's own records (a applied them after b's last
	// session), which b writes once. Then nothing is left to write.
	for i := 0; ; i++ {
		c0 := commits()
		reconnect()
		if commits() == c0 {
			break
		}
		if i == 5 {
			t.Fatalf("every reconnect with nothing to send writes (%d commits the last time)", commits()-c0)
		}
	}
	for i := range 3 {
		c0 := commits()
		reconnect()
		if d := commits() - c0; d != 0 {
			t.Fatalf("reconnect %d with nothing to send: %d commits on the two devices, want 0", i, d)
		}
	}

	// Close writes the states the reconnects kept in memory: the last sync survives.
	b = reopen(t, b)
	st := b.States()
	if len(st.Devices) != 1 || !st.Devices[0].LastSync.Equal(last) {
		t.Fatalf("after a restart b's state is %+v, want the last sync %v", st.Devices, last)
	}
}
