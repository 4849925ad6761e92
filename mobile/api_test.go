package mobile

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"github.com/meshsync/meshsync/node/view"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/store"
)

// TestErrorCodes: the errors an app branches on carry their code, and bad input never
// panics.
func TestErrorCodes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	if _, err := Open(dir, testPass, ""); code(err) != CodeNoStore {
		t.Errorf("Open without a store: %v", err)
	}
	if _, err := Create(dir, testPass, "a", `{"listen":["not an address"]}`); code(err) != CodeInvalid {
		t.Errorf("bad listen address: %v", err)
	}
	if _, err := Create(dir, testPass, "a", `{"mdsn":false}`); code(err) != CodeInvalid {
		t.Errorf("misspelt option: %v", err)
	}
	n, err := Create(dir, testPass, "a", loopback)
	must(t, err)
	if _, err := Create(dir, testPass, "a", loopback); code(err) != CodeExists {
		t.Errorf("Create over a store: %v", err)
	}
	if _, err := Open(dir, testPass, loopback); code(err) != CodeLocked {
		t.Errorf("second Open of an open store: %v", err)
	}
	if _, err := n.Get("notes", "missing"); code(err) != CodeNotFound {
		t.Errorf("Get of a missing record: %v", err)
	}
	if err := n.Put("notes", "x", `{not json`); code(err) != CodeInvalid {
		t.Errorf("Put of bad JSON: %v", err)
	}
	if err := n.Put("_devices", "x", `1`); code(err) != CodeInvalid {
		t.Errorf("Put in a reserved collection: %v", err)
	}
	if _, err := n.Invite(60); code(err) != CodePaused {
		t.Errorf("Invite before Start: %v", err)
	}
	if err := n.SetPolicy("notes", `{"strategy":"coinflip"}`); code(err) != CodeInvalid {
		t.Errorf("bad policy: %v", err)
	}
	must(t, n.PutBytes("blobs", "b", []byte{0, 1, 2}))
	if _, err := n.Get("blobs", "b"); code(err) != CodeInvalid {
		t.Errorf("Get of raw bytes: %v", err)
	}
	if b, err := n.GetBytes("blobs", "b"); err != nil || string(b) != "\x00\x01\x02" {
		t.Errorf("GetBytes: %q %v", b, err)
	}
	if err := n.ResolveConflict("ffff", 1, "", 0); code(err) != CodeNotFound {
		t.Errorf("resolving a missing conflict: %v", err)
	}
	if !errors.Is(n.Put("notes", "x", `{`), store.ErrInvalid) {
		t.Error("errors do not wrap the store's sentinels")
	}
	must(t, n.Close())
	if _, err := Open(dir, "wrong", loopback); code(err) != CodeWrongPassphrase {
		t.Errorf("wrong passphrase: %v", err)
	}
	if _, err := Join(filepath.Join(t.TempDir(), "b"), testPass, "not-a-code", "b", loopback); code(err) != CodeBadInvite {
		t.Errorf("Join with a bad code: %v", err)
	}
	if ErrorCode("no code here") != CodeFailed || ErrorCode("stale: x") != CodeStale {
		t.Error("ErrorCode")
	}
}

// TestZeroNode: a Node made by the binding's constructor (new Node() in Java) refuses
// everything without panicking.
func TestZeroNode(t *testing.T) {
	var n Node
	n.SetForeground(false)
	n.SetMetered(true)
	n.SetCharging(true)
	n.SetListener(&recListener{})
	for _, err := range []error{n.Start(), n.Put("a", "b", "1"), n.SetSyncPolicy(PolicyPaused), n.SyncNow(1)} {
		if code(err) != CodeClosed {
			t.Errorf("zero Node: %v, want %s", err, CodeClosed)
		}
	}
	if _, err := n.States(); err != nil {
		t.Error(err)
	}
	must(t, n.Stop())
	must(t, n.Close())
}

// TestDataAPI covers List, Delete, consent and backups as an app uses them.
func TestDataAPI(t *testing.T) {
	dir := t.TempDir()
	n, err := Create(filepath.Join(dir, "a"), testPass, "a", loopback)
	must(t, err)
	defer n.Close()
	l := &recListener{}
	n.SetListener(l)
	must(t, n.Put("notes", "a1", `{"t":1}`))
	must(t, n.Put("notes", "a2", `{"t":2}`))
	must(t, n.Put("notes", "b1", `{"t":3}`))
	must(t, n.Delete("notes", "a2"))
	var recs []view.Record
	must(t, json.Unmarshal([]byte(ok(t)(n.List("notes", "a"))), &recs))
	if len(recs) != 1 || recs[0].Key != "a1" || string(recs[0].Value) != `{"t":1}` {
		t.Fatalf("List: %+v", recs)
	}
	l.waitChange(t, "notes/a2 deleted")

	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	must(t, err)
	dest, _ := peer.IDFromPrivateKey(sk)
	if ok, err := n.CheckConsent("notes", "research", dest.String()); err != nil || ok {
		t.Fatalf("CheckConsent without a grant: %v %v", ok, err)
	}
	q := ok(t)(n.RequestConsent(`{"app":"study","collection":"notes","purpose":"research","destination":"` +
		dest.String() + `","fields":["t=drop"],"for_seconds":86400}`))
	if !strings.Contains(q, `"status":"pending"`) {
		t.Fatalf("RequestConsent: %s", q)
	}
	if _, err := n.RequestConsent(`{"collection":"notes","purpose":"research","destination":"nobody"}`); code(err) != CodeInvalid {
		t.Fatalf("RequestConsent to a bad peer id: %v", err)
	}

	backup := filepath.Join(dir, "backup.age")
	var info struct{ Records int }
	must(t, json.Unmarshal([]byte(ok(t)(n.ExportBackup(backup, "backup pass"))), &info))
	if info.Records < 3 { // two notes, a delete, and the device list
		t.Fatalf("ExportBackup wrote %d records", info.Records)
	}
	stats := ok(t)(n.ImportBackup(backup, "backup pass", true))
	if !strings.Contains(stats, `"new":0`) {
		t.Fatalf("ImportBackup of its own backup: %s", stats)
	}
	if _, err := n.ImportBackup(backup, "wrong", true); err == nil {
		t.Fatal("ImportBackup with a wrong passphrase succeeded")
	}
}
