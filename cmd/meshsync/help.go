package main

// Examples shown by `meshsync COMMAND --help`, under the flags' summary.

// Help shows examples of init.
func (c *initCmd) Help() string {
	return `Examples:
  meshsync init --name laptop                  # asks for a passphrase twice
  MESHSYNC_PASSPHRASE=… meshsync --dir ~/m init  # non-interactive`
}

// Help shows examples of put.
func (c *putCmd) Help() string {
	return `Examples:
  meshsync put notes todo '{"text":"buy milk","done":false}'
  echo '{"n":1}' | meshsync put counters a -
  meshsync put files motd --raw 'plain text, not JSON'`
}

// Help shows examples of get.
func (c *getCmd) Help() string {
	return `Examples:
  meshsync get notes todo
  meshsync --json get notes todo | jq .version`
}

// Help shows examples of ls.
func (c *lsCmd) Help() string {
	return `Examples:
  meshsync ls                  # every collection
  meshsync ls notes --prefix 2026-`
}

// Help shows examples of export.
func (c *exportCmd) Help() string {
	return `Examples:
  meshsync export ~/meshsync-backup.age        # asks for a backup passphrase
  age -d ~/meshsync-backup.age | gunzip | head -2   # stock tools open it (JSON lines)`
}

// Help shows examples of import.
func (c *importCmd) Help() string {
	return `Examples:
  meshsync import --dry-run backup.age         # what would change
  meshsync import backup.age                   # merge: newer data is never overwritten
  meshsync --dir ~/restored import backup.age  # restore into an empty directory`
}

// Help shows examples of daemon.
func (c *daemonCmd) Help() string {
	return `Examples:
  meshsync daemon &                            # then every command talks to it
  meshsync daemon --lan-only --no-mdns         # no DHT, no relay, no LAN announcements
  meshsync daemon --relay /ip4/203.0.113.7/tcp/4001/p2p/12D3KooW…
  meshsync daemon --ui-listen 127.0.0.1:8384   # the web page on a fixed port (meshsync ui)`
}

// Help shows examples of ui.
func (c *uiCmd) Help() string {
	return `Examples:
  meshsync ui                                  # opens the daemon's web page in a browser
  meshsync ui --no-open                        # prints the one-time login link only
  meshsync --json ui | jq -r .url`
}

// Help shows examples of replica.
func (c *replicaCmd) Help() string {
	return `Examples:
  meshsync pair --replica                      # on a device of the mesh
  meshsync join CODE --name box                # on the always-on machine
  meshsync replica &                           # keep it running
  meshsync --passphrase-file ~/.pass service install --replica`
}

// Help shows examples of status.
func (c *statusCmd) Help() string {
	return `Examples:
  meshsync status
  meshsync status --watch
  meshsync --json status | jq '.devices[] | {name, status}'`
}

// Help shows examples of sync.
func (c *syncCmd) Help() string {
	return `Examples:
  meshsync sync                                # start a sync and return
  meshsync sync --wait --timeout 2m || meshsync status`
}

// Help shows examples of pair.
func (c *pairCmd) Help() string {
	return `Examples:
  meshsync pair                                # code + QR code; works once, 10 minutes
  meshsync --json pair --expires 1h | jq -r .code
  meshsync pair --replica                      # for a blind replica
  meshsync pair --short                        # 4-garden-orbit-pencil: to read aloud; 10 minutes, 3 tries
  meshsync --json pair --short | jq .addrs     # where join --peer can dial this device`
}

// Help shows examples of join.
func (c *joinCmd) Help() string {
	return `Examples:
  meshsync join 3QQ1K6evhtY8HyuT5GS8k… --name phone
  meshsync --dir ~/box join 3QQ1K6… --name box  # with a code from pair --replica
  meshsync join 4-garden-orbit-pencil          # a short code: found on the LAN or the DHT
  meshsync join 4-garden-orbit-pencil --peer /ip4/203.0.113.7/tcp/4747/p2p/12D3Koo…
  meshsync join CODE --relay /dns4/relay.example/tcp/4001/p2p/12D3Koo…  # reach the inviter through a relay`
}

// Help shows examples of policy.
func (c *policyCmd) Help() string {
	return `Examples:
  meshsync policy                              # every collection's policy
  meshsync policy notes --strategy merge       # concurrent edits of different fields both stay
  meshsync policy tasks --strategy priority --priority-field urgency
  meshsync policy contracts --strategy user --deadline 48h --fallback timestamp
  meshsync policy profile --critical email     # a concurrent change of email always asks`
}

// Help shows examples of share.
func (c *shareCmd) Help() string {
	return `Examples:
  meshsync consent grant health --to 12D3KooW… --purpose research --field steps=generalize:1000 --field date=generalize:month
  meshsync share health --to /ip4/10.0.0.5/tcp/4747/p2p/12D3KooW… --purpose research`
}

// Help shows examples of relay.
func (c *relayCmd) Help() string {
	return `Examples:
  meshsync relay                               # prints the addresses to give the daemons
  meshsync relay --allow 12D3KooW… --allow 12D3KooW…  # only the mesh's devices`
}
