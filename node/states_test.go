package node

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// deviceState returns n's state of the device named name.
func deviceState(n *Node, name string) (DeviceState, error) {
	for _, d := range n.States().Devices {
		if d.Name == name {
			return d, nil
		}
	}
	return DeviceState{}, fmt.Errorf("%s has no state for %s", n.self.Name, name)
}

func hasWarning(st States, kind string) bool {
	return slices.ContainsFunc(st.Warnings, func(w Warning) bool { return w.Kind == kind })
}

// A device that goes away is shown Offline, not connected, with the reason of the failed
// redial and the time of the next one.
func TestStateOfflineWhenPeerLeaves(t *testing.T) {
	nodes := newMesh(t, 2)
	a, b := nodes[0], nodes[1]
	waitSynced(t, a)
	eventually(t, "up to date", func() error { // a session b started may still run
		if d, _ := deviceState(a, "n1"); d.Status != StatusUpToDate || !d.Connected || d.PendingIn != 0 || d.PendingOut != 0 {
			return fmt.Errorf("before: %+v", d)
		}
		return nil
	})
	b.Close()
	eventually(t, "offline with reason", func() error {
		d, err := deviceState(a, "n1")
		if err != nil {
			return err
		}
		if d.Status != StatusOffline || d.Connected || d.Reason == "" || d.NextRetry.IsZero() {
			return fmt.Errorf("state %+v", d)
		}
		return nil
	})
	if st := a.States(); st.Overall != StatusOffline {
		t.Errorf("overall %s with the only other device gone", st.Overall)
	}
}

// A device whose sessions fail is in Error, with the reason, the next retry and a health
// warning that names it.
func TestStateErrorCarriesReasonAndRetry(t *testing.T) {
	nodes := newMesh(t, 1)
	a := nodes[0]
	fakeDevice(t, a) // a paired peer that speaks no sync protocol
	eventually(t, "error state", func() error {
		d, err := deviceState(a, "fake")
		if err != nil {
			return err
		}
		if d.Status != StatusError || d.Reason == "" || d.NextRetry.IsZero() {
			return fmt.Errorf("state %+v", d)
		}
		return nil
	})
	st := a.States()
	if st.Overall != StatusError || !hasWarning(st, WarnSyncError) {
		t.Fatalf("overall %s, warnings %+v", st.Overall, st.Warnings)
	}
	for _, w := range st.Warnings {
		if w.Kind == WarnSyncError && !strings.Contains(w.Message, "fake") {
			t.Errorf("warning does not name the device: %q", w.Message)
		}
	}
}

// An open conflict puts the devices involved in Conflict; the state is rebuilt from the
// store after a restart, and a resolution brings them back to UpToDate.
func TestConflictStateSurvivesRestart(t *testing.T) {
	nodes := newMesh(t, 2)
	a, b := nodes[0], nodes[1]
	a.Put("doc", "k", []byte(`{"v":"base"}`))
	eventually(t, "base", func() error { return hasValue(b, "doc", "k", `{"v":"base"}`) })
	bcfg := b.cfg
	b.Close()
	a.Put("doc", "k", []byte(`{"v":"a"}`))
	b2, err := Open(context.Background(), bcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b2.Put("doc", "k", []byte(`{"v":"b"}`)); err != nil {
		t.Fatal(err)
	}
	mustStart(t, b2)
	eventually(t, "conflict state on a", func() error {
		d, err := deviceState(a, "n1")
		if err != nil {
			return err
		}
		if d.Status != StatusConflict || d.Conflicts != 1 {
			return fmt.Errorf("state %+v", d)
		}
		return nil
	})
	defer b2.Close()

	acfg := a.cfg
	a.Close()
	a2, err := Open(context.Background(), acfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	cs, err := a2.Store().Conflicts().List()
	if err != nil || len(cs) != 1 {
		t.Fatalf("store conflicts %d, %v", len(cs), err)
	}
	st := a2.States()
	if st.Conflicts != 1 || st.Overall != StatusConflict || !hasWarning(st, WarnConflicts) {
		t.Fatalf("after restart: %+v", st)
	}
	// The device is shown as it was when a stopped: in conflict, or offline when the
	// closing connection's notice reached the tracker before it stopped; its open
	// conflict counts either way.
	if len(st.Devices) != 1 || (st.Devices[0].Status != StatusConflict && st.Devices[0].Status != StatusOffline) || st.Devices[0].Conflicts != 1 {
		t.Fatalf("device after restart: %+v", st.Devices)
	}
	// Resolved before the network starts (as `meshsync resolve` does on a stopped daemon's
	// store, or an app right after Open): the change must still reach the states. The feed
	// was subscribed in Start, after this write, and the count stayed at 1 for good.
	if err := a2.Store().Conflicts().Resolve(cs[0].ID, 1, nil, len(cs[0].Versions)); err != nil {
		t.Fatal(err)
	}
	mustStart(t, a2)
	eventually(t, "resolved", func() error {
		st := a2.States()
		if st.Conflicts != 0 || hasWarning(st, WarnConflicts) || len(st.Devices) != 1 || st.Devices[0].Conflicts != 0 || st.Devices[0].Status == StatusConflict {
			return fmt.Errorf("states %+v", st)
		}
		return nil
	})
}

// The status snapshot names this device, lists the others with the fields `meshsync
// status` shows, and keeps its JSON field names.
func TestStatesSnapshotSchema(t *testing.T) {
	nodes := newMesh(t, 2)
	a := nodes[0]
	waitSynced(t, a)
	st := a.States()
	if st.Name != "n0" || st.PeerID != a.PeerID() || st.DeviceID != a.DeviceID() {
		t.Fatalf("self: %q %s %q", st.Name, st.PeerID, st.DeviceID)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"device_id"`, `"name"`, `"peer_id"`, `"overall"`, `"devices"`, `"conflicts"`, `"refused"`,
		`"status"`, `"connected"`, `"relayed"`, `"last_seen"`, `"last_sync"`, `"pending_in"`, `"pending_out"`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("status JSON lacks %s: %s", field, b)
		}
	}
}

// A late notice of a session the device served (it arrives after the device's connection
// closed) does not put off the redial: the device is tried again after the retry delay,
// not after the anti-entropy interval (minutes), so its state keeps moving.
func TestLateServedNoticeDoesNotStopRedial(t *testing.T) {
	nodes := newMesh(t, 2)
	a, b := nodes[0], nodes[1]
	waitSynced(t, a)
	bp := b.PeerID()
	b.Close()
	var first DeviceState
	eventually(t, "offline", func() error {
		d, err := deviceState(a, "n1")
		if err != nil {
			return err
		}
		if d.Status != StatusOffline || d.Connected || d.NextRetry.IsZero() {
			return fmt.Errorf("state %+v", d)
		}
		first = d
		return nil
	})
	r := a.net.Load()
	a.mu.Lock()
	pl := r.peers[bp]
	a.mu.Unlock()
	if pl == nil {
		t.Fatal("no device loop for n1")
	}
	pl.servedSession()
	// Two attempts after the notice: one may have been under way as it arrived.
	last := first.NextRetry
	for i := range 2 {
		eventually(t, fmt.Sprintf("attempt %d after the notice", i+1), func() error {
			d, err := deviceState(a, "n1")
			if err != nil {
				return err
			}
			if !d.NextRetry.After(last) {
				return fmt.Errorf("no new attempt since %s: %+v", last, d)
			}
			last = d.NextRetry
			return nil
		})
	}
}
