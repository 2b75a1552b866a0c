package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/layout"
)

// ErrTargetNotEmpty is returned when pull would overwrite a non-empty folder.
var ErrTargetNotEmpty = errors.New("target folder is not empty")

// PullOptions choose what a pull materializes.
type PullOptions struct {
	Full            bool // add resume state and trainer_state.json (everything recorded)
	Force           bool // replace a non-empty target folder
	AllowIncomplete bool // write the folder even if it is not runnable
	// Link materializes files from the per-machine file cache by reflink,
	// else read-only hard link, else copy, instead of writing them.
	Link bool
}

// PulledFile is one file written by a pull.
type PulledFile struct {
	Path string
	Size int64
	Role string
	From string // NAME@VERSION it came from (the checkpoint or a base)
}

// PullResult tells what a pull wrote.
type PullResult struct {
	Record Record
	Files  []PulledFile
	Bytes  int64
	// Linked counts the files materialized by each method (pull --link).
	Linked map[LinkMethod]int `json:",omitempty"`
}

// sourcedFile is a manifest file with the checkpoint it comes from.
type sourcedFile struct {
	File
	from string
}

// Pull materializes NAME@REF into dir: the runnable set (weights, index,
// config, generation config, tokenizer), inheriting missing config and
// tokenizer files from the --base chain; with Full, everything recorded.
// The folder is built beside dir under a temporary name, every byte checked
// against its digest, and renamed into place at the end.
func (r *Registry) Pull(ctx context.Context, name, ref, dir string, opts PullOptions) (*PullResult, error) {
	res, err := r.pull(ctx, name, ref, dir, opts)
	if err != nil {
		return nil, fmt.Errorf("pull %s@%s: %w", name, ref, err)
	}
	return res, nil
}

func (r *Registry) pull(ctx context.Context, name, ref, dir string, opts PullOptions) (*PullResult, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	existing, err := folderState(dir)
	if err != nil {
		return nil, err
	}
	if existing == folderNonEmpty && !opts.Force {
		return nil, fmt.Errorf("%s: %w (use --force to replace it)", dir, ErrTargetNotEmpty)
	}
	rec, err := r.Resolve(ctx, name, ref)
	if err != nil {
		return nil, err
	}
	files, err := r.selectFiles(ctx, rec, opts.Full)
	if err != nil {
		return nil, err
	}

	// The temporary folder is named after the target and the selection, so
	// a pull that was interrupted (cancelled, killed) is resumed by the next
	// identical one: chunks already written are checked and kept.
	tmp, resumed, err := pullTempDir(dir, rec, files)
	if err != nil {
		return nil, err
	}
	done := false
	defer func() {
		if !done && ctx.Err() == nil {
			os.RemoveAll(tmp) // a failure, not an interruption: start afresh next time
		}
	}()
	var linked map[LinkMethod]int
	if opts.Link {
		linked, err = r.linkFiles(ctx, tmp, r.files, files)
	} else {
		err = r.writeFiles(ctx, tmp, files, resumed)
	}
	if err != nil {
		return nil, err
	}
	if !opts.AllowIncomplete {
		if err := layout.CheckRunnable(os.DirFS(tmp)); err != nil {
			var me *layout.MissingError
			if errors.As(err, &me) {
				me.Dir = fmt.Sprintf("%s@%s", rec.Name, rec.Version)
				return nil, fmt.Errorf("%w; push it with --base NAME@REF, or pull with --allow-incomplete", me)
			}
			return nil, err
		}
	}
	if err := replaceDir(tmp, dir, existing); err != nil {
		return nil, err
	}
	done = true
	if !opts.Link {
		r.pulled.remember(r.index, dir, files)
	}

	res := &PullResult{Record: rec, Linked: linked}
	for _, f := range files {
		res.Files = append(res.Files, PulledFile{Path: f.Path, Size: f.Size, Role: f.Role, From: f.from})
		res.Bytes += f.Size
	}
	return res, nil
}

// selectFiles picks the checkpoint's files for the pull and fills in config,
// generation config and tokenizer files from the base chain when the
// checkpoint has none of its own.
func (r *Registry) selectFiles(ctx context.Context, rec Record, full bool) ([]sourcedFile, error) {
	m, err := r.Manifest(ctx, rec.Manifest)
	if err != nil {
		return nil, err
	}
	var out []sourcedFile
	have := map[layout.Role]bool{}
	paths := map[string]bool{}
	from := rec.Name + "@" + rec.Version
	for _, f := range m.Files {
		role := layout.Role(f.Role)
		if full || role.Runnable() {
			out = append(out, sourcedFile{f, from})
			have[role] = true
			paths[f.Path] = true
		}
	}
	// Only whole groups are inherited: a checkpoint with any tokenizer file
	// keeps its own tokenizer, never a mix.
	inheritable := []layout.Role{layout.RoleConfig, layout.RoleGenerationConfig, layout.RoleTokenizer}
	visited := map[ID]bool{rec.Manifest: true}
	for base := rec.Base; base != nil; {
		if visited[base.Manifest] {
			return nil, fmt.Errorf("base chain of %s@%s loops at %s", rec.Name, rec.Version, base)
		}
		visited[base.Manifest] = true
		bm, err := r.Manifest(ctx, base.Manifest)
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", base, err)
		}
		gained := map[layout.Role]bool{}
		for _, role := range inheritable {
			if have[role] {
				continue
			}
			for _, f := range bm.Files {
				if layout.Role(f.Role) == role && !paths[f.Path] {
					out = append(out, sourcedFile{f, base.String()})
					paths[f.Path] = true
					gained[role] = true
				}
			}
		}
		for role := range gained {
			have[role] = true
		}
		var next Record
		if err := getJSON(ctx, r.backend, versionKey(base.Name, base.Version), &next); err != nil {
			if errors.Is(err, ErrNotFound) {
				break // the base's own ref is gone; its manifest served what it could
			}
			return nil, fmt.Errorf("base %s: %w", base, err)
		}
		base = next.Base
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// writeChunk fetches chunk c of f (verified) and writes it at its offset.
// It holds the chunk's memory from the transfer budget while it does; bp is
// not used for the chunk's data.
func (r *Registry) writeChunk(ctx context.Context, w io.WriterAt, f *sourcedFile, c Chunk, bp *[]byte) error {
	data, l, err := r.fetchChunk(ctx, c)
	if err != nil {
		return fmt.Errorf("%s (from %s): %w", f.Path, f.from, err)
	}
	defer l.done()
	if _, err := w.WriteAt(data, c.Offset); err != nil {
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	startWriteback(w, c.Offset, c.Size)
	r.progressAdd(c.Size)
	return nil
}

// fetchChunk waits for the memory to hold chunk c (leaseChunk), then
// fetches and verifies its blob. The data is valid until the lease is done;
// on error nothing is held.
func (r *Registry) fetchChunk(ctx context.Context, c Chunk) ([]byte, *chunkLease, error) {
	if c.Size < 0 || c.Size > MaxBlobContent {
		return nil, nil, fmt.Errorf("blob %s: %w: the manifest gives it %d bytes, over the limit %d", c.ID, ErrCorrupt, c.Size, MaxBlobContent)
	}
	l, err := leaseChunk(ctx, c.Size)
	if err != nil {
		return nil, nil, err
	}
	data, err := r.fetchBlob(ctx, c.ID, c.Size, l.buf())
	if err == nil && int64(len(data)) != c.Size {
		err = fmt.Errorf("blob %s has %d bytes, manifest says %d", c.ID, len(data), c.Size)
	}
	if err != nil {
		l.done()
		return nil, nil, err
	}
	return data, l, nil
}

// pullTempDir creates (or finds, after an interrupted pull) the folder a
// pull builds in, beside dir. Leftovers of pulls of other selections into
// dir are removed.
func pullTempDir(dir string, rec Record, files []sourcedFile) (string, bool, error) {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%s\x00%d\n", f.Path, f.Digest, f.Size)
	}
	prefix := "." + filepath.Base(dir) + ".ckpt-pull-"
	tmp := filepath.Join(filepath.Dir(dir), prefix+hex.EncodeToString(h.Sum(nil))[:16])
	if old, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), prefix+"*")); len(old) > 0 {
		for _, o := range old {
			if o != tmp {
				os.RemoveAll(o)
			}
		}
	}
	_, err := os.Stat(tmp)
	resumed := err == nil
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", false, err
	}
	return tmp, resumed, nil
}

// writeFiles writes files under root, fetching and verifying chunks in
// parallel. When resuming, chunks already on disk with the right digest are
// kept.
func (r *Registry) writeFiles(ctx context.Context, root string, files []sourcedFile, resuming bool) error {
	handles := make([]*os.File, len(files))
	defer func() {
		for _, h := range handles {
			if h != nil {
				h.Close()
			}
		}
	}()
	var total int64
	for i, f := range files {
		p, err := targetPath(root, f.Path)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		h, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return err
		}
		handles[i] = h
		if fi, err := h.Stat(); err != nil {
			return err
		} else if fi.Size() != f.Size {
			if err := h.Truncate(f.Size); err != nil {
				return err
			}
		}
		total += f.Size
	}
	r.progressStart("pull", total)
	defer r.progressFinish()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.workers)
	for i, f := range files {
		for _, c := range f.Chunks {
			g.Go(func() error {
				bp := getBuf()
				defer putBuf(bp)
				if resuming {
					have := sized(bp, c.Size)
					if _, err := handles[i].ReadAt(have, c.Offset); err == nil && Hash(have) == c.ID {
						r.progressAdd(c.Size)
						return nil
					}
				}
				return r.writeChunk(gctx, handles[i], &f, c, bp)
			})
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, f := range files {
		if err := handles[i].Chmod(fs.FileMode(f.Mode).Perm()); err != nil {
			return err
		}
		if err := handles[i].Sync(); err != nil {
			return err
		}
	}
	return nil
}

// fetchBlob reads blob id, whose content the manifest says is size bytes,
// decodes it into dst and checks its digest. It reads from files of earlier
// pulls on this machine when they still hold the chunk (PullCache), else
// from the registry.
func (r *Registry) fetchBlob(ctx context.Context, id ID, size int64, dst []byte) ([]byte, error) {
	if out, ok := r.pulled.read(r.index, id, dst); ok {
		return out, nil
	}
	return r.downloadBlob(ctx, id, size, dst)
}

// downloadBlob reads blob id, whose content the manifest says is size
// bytes, from the backend and appends its verified content to dst. The
// caller holds objectCost(size) of the transfer budget; dst should have
// room for contentCap(size) bytes. A header that declares another size is
// refused before anything else is read, and no more of the object is read
// than its codec may need for size bytes.
func (r *Registry) downloadBlob(ctx context.Context, id ID, size int64, dst []byte) ([]byte, error) {
	rc, err := r.backend.Get(ctx, BlobKey(id), 0, -1)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			r.index.forgetKnown(r.format.ID, []string{BlobKey(id)})
			return nil, fmt.Errorf("blob %s is missing from the registry: %w", id, err)
		}
		return nil, fmt.Errorf("blob %s: %w", id, err)
	}
	defer rc.Close()
	out, err := readObject(rc, dst, id, exactSize(size))
	if err != nil {
		return nil, fmt.Errorf("blob %s (%s): %w", id, BlobKey(id), err)
	}
	return out, nil
}

// targetPath is where a manifest path lands under root; it refuses paths
// that could land anywhere else.
func targetPath(root, rel string) (string, error) {
	if err := CheckRelPath(rel); err != nil {
		return "", fmt.Errorf("refusing to write %q: %w", rel, err)
	}
	p := filepath.Join(root, filepath.FromSlash(rel))
	if r, err := filepath.Rel(root, p); err != nil || !filepath.IsLocal(r) {
		return "", fmt.Errorf("refusing to write %q: outside the target folder", rel)
	}
	return p, nil
}

type dirState int

const (
	folderMissing dirState = iota
	folderEmpty
	folderNonEmpty
)

func folderState(dir string) (dirState, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return folderMissing, nil
	case err != nil:
		return 0, err
	case len(entries) == 0:
		return folderEmpty, nil
	}
	return folderNonEmpty, nil
}

// replaceDir moves the finished tmp folder to dir. An existing dir is first
// moved aside and removed only after the new one is in place.
func replaceDir(tmp, dir string, existing dirState) error {
	switch existing {
	case folderEmpty:
		if err := os.Remove(dir); err != nil {
			return err
		}
	case folderNonEmpty:
		old := filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".ckpt-old-"+randomHex(6))
		if err := os.Rename(dir, old); err != nil {
			return err
		}
		if err := os.Rename(tmp, dir); err != nil {
			os.Rename(old, dir)
			return err
		}
		return os.RemoveAll(old)
	}
	return os.Rename(tmp, dir)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ReadRange returns n bytes of a manifest file from offset off, fetching and
// verifying only the chunks that cover them, one at a time, each under the
// transfer budget.
func (r *Registry) ReadRange(ctx context.Context, f *File, off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off+n > f.Size {
		return nil, fmt.Errorf("%s: range [%d, %d) outside the file (%d bytes)", f.Path, off, off+n, f.Size)
	}
	out := make([]byte, n)
	for _, c := range f.Chunks {
		lo, hi := max(off, c.Offset), min(off+n, c.Offset+c.Size)
		if lo >= hi {
			continue
		}
		data, l, err := r.fetchChunk(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path, err)
		}
		copy(out[lo-off:hi-off], data[lo-c.Offset:hi-c.Offset])
		l.done()
	}
	return out, nil
}
