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

// Verify checks that the records' manifests and every blob they reference
// exist in the registry; with readData it downloads every manifest and blob
// from the registry, decodes it and checks its digest. The per-machine
// caches never vouch for anything: a manifest known on this machine is
// still looked up in the registry.
func (r *Registry) Verify(ctx context.Context, recs []Record, readData bool) (*VerifyReport, error) {
	rep := &VerifyReport{Checkpoints: len(recs)}
	if err := r.verifyRecords(ctx, rep, recs, readData); err != nil {
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
	rep := &VerifyReport{Problems: append([]Problem(nil), c.Problems...)}
	var recs []Record
	for _, n := range c.Names() {
		recs = append(recs, c.Records[n]...)
	}
	rep.Checkpoints = len(recs)
	rep.Refs = len(recs) + len(c.Problems) + len(c.Policies)
	for n, tags := range c.Tags {
		rep.Refs += len(tags)
		for t, v := range tags {
			if c.problem(versionKey(n, v)) != nil {
				continue // the version's own problem is reported
			}
			if !slices.ContainsFunc(c.Records[n], func(rec Record) bool { return rec.Version == v }) {
				rep.Problems = append(rep.Problems, Problem{Object: tagKey(n, t),
					Err: fmt.Errorf("%w: tag %s@%s points at version %s, which does not exist", ErrNoCheckpoint, n, t, v)})
			}
		}
	}
	if err := r.verifyRecords(ctx, rep, recs, readData); err != nil {
		return rep, err
	}
	return rep, rep.verdict()
}

// verdict sorts the problems and is ErrVerifyFailed if there are any.
func (rep *VerifyReport) verdict() error {
	sort.SliceStable(rep.Problems, func(i, j int) bool { return rep.Problems[i].Object < rep.Problems[j].Object })
	if len(rep.Problems) > 0 {
		return fmt.Errorf("%w: %d problem(s), first: %s", ErrVerifyFailed, len(rep.Problems), rep.Problems[0])
	}
	return nil
}

// verifyRecords checks the manifests of recs and their blobs, adding what
// it finds to rep. It returns an error only when it could not go on.
func (r *Registry) verifyRecords(ctx context.Context, rep *VerifyReport, recs []Record, readData bool) error {
	users := map[ID][]string{} // manifest -> the checkpoints that need it
	var mids []ID
	for _, rec := range recs {
		use := func(mid ID, as string) {
			if _, ok := users[mid]; !ok {
				mids = append(mids, mid)
			}
			users[mid] = append(users[mid], as)
		}
		use(rec.Manifest, rec.Name+"@"+rec.Version)
		if rec.Base != nil {
			use(rec.Base.Manifest, rec.Name+"@"+rec.Version+" (base "+rec.Base.String()+")")
		}
	}
	proof := manifestExists
	if readData {
		proof = manifestDownloaded
	}
	manifests := make([]*Manifest, len(mids))
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
				rep.Problems = append(rep.Problems, Problem{Object: ManifestKey(mid), Files: users[mid], Err: err})
				return nil
			}
			manifests[i] = m
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	blobUsers := map[ID][]string{}
	sizes := map[ID]int64{}
	var order []ID
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
				var oi ObjectInfo
				oi, err = r.backend.Stat(gctx, BlobKey(id))
				if err == nil && oi.Size < objectHeaderSize {
					err = fmt.Errorf("%w: %d bytes, shorter than an object header", ErrCorrupt, oi.Size)
				}
			}
			if gctx.Err() != nil {
				return gctx.Err()
			}
			mu.Lock()
			defer mu.Unlock()
			rep.BytesRead += n
			if err != nil {
				if errors.Is(err, ErrNotFound) {
					r.index.forgetKnown(r.format.ID, []string{BlobKey(id)})
				}
				rep.Problems = append(rep.Problems, Problem{Object: BlobKey(id), Files: blobUsers[id], Err: err})
			}
			return nil
		})
	}
	return g.Wait()
}

// readBlobData downloads blob id, whose content the manifest says is size
// bytes, from the registry, decodes it and checks its digest, holding the
// memory it needs from the transfer budget. It returns the content length.
func (r *Registry) readBlobData(ctx context.Context, id ID, size int64) (int64, error) {
	if size < 0 || size > MaxBlobContent {
		return 0, fmt.Errorf("%w: the manifest gives it %d bytes, over the limit %d", ErrCorrupt, size, MaxBlobContent)
	}
	l, err := leaseChunk(ctx, size)
	if err != nil {
		return 0, err
	}
	defer l.done()
	data, err := r.downloadBlob(ctx, id, size, l.buf())
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
	manifests := map[ID]bool{} // the manifests the refs reach
	blobs := map[ID]bool{}     // and the blobs
	reach := func(mid ID) (*Manifest, error) {
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
func (r *Registry) storedUsage(ctx context.Context, u *Usage, manifests, blobs map[ID]bool) error {
	for _, prefix := range []string{"blobs/", "manifests/"} {
		reached, count := blobs, &u.Blobs
		if prefix == "manifests/" {
			reached, count = manifests, &u.Manifests
		}
		err := r.backend.List(ctx, prefix, func(oi ObjectInfo) error {
			id, err := ParseID(oi.Key[strings.LastIndexByte(oi.Key, '/')+1:])
			if err != nil || oi.Key != keyFor(prefix, id) {
				return nil
			}
			if reached[id] {
				u.Stored += oi.Size
				*count++
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
