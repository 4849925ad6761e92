package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshsync/meshsync/node"
	"github.com/meshsync/meshsync/node/localapi"
	"github.com/meshsync/meshsync/store"
)

func TestShown(t *testing.T) {
	tests := []struct{ in, want string }{
		// Left as they are.
		{"laptop", "laptop"},
		{"Zoë's phone 📱", "Zoë's phone 📱"},
		{`C:\x`, `C:\x`},
		// C0, DEL and C1 controls.
		{"a\x1b[2Jb", `a\x1b[2Jb`},
		{"line\nforged", `line\x0aforged`},
		{"tab\there", `tab\x09here`},
		{"del\x7f", `del\x7f`},
		{"csi\u009b2J", `csi\u009b2J`},
		// Bidi marks, overrides and isolates.
		{"gpj.\u202eexe", `gpj.\u202eexe`},
		{"\u202a\u202b\u202c\u202d", `\u202a\u202b\u202c\u202d`},
		{"\u2066x\u2069", `\u2066x\u2069`},
		{"\u200f\u200e\u061c", `\u200f\u200e\u061c`},
		// Invalid UTF-8: a lone 0x9b byte is CSI to an 8-bit terminal.
		{"bad\x9b2J", `bad\x9b2J`},
	}
	for _, tc := range tests {
		if got := shown(tc.in); got != tc.want {
			t.Errorf("shown(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// hostileName is a device name that clears the screen and reverses the rest of the line.
const hostileName = "evil\x1b[2J\u202etxt.exe"

// checkEscaped fails unless out shows the hostile name escaped and holds no raw control.
func checkEscaped(t *testing.T, what, out string) {
	t.Helper()
	if strings.ContainsAny(out, "\x1b\u202e") {
		t.Errorf("%s prints a raw escape or bidi override:\n%q", what, out)
	}
	if !strings.Contains(out, `evil\x1b[2J\u202etxt.exe`) {
		t.Errorf("%s does not show the name escaped:\n%q", what, out)
	}
}

// TestDeviceNamesShownEscaped: status, devices, devices rm, joins and errors print a
// device name that holds "\x1b[2J" and "\u202e" escaped; JSON output keeps it exact.
func TestDeviceNamesShownEscaped(t *testing.T) {
	dev := node.Device{ID: "d-evil", Name: hostileName, Role: node.RoleDevice}

	var b bytes.Buffer
	writeStatus(&b, localapi.Status{
		Device:   store.DeviceInfo{ID: "d-self", Name: hostileName},
		Warnings: []string{"device " + hostileName + " has a clock 2h ahead"},
		Devices: []localapi.DeviceStatus{{DeviceState: node.DeviceState{DeviceID: "d-evil", Name: hostileName,
			Status: node.StatusError, Reason: "refused by " + hostileName}}},
	}, 0)
	checkEscaped(t, "status", b.String())

	b.Reset()
	writeDevices(&b, []node.Device{dev}, "self")
	checkEscaped(t, "devices", b.String())

	b.Reset()
	g := &globals{stdout: &b}
	if err := g.printRemoved(dev); err != nil {
		t.Fatal(err)
	}
	checkEscaped(t, "devices rm", b.String())

	msg, _ := describe(fmt.Errorf("sync with %s: refused", hostileName), g)
	checkEscaped(t, "an error", msg)

	b.Reset()
	g.JSON = true
	if err := g.printRemoved(dev); err != nil {
		t.Fatal(err)
	}
	var got struct{ Name string }
	if err := json.Unmarshal(b.Bytes(), &got); err != nil || got.Name != hostileName {
		t.Errorf("JSON name %q (%v), want the exact name %q", got.Name, err, hostileName)
	}
}

// TestStatusOneLinePerDevice: a reason of several lines (a libp2p dial error) keeps the
// status table at one line per device, cut to a terminal's width and whole otherwise.
func TestStatusOneLinePerDevice(t *testing.T) {
	reason := "failed to dial: all dials failed\n  * [/ip4/10.0.0.2/tcp/4001] dial tcp 10.0.0.2:4001: connect: connection refused\n  * [/ip4/10.0.0.2/udp/4001/quic-v1] timeout: no recent network activity"
	reason = strings.ReplaceAll(reason, `\n`, "\n")
	st := localapi.Status{Device: store.DeviceInfo{ID: "d-self", Name: "laptop"},
		Devices: []localapi.DeviceStatus{
			{DeviceState: node.DeviceState{DeviceID: "d-phone", Name: "phone", Status: node.StatusError, Reason: reason}},
			{DeviceState: node.DeviceState{DeviceID: "d-tablet", Name: "tablet", Status: node.StatusUpToDate}},
		}}
	for _, width := range []int{0, 100, 200} {
		var b bytes.Buffer
		writeStatus(&b, st, width)
		lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
		if len(lines) != 4 { // this device, the header, one line per device
			t.Fatalf("width %d: %d lines:\n%s", width, len(lines), b.String())
		}
		row := lines[2]
		if width > 0 && len([]rune(row)) > width+40 {
			t.Errorf("width %d: a row of %d characters", width, len([]rune(row)))
		}
		if width == 0 && !strings.Contains(row, "no recent network activity") {
			t.Errorf("without a terminal the reason is cut: %s", row)
		}
	}
}

// TestStatusTryingDirect: a device reached only through a relay shows how this device
// tries to make the path direct ("relayed (trying direct, next in 20 s)"), still on one
// line; --json carries the state, the attempts and the last error.
func TestStatusTryingDirect(t *testing.T) {
	lastErr := "failed to open hole-punching stream: protocols not supported: [/libp2p/dcutr]"
	st := localapi.Status{Device: store.DeviceInfo{ID: "d-self", Name: "laptop"},
		Devices: []localapi.DeviceStatus{
			{DeviceState: node.DeviceState{DeviceID: "d-phone", Name: "phone", Status: node.StatusUpToDate, Connected: true, Relayed: true,
				Direct: &node.DirectTry{State: node.DirectTrying, Attempts: 2, LastError: lastErr, Next: time.Now().Add(20*time.Second + 400*time.Millisecond)}}},
			{DeviceState: node.DeviceState{DeviceID: "d-tablet", Name: "tablet", Status: node.StatusUpToDate, Connected: true, Relayed: true,
				Direct: &node.DirectTry{State: node.DirectDeviceTries}}},
		}}
	var b bytes.Buffer
	writeStatus(&b, st, 0)
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	if !strings.Contains(lines[2], "relayed (trying direct, next in 20 s, 2 failed)") {
		t.Errorf("phone's row: %s", lines[2])
	}
	if !strings.Contains(lines[3], "relayed (the device tries direct)") {
		t.Errorf("tablet's row: %s", lines[3])
	}
	j, err := json.Marshal(st.Devices[0])
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Relayed bool `json:"relayed"`
		Direct  struct {
			State     string `json:"state"`
			Attempts  int    `json:"attempts"`
			LastError string `json:"last_error"`
			Next      string `json:"next"`
		} `json:"direct"`
	}
	if err := json.Unmarshal(j, &got); err != nil {
		t.Fatal(err)
	}
	if !got.Relayed || got.Direct.State != "trying" || got.Direct.Attempts != 2 || got.Direct.LastError != lastErr || got.Direct.Next == "" {
		t.Errorf("JSON %s", j)
	}
}
