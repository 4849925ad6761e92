package main

import (
	"encoding/hex"
	"fmt"
	"io"

	"github.com/meshsync/meshsync/store"
)

type initCmd struct {
	Name string `help:"Name of this device (default the host name)." placeholder:"DEVICE"`
}

type initOutput struct {
	Dir    string           `json:"dir"`
	Device store.DeviceInfo `json:"device"`
	MeshID string           `json:"mesh_id"`
}

func (c *initCmd) Run(g *globals) error {
	pass, err := g.passphrase(true)
	if err != nil {
		return err
	}
	s, err := store.Init(g.dir(), pass, &store.Options{DeviceName: c.Name})
	if err != nil {
		return err
	}
	defer s.Close()
	id := s.Keys().MeshID()
	out := initOutput{Dir: g.dir(), Device: s.Device(), MeshID: hex.EncodeToString(id[:])}
	return g.print(out, func(w io.Writer) {
		fmt.Fprintf(w, "Created a new mesh in %s\n", out.Dir)
		fmt.Fprintf(w, "This device: %s (%s)\n", out.Device.Name, out.Device.ID)
		fmt.Fprintln(w, "Keep your passphrase safe: without it the store cannot be opened.")
	})
}
