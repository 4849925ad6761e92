package store

import (
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// Reading envelopes from the mapped file, many at once (the id-ordered walk).
//
// A walk in record-id order reads one envelope per record, at a random place of the
// envelope bucket: the ids of a store are random in the order of its sequence numbers. A
// Cursor.Seek per envelope is a chain of dependent cache and TLB misses (the leaf's page
// header, then its element array, then the keys its binary search probes, scattered over
// the page between 1 KiB values), one lookup after the other: about 1.1 µs per envelope
// in a 360 MB file (BenchmarkOrderedUpTo). envPages looks up a window of envelopes
// together, in passes: each pass makes one independent load per envelope (the page headers
// of one tree level, then the first key of each leaf, then the guessed element, then its
// key), so that the processor waits for the misses of a pass at once instead of one after
// the other. In a leaf it guesses the element from the leaf's first key (an envelope
// bucket's keys are consecutive sequence numbers but for the envelopes replaced since)
// instead of a binary search.
//
// It reads bbolt's page layout (file format 2, which bbolt checks at open): a 16-byte page
// header (page id, flags, element count, overflow pages), 16-byte branch elements (key
// position, key size, child page) and leaf elements (flags, key position, key size, value
// size), each key at its position from its element, a leaf's value right after its key.
// It reads only in a read-only transaction, whose pages nothing changes and whose mapping
// bbolt does not move before it ends, and only pages below the transaction's high-water
// mark. Whatever does not look as expected (a page id or type, a count, a position outside
// its page, a key that is not eight bytes, a key not found) leaves that envelope to the
// bucket's cursor, so that every answer is the cursor's (TestEnvPagesMatchCursor).

// bbolt's page layout (go.etcd.io/bbolt/internal/common/page.go).
const (
	pageHeaderSize = 16
	pageElemSize   = 16
	pageBranchFlag = 0x01
	pageLeafFlag   = 0x02
	maxPageDepth   = 16 // more tree levels than a file of 2^64 bytes has
)

// envPages reads the envelope bucket's pages of one read-only transaction.
type envPages struct {
	base  unsafe.Pointer // page 0 of the mapping
	pages uint64         // pages below the transaction's high-water mark
	psize uint64         // the file's page size
	root  uint64         // the envelope bucket's root page

	probes []envProbe // reused by getMany
	todo   []int32
	sink   uint64 // keeps the loads of the passes that only touch memory
}

// envProbe is one lookup of getMany: the page it reached (the mapping is at base plus
// pgid pages: no pointer is kept, so none outlives the transaction and storing one needs
// no write barrier), its size with its overflow pages, and, in a leaf, the element guessed
// from the first key (-1: none).
type envProbe struct {
	seq    uint64
	pgid   uint64
	span   uint64
	count  int
	guess  int
	failed bool
}

// envReader returns the transaction's reader of the envelope bucket's pages, or nil
// where only the cursor reads them: a write transaction (its changed pages are nodes in
// memory), an envelope bucket kept inline in its parent's page, or an empty one.
func (t *Tx) envReader() *envPages {
	if t.envPg != nil || t.envPgNone {
		return t.envPg
	}
	t.envPgNone = true
	if t.tx.Writable() {
		return nil
	}
	b := t.tx.Bucket(bucketEnv)
	if b == nil || b.Root() == 0 {
		return nil
	}
	k, _ := b.Cursor().First()
	if len(k) == 0 {
		return nil
	}
	// The first key lies in the mapping: the mapping's start is that far before it.
	info := t.tx.DB().Info()
	size := uint64(t.tx.Size())
	anchor := unsafe.Pointer(unsafe.SliceData(k))
	off := uint64(uintptr(anchor) - info.Data)
	if info.PageSize <= 0 || off >= size {
		return nil
	}
	psize := uint64(info.PageSize)
	t.envPg = &envPages{
		base:  unsafe.Add(anchor, -int(off)),
		pages: size / psize,
		psize: psize,
		root:  uint64(b.Root()),
	}
	t.envPgNone = false
	return t.envPg
}

// envGetMany sets out[i] to the envelope of seqs[i] as envGet returns it (nil: none),
// reading the pages of many at once where the transaction allows (envReader).
func (t *Tx) envGetMany(seqs []uint64, out [][]byte) {
	r := t.envReader()
	if r == nil {
		for i, seq := range seqs {
			out[i] = t.envGet(seq)
		}
		return
	}
	r.getMany(seqs, out)
	for i, seq := range seqs {
		if out[i] == nil {
			out[i] = t.envGet(seq)
		}
	}
}

// getMany sets out[i] to the value of key seqs[i] (8 bytes, big-endian), or to nil when
// it did not find it or something looked unexpected: the caller asks the cursor then.
func (r *envPages) getMany(seqs []uint64, out [][]byte) {
	r.probes = r.probes[:0]
	r.todo = r.todo[:0]
	for i, seq := range seqs {
		out[i] = nil
		r.probes = append(r.probes, envProbe{seq: seq, pgid: r.root, guess: -1})
		r.todo = append(r.todo, int32(i))
	}
	ps := r.probes
	var sink uint64
	// Down the tree, one level per round: first touch the page of every probe, then
	// search the branches (their pages are few and stay in cache) for the next level.
	for depth := 0; len(r.todo) > 0; depth++ {
		for _, i := range r.todo {
			p := &ps[i]
			if p.pgid < 2 || p.pgid >= r.pages || depth >= maxPageDepth {
				p.failed = true
				continue
			}
			sink += *(*uint64)(r.page(p))
		}
		next := r.todo[:0]
		for _, i := range r.todo {
			p := &ps[i]
			if p.failed {
				continue
			}
			flags, ok := r.header(p)
			if !ok {
				p.failed = true
				continue
			}
			if flags == pageLeafFlag {
				continue
			}
			child, ok := branchChild(r.page(p), p.span, p.count, p.seq)
			if !ok {
				p.failed = true
				continue
			}
			p.pgid = child
			next = append(next, i)
		}
		r.todo = next
	}
	// In the leaves: touch each first key, then each guessed element, then its key.
	for i := range ps {
		if p := &ps[i]; !p.failed {
			page := r.page(p)
			if off, ok := leafKeyOff(page, p.span, 0); ok {
				sink += uint64(*(*byte)(unsafe.Add(page, off)))
			}
		}
	}
	for i := range ps {
		p := &ps[i]
		if p.failed {
			continue
		}
		page := r.page(p)
		if k0, ok := leafKey8(page, p.span, 0); ok && p.seq >= k0 && p.seq-k0 < uint64(p.count) {
			p.guess = int(p.seq - k0)
			sink += uint64(*(*uint32)(unsafe.Add(page, pageHeaderSize+pageElemSize*p.guess+4)))
		}
	}
	for i := range ps {
		if p := &ps[i]; !p.failed && p.guess >= 0 {
			page := r.page(p)
			if off, ok := leafKeyOff(page, p.span, p.guess); ok {
				sink += uint64(*(*byte)(unsafe.Add(page, off)))
			}
		}
	}
	r.sink += sink
	for i := range ps {
		p := &ps[i]
		if p.failed {
			continue
		}
		page, j := r.page(p), p.guess
		if j < 0 || !leafKeyIs(page, p.span, j, p.seq) {
			var ok bool
			if j, ok = leafSearch(page, p.span, p.count, p.seq); !ok {
				continue
			}
		}
		out[i] = leafValue(page, p.span, j)
	}
}

// page returns the start of the page a probe reached (below the high-water mark: getMany
// checks its number first).
func (r *envPages) page(p *envProbe) unsafe.Pointer {
	return unsafe.Add(r.base, p.pgid*r.psize)
}

// header checks the page a probe reached (its id, a branch or leaf, elements that fit)
// and notes its size and count.
func (r *envPages) header(p *envProbe) (flags uint16, ok bool) {
	page := r.page(p)
	id := *(*uint64)(page)
	flags = *(*uint16)(unsafe.Add(page, 8))
	count := *(*uint16)(unsafe.Add(page, 10))
	overflow := *(*uint32)(unsafe.Add(page, 12))
	span := (uint64(overflow) + 1) * r.psize
	if id != p.pgid || flags != pageBranchFlag && flags != pageLeafFlag || count == 0 ||
		p.pgid*r.psize+span > r.pages*r.psize || pageHeaderSize+pageElemSize*uint64(count) > span {
		return 0, false
	}
	p.span, p.count = span, int(count)
	return flags, true
}

// branchChild returns the child of a branch page (span bytes, count elements) whose keys
// start at or before seq: the last element with a key at most seq. Its keys are nearly
// evenly spaced (consecutive sequence numbers, about as many per child), so it starts
// where seq lies between the first key and the last and steps from there, and falls back
// to a binary search when that guess is off by more than a few elements.
func branchChild(page unsafe.Pointer, span uint64, count int, seq uint64) (uint64, bool) {
	key := func(m int) (uint64, bool) {
		e := unsafe.Add(page, pageHeaderSize+pageElemSize*m)
		pos, ksize := *(*uint32)(e), *(*uint32)(unsafe.Add(e, 4))
		if ksize != 8 || pageHeaderSize+pageElemSize*uint64(m)+uint64(pos)+8 > span {
			return 0, false
		}
		return binary.BigEndian.Uint64(unsafe.Slice((*byte)(unsafe.Add(e, pos)), 8)), true
	}
	child := func(m int) (uint64, bool) {
		return *(*uint64)(unsafe.Add(page, pageHeaderSize+pageElemSize*m+8)), true
	}
	first, ok1 := key(0)
	last, ok2 := key(count - 1)
	switch {
	case !ok1 || !ok2 || seq < first:
		return 0, false // before the bucket's first key: none
	case seq >= last:
		return child(count - 1)
	}
	// first <= seq < last: the guess is below count-1.
	hi, lo := bits.Mul64(seq-first, uint64(count-1))
	g, _ := bits.Div64(hi, lo, last-first)
	m := int(g)
	// The answer is the last m with key(m) <= seq; step towards it a few times.
	for range 4 {
		k, ok := key(m)
		if !ok {
			return 0, false
		}
		if k > seq {
			m--
			continue
		}
		k, ok = key(m + 1)
		if !ok {
			return 0, false
		}
		if k > seq {
			return child(m)
		}
		m++
	}
	lo2, hi2 := 0, count
	for lo2 < hi2 {
		m := int(uint(lo2+hi2) >> 1)
		k, ok := key(m)
		if !ok {
			return 0, false
		}
		if k <= seq {
			lo2 = m + 1
		} else {
			hi2 = m
		}
	}
	if lo2 == 0 {
		return 0, false
	}
	return child(lo2 - 1)
}

// leafKeyOff returns the offset in a leaf page of element i's key, if it is eight bytes
// inside the page.
func leafKeyOff(page unsafe.Pointer, span uint64, i int) (uint64, bool) {
	eoff := uint64(pageHeaderSize + pageElemSize*i)
	e := unsafe.Add(page, eoff)
	pos, ksize := *(*uint32)(unsafe.Add(e, 4)), *(*uint32)(unsafe.Add(e, 8))
	if ksize != 8 || eoff+uint64(pos)+8 > span {
		return 0, false
	}
	return eoff + uint64(pos), true
}

// leafKey8 returns element i's key in a leaf page as a number.
func leafKey8(page unsafe.Pointer, span uint64, i int) (uint64, bool) {
	off, ok := leafKeyOff(page, span, i)
	if !ok {
		return 0, false
	}
	return binary.BigEndian.Uint64(unsafe.Slice((*byte)(unsafe.Add(page, off)), 8)), true
}

// leafSearch returns the element of a leaf page whose key is seq.
func leafSearch(page unsafe.Pointer, span uint64, count int, seq uint64) (int, bool) {
	lo, hi := 0, count
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		k, ok := leafKey8(page, span, m)
		if !ok {
			return 0, false
		}
		if k < seq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == count || !leafKeyIs(page, span, lo, seq) {
		return 0, false
	}
	return lo, true
}

// leafKeyIs reports whether element i's key in a leaf page is seq.
func leafKeyIs(page unsafe.Pointer, span uint64, i int, seq uint64) bool {
	k, ok := leafKey8(page, span, i)
	return ok && k == seq
}

// leafValue returns element i's value in a leaf page (nil: a nested bucket, or a value
// outside the page). The slice aliases the mapping: it is valid while the transaction is.
func leafValue(page unsafe.Pointer, span uint64, i int) []byte {
	eoff := uint64(pageHeaderSize + pageElemSize*i)
	e := unsafe.Add(page, eoff)
	flags, pos := *(*uint32)(e), *(*uint32)(unsafe.Add(e, 4))
	ksize, vsize := *(*uint32)(unsafe.Add(e, 8)), *(*uint32)(unsafe.Add(e, 12))
	if flags != 0 || ksize != 8 || vsize == 0 || eoff+uint64(pos)+8+uint64(vsize) > span {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Add(e, uint64(pos)+8)), vsize)
}

// touchLines loads every cache line of the envelopes, one independent load each, so that
// their misses overlap (a window's envelopes, about 80 KB, then stay in cache): an
// id-ordered sender copies each envelope right after the walk gives it, and a copy
// reads its envelope's lines one miss after the other. The caller keeps the sum it
// returns (in its transaction, which one goroutine owns), so that the loads stay.
func touchLines(raws [][]byte) byte {
	var x byte
	for _, raw := range raws {
		for off := 0; off < len(raw); off += 64 {
			x += raw[off]
		}
	}
	return x
}
