package session

import (
	"testing"

	"github.com/meshsync/meshsync/node/internal/wire"
)

// TestCommonCollections: two sides compare the collections both hold — a reserved one
// always, an untagged one always, an application one only when both scopes take it — and
// the roots they compare are the sums over those.
func TestCommonCollections(t *testing.T) {
	notes, photos, devices := [8]byte{0x01}, [8]byte{0x02}, [8]byte{0x81}
	laptop := &wire.Hello{ScopeAll: true, Roots: []wire.TagRoot{
		{Tag: notes, Count: 3, FP: [32]byte{1}}, {Tag: photos, Count: 100, FP: [32]byte{2}}, {Tag: devices, Count: 2, FP: [32]byte{3}}}}
	phone := &wire.Hello{Scope: [][8]byte{notes}, Roots: []wire.TagRoot{
		{Tag: notes, Count: 3, FP: [32]byte{1}}, {Tag: devices, Count: 2, FP: [32]byte{3}}}}
	tags := common(laptop, phone)
	if len(tags) != 2 || tags[0] != notes || tags[1] != devices {
		t.Fatalf("common %x, want notes and devices", tags)
	}
	l, p := restrict(laptop, tags), restrict(phone, tags)
	if l.RootCount != 5 || l.RootCount != p.RootCount || l.RootFP != p.RootFP {
		t.Errorf("restricted roots differ: %d/%x and %d/%x", l.RootCount, l.RootFP[:4], p.RootCount, p.RootFP[:4])
	}
	if d, _ := direction(l, p); d != modeNone {
		t.Errorf("equal common roots: direction %v, want none (the photos do not count)", d)
	}
	if got := held(phone, append(tags, photos)); len(got) != 2 {
		t.Errorf("the phone reads %x, want only the tags it holds", got)
	}
	// A widened phone holds no photo yet: the laptop sends them.
	phone.Scope = append(phone.Scope, photos)
	tags = common(laptop, phone)
	l, p = restrict(laptop, tags), restrict(phone, tags)
	if d, _ := direction(l, p); d == modeNone {
		t.Error("a widened scope: the laptop sends nothing")
	}
	// A hello without collection roots is one untagged tree, which every side takes.
	old := &wire.Hello{ScopeAll: true, RootCount: 7, RootFP: [32]byte{9}}
	if tags := common(old, phone); len(tags) != 3 || tags[0] != ([8]byte{}) {
		t.Errorf("untagged: common %x", tags)
	}
	if !(Scope{}).Wants([8]byte{}) || (Scope{Tags: [][8]byte{notes}}).Wants(photos) || !(Scope{}).Wants(devices) {
		t.Error("Wants")
	}
}
