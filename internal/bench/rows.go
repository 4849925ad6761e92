package bench

// The rows Run returns, in this order: MachineRow, InitialSyncRow, SignaturesRow,
// ScopedSyncRow (scoped.go), ReconnectRow, UnlockRow, IncrementalRow (merkle, then fast),
// PushRow, RestRow, FootprintRow. Field names are a stable schema for scripts (fields may be added, none renamed): `meshsync --json bench` prints
// each row as one JSON object per line.
type (
	// MachineRow names the machine the figures come from.
	MachineRow struct {
		Row     string `json:"row"` // "machine"
		CPU     string `json:"cpu"`
		Cores   int    `json:"cores"`
		OS      string `json:"os"`
		Go      string `json:"go"`
		LoadAvg string `json:"load_avg,omitempty"` // at the start: other work on the machine
	}
	// InitialSyncRow is a fresh device receiving every record, beside the slowest of the
	// limits measured on the same envelopes: a raw libp2p stream, a bbolt write in the
	// store's layout, AEAD opening.
	InitialSyncRow struct {
		Row              string  `json:"row"` // "initial_sync"
		Records          int     `json:"records"`
		Seconds          float64 `json:"seconds"`
		RecordsPerS      float64 `json:"records_per_s"`
		LimitRecordsPerS float64 `json:"limit_records_per_s"`
		OfLimit          float64 `json:"of_limit"`
		LimitBy          string  `json:"limit_by"`
		StreamPerS       float64 `json:"stream_records_per_s"`
		BoltPerS         float64 `json:"bbolt_records_per_s"`
		AEADPerS         float64 `json:"aead_records_per_s"`
		EnvelopeBytes    int64   `json:"envelope_bytes"`     // what the limits carried, wrote and opened
		WireBytes        int64   `json:"wire_bytes"`         // TCP payload A→B during the sync
		FillPerS         float64 `json:"fill_records_per_s"` // local writes on A, 4096 per transaction
		// Commits is the write transactions B committed until the last record arrived;
		// bbolt syncs the file twice per commit.
		Commits int `json:"commits"`
		// WarmBytes is how much memory was warmed before the limit and again before the
		// sync (warm.go; the size of A's store, and about as much before the fill),
		// WarmMBPerS how fast the warm-up before the sync wrote: a few hundred MiB/s where
		// the host backs fresh guest memory lazily, GiB/s on memory used lately.
		WarmBytes  int64   `json:"warm_bytes"`
		WarmMBPerS float64 `json:"warm_mb_per_s"`
	}
	// IncrementalRow is d changed records reaching a device that was offline: by Merkle
	// reconciliation ("incremental_merkle") or by the fast path ("incremental_fast").
	IncrementalRow struct {
		Row           string  `json:"row"` // "incremental_fast" or "incremental_merkle"
		N             int     `json:"n"`
		D             int     `json:"d"`
		Found         int     `json:"found"`          // differences found (merkle) or records applied (fast)
		BytesSent     int64   `json:"bytes_sent"`     // by the device catching up
		BytesReceived int64   `json:"bytes_received"` // by the device catching up
		RoundTrips    int     `json:"round_trips"`
		Seconds       float64 `json:"seconds"`
		FloorSeconds  float64 `json:"floor_seconds"`
		Measured      string  `json:"measured"`
		// The fast path is measured over a fresh connection; the same reconnect with
		// nothing to send costs this much (handshake, identify, hello, push streams).
		ConnectBytesSent     int64   `json:"connect_bytes_sent,omitempty"`
		ConnectBytesReceived int64   `json:"connect_bytes_received,omitempty"`
		ConnectSeconds       float64 `json:"connect_seconds,omitempty"`
	}
	// ReconnectRow is a device that stops its network and starts it again on the same
	// address with nothing to send either way, until its session ended: the first time
	// after its initial sync, then Reconnects-1 more (p50: their median; median: of all
	// Reconnects); at the full n and, in a mesh of its own, at 10,000 records (or n when
	// smaller), the same number of times, alternately (10k, then n). The ratios show
	// whether a reconnect grows with the store (goal: 1); MedianRatio compares the same
	// number of samples at both sizes.
	ReconnectRow struct {
		Row                string  `json:"row"` // "reconnect"
		N                  int     `json:"n"`
		FirstSeconds       float64 `json:"first_seconds"`
		P50Seconds         float64 `json:"p50_seconds"`
		FirstBytesSent     int64   `json:"first_bytes_sent"`     // by the reconnecting device
		FirstBytesReceived int64   `json:"first_bytes_received"` // by the reconnecting device
		FirstCommits       int     `json:"first_commits"`        // write transactions on both devices (fsyncs ÷ 2), from before the Stop
		SmallN             int     `json:"small_n"`
		SmallFirstSeconds  float64 `json:"small_first_seconds"`
		SmallP50Seconds    float64 `json:"small_p50_seconds"`
		FirstRatio         float64 `json:"first_ratio"` // first_seconds ÷ small_first_seconds
		P50Ratio           float64 `json:"p50_ratio"`   // p50_seconds ÷ small_p50_seconds
		// FirstPushAfterJoinMs is the first change written on a device after another one
		// joined it and took its initial sync, until the new device read it (in the
		// 10,000-record mesh).
		FirstPushAfterJoinMs float64 `json:"first_push_after_join_ms"`
		// Reconnects is how many reconnects were timed at each size, the first included.
		Reconnects         int     `json:"reconnects"`
		MedianSeconds      float64 `json:"median_seconds"`       // of all Reconnects at n
		MaxSeconds         float64 `json:"max_seconds"`          // the slowest of them
		SmallMedianSeconds float64 `json:"small_median_seconds"` // of all Reconnects at small_n
		SmallMaxSeconds    float64 `json:"small_max_seconds"`
		MedianRatio        float64 `json:"median_ratio"` // median_seconds ÷ small_median_seconds
		// Commits is the write transactions on both devices over all Reconnects at n, from
		// before each Stop until each session ended (SmallCommits: at small_n).
		Commits      int `json:"commits"`
		SmallCommits int `json:"small_commits"`
	}
	// PushRow is the latency of a write until it is readable on the other device, beside
	// one round trip plus one committed transaction.
	PushRow struct {
		Row      string  `json:"row"` // "push"
		Writes   int     `json:"writes"`
		P50ms    float64 `json:"p50_ms"`
		P99ms    float64 `json:"p99_ms"`
		FloorMs  float64 `json:"floor_ms"`
		RTTms    float64 `json:"rtt_ms"`
		CommitMs float64 `json:"commit_ms"`
		PutP50ms float64 `json:"put_p50_ms"` // the writer's own committed Put
		// CommitsPerWrite is the write transactions both devices committed per write
		// (bbolt syncs the file twice per commit).
		CommitsPerWrite float64 `json:"commits_per_write"`
	}
	// RestRow is what idle nodes cost: memory, disk, CPU time and wake-ups.
	RestRow struct {
		Row               string  `json:"row"` // "rest"
		Records           int     `json:"records"`
		RSSBytes          int64   `json:"rss_bytes"`
		RSSAnonBytes      int64   `json:"rss_anon_bytes"`
		RSSFileBytes      int64   `json:"rss_file_bytes"`
		DiskBytes         int64   `json:"disk_bytes"`
		DiskBytesPerRec   float64 `json:"disk_bytes_per_record"`
		IdleNodes         int     `json:"idle_nodes"`
		IdleSeconds       float64 `json:"idle_seconds"`
		IdleCPUSeconds    float64 `json:"idle_cpu_seconds"`
		IdleCPUFraction   float64 `json:"idle_cpu_fraction"` // of one core
		IdleWakeups       int64   `json:"idle_wakeups"`
		IdleWakeupsPerMin float64 `json:"idle_wakeups_per_min"`
		WakeupsSource     string  `json:"wakeups_source"`
		// B restarted alone (A closed): the memory of a node that opens its store, not
		// one that just wrote it.
		RSSRestartedBytes     int64 `json:"rss_restarted_bytes"`
		RSSRestartedFileBytes int64 `json:"rss_restarted_file_bytes"`
		// The same process with no node open: the Go runtime's own share.
		BaselineCPUFraction   float64 `json:"baseline_cpu_fraction"`
		BaselineWakeupsPerMin float64 `json:"baseline_wakeups_per_min"`
	}
	// FootprintRow is where B's bytes on disk go, per record it holds
	// (store.Replication.Footprint): the envelopes' clear headers and ciphertexts (the
	// value is Size bytes of that), the index entries (ids and collection index), the
	// Merkle nodes, what bbolt leaves unused in the pages of those buckets (fill), the
	// free pages, and the rest (the small buckets, the meta and freelist pages, and the
	// file bbolt grew ahead of its use).
	FootprintRow struct {
		Row              string  `json:"row"` // "footprint"
		Records          int64   `json:"records"`
		Envelopes        int64   `json:"envelopes"`
		FileBytes        int64   `json:"file_bytes"`
		PerRecord        float64 `json:"bytes_per_record"`
		EnvelopeHeader   float64 `json:"envelope_header_per_record"`
		Ciphertext       float64 `json:"ciphertext_per_record"`
		ValueBytes       int     `json:"value_bytes"`
		IndexEntries     float64 `json:"index_per_record"`
		MerkleNodes      float64 `json:"merkle_per_record"`
		EnvelopePages    float64 `json:"envelope_pages_per_record"` // the envelope bucket's page overhead beyond the envelope bytes
		Fill             float64 `json:"fill_per_record"`           // unused bytes in the pages of every bucket
		Free             float64 `json:"free_per_record"`
		Other            float64 `json:"other_per_record"`
		EnvelopeFillRate float64 `json:"envelope_fill"` // used ÷ allocated in the envelope bucket
		IndexFillRate    float64 `json:"index_fill"`
		MerkleFillRate   float64 `json:"merkle_fill"`
		PageSize         int     `json:"page_size"` // of B's bbolt file
		// The same store after store.Compact (`meshsync compact`, B closed): its time, and
		// the bytes per record of the compacted file, of which unused bytes in pages,
		// free pages and the rest (as above).
		CompactSeconds        float64 `json:"compact_seconds"`
		CompactedPerRecord    float64 `json:"compacted_bytes_per_record"`
		CompactedFill         float64 `json:"compacted_fill_per_record"`
		CompactedFree         float64 `json:"compacted_free_per_record"`
		CompactedOther        float64 `json:"compacted_other_per_record"`
		CompactedIndexFill    float64 `json:"compacted_index_fill"`
		CompactedMerkleFill   float64 `json:"compacted_merkle_fill"`
		CompactedEnvelopeFill float64 `json:"compacted_envelope_fill"`
		CompactedPageSize     int     `json:"compacted_page_size"`
	}
	// SignaturesRow is what signed authority records cost (store/authority.go): every
	// record of a reserved collection is signed by its writer and verified on arrival;
	// data records are not.
	SignaturesRow struct {
		Row          string  `json:"row"` // "signatures"
		SignMicros   float64 `json:"sign_us"`
		VerifyMicros float64 `json:"verify_us"`
		// Authority records B verified during the initial sync, and their share of it.
		AuthorityRecords int     `json:"authority_records"`
		AuthoritySeconds float64 `json:"authority_seconds"`
		// What verifying a signature on every record of the initial sync would have cost,
		// over all cores, beside the initial sync's own time.
		AllRecordsSeconds float64 `json:"all_records_seconds"`
		InitialSeconds    float64 `json:"initial_seconds"`
	}
	// UnlockRow is opening a store with its passphrase, beside Argon2id alone.
	UnlockRow struct {
		Row     string  `json:"row"` // "unlock"
		Seconds float64 `json:"seconds"`
		KDF     string  `json:"kdf"`
		TestKDF bool    `json:"test_kdf"`
		// KDFSeconds is Argon2id alone with the same parameters, in the same run: the
		// floor of an unlock.
		KDFSeconds float64 `json:"kdf_seconds"`
	}
	// ReconcileRow is one in-memory reconciliation of two sets (Reconcile).
	ReconcileRow struct {
		N             int     `json:"n"`
		D             int     `json:"d"`
		BytesSent     int     `json:"bytes_sent"`
		BytesReceived int     `json:"bytes_received"`
		RoundTrips    int     `json:"round_trips"`
		Seconds       float64 `json:"seconds"` // CPU time
	}
)
