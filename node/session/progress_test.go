package session

import "testing"

func TestProgress(t *testing.T) {
	e1, e2 := [16]byte{1}, [16]byte{2}
	held := Progress{Epoch: e1, Seq: 5}
	for _, tc := range []struct {
		name     string
		from, to uint64
		epoch    [16]byte
		want     Progress
		ok       bool
	}{
		// A range that starts at or below what is held moves it forward, never back.
		{"continues", 5, 9, e1, Progress{Epoch: e1, Seq: 9}, true},
		{"overlaps", 3, 7, e1, Progress{Epoch: e1, Seq: 7}, true},
		{"behind", 1, 4, e1, Progress{Epoch: e1, Seq: 5}, true},
		// A gap leaves it as it is: a session fills the gap.
		{"gap", 6, 9, e1, Progress{Epoch: e1, Seq: 5}, false},
		// A new epoch replaces the old one, but only from its start.
		{"new epoch from 0", 0, 3, e2, Progress{Epoch: e2, Seq: 3}, true},
		{"new epoch mid-way", 2, 3, e2, Progress{Epoch: e1, Seq: 5}, false},
	} {
		got, ok := held.AfterRange(tc.epoch, tc.from, tc.to)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: AfterRange(%d, %d) = %v, %v; want %v, %v", tc.name, tc.from, tc.to, got, ok, tc.want, tc.ok)
		}
	}
	if got := held.AtLeast(e1, 3); got != held {
		t.Errorf("AtLeast went back: %v", got)
	}
	if got := held.AtLeast(e2, 3); got != (Progress{Epoch: e2, Seq: 3}) {
		t.Errorf("AtLeast of a new epoch: %v", got)
	}
}

// A group's progress: each group covers what it applied, the final one what the peer held
// at its hello, and nothing passes a refused envelope.
func TestApplyProgress(t *testing.T) {
	e := [16]byte{7}
	env := [][]byte{{1}}
	for _, tc := range []struct {
		name string
		a    Apply
		want *Progress
	}{
		{"ranged group", Apply{Envelopes: env, epoch: e, ranged: true, from: 0, to: 4, upto: 9}, &Progress{Epoch: e, Seq: 4}},
		{"final after a range", Apply{Envelopes: env, Final: true, epoch: e, ranged: true, from: 4, to: 6, upto: 9}, &Progress{Epoch: e, Seq: 9}},
		{"final without envelopes", Apply{Final: true, epoch: e, upto: 9}, &Progress{Epoch: e, Seq: 9}},
		{"empty group mid-way", Apply{epoch: e, ranged: true, from: 0, to: 4}, nil},
		{"after a refusal", Apply{Envelopes: env, Final: true, epoch: e, ranged: true, from: 0, to: 4, upto: 9, rejected: 1}, nil},
		{"merkle group", Apply{Envelopes: env, epoch: e, upto: 9}, nil},
	} {
		got := tc.a.Progress(Progress{})
		if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
