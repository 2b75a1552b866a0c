package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
	"github.com/ckptdev/ckpt/store/refs"
)

// Problem is one defect verify found.
type Problem struct {
	Object string   // the object key
	Files  []string // NAME@VERSION:path of every file that uses it
	Err    error
}

func (p Problem) String() string {
	msg := p.Err.Error()
	if i := strings.LastIndex(msg, p.Object+": "); i >= 0 {
		msg = msg[i+len(p.Object)+2:] // the error names the object already
	}
	s := p.Object + ": " + msg
	if len(p.Files) > 0 {
		used := p.Files
		if len(used) > 5 {
			used = append(used[:5:5], fmt.Sprintf("and %d more", len(p.Files)-5))
		}
		s += " (used by " + strings.Join(used, ", ") + ")"
	}
	return s
}

// VerifyReport summarizes a verify run.
type VerifyReport struct {
	Refs        int // ref objects read (VerifyAll)
	Checkpoints int
	Manifests   int
	Blobs       int
	BytesRead   int64
	Problems    []Problem
}

// ErrVerifyFailed is returned when verify found problems.
var ErrVerifyFailed = errors.New("verify found problems")

// Verify checks that the manifests of the records and of their base chains
// (what a pull of them reads, ResolveChain), and every blob they
// reference, exist in the registry; with readData it downloads every
// manifest and blob from the registry, decodes it and checks its digest.
// The per-machine caches never vouch for anything: a manifest known on this
// machine is still looked up in the registry, and the bases' version refs
// are read from it.
func (r *Registry) Verify(ctx context.Context, recs []refs.Record, readData bool) (*VerifyReport, error) {
	rep := &VerifyReport{Checkpoints: len(recs)}
	if err := r.verifyRecords(ctx, rep, recs, r.readRecord, readData); err != nil {
		return rep, err
	}
	return rep, rep.verdict()
}

// VerifyAll reads every ref of the registry from the registry itself and
// reports, without stopping at the first: refs that cannot be read or whose
// checksum does not match, tags pointing at versions that do not exist,
// policies that cannot be read, manifests that are missing or corrupt
// (naming the refs that need them) and missing or (with readData) corrupt
// blobs.
func (r *Registry) VerifyAll(ctx context.Context, readData bool) (*VerifyReport, error) {
	c, err := r.ReadCatalog(ctx, "", CatalogOptions{FromRegistry: true, KeepGoing: true, Policies: true})
	if err != nil {
		return nil, err
	}
	rep := &VerifyReport{}
	for _, p := range c.Problems {
		rep.Problems = append(rep.Problems, Problem{Object: p.Key, Err: p.Err})
	}
	var recs []refs.Record
	for _, n := range c.Names() {
		recs = append(recs, c.Records[n]...)
	}
	rep.Checkpoints = len(recs)
	rep.Refs = len(recs) + len(c.Problems) + len(c.Policies)
	for n, tags := range c.Tags {
		rep.Refs += len(tags)
		for t, v := range tags {
			if c.ProblemAt(refs.VersionKey(n, v)) != nil {
				continue // the version's own problem is reported
			}
			if !slices.ContainsFunc(c.Records[n], func(rec refs.Record) bool { return rec.Version == v }) {
				rep.Problems = append(rep.Problems, Problem{Object: refs.TagKey(n, t),
					Err: fmt.Errorf("%w: tag %s@%s points at version %s, which does not exist", refs.ErrNoCheckpoint, n, t, v)})
			}
		}
	}
	if err := r.verifyRecords(ctx, rep, recs, catalogLookup(c), readData); err != nil {
		return rep, err
	}
	return rep, rep.verdict()
}

// catalogLookup finds version records in c, which was read from the
// registry: a ref c could not verify gives its problem, one c does not have
// is gone.
func catalogLookup(c *refs.Catalog) recordLookup {
	return func(_ context.Context, name, version string) (refs.Record, error) {
		key := refs.VersionKey(name, version)
		if p := c.ProblemAt(key); p != nil {
			return refs.Record{}, p.Err
		}
		if rec, ok := c.Record(name, version); ok {
			return rec, nil
		}
		return refs.Record{}, fmt.Errorf("%s: %w", key, backend.ErrNotFound)
	}
}

// verdict sorts the problems and is ErrVerifyFailed if there are any.
func (rep *VerifyReport) verdict() error {
	sort.SliceStable(rep.Problems, func(i, j int) bool { return rep.Problems[i].Object < rep.Problems[j].Object })
	if len(rep.Problems) > 0 {
		return fmt.Errorf("%w: %d problem(s), first: %s", ErrVerifyFailed, len(rep.Problems), rep.Problems[0])
	}
	return nil
}

// verifyRecords checks the manifests of recs and of their base chains
// (walked through lookup), and their blobs, adding what it finds to rep. It
// returns an error only when it could not go on.
func (r *Registry) verifyRecords(ctx context.Context, rep *VerifyReport, recs []refs.Record, lookup recordLookup, readData bool) error {
	users := map[object.ID][]string{} // manifest -> the checkpoints that need it
	var mids []object.ID
	for _, rec := range recs {
		use := func(mid object.ID, as string) {
			if _, ok := users[mid]; !ok {
				mids = append(mids, mid)
			}
			users[mid] = append(users[mid], as)
		}
		use(rec.Manifest, rec.Name+"@"+rec.Version)
		bases, err := walkBases(ctx, rec, lookup)
		for _, base := range bases {
			use(base.Manifest, rec.Name+"@"+rec.Version+" (base "+base.String()+")")
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ce *chainError
			if errors.As(err, &ce) && !slices.ContainsFunc(rep.Problems, func(p Problem) bool { return p.Object == ce.key }) {
				rep.Problems = append(rep.Problems, Problem{Object: ce.key, Err: err})
			}
		}
	}
	proof := manifestExists
	if readData {
		proof = manifestDownloaded
	}
	manifests := make([]*manifest.Manifest, len(mids))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.workers)
	for i, mid := range mids {
		g.Go(func() error {
			m, err := r.provenManifest(gctx, mid, proof)
			if gctx.Err() != nil {
				return gctx.Err()
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				rep.Problems = append(rep.Problems, Problem{Object: object.ManifestKey(mid), Files: users[mid], Err: err})
				return nil
			}
			manifests[i] = m
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	blobUsers := map[object.ID][]string{}
	sizes := map[object.ID]int64{}
	var order []object.ID
	for i, m := range manifests {
		if m == nil {
			continue
		}
		user, _, _ := strings.Cut(users[mids[i]][0], " ")
		for _, f := range m.Files {
			for _, c := range f.Chunks {
				if _, ok := blobUsers[c.ID]; !ok {
					order = append(order, c.ID)
					sizes[c.ID] = c.Size
				}
				blobUsers[c.ID] = append(blobUsers[c.ID], fmt.Sprintf("%s:%s", user, f.Path))
			}
		}
	}
	rep.Manifests = len(mids)
	rep.Blobs = len(order)
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(r.workers)
	for _, id := range order {
		g.Go(func() error {
			var err error
			var n int64
			if readData {
				n, err = r.readBlobData(gctx, id, sizes[id])
			} else {
				var oi backend.ObjectInfo
				oi, err = r.statBlob(gctx, id)
				if err == nil && oi.Size < object.HeaderSize {
					err = fmt.Errorf("%w: %d bytes, shorter than an object header", object.ErrCorrupt, oi.Size)
				}
			}
			if gctx.Err() != nil {
				return gctx.Err()
			}
			mu.Lock()
			defer mu.Unlock()
			rep.BytesRead += n
			if err != nil {
				if errors.Is(err, backend.ErrNotFound) {
					r.index.forgetKnown(r.format.ID, []string{object.BlobKey(id)})
				}
				rep.Problems = append(rep.Problems, Problem{Object: object.BlobKey(id), Files: blobUsers[id], Err: err})
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if readData {
		return nil // decoding each delta read its reference
	}
	problems, err := r.checkDeltaReferences(ctx, blobUsers)
	rep.Problems = append(rep.Problems, problems...)
	return err
}

// readBlobData downloads blob id, whose content the manifest says is size
// bytes, from the registry, decodes it and checks its digest, holding the
// memory it needs from the transfer budget. It returns the content length.
func (r *Registry) readBlobData(ctx context.Context, id object.ID, size int64) (int64, error) {
	if size < 0 || size > object.MaxBlobContent {
		return 0, fmt.Errorf("%w: the manifest gives it %d bytes, over the limit %d", object.ErrCorrupt, size, object.MaxBlobContent)
	}
	l, err := leaseChunk(ctx, size)
	if err != nil {
		return 0, err
	}
	defer l.done()
	data, err := r.readBlob(ctx, id, size, l.buf())
	return int64(len(data)), err
}

// Usage is what `ckpt du` reports.
type Usage struct {
	Names       int   `json:"names"`
	Checkpoints int   `json:"checkpoints"`
	Logical     int64 `json:"logical_bytes"` // sum of every checkpoint's file sizes
	Unique      int64 `json:"unique_bytes"`  // content bytes of the distinct blobs the refs reach
	// Stored is the stored bytes (after compression) of the blobs and
	// manifests the refs reach, their bases' included; Blobs and Manifests
	// count them.
	Stored    int64 `json:"stored_bytes"`
	Blobs     int   `json:"blobs"`
	Manifests int   `json:"manifests"`
	// Unreferenced is the stored bytes of the blobs and manifests no ref
	// reaches: gc frees them once they are older than its grace period.
	Unreferenced        int64 `json:"unreferenced_bytes"`
	UnreferencedObjects int   `json:"unreferenced_objects"`
	// DeltaReferences is the stored bytes of the blobs no ref reaches
	// that are held only as the references of delta blobs the refs reach
	// (by their edges, deltagc.go): gc keeps them, or re-encodes the
	// deltas standalone and then frees them. They are not counted in
	// Unreferenced.
	DeltaReferences       int64 `json:"delta_reference_bytes"`
	DeltaReferenceObjects int   `json:"delta_reference_objects"`
}

// DedupeRatio is logical over unique bytes.
func (u Usage) DedupeRatio() float64 { return ratio(u.Logical, u.Unique) }

// CompressionRatio is unique content over stored bytes, both of what the
// refs reach.
func (u Usage) CompressionRatio() float64 { return ratio(u.Unique, u.Stored) }

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Usage computes logical, unique, stored and unreferenced bytes for the
// whole registry.
func (r *Registry) Usage(ctx context.Context) (*Usage, error) {
	c, err := r.Catalog(ctx, "")
	if err != nil {
		return nil, err
	}
	u := &Usage{Names: len(c.Records)}
	manifests := map[object.ID]bool{} // the manifests the refs reach
	blobs := map[object.ID]bool{}     // and the blobs
	reach := func(mid object.ID) (*manifest.Manifest, error) {
		m, err := r.Manifest(ctx, mid)
		if err != nil {
			return nil, err
		}
		manifests[mid] = true
		for _, f := range m.Files {
			for _, ch := range f.Chunks {
				if !blobs[ch.ID] {
					blobs[ch.ID] = true
					u.Unique += ch.Size
				}
			}
		}
		return m, nil
	}
	for _, recs := range c.Records {
		for _, rec := range recs {
			u.Checkpoints++
			m, err := reach(rec.Manifest)
			if err != nil {
				return nil, err
			}
			for _, f := range m.Files {
				u.Logical += f.Size
			}
		}
	}
	// A base stays reachable through the checkpoints that name it, even
	// once its own ref is removed (gc keeps it).
	for _, recs := range c.Records {
		for _, rec := range recs {
			if rec.Base != nil && !manifests[rec.Base.Manifest] {
				if _, err := reach(rec.Base.Manifest); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := r.storedUsage(ctx, u, manifests, blobs); err != nil {
		return nil, err
	}
	return u, nil
}

// storedUsage fills in u's stored and unreferenced figures from one listing
// of blobs/ and manifests/: an object the refs reach (manifests, blobs) is
// stored data, any other is unreferenced, awaiting gc. A key that is not an
// object's (gc leaves it alone too) counts as neither.
func (r *Registry) storedUsage(ctx context.Context, u *Usage, manifests, blobs map[object.ID]bool) error {
	held, err := r.deltaHeld(ctx, blobs)
	if err != nil {
		return err
	}
	for _, prefix := range []string{"blobs/", "manifests/"} {
		reached, count := blobs, &u.Blobs
		if prefix == "manifests/" {
			reached, count = manifests, &u.Manifests
		}
		err := r.backend.List(ctx, prefix, func(oi backend.ObjectInfo) error {
			id, err := object.ParseID(oi.Key[strings.LastIndexByte(oi.Key, '/')+1:])
			if err != nil || oi.Key != keyFor(prefix, id) {
				return nil
			}
			if reached[id] {
				u.Stored += oi.Size
				*count++
			} else if prefix == "blobs/" && held[id] {
				u.DeltaReferences += oi.Size
				u.DeltaReferenceObjects++
			} else {
				u.Unreferenced += oi.Size
				u.UnreferencedObjects++
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
	}
	return nil
}
