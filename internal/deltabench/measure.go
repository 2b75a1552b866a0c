package main

import (
	"bytes"
	"fmt"
	"runtime"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/ckptdev/ckpt/store/planes"
)

const (
	// objectHeader is the object envelope's header (docs/format.md 4).
	objectHeader = 16
	// blobID is the size of a reference in the proposed delta envelope
	// (store/planes doc.go): a count byte, then one ID per reference
	// blob.
	blobID = 32
	// minSaving mirrors store.EncodeObject: a codec is kept only if it
	// saves 2%, else the object is raw.
	minSaving = 0.02
)

var (
	zstdFast, _    = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	zstdDefault, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
)

// standalone returns the stored size of content as one object today
// (store.EncodeObject: planes for weights, zstd otherwise, raw unless a
// codec saves 2%) and the planes encoding when that is what it stores.
func standalone(content []byte, elem int, text bool) (int, []byte) {
	limit := int(float64(len(content)) * (1 - minSaving))
	if len(content) >= 64 {
		if elem >= 1 {
			if out, err := planes.Encode(nil, content, elem); err == nil && len(out) < limit {
				return objectHeader + len(out), out
			}
		} else {
			enc := zstdFast
			if text {
				enc = zstdDefault
			}
			if out := enc.EncodeAll(content, nil); len(out) < limit {
				return objectHeader + len(out), nil
			}
		}
	}
	return objectHeader + len(content), nil
}

// encodeDelta codes content against ref in form with op; elem 0 (not
// weights) codes bytes.
func encodeDelta(content, ref []byte, form planes.RefForm, elem int, op planes.DeltaOp) ([]byte, error) {
	return planes.EncodeDeltaWith(nil, content, ref, max(elem, 1), form, op)
}

// deltaObject returns the stored size of a delta object whose payload is
// n bytes and whose reference, refLen bytes, is made of as many blobs as
// it takes chunks of at most maxChunk.
func deltaObject(n, refLen int) int {
	blobs := max(1, (refLen+maxChunk-1)/maxChunk)
	return objectHeader + 1 + blobID*blobs + n
}

// timedDecode decodes enc (planes, or a delta when ref is not nil), checks
// the result against want and returns the CPU time it took (the best of
// reps runs, which filters out preemption on a shared machine).
func timedDecode(enc, ref, want []byte, reps int) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, 0, len(want))
	best := time.Duration(-1)
	for range reps {
		start := threadCPU()
		var out []byte
		var err error
		if ref != nil {
			out, err = planes.DecodeDelta(buf[:0], enc, ref, len(want))
		} else {
			out, err = planes.Decode(buf[:0], enc, len(want))
		}
		d := threadCPU() - start
		if err != nil {
			return 0, err
		}
		if !bytes.Equal(out, want) {
			return 0, fmt.Errorf("decoded bytes differ")
		}
		if best < 0 || d < best {
			best = d
		}
	}
	return best, nil
}
