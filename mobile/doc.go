// Package mobile embeds a meshsync node in a phone app through gomobile. Its API uses only
// types gomobile binds (strings, []byte, numbers, bool, error, and the Listener interface
// for callbacks); where a structure must cross, it is a JSON string. It wraps package node.
//
// Generate the bindings with gomobile (the package is checked by scripts/gobind-check.sh
// on every change):
//
//	gomobile bind -target=android -javapkg=org.example.meshsync ./mobile   // → .aar
//	gomobile bind -target=ios ./mobile                                    // → .xcframework
//
// # Usage
//
// In Kotlin (Swift is alike, with the Mobile prefix: MobileOpen, MobileNode):
//
//	val opts = """{"mdns":true}"""
//	val node = if (Mobile.exists(dir)) Mobile.open(dir, pass, opts)
//	           else Mobile.create(dir, pass, "Ada's phone", opts)   // or Mobile.join(dir, pass, code, name, opts)
//	node.setListener(object : Listener {
//	    override fun onChange(collection: String, key: String, deleted: Boolean, local: Boolean) { refresh(collection, key) }
//	    override fun onState(stateJSON: String) { showStatus(stateJSON) }
//	    override fun onConflict(conflictJSON: String) { askUser(conflictJSON) }
//	})
//	node.setSyncPolicy(Mobile.PolicyWifiOnly)
//	node.start()                                   // off the main thread
//	node.put("notes", "today", """{"text":"hello"}""")
//	val code = node.invite(600)                    // show it; the other device calls Mobile.join
//	val short = node.inviteShort(0)                // {"code":"4-garden-orbit-pencil",…}: read it aloud;
//	                                               // the other device calls Mobile.joinShort
//	// from the platform's callbacks:
//	node.setForeground(false); node.setMetered(true); node.setCharging(true)
//	node.close()
//
// Errors arrive as exceptions (NSError) whose message starts with a code: branch with
// Mobile.errorCode(e.message) == Mobile.CodeNotFound.
//
// # Phone behaviour
//
// The network (the libp2p host, its sockets, mDNS, the sync loops) is up only while all of
// these hold: Start was called and Stop was not; the sync policy allows it ("paused" never
// does, "wifi-only" not on a metered network, "charging-only" only while charging); and
// the app is in the foreground, or the "background_sync" option is set, or a SyncNow is
// running. A change of foreground, metered or charging takes effect once it has held for
// the debounce (option "debounce_ms", default 2 s), so a flapping signal does not churn; a
// change of policy takes effect at once. States shows the result ("running", "paused",
// "paused_reason").
//
// Stop takes down the store as well: a stopped node holds no socket, no goroutine and no
// file lock (iOS kills a suspended app that holds a lock on a file in a shared container).
//
// # Caveats
//
//   - Pausing (policy, signals) takes only the network down (node.Node.Stop) and keeps the
//     store open; data calls go on meanwhile. Start after Stop reopens the store: one
//     passphrase key derivation (Argon2id, 64 MiB, about half a second on a phone).
//   - The node keeps the passphrase in memory from Open to Close, to reopen the store after
//     Stop.
//   - The listener is called from one goroutine; do not call Stop or Close from it.
//   - Only one Node may have a directory open at a time (CodeLocked).
//   - On Android, mDNS needs a WifiManager.MulticastLock held by the app.
//   - Beyond the local network the node uses package node's defaults: DHT discovery under
//     a key only the mesh can compute, relays found through the DHT once AutoNAT finds the
//     phone behind a NAT, and hole punching (there is no option for configured relays).
//     Sync never runs over a public relay's limited connection: two devices that cannot
//     hole-punch wait for a direct path.
package mobile
