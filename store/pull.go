package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
	"github.com/ckptdev/ckpt/store/refs"
)

// ErrTargetNotEmpty is returned when pull would overwrite a non-empty folder
// (PullOptions.Force replaces it).
var ErrTargetNotEmpty = errors.New("target folder is not empty")

// ErrNotRunnable is matched by the error of a pull whose folder would not
// be a model transformers can load (a *layout.MissingError naming what is
// missing): a weights-only checkpoint without a base, say.
// PullOptions.AllowIncomplete writes it anyway.
var ErrNotRunnable = errors.New("not runnable")

// PullOptions choose what a pull materializes.
type PullOptions struct {
	Full            bool // add resume state and trainer_state.json (everything recorded)
	Force           bool // replace a non-empty target folder
	AllowIncomplete bool // write the folder even if it is not runnable
	// Link materializes files from the per-machine content cache by
	// reflink, else hard link, else copy, instead of writing them.
	Link bool
	// Select makes the pull partial: of every file the checkpoint has or
	// inherits (as with Full), those Select matches (layout.Selection,
	// hf download's --include/--exclude rules). A partial pull is not
	// refused for not being runnable: PullResult says whether it is, and
	// what it left out. The zero Selection pulls as without it.
	Select layout.Selection
	// WithBase pulls a PEFT adapter together with its base: the adapter's
	// folder as without it, and in its subfolder BaseDir the runnable set
	// of the base the adapter's record links (its manifest as recorded,
	// with that base's own chain), a pair PEFT loads. Select applies to
	// the adapter's files only. A checkpoint that is not an adapter, or
	// has no base, is an error.
	WithBase bool
}

// BaseDir is the subfolder PullOptions.WithBase writes the base into.
const BaseDir = "base"

// ErrNotAdapter is returned by a pull with PullOptions.WithBase of a
// checkpoint that is not a PEFT adapter (a checkpoint that inherits from
// its base gets the base's files in its own folder), or that has no base.
var ErrNotAdapter = errors.New("not a PEFT adapter with a base")

// PulledFile is one file written by a pull.
type PulledFile struct {
	Path string
	Size int64
	Role string
	From string // NAME@VERSION it came from (the checkpoint or a base)
}

// PullResult tells what a pull wrote.
type PullResult struct {
	Record refs.Record
	Files  []PulledFile
	Bytes  int64
	// Linked counts the files materialized by each method (pull --link).
	Linked map[LinkMethod]int `json:",omitempty"`
	// Partial is set for a pull with a selection (PullOptions.Select).
	Partial bool
	// LeftOut are the files the checkpoint has or inherits that the pull
	// did not write, sorted by path.
	LeftOut []PulledFile
	// Base is the base written into BaseDir (PullOptions.WithBase).
	Base *refs.Record
	// Runnable tells whether the folder written is a model transformers
	// can load (layout.CheckRunnable; a complete PEFT adapter counts, with
	// its base). NotRunnable says why not ("" when it is).
	Runnable    bool
	NotRunnable string
	// RemovedOld are the folders beside dir that held its earlier content,
	// moved aside by a replacing pull that was killed before it removed
	// them (replaceDir), removed now that dir is complete.
	RemovedOld []string
}

// ErrEmptySelection is returned by a partial pull whose selection matches
// none of the checkpoint's files.
var ErrEmptySelection = errors.New("the selection matches no file")

// Pull materializes NAME@REF into dir: the runnable set (weights, index,
// config, generation config, tokenizer), inheriting missing config and
// tokenizer files from the base chain (ResolveChain); with Full,
// everything recorded.
// The folder is built beside dir under a temporary name, every byte checked
// against its digest, and renamed into place at the end.
func (r *Registry) Pull(ctx context.Context, name, ref, dir string, opts PullOptions) (*PullResult, error) {
	res, err := r.pull(ctx, name, ref, dir, opts)
	if err != nil {
		return nil, fmt.Errorf("pull %s@%s: %w", name, ref, err)
	}
	return res, nil
}

// pullOp is one pull: the registry, where the chunks come from (the files
// of earlier pulls on this machine, then the registry), what the pull was
// asked, and the process umask the files' modes are given under.
type pullOp struct {
	r     *Registry
	src   blobSource
	opts  PullOptions
	umask fs.FileMode
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
		return nil, fmt.Errorf("%s: %w", dir, ErrTargetNotEmpty)
	}
	rec, err := r.Resolve(ctx, name, ref)
	if err != nil {
		return nil, err
	}
	files, leftOut, err := r.selectFiles(ctx, rec, opts)
	if err != nil {
		return nil, err
	}
	var base *refs.Record
	if opts.WithBase {
		var baseFiles []SourcedFile
		if base, baseFiles, err = r.adapterBaseFiles(ctx, rec, files); err != nil {
			return nil, err
		}
		files = append(files, baseFiles...)
		sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	}

	// The build folder is named after the target and the selection, plus a
	// random part: a pull that was interrupted (cancelled, killed) is
	// resumed by the next identical one, which finds its folder by the
	// prefix and checks it before use; chunks already written are checked
	// and kept. Pulls with --link do not resume a folder: their cache
	// entries are what they resume from.
	op := &pullOp{r: r, src: r.chunkSource(), opts: opts, umask: processUmask()}
	build, err := openBuildDir(dir, files, !opts.Link)
	if err != nil {
		return nil, err
	}
	defer build.close()
	done := false
	defer func() {
		if !done && ctx.Err() == nil {
			build.remove() // a failure, not an interruption: start afresh next time
		}
	}()
	var linked map[LinkMethod]int
	if opts.Link {
		linked, err = op.linkFiles(ctx, build.dir, files)
	} else if err = op.writeFiles(ctx, build.dir, files, build.resumed); err == nil {
		op.feedCache(ctx, build, files)
	}
	if err != nil {
		return nil, err
	}
	partial := !opts.Select.All()
	runErr := layout.CheckRunnable(os.DirFS(build.path()))
	var me *layout.MissingError
	if errors.As(runErr, &me) {
		me.Dir = fmt.Sprintf("%s@%s", rec.Name, rec.Version)
	}
	if runErr == nil && base != nil {
		runErr = layout.CheckRunnableAlone(os.DirFS(filepath.Join(build.path(), BaseDir)))
		if errors.As(runErr, &me) {
			me.Dir = fmt.Sprintf("%s@%s (in %s/)", base.Name, base.Version, BaseDir)
		}
	}
	if runErr != nil && !opts.AllowIncomplete && !partial {
		if me != nil {
			return nil, mark(me, ErrNotRunnable)
		}
		return nil, runErr
	}
	if err := replaceDir(build, dir, existing, op.umask); err != nil {
		return nil, err
	}
	done = true
	removedOld := r.removeReplacedFolders(build, dir)
	r.cache.remember(r.index, files)
	r.cache.evict()

	res := &PullResult{Record: rec, Linked: linked, Partial: partial, Runnable: runErr == nil, Base: base, RemovedOld: removedOld}
	if runErr != nil {
		res.NotRunnable = runErr.Error()
	}
	for _, f := range files {
		res.Files = append(res.Files, PulledFile{Path: f.Path, Size: f.Size, Role: f.Role, From: f.From})
		res.Bytes += f.Size
	}
	for _, f := range leftOut {
		res.LeftOut = append(res.LeftOut, PulledFile{Path: f.Path, Size: f.Size, Role: f.Role, From: f.From})
	}
	return res, nil
}

// selectFiles picks the files a pull of rec writes, of its resolved base
// chain (ResolveChain): those opts.Select matches when it selects, else
// the runnable ones, or all with Full. It also returns the others.
func (r *Registry) selectFiles(ctx context.Context, rec refs.Record, opts PullOptions) (files, leftOut []SourcedFile, err error) {
	c, err := r.ResolveChain(ctx, rec)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range c.Files {
		var take bool
		switch {
		case !opts.Select.All():
			take = opts.Select.Match(f.Path, layout.Role(f.Role))
		default:
			take = opts.Full || layout.Role(f.Role).Runnable()
		}
		if take {
			files = append(files, f)
		} else {
			leftOut = append(leftOut, f)
		}
	}
	if len(files) == 0 && !opts.Select.All() {
		return nil, nil, fmt.Errorf("%w of %s@%s (%s; it has %d)", ErrEmptySelection, rec.Name, rec.Version, opts.Select.Describe(), len(c.Files))
	}
	return files, leftOut, nil
}

// adapterBaseFiles returns the base of the adapter rec, whose files a
// pull writes (files), and the runnable files of that base's chain under
// BaseDir. The base is the manifest rec's record links (what the adapter
// was trained on), with its version ref's own base chain when the ref
// still records that manifest.
func (r *Registry) adapterBaseFiles(ctx context.Context, rec refs.Record, files []SourcedFile) (*refs.Record, []SourcedFile, error) {
	if !isAdapterSet(files) {
		return nil, nil, fmt.Errorf("%w: %s@%s has no adapter_config.json, or full-model weights of its own", ErrNotAdapter, rec.Name, rec.Version)
	}
	if rec.Base == nil {
		return nil, nil, fmt.Errorf("%w: %s@%s is a PEFT adapter, but its record links no base", ErrNotAdapter, rec.Name, rec.Version)
	}
	for _, f := range files {
		if f.Path == BaseDir || strings.HasPrefix(f.Path, BaseDir+"/") {
			return nil, nil, fmt.Errorf("%s@%s has a file %s of its own, where its base would go", rec.Name, rec.Version, f.Path)
		}
	}
	base := refs.Record{Name: rec.Base.Name, Version: rec.Base.Version, Manifest: rec.Base.Manifest}
	if stored, err := r.readRecord(ctx, base.Name, base.Version); err == nil && stored.Manifest == base.Manifest {
		base = stored
	} else if err != nil && !errors.Is(err, backend.ErrNotFound) {
		return nil, nil, fmt.Errorf("base %s: %w", rec.Base, err)
	}
	baseFiles, _, err := r.selectFiles(ctx, base, PullOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("base %s: %w", rec.Base, err)
	}
	for i := range baseFiles {
		baseFiles[i].Path = BaseDir + "/" + baseFiles[i].Path
	}
	return &base, baseFiles, nil
}

// isAdapterSet applies layout.DetectAdapter's rule to the top-level files
// a pull writes: adapter_config.json and no full-model weights or weights
// index.
func isAdapterSet(files []SourcedFile) bool {
	config := false
	for _, f := range files {
		if strings.Contains(f.Path, "/") {
			continue
		}
		if f.Path == layout.AdapterConfigName {
			config = true
		}
		switch layout.Classify(f.Path) {
		case layout.RoleWeights, layout.RoleWeightsIndex:
			if !layout.IsAdapterFile(f.Path) {
				return false
			}
		}
	}
	return config
}

// writeChunk fetches chunk c of f (verified) and writes it at its offset.
// It holds the chunk's memory from the transfer budget while it does.
func (op *pullOp) writeChunk(ctx context.Context, w io.WriterAt, f *SourcedFile, c manifest.Chunk) error {
	r := op.r
	data, l, err := fetchChunk(ctx, op.src, c)
	if err != nil {
		return fmt.Errorf("%s (from %s): %w", f.Path, f.From, err)
	}
	defer l.done()
	if _, err := w.WriteAt(data, c.Offset); err != nil {
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	startWriteback(w, c.Offset, c.Size)
	r.progressAdd(c.Size)
	return nil
}

// keepWrittenChunk reports whether a resumed pull already wrote chunk c
// into h: its bytes there hash to the chunk's ID. The read holds the
// chunk's memory from the transfer budget.
func (op *pullOp) keepWrittenChunk(ctx context.Context, h io.ReaderAt, c manifest.Chunk) (bool, error) {
	r := op.r
	if c.Size <= 0 || c.Size > object.MaxBlobContent {
		return false, nil
	}
	l, err := leaseChunk(ctx, c.Size)
	if err != nil {
		return false, err
	}
	defer l.done()
	have := l.buf()[:c.Size]
	if _, err := h.ReadAt(have, c.Offset); err != nil || object.Hash(have) != c.ID {
		return false, nil
	}
	r.progressAdd(c.Size)
	return true, nil
}

// buildDir is the folder a pull builds in, beside its target, with the
// target's parent folder; both stay open, and everything in the build
// folder is written relative to its handle, never through a link.
type buildDir struct {
	parent  *os.File // the target's parent folder
	name    string   // the build folder's name in parent
	dir     *os.File // the build folder, locked while the pull runs
	resumed bool     // it holds an interrupted pull of the same selection
}

func (b *buildDir) path() string { return filepath.Join(b.parent.Name(), b.name) }

func (b *buildDir) close() {
	_ = b.dir.Close()    // releases the lock; the folder is read through other handles
	_ = b.parent.Close() // a directory handle: nothing buffered
}

// remove deletes the build folder (os.RemoveAll follows no link).
func (b *buildDir) remove() { _ = os.RemoveAll(b.path()) } // best effort: the next pull into dir removes what is left

// pullTempPrefix starts the name of the build folder of a pull of files
// into dir: the target's name, then a hash of the selection, so that an
// identical pull finds an interrupted one. A random part follows, so that
// nobody can plant a folder or a link under the name in advance.
func pullTempPrefix(dir string, files []SourcedFile) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%s\x00%d\n", f.Path, f.Digest, f.Size)
	}
	return "." + filepath.Base(dir) + ".ckpt-pull-" + hex.EncodeToString(h.Sum(nil))[:16] + "-"
}

// isTempName tells whether name is prefix and a random part.
func isTempName(name, prefix string) bool {
	rnd, ok := strings.CutPrefix(name, prefix)
	if !ok || len(rnd) != 16 {
		return false
	}
	_, err := hex.DecodeString(rnd)
	return err == nil && strings.ToLower(rnd) == rnd
}

// openBuildDir makes the folder a pull of files into dir builds in, beside
// dir: a new private folder (mode 0700, a name nobody could guess, made
// with mkdir, which fails if anything has the name), or, when resumable,
// the folder of an interrupted pull of the same selection. A candidate is
// used only if it is a real folder (not a link), the user's, writable by
// nobody else, not in use by another pull, and holds nothing but the
// selection's files. Build folders of other pulls into dir that pass the
// same checks are removed; anything else named like them (a planted link, a
// folder of another user) is ignored, never followed or touched.
func openBuildDir(dir string, files []SourcedFile, resumable bool) (b *buildDir, err error) {
	parentPath := filepath.Dir(dir)
	if err := os.MkdirAll(parentPath, 0o777); err != nil {
		return nil, err
	}
	parent, err := os.Open(parentPath)
	if err != nil {
		return nil, err
	}
	b = &buildDir{parent: parent}
	defer func() {
		if err != nil {
			if b.dir != nil {
				_ = b.dir.Close() // a directory handle: nothing buffered
			}
			_ = parent.Close() // a directory handle: nothing buffered
		}
	}()
	names, err := readNames(parent)
	if err != nil {
		return nil, err
	}
	ours := pullTempPrefix(dir, files)
	anyPull := "." + filepath.Base(dir) + ".ckpt-pull-"
	for _, name := range names {
		if !strings.HasPrefix(name, anyPull) {
			continue
		}
		d, err := openPrivateDir(parent, name)
		if err != nil {
			continue // not ckpt's, or not safe to use
		}
		if locked, err := tryLock(d); err != nil || !locked {
			_ = d.Close() // another pull is building in it
			continue
		}
		if resumable && b.dir == nil && isTempName(name, ours) && checkResumable(d, files) == nil {
			b.name, b.dir, b.resumed = name, d, true
			continue
		}
		_ = os.RemoveAll(filepath.Join(parentPath, name)) // left by an earlier pull into dir; best effort
		_ = d.Close()                                     // a directory handle: nothing buffered
	}
	if b.dir != nil {
		return b, nil
	}
	b.name = ours + randomHex(8)
	if err := mkdirAt(parent, b.name, 0o700); err != nil {
		return nil, err
	}
	if b.dir, err = openPrivateDir(parent, b.name); err != nil {
		return nil, err
	}
	if err := b.dir.Chmod(0o700); err != nil { // whatever the umask
		return nil, err
	}
	if _, err := tryLock(b.dir); err != nil {
		return nil, err
	}
	return b, nil
}

// readNames lists the names in the folder d.
func readNames(d *os.File) ([]string, error) {
	dup, err := openDirAt(d, ".")
	if err != nil {
		return nil, err
	}
	defer func() { _ = dup.Close() }() // read-only
	names, err := dup.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

// checkResumable checks that the build folder d holds nothing but what a
// pull of files writes.
func checkResumable(d *os.File, files []SourcedFile) error {
	want := make(map[string]bool, len(files))
	for _, f := range files {
		want[f.Path] = true
	}
	dup, err := openDirAt(d, ".")
	if err != nil {
		return err
	}
	defer func() { _ = dup.Close() }() // read-only
	return checkResumeTree(dup, "", want)
}

// writeFiles writes files under root, fetching and verifying chunks in
// parallel. When resuming, chunks already on disk with the right digest are
// kept. Each file gets its recorded mode less the umask.
func (op *pullOp) writeFiles(ctx context.Context, root *os.File, files []SourcedFile, resuming bool) error {
	r := op.r
	handles := make([]*os.File, len(files))
	defer func() {
		for _, h := range handles {
			if h != nil {
				_ = h.Close() // read-only
			}
		}
	}()
	flag := os.O_CREATE | os.O_RDWR
	if !resuming {
		flag |= os.O_EXCL
	}
	var total int64
	for i, f := range files {
		if _, err := targetPath(root.Name(), f.Path); err != nil {
			return err
		}
		h, err := openRel(root, f.Path, flag, 0o600)
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
				if resuming {
					kept, err := op.keepWrittenChunk(gctx, handles[i], c)
					if err != nil || kept {
						return err
					}
				}
				return op.writeChunk(gctx, handles[i], &f, c)
			})
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, f := range files {
		if err := handles[i].Chmod(fs.FileMode(f.Mode).Perm() &^ op.umask); err != nil {
			return err
		}
		if err := handles[i].Sync(); err != nil {
			return err
		}
	}
	return nil
}

// targetPath is where a manifest path lands under root; it refuses paths
// that could land anywhere else.
func targetPath(root, rel string) (string, error) {
	if err := manifest.CheckRelPath(rel); err != nil {
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

// replaceDir moves the finished build folder to dir, with the mode mkdir
// would have given it. An existing dir is first moved aside, under a name
// nobody could guess (and never over anything already there), and removed
// only after the new one is in place.
func replaceDir(b *buildDir, dir string, existing dirState, umask fs.FileMode) error {
	if err := b.dir.Chmod(0o777 &^ umask); err != nil {
		return err
	}
	base := filepath.Base(dir)
	switch existing {
	case folderEmpty:
		if err := removeAt(b.parent, base); err != nil {
			return err
		}
	case folderNonEmpty:
		old := "." + base + ".ckpt-old-" + randomHex(8)
		if err := renameExclAt(b.parent, base, old); err != nil {
			return err
		}
		if err := renameAt(b.parent, b.name, base); err != nil {
			if rerr := renameAt(b.parent, old, base); rerr != nil {
				return fmt.Errorf("%w; the previous content of %s could not be put back and is at %s (%v)",
					err, dir, filepath.Join(filepath.Dir(dir), old), rerr)
			}
			return err
		}
		// dir is complete: what cannot be removed now is removed, or
		// warned about, by removeReplacedFolders.
		_ = os.RemoveAll(filepath.Join(b.parent.Name(), old))
		return nil
	}
	return renameAt(b.parent, b.name, base)
}

// oldFolderName matches what replaceDir names the earlier content of a
// folder it replaces: "." + folder name + ".ckpt-old-" + 16 hex digits.
var oldFolderName = regexp.MustCompile(`^\.(.+)\.ckpt-old-[0-9a-f]{16}$`)

// removeReplacedFolders removes, once dir is complete (the pull just
// renamed its verified build folder into place), the folders replaceDir
// moved dir's earlier content to and a killed pull left behind: that
// content was being replaced on the user's request, and dir now holds
// what replaced it. Only real folders of exactly that name are removed;
// a failure leaves the folder and warns. It returns the removed paths.
func (r *Registry) removeReplacedFolders(b *buildDir, dir string) []string {
	entries, err := os.ReadDir(b.parent.Name())
	if err != nil {
		r.warnf("look for earlier content of %s left by a killed pull: %w", dir, err)
		return nil
	}
	var removed []string
	for _, e := range entries {
		m := oldFolderName.FindStringSubmatch(e.Name())
		if m == nil || m[1] != filepath.Base(dir) || e.Type() != fs.ModeDir {
			continue
		}
		p := filepath.Join(filepath.Dir(dir), e.Name())
		if err := os.RemoveAll(filepath.Join(b.parent.Name(), e.Name())); err != nil {
			r.warnf("remove %s, the earlier content of %s a killed pull left: %w", p, dir, err)
			continue
		}
		removed = append(removed, p)
	}
	return removed
}

// ReadRange returns n bytes of a manifest file from offset off, fetching and
// verifying only the chunks that cover them, one at a time, each under the
// transfer budget.
func (r *Registry) ReadRange(ctx context.Context, f *manifest.File, off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off+n > f.Size {
		return nil, fmt.Errorf("%s: range [%d, %d) outside the file (%d bytes)", f.Path, off, off+n, f.Size)
	}
	out := make([]byte, n)
	src := r.chunkSource()
	for _, c := range f.Chunks {
		lo, hi := max(off, c.Offset), min(off+n, c.Offset+c.Size)
		if lo >= hi {
			continue
		}
		data, l, err := fetchChunk(ctx, src, c)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path, err)
		}
		copy(out[lo-off:hi-off], data[lo-c.Offset:hi-c.Offset])
		l.done()
	}
	return out, nil
}
