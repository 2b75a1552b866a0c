package store

import (
	"context"
	"errors"
	"fmt"
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
	s := fmt.Sprintf("%s: %v", p.Object, p.Err)
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
	Checkpoints int
	Manifests   int
	Blobs       int
	BytesRead   int64
	Problems    []Problem
}

// ErrVerifyFailed is returned when verify found problems.
var ErrVerifyFailed = errors.New("verify found problems")

// Verify checks that the records' manifests and every blob they reference
// exist; with readData it downloads and decodes every blob and checks its
// digest.
func (r *Registry) Verify(ctx context.Context, recs []Record, readData bool) (*VerifyReport, error) {
	rep := &VerifyReport{Checkpoints: len(recs)}
	users := map[ID][]string{}
	sizes := map[ID]int64{}
	manifests := map[ID]bool{}
	var order []ID
	for _, rec := range recs {
		ids := []ID{rec.Manifest}
		if rec.Base != nil {
			ids = append(ids, rec.Base.Manifest)
		}
		for _, mid := range ids {
			if manifests[mid] {
				continue
			}
			manifests[mid] = true
			m, err := r.Manifest(ctx, mid)
			if err != nil {
				rep.Problems = append(rep.Problems, Problem{Object: ManifestKey(mid), Files: []string{rec.Name + "@" + rec.Version}, Err: err})
				continue
			}
			for _, f := range m.Files {
				for _, c := range f.Chunks {
					if _, ok := users[c.ID]; !ok {
						order = append(order, c.ID)
						sizes[c.ID] = c.Size
					}
					users[c.ID] = append(users[c.ID], fmt.Sprintf("%s@%s:%s", rec.Name, rec.Version, f.Path))
				}
			}
		}
	}
	rep.Manifests = len(manifests)
	rep.Blobs = len(order)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
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
				rep.Problems = append(rep.Problems, Problem{Object: BlobKey(id), Files: users[id], Err: err})
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return rep, err
	}
	sort.Slice(rep.Problems, func(i, j int) bool { return rep.Problems[i].Object < rep.Problems[j].Object })
	if len(rep.Problems) > 0 {
		return rep, fmt.Errorf("%w: %d problem(s), first: %s", ErrVerifyFailed, len(rep.Problems), rep.Problems[0])
	}
	return rep, nil
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
	Unique      int64 `json:"unique_bytes"`  // content bytes of the distinct blobs they reference
	Stored      int64 `json:"stored_bytes"`  // bytes of every object in blobs/ and manifests/
	Blobs       int   `json:"blobs"`
	Manifests   int   `json:"manifests"`
}

// DedupeRatio is logical over unique bytes.
func (u Usage) DedupeRatio() float64 { return ratio(u.Logical, u.Unique) }

// CompressionRatio is unique content over stored bytes.
func (u Usage) CompressionRatio() float64 { return ratio(u.Unique, u.Stored) }

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Usage computes logical, unique and stored bytes for the whole registry.
func (r *Registry) Usage(ctx context.Context) (*Usage, error) {
	c, err := r.Catalog(ctx, "")
	if err != nil {
		return nil, err
	}
	u := &Usage{Names: len(c.Records)}
	seen := map[ID]bool{}
	for _, recs := range c.Records {
		for _, rec := range recs {
			u.Checkpoints++
			m, err := r.Manifest(ctx, rec.Manifest)
			if err != nil {
				return nil, err
			}
			for _, f := range m.Files {
				u.Logical += f.Size
				for _, ch := range f.Chunks {
					if !seen[ch.ID] {
						seen[ch.ID] = true
						u.Unique += ch.Size
					}
				}
			}
		}
	}
	for _, prefix := range []string{"blobs/", "manifests/"} {
		err := r.backend.List(ctx, prefix, func(oi ObjectInfo) error {
			u.Stored += oi.Size
			if prefix == "blobs/" {
				u.Blobs++
			} else {
				u.Manifests++
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return u, nil
}
