package node

import "fmt"

// RemoveDeviceConfirmed removes a device as RemoveDevice does, once pass has unlocked this
// device's store (store.ErrWrongPassphrase otherwise; nothing is removed). A running node
// holds the key, not the passphrase, so a stolen unlocked device could otherwise evict the
// owner's other devices. Apps and control APIs that remove a device on a person's request
// call this one; RemoveDevice is for callers that already confirmed it.
func (n *Node) RemoveDeviceConfirmed(id string, pass []byte) error {
	if err := n.st.Keys().CheckPassphrase(pass); err != nil {
		return fmt.Errorf("remove device %s: %w", id, err)
	}
	return n.RemoveDevice(id)
}
