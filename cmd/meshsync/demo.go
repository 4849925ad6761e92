package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/meshsync/meshsync/store"
)

type demoCmd struct {
	Keep bool `help:"Keep the demo's temporary directory."`
}

// Run shows the store on its own: two devices of one mesh, each with an encrypted bbolt
// file, exchange their envelopes through an encrypted backup, make a conflict, resolve it,
// and end byte-identical. (Networked sync between devices replaces the backup hand-off
// when the node lands.)
func (c *demoCmd) Run(g *globals) error {
	dir, err := os.MkdirTemp("", "meshsync-demo-")
	if err != nil {
		return err
	}
	if !c.Keep {
		defer os.RemoveAll(dir)
	}
	w := g.stdout
	if g.JSON {
		w = io.Discard
	}
	start := time.Now()
	step := func(format string, args ...any) {
		fmt.Fprintf(w, "%6.2fs  "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
	}
	pass := []byte("demo passphrase")
	bpass := []byte("demo backup passphrase")
	laptop, err := store.Init(filepath.Join(dir, "laptop"), pass, &store.Options{DeviceName: "laptop"})
	if err != nil {
		return err
	}
	defer laptop.Close()
	step("laptop: created a mesh (Argon2id-protected key, encrypted bbolt file)")
	laptop.Put("notes", "groceries", []byte(`{"milk":2,"eggs":12}`))
	laptop.Put("notes", "trip", []byte(`{"to":"Lisbon","days":4}`))
	step("laptop: wrote notes/groceries and notes/trip")
	var buf bytes.Buffer
	if _, err := laptop.Export(&buf, bpass, nil); err != nil {
		return err
	}
	phone, _, err := store.Restore(filepath.Join(dir, "phone"), bytes.NewReader(buf.Bytes()), bpass, pass, &store.Options{DeviceName: "phone"})
	if err != nil {
		return err
	}
	defer phone.Close()
	step("phone:  restored the mesh from an encrypted backup (%d bytes, age format)", buf.Len())
	laptop.Put("notes", "groceries", []byte(`{"milk":3,"eggs":12}`))
	phone.Put("notes", "groceries", []byte(`{"milk":2,"eggs":6}`))
	phone.Put("notes", "phone-only", []byte(`"written offline"`))
	step("both:   edited notes/groceries while apart (a concurrent conflict)")
	exchange := func(from, to *store.Store) error {
		var envs [][]byte
		if _, err := from.Since(0, 0, func(_ uint64, raw []byte) error {
			envs = append(envs, bytes.Clone(raw))
			return nil
		}); err != nil {
			return err
		}
		res, err := to.Apply(envs)
		if err != nil {
			return err
		}
		step("%-6s -> %-6s %d envelopes shipped, %d new, %d already known", from.Device().Name, to.Device().Name, len(envs), res.Added, res.Stale)
		return nil
	}
	if err := exchange(phone, laptop); err != nil {
		return err
	}
	if err := exchange(laptop, phone); err != nil {
		return err
	}
	rec, err := laptop.Get("notes", "groceries")
	if err != nil {
		return err
	}
	if rec.Conflict != nil {
		step("laptop: notes/groceries has a %s conflict between %d versions; %s strategy shows %s", rec.Conflict.Type, rec.Versions, rec.Conflict.Strategy, rec.Value)
	}
	laptop.Put("notes", "groceries", []byte(`{"milk":3,"eggs":6}`))
	step("laptop: resolved it by writing a value that has seen both versions")
	if err := exchange(laptop, phone); err != nil {
		return err
	}
	ra, _ := laptop.Root()
	rb, _ := phone.Root()
	same := ra == rb
	step("both:   Merkle roots %x / %x: identical=%v", ra.FP[:6], rb.FP[:6], same)
	recs, err := phone.List("notes", "")
	if err != nil {
		return err
	}
	type row struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	out := struct {
		Converged bool   `json:"converged"`
		Dir       string `json:"dir,omitempty"`
		Records   []row  `json:"records"`
	}{Converged: same}
	if c.Keep {
		out.Dir = dir
	}
	for _, r := range recs {
		out.Records = append(out.Records, row{r.Key, string(r.Value)})
	}
	if !same {
		return fmt.Errorf("demo: stores did not converge")
	}
	return g.print(out, func(w io.Writer) {
		fmt.Fprintln(w, "\nnotes on the phone:")
		for _, r := range out.Records {
			fmt.Fprintf(w, "  %-12s %s\n", r.Key, r.Value)
		}
		if c.Keep {
			fmt.Fprintln(w, "files kept in", dir)
		}
	})
}
