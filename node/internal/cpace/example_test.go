package cpace_test

import (
	"bytes"
	"crypto/rand"
	"fmt"

	"github.com/meshsync/meshsync/node/internal/cpace"
)

// Both sides derive the same binding from the libp2p connection (their own id
// and the remote id, in role order), run one exchange and get the same ISK.
func Example() {
	joiner, inviter := []byte("joiner peer id"), []byte("inviter peer id")
	b := cpace.Bind("/meshsync/pair-short/1.0.0", joiner, inviter, nil)
	code := []byte("4-gravity-orbit-lantern")

	a, msgA, err := cpace.Start(cpace.Initiator, cpace.Inputs{PRS: code, CI: b.CI, SID: b.SID}, rand.Reader)
	if err != nil {
		panic(err)
	}
	i, msgI, err := cpace.Start(cpace.Responder, cpace.Inputs{PRS: code, CI: b.CI, SID: b.SID}, rand.Reader)
	if err != nil {
		panic(err)
	}
	iskA, _, err := a.Finish(msgI)
	if err != nil {
		panic(err)
	}
	iskI, _, err := i.Finish(msgA)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(msgA), len(iskA), bytes.Equal(iskA, iskI))
	// Output: 34 64 true
}
