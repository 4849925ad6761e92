package store

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as the child process of TestKillDuringWrites.
func TestMain(m *testing.M) {
	if dir := os.Getenv("MESHSYNC_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

// crashChild writes forever, in single puts and in batches, printing each acknowledged
// (committed) write on stdout.
func crashChild(dir string) {
	s, err := Open(dir, testPass, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	start, _ := strconv.Atoi(os.Getenv("MESHSYNC_CRASH_START"))
	w := bufio.NewWriter(os.Stdout)
	for i := start; ; i++ {
		if i%5 == 0 {
			keys := make([]string, 20)
			err = s.Update(func(t *Tx) error {
				for j := range keys {
					keys[j] = fmt.Sprintf("b%d-%d", i, j)
					if err := t.Put("c", keys[j], []byte(fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, strings.Repeat("x", 500)))); err != nil {
						return err
					}
				}
				return nil
			})
			if err == nil {
				for _, k := range keys {
					fmt.Fprintln(w, k, i)
				}
			}
		} else {
			err = s.Put("c", fmt.Sprint("k", i%50), []byte(fmt.Sprintf(`{"i":%d}`, i)))
			if err == nil {
				fmt.Fprintln(w, fmt.Sprint("k", i%50), i)
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
		w.Flush()
	}
}

// TestKillDuringWrites kills a writing process with SIGKILL many times; after each kill the
// store opens, verifies clean, and holds every acknowledged write.
func TestKillDuringWrites(t *testing.T) {
	kills := 15
	if n, _ := strconv.Atoi(os.Getenv("MESHSYNC_KILLS")); n > 0 {
		kills = n
	}
	if testing.Short() {
		kills = 3
	}
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("MESHSYNC_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed=%d kills=%d", seed, kills)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := filepath.Join(t.TempDir(), "s")
	s, err := Init(dir, testPass, testOpts("crash"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	acked := map[string]int{} // key -> last acknowledged i
	next := 0
	for k := 0; k < kills; k++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "MESHSYNC_CRASH_CHILD="+dir, fmt.Sprint("MESHSYNC_CRASH_START=", next))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		timer := time.NewTimer(time.Duration(20+rng.IntN(300)) * time.Millisecond)
		killed := false
		for !killed {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("child ended early: %s", stderr.String())
				}
				var key string
				var i int
				fmt.Sscan(l, &key, &i)
				acked[key] = i
				next = max(next, i+1)
			case <-timer.C:
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		for l := range lines { // acknowledged before the kill landed
			var key string
			var i int
			fmt.Sscan(l, &key, &i)
			acked[key] = i
			next = max(next, i+1)
		}
		cmd.Wait()
		s, err := Open(dir, testPass, nil)
		if err != nil {
			t.Fatalf("kill %d: reopen: %v", k, err)
		}
		rep, err := s.Verify()
		if err != nil || !rep.OK() {
			t.Fatalf("kill %d: verify: %v %v", k, err, rep)
		}
		for key, i := range acked {
			rec, err := s.Get("c", key)
			if err != nil {
				t.Fatalf("kill %d: acknowledged write %s lost: %v", k, key, err)
			}
			var got int
			fmt.Sscanf(string(rec.Value), `{"i":%d`, &got)
			if got < i {
				t.Fatalf("kill %d: %s holds write %d, acknowledged %d", k, key, got, i)
			}
		}
		s.Close()
	}
	t.Logf("%d kills survived, %d keys checked", kills, len(acked))
}
