package node

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkFreshDevice measures how long a device that just joined takes to receive n
// records of 1 KiB from another on loopback, and the bytes on the wire per record.
// Run with -benchtime=1x.
func BenchmarkFreshDevice(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				a, err := Init(context.Background(), testConfig(b, "a"), "a")
				if err != nil {
					b.Fatal(err)
				}
				a.manual = true
				mustStart(b, a)
				fill(b, a.st, n, 1024)
				code, _, _ := a.Invite(time.Minute)
				d, err := Join(ctxT(b, time.Minute), testConfig(b, "d"), code, "d")
				if err != nil {
					b.Fatal(err)
				}
				d.manual = true
				mustStart(b, d)
				d.Host().Connect(ctxT(b, 10*time.Second), a.Host().Peerstore().PeerInfo(a.id))
				b.StartTimer()
				start := time.Now()
				res, err := d.syncWith(ctxT(b, 10*time.Minute), a.id)
				if err != nil {
					b.Fatal(err)
				}
				el := time.Since(start)
				b.StopTimer()
				b.ReportMetric(el.Seconds(), "s/sync")
				b.ReportMetric(float64(res.Received)/el.Seconds(), "records/s")
				b.ReportMetric(float64(res.BytesReceived)/float64(res.Received), "wire-bytes/record")
				d.Close()
				a.Close()
			}
		})
	}
}

// BenchmarkPushLatency measures the time from a write on one device to the change being
// readable on a connected one, over 1,000 sequential writes (median and p99). The local
// commit alone (Put returning on the writer) is reported beside it: it is the floor of
// each side's share.
func BenchmarkPushLatency(b *testing.B) {
	nodes := newMesh(b, 2)
	a, d := nodes[0], nodes[1]
	a.Put("warm", "up", []byte(`1`))
	eventually(b, "warm", func() error { return hasValue(d, "warm", "up", `1`) })
	waitSynced(b, a)
	sub := d.Subscribe(4096)
	defer sub.Close()
	b.ResetTimer()
	for range b.N {
		var lat, put []time.Duration
		for i := range 1000 {
			key := fmt.Sprintf("k%d", i)
			t0 := time.Now()
			if err := a.Put("push", key, []byte(`{"v":1}`)); err != nil {
				b.Fatal(err)
			}
			put = append(put, time.Since(t0))
			for c := range sub.C {
				if c.Key == key {
					break
				}
			}
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		slices.Sort(put)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "µs-median")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "µs-p99")
		b.ReportMetric(float64(put[len(put)/2].Microseconds()), "µs-put-median")
	}
}
