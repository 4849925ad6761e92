package mobile

import "fmt"

// Sync policies, for SetSyncPolicy. The policy belongs to this device (it is not synced)
// and survives restarts.
const (
	// PolicyAlways syncs whenever the node is started and in the foreground (or, with the
	// "background_sync" option, also in the background).
	PolicyAlways = "always"
	// PolicyWifiOnly syncs only while the network is not metered (SetMetered).
	PolicyWifiOnly = "wifi-only"
	// PolicyChargingOnly syncs only while the device is charging (SetCharging).
	PolicyChargingOnly = "charging-only"
	// PolicyPaused never syncs; records can still be read and written locally.
	PolicyPaused = "paused"
)

// Reasons the network is down, as shown in the "paused_reason" field of States.
const (
	reasonStopped    = "stopped"
	reasonPolicy     = "paused by sync policy"
	reasonMetered    = "metered network"
	reasonCharging   = "not charging"
	reasonBackground = "in background"
)

// signals is what the app has told the node about the phone, and the device's policy.
type signals struct {
	policy     string
	foreground bool
	metered    bool
	charging   bool
	// background lets the node sync in the background (option "background_sync").
	background bool
	// bursts counts SyncNow calls in progress: they lift the background rule.
	bursts int
}

// defaultSignals assumes a foreground app on an unmetered network, not charging.
func defaultSignals() signals { return signals{policy: PolicyAlways, foreground: true} }

// decide says whether the network should be up when the app wants it up, and if not,
// why. It is a pure function of the signals.
func decide(s signals) (run bool, reason string) {
	switch {
	case s.policy == PolicyPaused:
		return false, reasonPolicy
	case s.policy == PolicyWifiOnly && s.metered:
		return false, reasonMetered
	case s.policy == PolicyChargingOnly && !s.charging:
		return false, reasonCharging
	case !s.foreground && !s.background && s.bursts == 0:
		return false, reasonBackground
	}
	return true, ""
}

// checkPolicy validates a policy name.
func checkPolicy(p string) error {
	switch p {
	case PolicyAlways, PolicyWifiOnly, PolicyChargingOnly, PolicyPaused:
		return nil
	}
	return fmt.Errorf("sync policy %q: %w: want %q, %q, %q or %q", p, errInvalid,
		PolicyAlways, PolicyWifiOnly, PolicyChargingOnly, PolicyPaused)
}
