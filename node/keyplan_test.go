package node

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshsync/meshsync/resolve"
	"github.com/meshsync/meshsync/store"
)

// TestKeyPlanTranscripts runs the key-rotation planning (keyplan.go) as written in
// testdata/keys/*.txt. Commands:
//
//	plan self=ID [blind]     the device list as input, one device a line:
//	                         ID [kx=KEY] [role=ROLE] [removed] [seen-removed]
//	grants                   members and key epochs as input:
//	                         members ID=KEY …
//	                         epoch N ID …   (its recipients)
//	reseal epochs=N [rotated] [running] wait=DURATION
func TestKeyPlanTranscripts(t *testing.T) {
	runTranscripts(t, "testdata/keys/*.txt", func(t *testing.T) func(*transcriptCmd) string {
		return func(c *transcriptCmd) string {
			switch c.name {
			case "plan":
				return runKeyPlan(c)
			case "grants":
				return runGrants(c)
			case "reseal":
				epochs, _ := strconv.Atoi(c.opt("epochs", "0"))
				wait, err := time.ParseDuration(c.opt("wait", "2m"))
				if err != nil {
					t.Fatal(err)
				}
				start, after := planReseal(epochs, slices.Contains(c.args, "rotated"), slices.Contains(c.args, "running"), wait)
				if !start {
					return "no re-seal"
				}
				return fmt.Sprintf("re-seal after %v", after)
			}
			t.Fatalf("%s: unknown command %q", c.pos, c.name)
			return ""
		}
	})
}

func runKeyPlan(c *transcriptCmd) string {
	in := keyInputs{self: c.opt("self", ""), blind: slices.Contains(c.args, "blind")}
	for _, l := range c.input {
		f := strings.Fields(l)
		d := Device{ID: f[0], PeerID: peer.ID("peer-" + f[0]), Role: RoleDevice}
		for _, a := range f[1:] {
			k, v, _ := strings.Cut(a, "=")
			switch k {
			case "kx":
				d.KeyAgreement = v
			case "role":
				d.Role = v
			case "removed":
				d.Removed = true
				d.RemovalPoint = &store.RemovalPoint{Counter: 7}
			case "seen-removed":
				in.removed = append(in.removed, d.PeerID)
			}
		}
		in.devices = append(in.devices, d)
	}
	p := planKeys(in)
	var out []string
	for _, r := range p.revoke {
		out = append(out, fmt.Sprintf("revoke %s after counter %d", r.dev, r.at.Counter))
	}
	if p.skip {
		return strings.Join(append(out, "skip"), "\n")
	}
	if p.publish {
		out = append(out, "publish own key-agreement key")
	}
	var ms []string
	for dev, pub := range p.members {
		ms = append(ms, string(dev)+"="+pub)
	}
	slices.Sort(ms)
	if len(ms) == 0 {
		ms = []string{"-"}
	}
	return strings.Join(append(out, "members "+strings.Join(ms, " ")), "\n")
}

func runGrants(c *transcriptCmd) string {
	members := map[resolve.DeviceID]string{}
	var kes []store.KeyEpoch
	for _, l := range c.input {
		f := strings.Fields(l)
		switch f[0] {
		case "members":
			for _, m := range f[1:] {
				k, v, _ := strings.Cut(m, "=")
				members[resolve.DeviceID(k)] = v
			}
		case "epoch":
			n, _ := strconv.Atoi(f[1])
			ke := store.KeyEpoch{Epoch: uint32(n)}
			for _, r := range f[2:] {
				ke.Recipients = append(ke.Recipients, resolve.DeviceID(r))
			}
			kes = append(kes, ke)
		}
	}
	var out []string
	for _, g := range planGrants(members, kes) {
		out = append(out, fmt.Sprintf("grant %s to %s", g.dev, g.pub))
	}
	if len(out) == 0 {
		return "no grants"
	}
	return strings.Join(out, "\n")
}
