// Package bolttest damages bbolt files in the ways the adversarial tests of
// the per-machine index try. Only tests import it.
package bolttest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// Detection says whether ckpt must notice a corruption of its per-machine
// index file.
type Detection int

const (
	// Undetectable damage leaves a well-formed file (a flipped byte inside a
	// value, a meta page bbolt falls back from): no warning, and the caches'
	// own checks make the damaged entries misses.
	Undetectable Detection = iota
	// Structural damage must be noticed: one warning, the file set aside.
	Structural
	// Random damage may be either; it must never crash.
	Random
)

// Corruption is one way to damage a bbolt file.
type Corruption struct {
	Name   string
	Data   []byte // the whole damaged file
	Detect Detection
}

// BoltPage is one page of a bbolt file as bbolt itself reports it.
type BoltPage struct {
	ID       int
	Type     string // meta, freelist, branch, leaf, free
	Overflow int
}

// BoltPages lists the pages of a healthy bbolt file (data), with its page
// size and high-water mark (pages in use).
func BoltPages(tb testing.TB, data []byte) (pages []BoltPage, pageSize int) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "pages.db")
	require.NoError(tb, os.WriteFile(path, data, 0o600))
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	require.NoError(tb, err)
	defer db.Close()
	pageSize = db.Info().PageSize
	require.NoError(tb, db.View(func(tx *bolt.Tx) error {
		hwm := int(tx.Size()) / pageSize
		for id := 0; id < hwm; {
			info, err := tx.Page(id)
			if err != nil || info == nil {
				return fmt.Errorf("page %d: %v", id, err)
			}
			if info.Type == "free" {
				// Free pages are listed one by one; their headers are stale.
				pages = append(pages, BoltPage{ID: id, Type: info.Type})
				id++
				continue
			}
			pages = append(pages, BoltPage{ID: id, Type: info.Type, Overflow: info.OverflowCount})
			id += 1 + info.OverflowCount
		}
		return nil
	}))
	return pages, pageSize
}

const (
	pageHeader = 16
	elemSize   = 16
	metaSize   = 64 // magic..checksum
)

// Corruptions damages copies of data, a healthy bbolt file, in every way
// the adversarial tests try: meta pages (one, both, a forged checksum),
// the freelist, branch and leaf page headers and elements (a child pointing
// back at its parent, sizes past the page), values inside entries, whole
// pages zeroed or filled, truncation, and random byte flips (seeded).
func Corruptions(tb testing.TB, data []byte, seed uint64, random int) []Corruption {
	tb.Helper()
	pages, ps := BoltPages(tb, data)
	byType := map[string][]BoltPage{}
	for _, p := range pages {
		if p.Overflow == 0 || p.Type == "freelist" {
			byType[p.Type] = append(byType[p.Type], p)
		}
	}
	last := pages[len(pages)-1]
	inUse := min(len(data), (last.ID+1+last.Overflow)*ps)
	require.NotEmpty(tb, byType["freelist"], "the fixture must have a synced freelist page")
	require.NotEmpty(tb, byType["branch"], "the fixture must be large enough to have branch pages")
	require.NotEmpty(tb, byType["leaf"])
	ne := binary.NativeEndian
	var out []Corruption
	add := func(name string, d Detection, edit func(b []byte)) {
		b := bytes.Clone(data)
		edit(b)
		out = append(out, Corruption{Name: name, Data: b, Detect: d})
	}
	flip := func(b []byte, off int) { b[off] ^= 0x5a }
	meta := func(b []byte, id int) []byte { return b[id*ps+pageHeader : id*ps+pageHeader+metaSize] }
	// forge rewrites a field of both meta pages and fixes their checksums,
	// as a bug (not a flipped bit) would.
	forge := func(b []byte, field int, v uint64) {
		for id := 0; id < 2; id++ {
			m := meta(b, id)
			ne.PutUint64(m[field:], v)
			h := fnv.New64a()
			h.Write(m[:56])
			ne.PutUint64(m[56:], h.Sum64())
		}
	}
	const (
		metaRoot     = 16
		metaFreelist = 32
		metaPgid     = 40
	)

	// The root of the meta bbolt uses: the one with the higher txid.
	cur := meta(data, 0)
	if m1 := meta(data, 1); ne.Uint64(m1[48:]) > ne.Uint64(cur[48:]) {
		cur = m1
	}
	root := int(ne.Uint64(cur[metaRoot:]))

	add("meta 0 flipped", Undetectable, func(b []byte) { flip(b, pageHeader+4) })
	add("meta 1 flipped", Undetectable, func(b []byte) { flip(b, ps+pageHeader+20) })
	add("both metas flipped", Structural, func(b []byte) { flip(b, pageHeader+20); flip(b, ps+pageHeader+20) })
	add("meta: high-water mark past the end", Structural, func(b []byte) { forge(b, metaPgid, uint64(len(data)/ps+50)) })
	add("meta: root past the high-water mark", Structural, func(b []byte) { forge(b, metaRoot, uint64(len(data)/ps+7)) })
	add("meta: root is a meta page", Structural, func(b []byte) { forge(b, metaRoot, 1) })

	add("meta: freelist is the root", Structural, func(b []byte) { forge(b, metaFreelist, uint64(root)) })

	fl := byType["freelist"][0]
	at := func(p BoltPage) int { return p.ID * ps }
	add("freelist: count huge", Structural, func(b []byte) { ne.PutUint16(b[at(fl)+10:], 0xfffe) })
	add("freelist: flags", Structural, func(b []byte) { ne.PutUint16(b[at(fl)+8:], 0x02) })
	add("freelist: lists the root as free", Structural, func(b []byte) {
		ne.PutUint16(b[at(fl)+10:], 1)
		ne.PutUint64(b[at(fl)+pageHeader:], uint64(root))
	})
	add("freelist: lists a page past the end", Structural, func(b []byte) {
		ne.PutUint16(b[at(fl)+10:], 1)
		ne.PutUint64(b[at(fl)+pageHeader:], uint64(len(data)/ps+3))
	})

	for _, kind := range []string{"branch", "leaf"} {
		p := byType[kind][0]
		o := at(p)
		count := int(ne.Uint16(data[o+10:]))
		add(kind+": page id", Structural, func(b []byte) { flip(b, o) })
		add(kind+": page flags", Structural, func(b []byte) { ne.PutUint16(b[o+8:], 0x20) })
		add(kind+": overflow huge", Structural, func(b []byte) { ne.PutUint32(b[o+12:], 0x7fffffff) })
		add(kind+": count huge", Structural, func(b []byte) { ne.PutUint16(b[o+10:], 0xffff) })
		add(kind+": zeroed", Structural, func(b []byte) { clear(b[o : o+ps]) })
		add(kind+": filled with 0xff", Structural, func(b []byte) {
			for i := o; i < o+ps; i++ {
				b[i] = 0xff
			}
		})
		if count == 0 {
			continue
		}
		end := o + pageHeader + (count-1)*elemSize
		if kind == "branch" {
			add("branch: count zero", Structural, func(b []byte) { ne.PutUint16(b[o+10:], 0) })
			add("branch: child is the page itself", Structural, func(b []byte) { ne.PutUint64(b[end+8:], uint64(p.ID)) })
			add("branch: child is the root", Structural, func(b []byte) { ne.PutUint64(b[end+8:], uint64(root)) })
			add("branch: child past the end", Structural, func(b []byte) { ne.PutUint64(b[end+8:], uint64(len(data)/ps+9)) })
			add("branch: key position past the page", Structural, func(b []byte) { ne.PutUint32(b[end:], 0x7ffffff0) })
			add("branch: key size past the page", Structural, func(b []byte) { ne.PutUint32(b[end+4:], 0x7ffffff0) })
		} else {
			add("leaf: key position past the page", Structural, func(b []byte) { ne.PutUint32(b[end+4:], 0x7ffffff0) })
			add("leaf: value size past the page", Structural, func(b []byte) { ne.PutUint32(b[end+12:], 0x7ffffff0) })
		}
	}
	// A leaf element of a bucket's records marked as a sub-bucket: its value
	// (JSON text) read as a bucket header names a page far past the end.
	if p, i, ok := leafWithValues(data, byType["leaf"], ps); ok {
		e := at(p) + pageHeader + i*elemSize
		add("leaf: value marked as a bucket", Structural, func(b []byte) { ne.PutUint32(b[e:], 1) })
	}

	// Flipped hex digits inside stored entries: chunk IDs and digests of the
	// stat cache, cached manifests. The file stays well-formed.
	for _, pat := range []string{`"chunks":[{"id":"`, `"digest":"sha256:`} {
		if bytes.Contains(data, []byte(pat)) {
			add("value: "+pat+" digit", Undetectable, func(b []byte) { flipAfter(b, []byte(pat)) })
		}
	}
	if bytes.Contains(data, []byte(`"offset":0,"size":`)) {
		add("value: chunk size digit", Undetectable, func(b []byte) { flipAfter(b, []byte(`"offset":0,"size":`)) })
	}

	add("truncated to half", Structural, func(b []byte) {})
	out[len(out)-1].Data = bytes.Clone(data[:len(data)/2/ps*ps])
	add("truncated to one page", Structural, func(b []byte) {})
	out[len(out)-1].Data = bytes.Clone(data[:ps])
	add("truncated inside a meta page", Structural, func(b []byte) {})
	out[len(out)-1].Data = bytes.Clone(data[:ps+40])

	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i < random; i++ {
		off := rng.IntN(inUse)
		mask := byte(1 + rng.IntN(255))
		add(fmt.Sprintf("random %d: byte %d ^ %#02x", i, off, mask), Random, func(b []byte) { b[off] ^= mask })
	}
	return out
}

// flipAfter changes the hex digit after every occurrence of pat to another
// hex digit.
func flipAfter(b, pat []byte) {
	for i := 0; ; {
		j := bytes.Index(b[i:], pat)
		if j < 0 {
			return
		}
		k := i + j + len(pat)
		if k < len(b) {
			if b[k] == '0' {
				b[k] = '1'
			} else {
				b[k] = '0'
			}
		}
		i = k
	}
}

// leafWithValues finds a leaf element that is a plain value of at least
// 16 bytes starting with '{' (a JSON entry).
func leafWithValues(data []byte, leaves []BoltPage, ps int) (BoltPage, int, bool) {
	ne := binary.NativeEndian
	for _, p := range leaves {
		o := p.ID * ps
		n := int(ne.Uint16(data[o+10:]))
		for i := 0; i < n; i++ {
			e := o + pageHeader + i*elemSize
			if e+elemSize > len(data) {
				break
			}
			flags, pos, ksize, vsize := ne.Uint32(data[e:]), int(ne.Uint32(data[e+4:])), int(ne.Uint32(data[e+8:])), int(ne.Uint32(data[e+12:]))
			v := e + pos + ksize
			if flags == 0 && vsize >= 16 && v < len(data) && data[v] == '{' {
				return p, i, true
			}
		}
	}
	return BoltPage{}, 0, false
}
