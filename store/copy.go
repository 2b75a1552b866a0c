package store

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
	"github.com/ckptdev/ckpt/store/refs"
)

// Copying checkpoints between registries (docs/format.md, section 11).
//
// A copy is a push as far as the destination is concerned: it lists the
// destination's gc markers and locks first, finds what the destination
// lacks with push's existence check (missingKeys: a listing of each blob
// folder that holds many of the keys, else a HEAD each), transfers only
// that, and writes the version refs last, create-only, under a publish
// lock (publishUnderLock), rechecking its data there if a garbage
// collection ran meanwhile. Every object is read from the source whole,
// decoded and hashed against its ID before its stored bytes (the same
// envelope: this ckpt reads and writes one envelope version) are put in
// the destination: nothing read from the source is trusted. Refs are copied
// byte for byte (checksum, push time, metrics, base link and fields this
// version does not know unchanged), after their checksum is verified.

// ErrRefConflict is matched by the error of a copy whose destination holds
// a version ref of the same NAME@VERSION that records another manifest (or
// does not verify), or a tag of the same name pointing at another version
// (or that does not verify). A copy never replaces a ref: the error names
// the ref and what each side records.
var ErrRefConflict = errors.New("the destination records something else under this name")

// CopySpec names checkpoints to copy: NAME@REF, or every version of NAME
// when Ref is "".
type CopySpec struct {
	Name string
	Ref  string
}

func (s CopySpec) String() string {
	if s.Ref == "" {
		return s.Name
	}
	return s.Name + "@" + s.Ref
}

// CopyOptions say how a copy treats what the destination has.
type CopyOptions struct {
	// Tags also copies the tags of the source that point at the versions
	// copied (or found already in the destination).
	Tags bool
	// ServerSide asks the destination to copy objects from the source
	// itself when both are on one server (backend.Copier). Each object is
	// still read from the source and verified first; the copy is checked
	// against the bytes verified before it becomes visible.
	ServerSide bool
}

// CopyStatus is what a copy did with one ref.
type CopyStatus string

const (
	// CopyCopied: the ref was written to the destination.
	CopyCopied CopyStatus = "copied"
	// CopyPresent: the destination held the same ref already.
	CopyPresent CopyStatus = "present"
	// CopyFailed: nothing was written for it (Err says why).
	CopyFailed CopyStatus = "failed"
)

// CopiedVersion is one version ref a copy wrote, found or failed on.
type CopiedVersion struct {
	Name     string
	Version  string
	Manifest object.ID
	// Base is set for a version copied as part of the base chain of a
	// checkpoint asked for, not asked for itself.
	Base   bool
	Status CopyStatus
	Err    error
}

// CopiedTag is one tag a copy wrote, found or failed on.
type CopiedTag struct {
	Name    string
	Tag     string
	Version string
	Status  CopyStatus
	Err     error
}

// CopyResult tells what a copy did.
type CopyResult struct {
	Versions []CopiedVersion
	Tags     []CopiedTag
	// Objects counts the blobs and manifests the checkpoints to write
	// need; Present how many of them the destination had already.
	Objects int
	Present int
	// Blobs and Manifests count the objects transferred (created in the
	// destination by this copy), ContentBytes their decoded size and
	// StoredBytes what was written for them; ServerSide how many of them
	// the destination's server copied itself.
	Blobs        int
	Manifests    int
	ContentBytes int64
	StoredBytes  int64
	ServerSide   int
}

// CopyTo copies checkpoints from r to dst: for each spec, the version refs
// it names (every version of the NAME when the spec has no REF), with their
// base chains (each base's manifest and blobs, and its version ref where
// the source still has it), transferring only the objects dst lacks, and,
// with opts.Tags, their tags. Version refs are written last, create-only,
// under dst's publish protocol; a ref dst holds with the same manifest is
// left alone.
//
// Specs that do not resolve fail the copy before anything is transferred.
// A checkpoint whose data cannot be read intact from the source (a corrupt
// or missing object), or whose ref conflicts with dst's, is not published;
// the others are. The error then joins one error per failed ref (each also
// in the result). Running the same copy again transfers only what is still
// missing.
func (r *Registry) CopyTo(ctx context.Context, dst *Registry, specs []CopySpec, opts CopyOptions) (*CopyResult, error) {
	c := &copyOp{
		src: r, dst: dst, specs: specs, opts: opts, res: &CopyResult{},
		objects: map[string]copyObject{}, failed: map[string]error{}, done: map[string]int{}, asked: map[string]bool{},
	}
	c.serverSide.Store(opts.ServerSide && canCopyServerSide(dst.backend, r.backend))
	err := c.run(ctx)
	return c.res, err
}

// canCopyServerSide reports whether dst can copy objects from src itself.
func canCopyServerSide(dst, src backend.Backend) bool {
	cp, ok := dst.(backend.Copier)
	return ok && cp.CanCopyFrom(src)
}

// copyOp is one copy.
type copyOp struct {
	src, dst *Registry
	specs    []CopySpec
	opts     CopyOptions
	res      *CopyResult
	items    []*copyItem
	// objects are the manifests and blobs the items need, by key.
	objects map[string]copyObject
	// done indexes res.Versions by key: every version ref handled.
	done map[string]int
	// asked holds the keys of the version refs the specs named.
	asked map[string]bool
	// serverSide is cleared once the destination could not copy an
	// object itself: the rest are put.
	serverSide atomic.Bool

	mu sync.Mutex // guards failed and the counters of res while transferring
	// failed holds the objects that could not be read intact from the
	// source, by key.
	failed map[string]error
}

// copyItem is one checkpoint to copy with its base chain.
type copyItem struct {
	rec refs.Record
	// refs are the version refs to write, the deepest base first and the
	// checkpoint itself last.
	refs []*copyRef
	// keys are the manifests and blobs the refs reach (what the
	// destination's gc will keep for them).
	keys []string
	err  error
}

// writes reports whether any of the item's refs is to be written.
func (it *copyItem) writes() bool {
	for _, ref := range it.refs {
		if ref.write {
			return true
		}
	}
	return false
}

// copyRef is a version ref read from the source and verified.
type copyRef struct {
	key  string
	data []byte
	rec  refs.Record
	// write: the destination lacks it.
	write bool
}

// copyObject is an object to copy: a blob of a known content size, or a
// manifest (size -1).
type copyObject struct {
	key  string
	id   object.ID
	size int64
}

func (o copyObject) isBlob() bool { return o.size >= 0 }

// errCopySource marks the failure of a checkpoint whose data could not be
// read intact from the source: that checkpoint fails, the copy goes on.
var errCopySource = errors.New("source data")

func (c *copyOp) run(ctx context.Context) error {
	recs, err := c.resolve(ctx)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		c.asked[refs.VersionKey(rec.Name, rec.Version)] = true
	}
	for _, rec := range recs {
		it, err := c.plan(ctx, rec)
		if err != nil {
			return err
		}
		c.items = append(c.items, it)
	}
	if err := c.checkRefs(ctx); err != nil {
		return err
	}
	// What garbage collection is doing in the destination, seen before
	// anything there is checked: a publish rechecks if it changed since.
	view, err := c.dst.watchGC(ctx)
	if err != nil {
		return err
	}
	if err := c.transfer(ctx); err != nil {
		return err
	}
	c.dst.removeStaleTemp(ctx, false)
	for _, it := range c.items {
		if err := c.publish(ctx, it, view); err != nil {
			return err
		}
	}
	if c.opts.Tags {
		if err := c.copyTags(ctx); err != nil {
			return err
		}
	}
	var errs []error
	for _, v := range c.res.Versions {
		if v.Err != nil {
			errs = append(errs, v.Err)
		}
	}
	for _, t := range c.res.Tags {
		if t.Err != nil {
			errs = append(errs, t.Err)
		}
	}
	return errors.Join(errs...)
}

// resolve turns the specs into the source's records, in order, each once.
func (c *copyOp) resolve(ctx context.Context) ([]refs.Record, error) {
	var out []refs.Record
	seen := map[string]bool{}
	add := func(rec refs.Record) {
		if k := refs.VersionKey(rec.Name, rec.Version); !seen[k] {
			seen[k] = true
			out = append(out, rec)
		}
	}
	for _, s := range c.specs {
		if s.Ref != "" {
			rec, err := c.src.Resolve(ctx, s.Name, s.Ref)
			if err != nil {
				return nil, err
			}
			add(rec)
			continue
		}
		cat, err := c.src.ReadCatalog(ctx, s.Name, CatalogOptions{FromRegistry: true, VersionsOnly: true})
		if err != nil {
			return nil, err
		}
		if len(cat.Records[s.Name]) == 0 {
			names, err := c.src.Names(ctx)
			if err != nil {
				return nil, err
			}
			return nil, refs.NoSuchName(s.Name, names)
		}
		for _, rec := range cat.Records[s.Name] {
			add(rec)
		}
	}
	return out, nil
}

// plan reads what copying rec takes: its version ref and those of its
// bases as the source holds them, and the manifests and blobs they reach.
// A checkpoint whose refs or manifests cannot be read from the source gets
// an item error; only a cancelled context is returned.
func (c *copyOp) plan(ctx context.Context, rec refs.Record) (*copyItem, error) {
	it := &copyItem{rec: rec}
	fail := func(err error) (*copyItem, error) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		it.err = mark(fmt.Errorf("copy %s@%s: %w", rec.Name, rec.Version, err), errCopySource)
		return it, nil
	}
	own, err := c.readSourceRef(ctx, rec.Name, rec.Version)
	if err != nil {
		return fail(err)
	}
	it.rec = own.rec
	found := map[string]*copyRef{}
	bases, err := walkBases(ctx, own.rec, func(ctx context.Context, name, version string) (refs.Record, error) {
		ref, err := c.readSourceRef(ctx, name, version)
		if err != nil {
			return refs.Record{}, err
		}
		found[ref.key] = ref
		return ref.rec, nil
	})
	if err != nil {
		return fail(err)
	}
	for i := len(bases) - 1; i >= 0; i-- {
		if ref, ok := found[refs.VersionKey(bases[i].Name, bases[i].Version)]; ok {
			it.refs = append(it.refs, ref)
		}
	}
	it.refs = append(it.refs, own)

	// Every ref reaches its manifest and its base's (docs/format.md,
	// section 9); the chain's manifests are among them.
	var ids []object.ID
	for _, ref := range it.refs {
		ids = append(ids, ref.rec.Manifest)
		if ref.rec.Base != nil {
			ids = append(ids, ref.rec.Base.Manifest)
		}
	}
	seen := map[string]bool{}
	need := func(o copyObject) error {
		if seen[o.key] {
			return nil
		}
		seen[o.key] = true
		it.keys = append(it.keys, o.key)
		if prev, ok := c.objects[o.key]; ok && prev.size != o.size {
			return fmt.Errorf("blob %s: %w: its manifests give it %d and %d bytes", o.id, object.ErrCorrupt, prev.size, o.size)
		}
		c.objects[o.key] = o
		return nil
	}
	for _, id := range ids {
		if seen[object.ManifestKey(id)] {
			continue
		}
		m, err := c.src.Manifest(ctx, id)
		if err != nil {
			return fail(err)
		}
		if err := need(copyObject{key: object.ManifestKey(id), id: id, size: -1}); err != nil {
			return fail(err)
		}
		for _, id := range m.BlobIDs() {
			if err := need(copyObject{key: object.BlobKey(id), id: id, size: chunkSize(m, id)}); err != nil {
				return fail(err)
			}
		}
	}
	return it, nil
}

// chunkSize is the size m gives blob id (0 if none, which cannot happen
// for an ID of m.BlobIDs; two sizes for one ID make the copy of it fail).
func chunkSize(m *manifest.Manifest, id object.ID) int64 {
	for _, f := range m.Files {
		for _, ch := range f.Chunks {
			if ch.ID == id {
				return ch.Size
			}
		}
	}
	return 0
}

// readSourceRef reads NAME@VERSION's version ref from the source registry
// and verifies it. A ref written before checksums existed is given one.
func (c *copyOp) readSourceRef(ctx context.Context, name, version string) (*copyRef, error) {
	key := refs.VersionKey(name, version)
	data, err := readRef(ctx, c.src.backend, key)
	if err != nil {
		return nil, err
	}
	rec, err := refs.DecodeRecord(key, data)
	if err != nil {
		return nil, err
	}
	if data, err = withChecksum(key, data, rec); err != nil {
		return nil, err
	}
	return &copyRef{key: key, data: data, rec: rec}, nil
}

// withChecksum returns a verified ref as it is, or, written before
// checksums existed, re-encoded from v with one (writers always write it).
func withChecksum(key string, data []byte, v any) ([]byte, error) {
	legacy, err := refs.Decode(key, data, new(json.RawMessage))
	if err != nil || !legacy {
		return data, err
	}
	return refs.Encode(v)
}

// checkRefs reads from the destination every version ref the items would
// write: one with the same manifest is left alone, a missing one is to be
// written, another one fails its item (ErrRefConflict). An
// item whose refs are all there already needs nothing.
func (c *copyOp) checkRefs(ctx context.Context) error {
	decided := map[string]error{}
	for _, it := range c.items {
		if it.err != nil {
			continue
		}
		for _, ref := range it.refs {
			err, ok := decided[ref.key]
			if !ok {
				ref.write, err = c.needsWrite(ctx, ref)
				if err != nil && !errors.Is(err, ErrRefConflict) {
					return err
				}
				decided[ref.key] = err
			} else {
				ref.write = err == nil && c.refWrites(it, ref.key)
			}
			if err != nil {
				it.err = fmt.Errorf("copy %s@%s: %w", it.rec.Name, it.rec.Version, err)
				break
			}
		}
	}
	return nil
}

// refWrites reports whether an earlier item decided to write key.
func (c *copyOp) refWrites(skip *copyItem, key string) bool {
	for _, it := range c.items {
		if it == skip {
			continue
		}
		for _, ref := range it.refs {
			if ref.key == key {
				return ref.write
			}
		}
	}
	return false
}

// needsWrite reads ref's key in the destination.
func (c *copyOp) needsWrite(ctx context.Context, ref *copyRef) (bool, error) {
	data, err := readRef(ctx, c.dst.backend, ref.key)
	if errors.Is(err, backend.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	old, err := refs.DecodeRecord(ref.key, data)
	if err == nil && old.Manifest == ref.rec.Manifest {
		return false, nil
	}
	return false, c.conflict(ref, old, err)
}

// conflict is the error for ref, which the destination holds as old (or
// holds corrupt, with err).
func (c *copyOp) conflict(ref *copyRef, old refs.Record, err error) error {
	what := fmt.Sprintf("%s@%s", ref.rec.Name, ref.rec.Version)
	if err != nil {
		return fmt.Errorf("%s in %s does not verify (%v): %w", what, c.dst.Location(), err, ErrRefConflict)
	}
	return fmt.Errorf("%s in %s records manifest %s, the source %s: %w",
		what, c.dst.Location(), old.Manifest.String()[:12], ref.rec.Manifest.String()[:12], ErrRefConflict)
}

// transfer copies every object that the items to write need and the
// destination lacks: blobs first, then manifests, with bounded
// parallelism. An object that cannot be read intact from the source is
// recorded in failed (the items needing it will not be published); a
// failure to write the destination ends the copy.
func (c *copyOp) transfer(ctx context.Context) error {
	seen := map[string]bool{}
	var keys []string
	for _, it := range c.items {
		if it.err != nil || !it.writes() {
			continue
		}
		for _, k := range it.keys {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	c.res.Objects = len(keys)
	missing, err := c.dst.missingKeys(ctx, keys)
	if err != nil {
		return err
	}
	c.res.Present = len(keys) - len(missing)
	var blobs, manifests []copyObject
	var total int64
	for _, k := range missing {
		o := c.objects[k]
		if o.isBlob() {
			blobs = append(blobs, o)
			total += o.size
		} else {
			manifests = append(manifests, o)
		}
	}
	c.src.progressStart("copy", total)
	defer c.src.progressFinish()
	for _, batch := range [][]copyObject{blobs, manifests} {
		if err := c.copyObjects(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

// copyObjects copies objs with bounded parallelism (copyObject).
func (c *copyOp) copyObjects(ctx context.Context, objs []copyObject) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.src.workers)
	for _, o := range objs {
		g.Go(func() error { return c.copyObject(gctx, o) })
	}
	return g.Wait()
}

// copyObject reads o from the source, verifies it and writes its stored
// bytes to the destination. A source failure is recorded in failed.
func (c *copyOp) copyObject(ctx context.Context, o copyObject) error {
	stored, release, err := c.readVerified(ctx, o)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		c.mu.Lock()
		c.failed[o.key] = err
		c.mu.Unlock()
		return nil
	}
	defer release()
	created, serverSide, err := c.put(ctx, o, stored)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if created {
		if o.isBlob() {
			c.res.Blobs++
			c.res.ContentBytes += o.size
		} else {
			c.res.Manifests++
		}
		c.res.StoredBytes += int64(len(stored))
		if serverSide {
			c.res.ServerSide++
		}
	}
	c.mu.Unlock()
	if o.isBlob() {
		c.src.progressAdd(o.size)
	}
	return nil
}

// readVerified reads object o from the source whole (its stored form) and
// checks it the way every reader does (docs/format.md, section 4): the
// declared length against the limits (and a blob's size in its manifest)
// before anything is allocated, the payload no longer than its codec
// allows, and the decoded content against the ID. The stored bytes are
// valid until release, which gives back their memory.
func (c *copyOp) readVerified(ctx context.Context, o copyObject) (stored []byte, release func(), err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("%s in %s: %w", o.key, c.src.Location(), err)
		}
	}()
	rc, err := c.src.backend.Get(ctx, o.key, 0, -1)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = rc.Close() }() // read-only
	var hdr [object.HeaderSize]byte
	if n, err := io.ReadFull(rc, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, fmt.Errorf("%w: %d bytes, shorter than the header", object.ErrCorrupt, n)
		}
		return nil, nil, err
	}
	h, err := object.ParseHeader(hdr[:])
	if err != nil {
		return nil, nil, err
	}
	limit := object.AtMost(object.MaxManifestContent)
	if o.isBlob() {
		limit = object.Exactly(o.size)
	}
	if err := limit.Check(h.ContentLen); err != nil {
		return nil, nil, err
	}
	if o.isBlob() && h.Codec == object.CodecDelta {
		return c.src.standaloneOf(ctx, o.id, o.size, h) // delta.go
	}
	n := int64(h.ContentLen)
	rel, err := transfers.acquire(ctx, objectCost(n))
	if err != nil {
		return nil, nil, err
	}
	storedBuf, contentBuf := takeBuf(object.StoredCap(n)), takeBuf(object.ContentCap(n))
	free := func() {
		dropBuf(storedBuf)
		dropBuf(contentBuf)
		rel()
	}
	defer func() {
		if err != nil {
			free()
		}
	}()
	// Read to the end, but never more than the longest payload n bytes of
	// content may have, plus one byte to tell that it is longer.
	buf := append((*storedBuf)[:0:object.StoredCap(n)], hdr[:]...)
	for {
		if len(buf) == cap(buf) {
			return nil, nil, fmt.Errorf("%w: longer than its codec allows for %d bytes of content", object.ErrCorrupt, n)
		}
		k, rerr := rc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, nil, rerr
		}
	}
	if o.isBlob() {
		_, err = object.DecodeSize((*contentBuf)[:0], buf, o.id, o.size)
	} else {
		_, err = object.Decode((*contentBuf)[:0], buf, o.id)
	}
	if err != nil {
		return nil, nil, err
	}
	return buf, free, nil
}

// put writes the verified stored bytes of o to the destination,
// create-only, or has the destination copy them from the source itself
// (checked against them before they are visible). created reports whether
// this call made the object (it may have existed already: its key is its
// content's hash).
func (c *copyOp) put(ctx context.Context, o copyObject, stored []byte) (created, serverSide bool, err error) {
	if c.serverSide.Load() {
		want := backend.CopyCheck{Size: int64(len(stored)), MD5: md5.Sum(stored)}
		err := c.dst.backend.(backend.Copier).CopyFrom(ctx, c.src.backend, o.key, o.key, want)
		switch {
		case err == nil:
			return true, true, nil
		case errors.Is(err, backend.ErrExists):
			return false, false, nil
		case errors.Is(err, backend.ErrCopyMismatch), errors.Is(err, backend.ErrCopyUnsupported), errors.Is(err, backend.ErrNotFound):
			// The source changed since it was read, or the server will not
			// copy: the bytes verified are put instead, and so are the
			// rest.
			c.serverSide.Store(false)
		default:
			return false, false, err
		}
	}
	err = c.dst.backend.Put(ctx, o.key, bytes.NewReader(stored), int64(len(stored)))
	if errors.Is(err, backend.ErrExists) {
		return false, false, nil
	}
	return err == nil, false, err
}

// publish writes the item's version refs to the destination under its
// publish protocol, unless the item failed or an object it needs could not
// be copied. A ref the destination already holds the same is reported
// present.
func (c *copyOp) publish(ctx context.Context, it *copyItem, view *gcView) error {
	if it.err == nil {
		for _, k := range it.keys {
			if err := c.failed[k]; err != nil && it.writes() {
				it.err = mark(fmt.Errorf("copy %s@%s: %w; nothing of it was published", it.rec.Name, it.rec.Version, err), errCopySource)
				break
			}
		}
	}
	if it.err != nil {
		c.record(it.refs[len(it.refs)-1], it.rec, CopyFailed, it.err)
		return nil
	}
	if !it.writes() {
		for _, ref := range it.refs {
			c.record(ref, ref.rec, CopyPresent, nil)
		}
		return nil
	}
	v := *view // each item checks against what was seen before anything was
	err := c.dst.publishUnderLock(ctx, &v, func(ctx context.Context, _ map[string]bool) error {
		return c.restore(ctx, it)
	}, func(ctx context.Context) error {
		for _, ref := range it.refs {
			if _, ok := c.done[ref.key]; ok {
				continue
			}
			status, err := c.writeRef(ctx, ref)
			if err != nil {
				return err
			}
			c.record(ref, ref.rec, status, nil)
		}
		return nil
	})
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return err
	case errors.Is(err, ErrRefConflict), errors.Is(err, errCopySource):
		it.err = fmt.Errorf("copy %s@%s: %w", it.rec.Name, it.rec.Version, err)
		c.record(it.refs[len(it.refs)-1], it.rec, CopyFailed, it.err)
		return nil
	}
	return err
}

// restore runs under the publish lock after a garbage collection may have
// deleted objects the item needs since they were found: it checks all of
// them in the destination and copies again what is missing.
func (c *copyOp) restore(ctx context.Context, it *copyItem) error {
	missing, err := c.dst.missingKeys(ctx, it.keys)
	if err != nil {
		return err
	}
	var objs []copyObject
	for _, k := range missing {
		objs = append(objs, c.objects[k])
	}
	sort.SliceStable(objs, func(i, j int) bool { return objs[i].isBlob() && !objs[j].isBlob() })
	if err := c.copyObjects(ctx, objs); err != nil {
		return err
	}
	for _, o := range objs {
		c.mu.Lock()
		ferr := c.failed[o.key]
		c.mu.Unlock()
		if ferr != nil {
			return mark(fmt.Errorf("%w (garbage collection in %s deleted it while copying, and it could not be copied again)", ferr, c.dst.Location()), errCopySource)
		}
	}
	return nil
}

// writeRef writes one version ref to the destination, create-only; one
// that appeared meanwhile is left alone if it records the same manifest,
// else a conflict.
func (c *copyOp) writeRef(ctx context.Context, ref *copyRef) (CopyStatus, error) {
	err := c.dst.backend.Put(ctx, ref.key, bytes.NewReader(ref.data), int64(len(ref.data)))
	if err == nil {
		return CopyCopied, nil
	}
	if !errors.Is(err, backend.ErrExists) {
		return "", err
	}
	data, err := readRef(ctx, c.dst.backend, ref.key)
	if err != nil {
		return "", err
	}
	old, derr := refs.DecodeRecord(ref.key, data)
	if derr == nil && old.Manifest == ref.rec.Manifest {
		return CopyPresent, nil
	}
	return "", c.conflict(ref, old, derr)
}

// record adds a version to the result, once.
func (c *copyOp) record(ref *copyRef, rec refs.Record, status CopyStatus, err error) {
	if _, ok := c.done[ref.key]; ok && status != CopyFailed {
		return
	}
	c.done[ref.key] = len(c.res.Versions)
	c.res.Versions = append(c.res.Versions, CopiedVersion{
		Name: rec.Name, Version: rec.Version, Manifest: rec.Manifest,
		Base: !c.asked[ref.key], Status: status, Err: err,
	})
}

// copyTags copies the source's tags that point at the versions copied or
// found present, create-only; one the destination holds pointing
// elsewhere, or that does not verify, is a conflict.
func (c *copyOp) copyTags(ctx context.Context) error {
	byName := map[string]bool{}
	for _, v := range c.res.Versions {
		if v.Status != CopyFailed {
			byName[v.Name] = true
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		cat, err := c.src.ReadCatalog(ctx, name, CatalogOptions{FromRegistry: true, KeepGoing: true})
		if err != nil {
			return err
		}
		for _, p := range cat.Problems {
			if n, kind, tag, _ := refs.ParseKey(p.Key); n == name && kind == refs.KindTag {
				c.res.Tags = append(c.res.Tags, CopiedTag{Name: name, Tag: tag, Status: CopyFailed,
					Err: fmt.Errorf("copy tag %s of %s: %w", tag, name, p.Err)})
			}
		}
		tags := make([]string, 0, len(cat.Tags[name]))
		for t := range cat.Tags[name] {
			tags = append(tags, t)
		}
		sort.Strings(tags)
		for _, tag := range tags {
			i, ok := c.done[refs.VersionKey(name, cat.Tags[name][tag])]
			if !ok || c.res.Versions[i].Status == CopyFailed {
				continue
			}
			status, version, err := c.copyTag(ctx, name, tag)
			if err != nil && !errors.Is(err, ErrRefConflict) && !errors.Is(err, refs.ErrCorrupt) {
				return err
			}
			if err != nil {
				status, err = CopyFailed, fmt.Errorf("copy tag %s of %s: %w", tag, name, err)
			}
			c.res.Tags = append(c.res.Tags, CopiedTag{Name: name, Tag: tag, Version: version, Status: status, Err: err})
		}
	}
	return nil
}

// copyTag copies NAME's TAG, read again from the source and verified.
func (c *copyOp) copyTag(ctx context.Context, name, tag string) (CopyStatus, string, error) {
	key := refs.TagKey(name, tag)
	data, err := readRef(ctx, c.src.backend, key)
	if err != nil {
		return "", "", err
	}
	t, err := refs.DecodeTag(key, data)
	if err != nil {
		return "", "", err
	}
	if i, ok := c.done[refs.VersionKey(name, t.Version)]; !ok || c.res.Versions[i].Status == CopyFailed {
		return "", t.Version, fmt.Errorf("it moved to version %s while copying, which was not copied: %w", t.Version, ErrRefConflict)
	}
	if data, err = withChecksum(key, data, t); err != nil {
		return "", t.Version, err
	}
	err = c.dst.backend.Put(ctx, key, bytes.NewReader(data), int64(len(data)))
	if err == nil {
		return CopyCopied, t.Version, nil
	}
	if !errors.Is(err, backend.ErrExists) {
		return "", t.Version, err
	}
	old, derr := c.dst.readTag(ctx, name, tag)
	switch {
	case derr == nil && old.Version == t.Version:
		return CopyPresent, t.Version, nil
	case errors.Is(derr, refs.ErrCorrupt):
		return "", t.Version, fmt.Errorf("%s in %s does not verify (%v): %w", key, c.dst.Location(), derr, ErrRefConflict)
	case derr != nil:
		return "", t.Version, derr
	}
	return "", t.Version, fmt.Errorf("%s in %s points at version %s, the source's at %s: %w",
		key, c.dst.Location(), old.Version, t.Version, ErrRefConflict)
}
