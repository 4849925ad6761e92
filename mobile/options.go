package mobile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

// maxOptionsSize caps the options JSON before it is decoded.
const maxOptionsSize = 64 << 10

// maxListen caps the number of listen addresses.
const maxListen = 16

// options is the decoded opts argument of Open, Create and Join. Every field is optional.
type options struct {
	// Listen are the libp2p multiaddrs to listen on. Default: TCP and QUIC on port 4747
	// on every interface (a random port when it is taken).
	Listen []string `json:"listen,omitempty"`
	// MDNS finds the mesh's other devices on the local network. Default true.
	MDNS *bool `json:"mdns,omitempty"`
	// DebounceMs is how long a phone signal (foreground, metered, charging) must stay put
	// before the network is started or stopped for it. Default 2000; 0 means the default.
	DebounceMs int64 `json:"debounce_ms,omitempty"`
	// BackgroundSync keeps syncing while the app is in the background (an Android
	// foreground service). Default false: the network goes down in the background.
	BackgroundSync bool `json:"background_sync,omitempty"`
}

// defaultDebounce is the debounce of phone signals.
const defaultDebounce = 2 * time.Second

// maxDebounce bounds debounce_ms.
const maxDebounce = time.Hour

// parseOptions decodes and checks opts; "" means every default. Unknown fields are
// refused, so that a typo does not pass silently.
func parseOptions(s string) (options, error) {
	var o options
	if s == "" {
		return o, nil
	}
	if len(s) > maxOptionsSize {
		return o, fmt.Errorf("options: %w: longer than %d bytes", errInvalid, maxOptionsSize)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return options{}, fmt.Errorf("options: %w: %v", errInvalid, err)
	}
	if dec.More() {
		return options{}, fmt.Errorf("options: %w: trailing data after the JSON object", errInvalid)
	}
	if len(o.Listen) > maxListen {
		return options{}, fmt.Errorf("options: %w: more than %d listen addresses", errInvalid, maxListen)
	}
	for _, a := range o.Listen {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return options{}, fmt.Errorf("options: %w: listen address %q: %v", errInvalid, a, err)
		}
	}
	if o.DebounceMs < 0 || time.Duration(o.DebounceMs)*time.Millisecond > maxDebounce {
		return options{}, fmt.Errorf("options: %w: debounce_ms must be between 0 and %d", errInvalid, maxDebounce.Milliseconds())
	}
	return o, nil
}

func (o options) mdns() bool { return o.MDNS == nil || *o.MDNS }

func (o options) debounce() time.Duration {
	if o.DebounceMs == 0 {
		return defaultDebounce
	}
	return time.Duration(o.DebounceMs) * time.Millisecond
}
