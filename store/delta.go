package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/retention"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
	"github.com/ckptdev/ckpt/store/refs"
)

// Delta-coded blobs (docs/format.md, sections 3, 4 and 9). A push with
// deltas enabled (Options.Deltas) codes a tensor chunk as its difference
// from the chunk of the same tensor extent in the previous version of the
// same NAME, else in the base checkpoint, when that is smaller than its
// standalone coding (every candidate is tried, the smallest coding wins).
// The blob ID stays the SHA-256 of the content. Before
// the blob it writes an edge object deltas/<2 hex>/<reference>/<delta>, so
// gc learns what a delta needs by listing, without reading every blob; and
// before the first delta it raises the registry's format version to 2, so
// that a ckpt that knows no deltas (and whose gc would not keep references
// alive) refuses the registry. A reference is never itself a delta: a
// candidate that is a delta is replaced by its own reference, so a NAME's
// versions code against a keyframe: its first stored chunk, until
// retention frees that and gc re-keys the deltas against one of them
// (deltagc.go).
//
// Measured on real training output (/work/data/family, 16M-parameter
// GPT-2, six checkpoints 50 steps apart pushed in order, model.safetensors
// new stored bytes over raw, without -> with deltas): pure bf16 fine-tune
// 0.642 -> 0.160-0.166; fp32 master weights saved as bf16 0.642 ->
// 0.306-0.380; fp32 fine-tune 0.821 -> 0.637-0.676. The ratio grows with
// the distance from the keyframe (deltabench measured 0.175 and 0.587
// against the previous checkpoint): periodic keyframes are left to do.
// A reference is read from this machine's copies when they hold it
// (the folder of the previous push, the content cache of pulls), else from
// the registry (deltaref.go).

// DeltaFormatVersion is the registry format version that may hold delta
// blobs and their edges.
const DeltaFormatVersion = 2

const (
	// deltasPrefix holds one empty edge object per delta blob written:
	// deltas/<2 hex>/<reference ID>/<delta blob ID>.
	deltasPrefix = "deltas/"
	// rescuePrefix holds the standalone copy of a blob that is being
	// re-encoded in place: rescue/<2 hex>/<ID>. Readers fall back to it
	// when the blob itself is missing.
	rescuePrefix = "rescue/"
	// upgradeKey holds the format file of version 2 while the format file
	// is replaced (delete, then create).
	upgradeKey = "ckpt-registry-upgrade.json"
)

// deltaEdgeKey is the key of the edge that says blob dep may be a delta
// against blob ref.
func deltaEdgeKey(ref, dep object.ID) string {
	s := ref.String()
	return deltasPrefix + s[:2] + "/" + s + "/" + dep.String()
}

// parseDeltaEdge reads an edge key; ok is false for any other key.
func parseDeltaEdge(key string) (ref, dep object.ID, ok bool) {
	parts := strings.Split(strings.TrimPrefix(key, deltasPrefix), "/")
	if !strings.HasPrefix(key, deltasPrefix) || len(parts) != 3 {
		return ref, dep, false
	}
	var err1, err2 error
	ref, err1 = object.ParseID(parts[1])
	dep, err2 = object.ParseID(parts[2])
	if err1 != nil || err2 != nil || deltaEdgeKey(ref, dep) != key {
		return ref, dep, false
	}
	return ref, dep, true
}

func rescueKey(id object.ID) string { s := id.String(); return rescuePrefix + s[:2] + "/" + s }

// deltaBudget bounds the memory of references held for deltas, beside the
// transfer budget: a worker that holds a chunk's memory takes its
// reference's from here, and a holder of this budget never waits for the
// transfer budget, so the two cannot deadlock. Two references of the
// largest tensor chunk at once: at most 2 × deltaCost(8 MiB) = 54 MiB.
var deltaBudget = newPooledBudget(2 * deltaCost(object.MaxChunkSize))

// deltaCost is what coding or decoding a delta of n bytes holds beyond the
// chunk's own objectCost: the reference (content and stored form) and the
// delta's stored form.
func deltaCost(n int64) int64 {
	return objectCost(n) + bufCost(object.DeltaStoredCap(n))
}

// errReferenceIsDelta: a delta's reference is itself a delta (depth 1 only).
var errReferenceIsDelta = errors.New("reference is itself a delta blob (only depth 1 is allowed)")

// readKeyframe reads blob id, a reference of size bytes, for a push
// choosing a reference: any codec but delta, checked by its ID, from the
// blob itself only, never its rescue copy. A blob with a rescue copy is being
// replaced in place, possibly by a delta against a new keyframe (gc's
// re-keying, deltagc.go): coding against it could make a chain two deep.
func (r *Registry) readKeyframe(ctx context.Context, id object.ID, size int64, dst []byte) ([]byte, error) {
	key := object.BlobKey(id)
	rc, err := r.backend.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	return readReferenceFrom(rc, key, id, size, dst)
}

// readReferenceFrom reads the reference blob id of size bytes from rc, the
// object at key, which it closes.
func readReferenceFrom(rc io.ReadCloser, key string, id object.ID, size int64, dst []byte) ([]byte, error) {
	return readReferenceBody(rc, key, id, size, dst, true)
}

// readReferenceBody is readReferenceFrom; without verify the content is not
// hashed (object.ReadBodyUnverified: a pull, whose delta's content hash
// decides).
func readReferenceBody(rc io.ReadCloser, key string, id object.ID, size int64, dst []byte, verify bool) ([]byte, error) {
	defer func() { _ = rc.Close() }() // read-only
	h, err := object.ReadHeader(rc)
	if err == nil {
		err = object.Exactly(size).Check(h.ContentLen)
	}
	if err == nil && h.Codec == object.CodecDelta {
		err = fmt.Errorf("%w: %w", object.ErrCorrupt, errReferenceIsDelta)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	var scratch []byte
	if h.Codec != object.CodecRaw {
		// Held from deltaBudget with the reference's content.
		sb := takeBuf(object.StoredCap(int64(h.ContentLen)))
		defer dropBuf(sb)
		scratch = *sb
	}
	var out []byte
	if verify {
		out, err = object.ReadBody(rc, h, dst, id, scratch)
	} else {
		out, err = object.ReadBodyUnverified(rc, h, dst, scratch)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return out, nil
}

// readDelta decodes the delta object whose header h was just read from rc
// into dst: it reads the payload, fetches the reference, decodes and
// checks the content. The reference comes from the content cache when it
// holds it (a result that does not check is decoded again; deltaref.go),
// else from the registry, checked against its ID.
func (r *Registry) readDelta(ctx context.Context, rc io.Reader, h object.Header, id object.ID, dst []byte) ([]byte, error) {
	n := int64(h.ContentLen)
	release, err := deltaBudget.acquire(ctx, deltaCost(n))
	if err != nil {
		return nil, err
	}
	defer release()
	pb := takeBuf(object.DeltaStoredCap(n))
	defer dropBuf(pb)
	payload, err := object.ReadPayload(rc, h, *pb)
	if err != nil {
		return nil, err
	}
	refID, err := object.DeltaReference(h, payload)
	if err != nil {
		return nil, err
	}
	rb := takeBuf(object.ContentCap(n))
	defer dropBuf(rb)
	if ref, ok := r.cachedReferenceBytes(refID, n, (*rb)[:0]); ok {
		if out, err := object.DecodeDelta(dst, h, payload, ref, id); err == nil {
			return out, nil
		}
		// Not the reference's bytes (or the delta is corrupt): decode
		// against the registry's reference.
	}
	// The registry's reference, decoded without hashing it: the content's
	// own hash checks the result; only when it fails is the reference
	// hashed, to name the damaged object.
	refRC, key, err := r.openBlob(ctx, refID)
	if err != nil {
		return nil, fmt.Errorf("%w: reference blob %s: %w", ErrBadReference, refID, err)
	}
	ref, err := readReferenceBody(refRC, key, refID, n, (*rb)[:0], false)
	if err != nil {
		return nil, fmt.Errorf("%w: reference blob %s: %w", ErrBadReference, refID, err)
	}
	out, err := object.DecodeDelta(dst, h, payload, ref, id)
	if err != nil {
		if got := object.Hash(ref); got != refID {
			return nil, fmt.Errorf("%w: reference blob %s (%s): %w: content hashes to %s", ErrBadReference, refID, key, object.ErrCorrupt, got)
		}
		return nil, err
	}
	return out, nil
}

// ErrBadReference is matched by the error of reading a delta blob whose
// reference blob is missing or corrupt; the error names the reference.
var ErrBadReference = errors.New("delta blob's reference is missing or corrupt")

// openBlob opens blob id: its key, else its rescue copy (a re-encoding in
// place was interrupted).
func (r *Registry) openBlob(ctx context.Context, id object.ID) (rc io.ReadCloser, key string, err error) {
	key = object.BlobKey(id)
	body, err := r.backend.Get(ctx, key, 0, -1)
	if errors.Is(err, backend.ErrNotFound) {
		if resc, rerr := r.backend.Get(ctx, rescueKey(id), 0, -1); rerr == nil {
			return resc, rescueKey(id), nil
		}
	}
	if err != nil {
		return nil, key, err
	}
	return body, key, nil
}

// statBlob stats blob id, else its rescue copy (openBlob).
func (r *Registry) statBlob(ctx context.Context, id object.ID) (backend.ObjectInfo, error) {
	oi, err := r.backend.Stat(ctx, object.BlobKey(id))
	if errors.Is(err, backend.ErrNotFound) {
		if roi, rerr := r.backend.Stat(ctx, rescueKey(id)); rerr == nil {
			return roi, nil
		}
	}
	return oi, err
}

// tensorChunk names a chunk by what it holds: an extent of one tensor.
// Chunks with the same tensorChunk in two checkpoints are references for
// each other's deltas.
type tensorChunk struct {
	name, dtype, shape string
	off, size          int64 // relative to the tensor's first byte
	elem               int
}

// tensorChunkOf is the tensor extent ex holds, coded with elements of
// elem bytes, or nil when it holds no single tensor's bytes (headers,
// groups of small tensors), the tensor is quantized (GGUF blocks) or the
// file has no tensor table. Safetensors tensors, torch.save storages
// ("data/<key>", the pickle's storage keys, which a training script
// writes in the same order at every save) and GGUF tensors qualify.
func tensorChunkOf(pf *pushFile, ex extent, elem int) *tensorChunk {
	if pf.layout == nil || elem <= 0 || len(ex.tensors) > 0 {
		return nil
	}
	if h := pf.layout.st; h != nil {
		for _, t := range h.Tensors {
			lo, hi := h.DataOffset+t.Begin, h.DataOffset+t.End
			if ex.off >= lo && ex.off+ex.size <= hi {
				return &tensorChunk{name: t.Name, dtype: string(t.Dtype), shape: fmt.Sprint(t.Shape), off: ex.off - lo, size: ex.size, elem: elem}
			}
		}
		return nil
	}
	if pf.layout.format == "" {
		return nil
	}
	for _, t := range pf.layout.tensors {
		if t.elem != 0 && t.size >= ownTensor && ex.off >= t.off && ex.off+ex.size <= t.off+t.size {
			return &tensorChunk{name: t.name, dtype: t.dtype, shape: fmt.Sprint(t.shape), off: ex.off - t.off, size: ex.size, elem: elem}
		}
	}
	return nil
}

// manifestTensorChunks indexes the chunks of a manifest that hold one
// tensor's bytes each (safetensors tensors, and the tensors of torch.save
// and GGUF tables).
func manifestTensorChunks(m *manifest.Manifest) map[tensorChunk]object.ID {
	out := map[tensorChunk]object.ID{}
	for i := range m.Files {
		f := &m.Files[i]
		for _, c := range f.Chunks {
			if tc, _ := fileTensorChunk(f, c); tc != nil {
				out[*tc] = c.ID
			}
		}
	}
	return out
}

// fileTensorChunk is the tensor extent chunk c of file f holds, from the
// manifest's tensor tables (nil when it holds no single tensor's bytes),
// with the element width its dtype gives (elemUnknown when the table does
// not say: torch.save and GGUF dtype names).
func fileTensorChunk(f *manifest.File, c manifest.Chunk) (*tensorChunk, int) {
	in := func(t manifest.Tensor, lo, hi, least int64) *tensorChunk {
		if c.Offset >= lo && c.Offset+c.Size <= hi && hi-lo >= least {
			return &tensorChunk{name: t.Name, dtype: t.Dtype, shape: fmt.Sprint(t.Shape), off: c.Offset - lo, size: c.Size}
		}
		return nil
	}
	switch {
	case f.Safetensors != nil:
		st := f.Safetensors
		for _, t := range st.Tensors {
			if tc := in(t, st.DataOffset+t.Begin, st.DataOffset+t.End, smallTensor); tc != nil {
				if elem := layout.Dtype(t.Dtype).ElemSize(); elem > 0 {
					return tc, elem
				}
				return tc, elemUnknown
			}
		}
	case f.Tensors != nil:
		for _, t := range f.Tensors.Tensors {
			if tc := in(t, t.Begin, t.End, ownTensor); tc != nil {
				return tc, elemUnknown
			}
		}
	}
	return nil, elemUnknown
}

// resolveHint settles a hint whose element width is unknown (a chunk known
// only from the stat cache, storeFromFiles) by a trial on content
// (trialHint), and gives tc that width; a tensor extent that is not split
// into planes is no delta candidate.
func resolveHint(hint object.EncodeHint, tc *tensorChunk, content []byte) (object.EncodeHint, *tensorChunk) {
	if hint.ElemSize == elemUnknown {
		hint = trialHint(content)
	}
	if tc != nil && tc.elem == elemUnknown {
		if hint.ElemSize <= 0 {
			return hint, nil
		}
		t := *tc
		t.elem = hint.ElemSize
		tc = &t
	}
	return hint, tc
}

// deltaRefs are the candidate references of one push: chunks of the
// previous version of the NAME and of the base, by tensor extent.
type deltaRefs struct {
	prev, base map[tensorChunk]object.ID
	// local finds references in the folders they were pushed from on
	// this machine (deltaref.go).
	local *localChunks
}

// candidates returns the references to try for chunk tc of content id.
func (d *deltaRefs) candidates(tc *tensorChunk, id object.ID) []object.ID {
	if d == nil || tc == nil {
		return nil
	}
	key := *tc
	key.elem = 0
	var out []object.ID
	for _, m := range []map[tensorChunk]object.ID{d.prev, d.base} {
		if ref, ok := m[key]; ok && ref != id && (len(out) == 0 || out[0] != ref) {
			out = append(out, ref)
		}
	}
	return out
}

// deltaReferences finds the manifests a push of name@version may code its
// chunks against: the highest other version of name below version (else
// the latest other one), and the base. Deltas are only an optimization:
// what cannot be read gives no candidates.
func (r *Registry) deltaReferences(ctx context.Context, name, version string, base *refs.BaseRef) *deltaRefs {
	if !r.deltas {
		return nil
	}
	d := &deltaRefs{}
	var recs [2]*refs.Record
	var ms [2]*manifest.Manifest
	if c, err := r.Catalog(ctx, name); err == nil {
		var prev *refs.Record
		for i, rec := range c.Records[name] {
			if rec.Version != version && (prev == nil || retention.CompareVersions(rec.Version, version) < 0) {
				prev = &c.Records[name][i]
			}
		}
		if prev != nil {
			if m, err := r.Manifest(ctx, prev.Manifest); err == nil {
				d.prev = manifestTensorChunks(m)
				recs[0], ms[0] = prev, m
			}
		}
	}
	if base != nil {
		if m, err := r.Manifest(ctx, base.Manifest); err == nil {
			d.base = manifestTensorChunks(m)
			recs[1], ms[1] = r.baseRecord(ctx, base), m
		}
	}
	d.local = r.localReferences(recs[:], ms[:])
	return d
}

// deltaSink is a blobSink that can code a tensor chunk as a delta.
type deltaSink interface {
	ensureTensor(ctx context.Context, key string, hint object.EncodeHint, tc *tensorChunk, load func() ([]byte, error)) (int64, error)
}

// ensureChunk hands a chunk to sink, with the tensor extent it holds when
// the sink can use it.
func ensureChunk(ctx context.Context, sink blobSink, key string, hint object.EncodeHint, tc *tensorChunk, load func() ([]byte, error)) (int64, error) {
	if ds, ok := sink.(deltaSink); ok && tc != nil {
		return ds.ensureTensor(ctx, key, hint, tc, load)
	}
	return sink.ensure(ctx, key, hint, load)
}

// storeBlob encodes content (standalone, or as a delta against a
// candidate reference when that is smaller) and puts it under key. It
// returns the bytes written, 0 when the key existed.
func (op *pushOp) storeBlob(ctx context.Context, key string, content []byte, hint object.EncodeHint, tc *tensorChunk) (int64, error) {
	r := op.r
	hint, tc = resolveHint(hint, tc, content)
	// The caller named the blob by its content's hash.
	id, err := object.ParseID(key[strings.LastIndexByte(key, '/')+1:])
	if err != nil || key != object.BlobKey(id) {
		id = object.Hash(content)
	}
	// The references are looked up before any delta memory is held: the
	// delta budget covers coding, never a round trip.
	kfs, err := op.keyframesFor(ctx, tc, id)
	if err != nil {
		return 0, err
	}
	bp := takeBuf(object.StoredCap(int64(len(content)))) // callers hold it from the transfer budget
	defer dropBuf(bp)
	var obj []byte
	var refID object.ID
	isDelta := false
	if len(kfs) > 0 {
		if obj, refID, isDelta, err = op.codeDelta(ctx, content, (*bp)[:0], hint, kfs, tc.elem); err != nil {
			return 0, err
		}
	} else {
		obj = object.Encode((*bp)[:0], content, hint)
	}
	if isDelta {
		if err := r.ensureDeltaFormat(ctx); err != nil {
			return 0, err
		}
		// The edge goes first: gc must see it before the blob exists.
		// (No stat of the reference before the put: the one after it
		// decides, docs/format.md section 9.)
		if err := r.backend.Put(ctx, deltaEdgeKey(refID, id), bytes.NewReader(nil), 0); err != nil && !errors.Is(err, backend.ErrExists) {
			return 0, fmt.Errorf("write delta edge: %w", err)
		}
	}
	err = r.backend.Put(ctx, key, bytes.NewReader(obj), int64(len(obj)))
	if errors.Is(err, backend.ErrExists) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if isDelta {
		// A gc may have deleted the reference between our read of it and
		// the put (it had not seen the edge yet): then the blob must not
		// stay a delta.
		if _, err := r.backend.Stat(ctx, object.BlobKey(refID)); errors.Is(err, backend.ErrNotFound) {
			if err := r.replaceForPush(ctx, id, object.Encode((*bp)[:0], content, hint)); err != nil {
				return 0, fmt.Errorf("re-encode %s, whose reference was deleted meanwhile: %w", key, err)
			}
		} else if err != nil {
			return 0, err
		}
		op.deltaBlobs.Add(1)
	}
	return int64(len(obj)), nil
}

// refCandidate is a blob a delta may be coded against, with its header when
// keyframesFor read it from the registry.
type refCandidate struct {
	id     object.ID
	header *object.Header
}

// keyframesFor returns the references to try for chunk tc of content id:
// each candidate (deltaRefs.candidates), or its reference where it is
// itself a delta (deltas are one deep, against a keyframe), once each. A
// candidate whose header cannot be read is no reference.
func (op *pushOp) keyframesFor(ctx context.Context, tc *tensorChunk, id object.ID) ([]refCandidate, error) {
	cands := op.deltas.candidates(tc, id)
	out := make([]refCandidate, 0, len(cands))
	for _, cand := range cands {
		h, ref, err := op.r.blobHeaderRef(ctx, cand)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue
		}
		k := refCandidate{id: cand, header: &h}
		if h.Codec == object.CodecDelta {
			if ref == id {
				continue
			}
			k = refCandidate{id: ref}
		}
		if !slices.ContainsFunc(out, func(o refCandidate) bool { return o.id == k.id }) {
			out = append(out, k)
		}
	}
	return out, nil
}

// codeDelta returns the stored form of content, appended to dst: the
// smallest of its deltas against each of kfs and its standalone coding
// (hint), the standalone one when none is smaller. The deltas are coded
// first, so that the standalone coding stops as soon as it cannot win
// (object.EncodeBelow): where a delta pays, as it usually does, most of
// that work is spared. The memory of references and trial codings is held
// from deltaBudget only while it codes.
func (op *pushOp) codeDelta(ctx context.Context, content, dst []byte, hint object.EncodeHint, kfs []refCandidate, elem int) (out []byte, ref object.ID, isDelta bool, err error) {
	// With two keyframes, two trial codings are held: the best so far and
	// the next try; with one (the usual case), one, so that two workers
	// code deltas at once within deltaBudget.
	n := int64(len(content))
	cost := deltaCost(n)
	if len(kfs) > 1 {
		cost += bufCost(object.DeltaStoredCap(n))
	}
	release, err := deltaBudget.acquire(ctx, cost)
	if err != nil {
		return dst, ref, false, err
	}
	defer release()
	rb := takeBuf(object.ContentCap(n))
	defer dropBuf(rb)
	best, spare := takeBuf(object.DeltaStoredCap(n)), (*[]byte)(nil)
	defer func() { dropBuf(best); dropBuf(spare) }()
	if len(kfs) > 1 {
		spare = takeBuf(object.DeltaStoredCap(n))
	}
	var coded []byte // the best delta so far, in best
	for _, k := range kfs {
		// Never a rescue copy: its blob is being replaced, possibly by
		// a delta (gc's re-keying), and references must stay keyframes.
		refBytes, err := op.pushReference(ctx, k, n, (*rb)[:0])
		if err != nil {
			if ctx.Err() != nil {
				return dst, ref, false, ctx.Err()
			}
			continue // a reference that cannot be read is no reference
		}
		into, limit := best, object.HeaderSize+len(content) // no coding is stored longer than raw
		if isDelta {
			into, limit = spare, len(coded) // best holds the delta to beat
		}
		try, err := object.EncodeDelta((*into)[:0], content, refBytes, k.id, elem, limit)
		if err == nil {
			ref, coded = k.id, try
			if isDelta {
				best, spare = spare, best
			}
			isDelta = true
		}
	}
	if !isDelta {
		return object.Encode(dst, content, hint), ref, false, nil
	}
	// A tie goes to the standalone coding, the cheaper to read.
	if obj, ok := object.EncodeBelow(dst, content, hint, len(coded)+1); ok {
		return obj, object.ID{}, false, nil
	}
	// Shorter than the standalone coding, so it fits dst's buffer (the
	// caller's, of StoredCap); the trial buffers go back before the
	// caller's round trips.
	return append(dst, coded...), ref, true, nil
}

// usableBlob says whether the object at key exists and can be used as it
// is (backend.ErrNotFound when it does not exist). A blob is read as far
// as its header (a ranged read costs what a stat does): a delta whose
// reference is missing (left by a push killed between its put and its
// second check of the reference while a gc deleted the reference,
// docs/format.md section 9), or a blob whose header is damaged, is
// replaced in place by its standalone coding from content (load), so no
// ref is ever published to it. It returns the bytes it wrote.
func (op *pushOp) usableBlob(ctx context.Context, key string, hint object.EncodeHint, load func() ([]byte, error)) (int64, error) {
	r := op.r
	id, err := object.ParseID(key[strings.LastIndexByte(key, '/')+1:])
	if err != nil || key != object.BlobKey(id) {
		_, err := r.backend.Stat(ctx, key)
		return 0, err
	}
	h, ref, err := r.blobHeaderRef(ctx, id)
	why := ""
	switch {
	case errors.Is(err, object.ErrCorrupt):
		why = "its header is damaged"
	case err != nil || h.Codec != object.CodecDelta:
		return 0, err
	default:
		if _, err := r.statBlob(ctx, ref); !errors.Is(err, backend.ErrNotFound) {
			return 0, err
		}
		why = "it is a delta whose reference " + ref.String() + " is missing"
	}
	content, err := load()
	if err != nil {
		return 0, err
	}
	if object.Hash(content) != id {
		return 0, fmt.Errorf("%s: the content read for it does not hash to its ID", key)
	}
	hint, _ = resolveHint(hint, nil, content)
	bp := takeBuf(object.StoredCap(int64(len(content)))) // callers hold it from the transfer budget
	defer dropBuf(bp)
	obj := object.Encode((*bp)[:0], content, hint)
	if err := r.replaceForPush(ctx, id, obj); err != nil {
		return 0, fmt.Errorf("store %s again (%s): %w", key, why, err)
	}
	op.repairedBlobs.Add(1)
	return int64(len(obj)), nil
}

// errStillDelta: re-encoding found the blob re-created as a delta by a
// concurrent push.
var errStillDelta = errors.New("blob was stored again as a delta meanwhile")

// replaceStandalone replaces blob id, in place, by obj, its standalone
// stored form (replaceInPlace).
func (r *Registry) replaceStandalone(ctx context.Context, id object.ID, obj []byte) error {
	return r.replaceInPlace(ctx, id, obj, obj, object.ID{}, false)
}

// replaceForPush is replaceStandalone for a push, which needs the blob
// usable rather than standalone: another push may create it again in the
// window, as a delta against another reference, and one whose reference
// exists is accepted, as usableBlob accepts it (the other push checks its
// reference after its put, as this one did). One whose reference is
// missing too is replaced again.
func (r *Registry) replaceForPush(ctx context.Context, id object.ID, obj []byte) error {
	return r.replaceInPlace(ctx, id, obj, obj, object.ID{}, true)
}

// replaceInPlace replaces blob id, in place, by final: obj, its standalone
// stored form, or a delta against keyframe (whose edge the caller wrote
// first). The rescue copy (obj) goes in first, then the blob is deleted
// and created again, then the rescue copy is removed. Readers read the
// rescue copy while the blob is missing; a run killed half-way is finished
// by the next gc (finishRescues), which restores the standalone form.
func (r *Registry) replaceInPlace(ctx context.Context, id object.ID, obj, final []byte, keyframe object.ID, acceptLiveDelta bool) error {
	if h, err := object.ParseHeader(obj); err != nil || h.Codec == object.CodecDelta {
		return fmt.Errorf("replace %s: not a standalone object", object.BlobKey(id))
	}
	if h, err := object.ParseHeader(final); err != nil || h.Codec == object.CodecDelta && keyframe.IsZero() {
		return fmt.Errorf("replace %s: a delta without its keyframe", object.BlobKey(id))
	}
	key, rk := object.BlobKey(id), rescueKey(id)
	// 1. The rescue copy. One that exists already (a replacement under way
	// or interrupted) must decode to the blob; if it vanished meanwhile
	// (its replacement finished), put ours.
	for attempt := 0; ; attempt++ {
		err := r.backend.Put(ctx, rk, bytes.NewReader(obj), int64(len(obj)))
		if err == nil {
			break
		}
		if !errors.Is(err, backend.ErrExists) {
			return fmt.Errorf("write %s: %w", rk, err)
		}
		err = r.checkObject(ctx, rk, id)
		if err == nil {
			break
		}
		if !errors.Is(err, backend.ErrNotFound) || attempt == 2 {
			return fmt.Errorf("%s: %w", rk, err)
		}
	}
	// 2. The blob, deleted and created again. A create that finds the
	// blob present (another writer was quicker) is fine if it is not a
	// delta, or a delta against the keyframe; one that finds it gone again
	// (a gc deleted it) retries.
	// A push accepts a delta another push created meanwhile whose
	// reference exists; one whose reference is missing is deleted and
	// created again.
	for attempt := 0; ; attempt++ {
		if err := r.backend.Delete(ctx, key); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		created, err := r.createReplacement(ctx, id, final, keyframe, acceptLiveDelta)
		if err == nil && created {
			break
		}
		if err != nil || attempt == 2 {
			if err == nil {
				err = errStillDelta
			}
			return fmt.Errorf("write %s: %w", key, err)
		}
	}
	// 3. The rescue copy goes.
	if err := r.backend.Delete(ctx, rk); err != nil && !errors.Is(err, backend.ErrNotFound) {
		return fmt.Errorf("delete %s: %w", rk, err)
	}
	return nil
}

// createReplacement creates blob id holding final, for replaceInPlace
// (step 2). A create that finds the blob present (another writer was
// quicker) is fine if it is not a delta, or a delta against keyframe, or,
// with acceptLiveDelta, a delta whose reference exists; a delta against
// another reference gives errStillDelta, except that with acceptLiveDelta
// one whose reference is missing returns false (delete it and try again).
// One that finds it gone again (a gc deleted it) retries.
func (r *Registry) createReplacement(ctx context.Context, id object.ID, final []byte, keyframe object.ID, acceptLiveDelta bool) (bool, error) {
	key := object.BlobKey(id)
	for attempt := 0; ; attempt++ {
		err := r.backend.Put(ctx, key, bytes.NewReader(final), int64(len(final)))
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, backend.ErrExists) {
			return false, err
		}
		h, ref, herr := r.blobHeaderRef(ctx, id)
		if herr == nil && h.Codec == object.CodecDelta && (keyframe.IsZero() || ref != keyframe) {
			if !acceptLiveDelta {
				return false, errStillDelta
			}
			_, serr := r.statBlob(ctx, ref)
			if errors.Is(serr, backend.ErrNotFound) {
				return false, nil
			}
			return serr == nil, serr
		}
		if herr == nil {
			return true, nil
		}
		if !errors.Is(herr, backend.ErrNotFound) || attempt == 2 {
			return false, fmt.Errorf("read %s: %w", key, herr)
		}
	}
}

// checkObject reads the object at key and checks that it is a standalone
// object whose content hashes to id.
func (r *Registry) checkObject(ctx context.Context, key string, id object.ID) error {
	rc, err := r.backend.Get(ctx, key, 0, -1)
	if err != nil {
		return err
	}
	defer func() { _ = rc.Close() }() // read-only
	h, err := object.ReadHeader(rc)
	if err != nil {
		return err
	}
	if err := object.AtMost(object.MaxBlobContent).Check(h.ContentLen); err != nil {
		return err
	}
	release, err := transfers.acquire(ctx, objectCost(int64(h.ContentLen)))
	if err != nil {
		return err
	}
	defer release()
	cb := takeBuf(object.ContentCap(int64(h.ContentLen)))
	defer dropBuf(cb)
	_, err = readObjectBody(rc, h, (*cb)[:0], id)
	return err
}

// blobHeader reads the header of blob id and, for a delta, its reference
// (object.DeltaReference needs the payload: only its first bytes are read
// here, so the reference is returned unchecked).
func (r *Registry) blobHeader(ctx context.Context, id object.ID) (object.Header, error) {
	h, _, err := r.blobHeaderRef(ctx, id)
	return h, err
}

// blobHeaderRef reads the header of blob id and, for a delta, the reference
// ID its payload names.
func (r *Registry) blobHeaderRef(ctx context.Context, id object.ID) (object.Header, object.ID, error) {
	var ref object.ID
	rc, err := r.backend.Get(ctx, object.BlobKey(id), 0, object.HeaderSize+1+int64(len(ref)))
	if err != nil {
		return object.Header{}, ref, err
	}
	defer func() { _ = rc.Close() }() // read-only
	var buf [object.HeaderSize + 1 + 32]byte
	n, _ := io.ReadFull(rc, buf[:])
	h, err := object.ParseHeader(buf[:n])
	if err != nil {
		return h, ref, err
	}
	if h.Codec == object.CodecDelta {
		if n < len(buf) || buf[object.HeaderSize] != 1 {
			return h, ref, fmt.Errorf("%w: delta blob %s has a bad reference list", object.ErrCorrupt, id)
		}
		copy(ref[:], buf[object.HeaderSize+1:])
	}
	return h, ref, nil
}

// formatMu guards the one-time raise of the format version per Registry.
var formatMu sync.Mutex

// ensureDeltaFormat raises the registry's format version to
// DeltaFormatVersion before the first delta is written (docs/format.md,
// section 3): the version 2 format file goes to upgradeKey, the format
// file is deleted and created again from it. A reader that finds the
// format file missing and the upgrade file present finishes the job.
func (r *Registry) ensureDeltaFormat(ctx context.Context) error {
	formatMu.Lock()
	defer formatMu.Unlock()
	if r.format.Version >= DeltaFormatVersion {
		return nil
	}
	next := r.format
	next.Version = DeltaFormatVersion
	data, _ := json.MarshalIndent(next, "", "  ")
	data = append(data, '\n')
	if err := r.backend.Put(ctx, upgradeKey, bytes.NewReader(data), int64(len(data))); err != nil && !errors.Is(err, backend.ErrExists) {
		return fmt.Errorf("raise the registry format to version %d: %w", DeltaFormatVersion, err)
	}
	for range 3 {
		cur, err := readFormat(ctx, r.backend)
		if err == nil && cur.Version >= DeltaFormatVersion {
			r.format.Version = cur.Version
			return nil
		}
		if err == nil {
			if err := r.backend.Delete(ctx, FormatKey); err != nil && !errors.Is(err, backend.ErrNotFound) {
				return fmt.Errorf("raise the registry format: delete %s: %w", FormatKey, err)
			}
		} else if !errors.Is(err, backend.ErrNotFound) {
			return err
		}
		if err := r.backend.Put(ctx, FormatKey, bytes.NewReader(data), int64(len(data))); err != nil && !errors.Is(err, backend.ErrExists) {
			return fmt.Errorf("raise the registry format: write %s: %w", FormatKey, err)
		}
	}
	return fmt.Errorf("raise the registry format to version %d: %s keeps changing", DeltaFormatVersion, FormatKey)
}

// standaloneOf reads delta blob id of size bytes (header h) through its
// reference and returns its standalone stored form: what a copy writes to
// another registry, which need not hold the reference (nor format version
// 2). release gives back its memory.
func (r *Registry) standaloneOf(ctx context.Context, id object.ID, size int64, h object.Header) (stored []byte, release func(), err error) {
	rel, err := transfers.acquire(ctx, objectCost(size))
	if err != nil {
		return nil, nil, err
	}
	cb, sb := takeBuf(object.ContentCap(size)), takeBuf(object.StoredCap(size))
	release = func() { dropBuf(cb); dropBuf(sb); rel() }
	content, err := r.readBlob(ctx, id, size, (*cb)[:0])
	if err != nil {
		release()
		return nil, nil, err
	}
	return object.Encode((*sb)[:0], content, object.EncodeHint{ElemSize: int(h.Param)}), release, nil
}
