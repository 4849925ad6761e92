package merkle

// Config tunes a Session. The zero value means the defaults; every zero field means its
// default. Both peers may use different Configs: each message states the widths it uses.
type Config struct {
	// MaxMessageBytes is a hard cap on the size of a message, both sent and received.
	// Default 64 KiB; values under MinMessageBytes are raised to it.
	MaxMessageBytes int
	// MaxRounds caps the messages one side handles (received plus sent). Default 1024.
	MaxRounds int
	// MaxWork caps the local work of a session, counted in nodes and items read from the
	// Source. Default 64 × (items held + 65,536).
	MaxWork int64
	// FingerprintBytes is the width of the truncated subtree fingerprints sent in the first
	// pass (1–8). Default 2. A collision makes the first pass miss a difference; the final
	// check catches it and a second pass with 4 bytes (then 8) runs.
	FingerprintBytes int
	// TagBytes is the width of the truncated item hashes in a listed subtree (1–8).
	// Default 3.
	TagBytes int
	// ListThreshold: a differing subtree holding at most this many items is listed rather
	// than split. Default 40.
	ListThreshold int
	// WideSplitAbove: a differing subtree holding more than this many items is split two
	// levels at once (256 fingerprints) instead of one (16), to save round trips at the
	// top of large trees. Default 256 × ListThreshold: split wide only when two levels of
	// narrow splits would not reach a listable size.
	WideSplitAbove int
	// MaxPasses caps the passes of a session (first pass plus retries). Default 3.
	MaxPasses int
}

// MinMessageBytes is the smallest message cap a Session accepts.
const MinMessageBytes = 4096

// maxWireBytes bounds any message the decoder accepts, whatever the Config.
const maxWireBytes = 1 << 20

func (c Config) withDefaults(held uint64) Config {
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 64 << 10
	}
	c.MaxMessageBytes = max(MinMessageBytes, min(c.MaxMessageBytes, maxWireBytes))
	if c.MaxRounds <= 0 {
		c.MaxRounds = 1024
	}
	if c.MaxWork <= 0 {
		c.MaxWork = 64 * (int64(min(held, 1<<40)) + 65536)
	}
	if c.FingerprintBytes <= 0 {
		c.FingerprintBytes = 2
	}
	c.FingerprintBytes = min(c.FingerprintBytes, 8)
	if c.TagBytes <= 0 {
		c.TagBytes = 3
	}
	c.TagBytes = min(c.TagBytes, 8)
	if c.ListThreshold <= 0 {
		c.ListThreshold = 40
	}
	c.ListThreshold = min(c.ListThreshold, maxList)
	if c.WideSplitAbove <= 0 {
		c.WideSplitAbove = 256 * c.ListThreshold
	}
	if c.MaxPasses <= 0 {
		c.MaxPasses = 3
	}
	c.MaxPasses = min(c.MaxPasses, 3)
	return c
}

// widths returns the fingerprint and tag widths used in pass p.
func (c Config) widths(pass int) (k, h int) {
	k, h = c.FingerprintBytes, c.TagBytes
	for range pass {
		k, h = min(2*k, 8), min(2*h, 8)
	}
	return k, h
}
