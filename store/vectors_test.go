package store

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/meshsync/meshsync/internal/vectors"
	"github.com/meshsync/meshsync/resolve"
)

var counting = vectors.Counting

// The fields of the envelope vectors: a mesh key, and per envelope its record, version,
// key epoch, key and nonce. Everything the encoding depends on is fixed, so it is
// deterministic.
var vectorMeshKey = counting(0x00, 32)

const vectorDevice = resolve.DeviceID("0123456789abcdef")

type envelopeVector struct {
	name, comment string
	p             payload
	version       resolve.Version
	epoch         uint32
	key           []byte // nil: epoch 0's data key, from the mesh key
	nonce         []byte
	tagged        bool // format 2: the collection tag after the id
}

func envelopeVectors(t *testing.T) []envelopeVector {
	t.Helper()
	v1 := resolve.Version{Device: vectorDevice, Clock: 0x019b7ca98c880001, VV: resolve.VersionVector{vectorDevice: 1}}
	v2 := resolve.Version{Device: vectorDevice, Clock: 0x019b7ca98c890000, VV: resolve.VersionVector{vectorDevice: 2, "fedcba9876543210": 1}}
	doc, err := resolve.StampVersion(nil, []byte(`{"title":"groceries","n":2}`), v2)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := resolve.StampVersion(nil, []byte(`{"id":"0123456789abcdef","role":"device"}`), v1)
	if err != nil {
		t.Fatal(err)
	}
	return []envelopeVector{
		{"envelope_raw", "raw value, payload format 1, key epoch 0", payload{Collection: "notes", Key: "k1",
			Value: resolve.Value{Kind: resolve.KindRaw, Data: []byte("hello, world"), Fields: resolve.FieldClocks{}}}, v1, 0, nil, counting(0x80, 24), false},
		{"envelope_json", "JSON value with field clocks, two devices in the version vector, key epoch 0", payload{Collection: "notes", Key: "k2",
			Value: doc}, v2, 0, nil, counting(0xa0, 24), false},
		{"envelope_signed", "signed record of a reserved collection (payload format 2), key epoch 300 (a two-byte uvarint)", payload{Collection: DevicesCollection, Key: string(vectorDevice),
			Value: dev, Sig: bytes.Repeat([]byte{0x5a}, 64)}, v1, 300, counting(0xc0, 32), counting(0xb0, 24), false},
		{"envelope_tagged", "format 2: the collection tag (keyed hash of \"notes\", 8 bytes) after the id, outside the associated data (which is the format-1 header); raw value, key epoch 0",
			payload{Collection: "notes", Key: "k3", Value: resolve.Value{Kind: resolve.KindRaw, Data: []byte("tagged"), Fields: resolve.FieldClocks{}}},
			v1, 0, nil, counting(0xd0, 24), true},
	}
}

// seal seals v's payload as keyring.sealWith does, with v's nonce instead of a random one.
func (v envelopeVector) seal(t *testing.T, k *keyring) []byte {
	t.Helper()
	plain, err := v.p.marshal()
	if err != nil {
		t.Fatal(err)
	}
	e := &Envelope{ID: k.recordID(v.p.Collection, v.p.Key), KeyEpoch: v.epoch, Version: v.version}
	if v.tagged {
		e.Tag = k.tag(v.p.Collection)
	}
	copy(e.Nonce[:], v.nonce)
	aead, err := chacha20poly1305.NewX(v.sealKey(k))
	if err != nil {
		t.Fatal(err)
	}
	e.Ciphertext = aead.Seal(nil, e.Nonce[:], plain, e.appendHeader(nil))
	raw, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func (v envelopeVector) sealKey(k *keyring) []byte {
	if v.key == nil {
		return k.data[0]
	}
	return v.key
}

// TestEnvelopeVectors: each committed envelope decodes to its clear fields and opens, under
// the key derived from the fixed mesh key, to its record; the fields seal and encode to the
// committed bytes. A failure means the envelope format, the payload format or a key
// derivation changed: stores and peers of one release could no longer read another's.
func TestEnvelopeVectors(t *testing.T) {
	k := newKeyring(vectorMeshKey)
	for _, v := range envelopeVectors(t) {
		t.Run(v.name, func(t *testing.T) {
			path := "testdata/vectors/" + v.name + ".hex"
			vectors.Check(t, path, v.comment+"\nformat 1, id, uvarint key epoch, version (device, clock, vector), nonce, uvarint length, ciphertext\nmesh key 000102…1f; see vectors_test.go for the record", v.seal(t, k))

			e, err := UnmarshalEnvelope(vectors.Read(t, path))
			if err != nil {
				t.Fatal(err)
			}
			if v.tagged != (e.Tag == k.tag(v.p.Collection)) {
				t.Errorf("collection tag %s, tagged %v", e.Tag, v.tagged)
			}
			if e.ID != k.recordID(v.p.Collection, v.p.Key) || e.KeyEpoch != v.epoch || !reflect.DeepEqual(e.Version, v.version) || !bytes.Equal(e.Nonce[:], v.nonce) {
				t.Errorf("clear fields: id %x epoch %d version %+v nonce %x", e.ID[:6], e.KeyEpoch, e.Version, e.Nonce)
			}
			aead, err := chacha20poly1305.NewX(v.sealKey(k))
			if err != nil {
				t.Fatal(err)
			}
			plain, err := aead.Open(nil, e.Nonce[:], e.Ciphertext, e.appendHeader(nil))
			if err != nil {
				t.Fatal(err)
			}
			p, err := unmarshalPayload(plain)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*p, v.p) {
				t.Errorf("payload %+v\nwant    %+v", *p, v.p)
			}
			if v.epoch == 0 { // and the store's own paths open it
				if _, err := k.open(e); err != nil {
					t.Errorf("keyring open: %v", err)
				}
				// A receiver decodes the bytes as they arrived and cuts the associated
				// data from their clear header (Envelope.aad), tagged or not.
				raw := bytes.Clone(vectors.Read(t, path))
				var got Envelope
				if err := unmarshalEnvelopeInto(&got, raw, true, &deviceNames{}); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 0, len(raw))
				q, plain, err := k.openTo(&got, buf)
				if err != nil {
					t.Fatalf("open as received: %v", err)
				}
				if !reflect.DeepEqual(*q, v.p) || len(plain) == 0 || &plain[:1][0] != &buf[:1][0] {
					t.Errorf("opened as received: %+v (plaintext in the buffer given: %v)", *q, len(plain) > 0 && &plain[:1][0] == &buf[:1][0])
				}
			}
		})
	}
}

const vectorBackupPass = "vector passphrase"

// backupPlaintext is what a backup of the first two envelope vectors holds inside its age
// layer, encoded with the backup's own line types as Export writes them.
func backupPlaintext(t *testing.T, version int) []byte {
	t.Helper()
	k := newKeyring(vectorMeshKey)
	var out bytes.Buffer
	lines := 0
	write := func(v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		lines++
		out.Write(append(b, '\n'))
	}
	write(backupHeader{Format: backupFormat, Version: version, MeshKey: vectorMeshKey, MeshID: hex.EncodeToString(k.meshID[:]),
		Device: string(vectorDevice), DeviceName: "vector", Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
	envs := 0
	for _, v := range envelopeVectors(t)[:2] {
		write(backupLine{E: v.seal(t, k)})
		envs++
		rec := &backupRecord{Collection: v.p.Collection, Key: v.p.Key, Device: string(v.version.Device)}
		if v.p.Value.Kind == resolve.KindJSON {
			rec.Value = v.p.Value.Data
		} else {
			rec.Raw = v.p.Value.Data
		}
		write(backupLine{R: rec})
	}
	sum := sha256.Sum256(out.Bytes())
	write(backupLine{End: &backupTrailer{Lines: lines, Envelopes: envs, SHA256: hex.EncodeToString(sum[:])}})
	return out.Bytes()
}

// TestBackupVector: the committed backups (age files under a scrypt passphrase) hold the
// committed JSON lines, which are what the backup's line types encode the fields to: as
// they are in format version 1, compressed with gzip in version 2. Each restores into a
// store that reads both records. A failure means the backup format changed: an old backup
// would no longer restore.
func TestBackupVector(t *testing.T) {
	for _, v := range []struct {
		version    int
		jsonl, age string
	}{
		{backupVersionPlain, "testdata/vectors/backup.jsonl", "testdata/vectors/backup.age"},
		{backupVersion, "testdata/vectors/backup_v2.jsonl", "testdata/vectors/backup_v2.age"},
	} {
		t.Run(fmt.Sprintf("version %d", v.version), func(t *testing.T) { checkBackupVector(t, v.version, v.jsonl, v.age) })
	}
}

func checkBackupVector(t *testing.T, version int, jsonlPath, agePath string) {
	plain := backupPlaintext(t, version)
	vectors.Check(t, jsonlPath, "", plain)
	compressed := version != backupVersionPlain
	if vectors.Updating() {
		var b bytes.Buffer
		rcpt, err := age.NewScryptRecipient(vectorBackupPass)
		if err != nil {
			t.Fatal(err)
		}
		rcpt.SetWorkFactor(10)
		w, err := age.Encrypt(&b, rcpt)
		if err != nil {
			t.Fatal(err)
		}
		if compressed {
			zw := gzip.NewWriter(w)
			zw.Write(plain)
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
		} else {
			w.Write(plain)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := vectors.Write(agePath, "", b.Bytes()); err != nil {
			t.Fatal(err)
		}
	}

	// The stock tools' view: the age layer holds exactly the committed lines (through
	// gunzip for version 2).
	id, err := age.NewScryptIdentity(vectorBackupPass)
	if err != nil {
		t.Fatal(err)
	}
	r, err := age.Decrypt(bytes.NewReader(vectors.Read(t, agePath)), id)
	if err != nil {
		t.Fatal(err)
	}
	if compressed {
		if r, err = gzip.NewReader(r); err != nil {
			t.Fatal(err)
		}
	}
	inside, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(inside, vectors.Read(t, jsonlPath)) {
		t.Errorf("%s does not hold %s", agePath, jsonlPath)
	}

	// meshsync's view: it restores, and both records read back.
	f, err := os.Open(agePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, st, err := Restore(filepath.Join(t.TempDir(), "restored"), f, []byte(vectorBackupPass), testPass, testOpts("restored"))
	if err != nil {
		t.Fatal(err)
	}
	defer mustVerifyClose(t, s)
	if st.Envelopes != 2 || st.New != 2 || st.Rejected != 0 {
		t.Errorf("restore stats %+v, want 2 new envelopes", st)
	}
	if s.Keys().MeshID() != newKeyring(vectorMeshKey).meshID {
		t.Errorf("restored into mesh %x", s.Keys().MeshID())
	}
	for _, v := range envelopeVectors(t)[:2] {
		rec, err := s.Get(v.p.Collection, v.p.Key)
		if err != nil {
			t.Fatalf("%s/%s: %v", v.p.Collection, v.p.Key, err)
		}
		if rec.Kind != v.p.Value.Kind || !bytes.Equal(rec.Value, v.p.Value.Data) {
			t.Errorf("%s/%s = %s (%v), want %s", v.p.Collection, v.p.Key, rec.Value, rec.Kind, v.p.Value.Data)
		}
	}
}
