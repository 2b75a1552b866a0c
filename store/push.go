package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
	"github.com/ckptdev/ckpt/store/refs"
)

// ErrVersionExists is returned when NAME@VERSION already records different
// content and the push was not forced.
var ErrVersionExists = errors.New("version already exists with different content")

// ErrNeedsForce is matched by the error of a push refused because
// NAME@VERSION holds a record only a forced push (PushOptions.Force)
// replaces: one of other content (ErrVersionExists) or one that does not
// verify (refs.ErrCorrupt).
var ErrNeedsForce = errors.New("a forced push replaces it")

// ErrBadBase is matched by the error of a push whose base (PushOptions.Base)
// is not a NAME@REF of the registry.
var ErrBadBase = errors.New("bad base")

// PushOptions say what to record a folder as.
type PushOptions struct {
	Name    string
	Version string // "" : trainer_state.json's global_step, else the N of checkpoint-N
	Base    string // NAME@REF whose config and tokenizer a weights-only checkpoint inherits
	Tags    []string
	Metrics map[string]float64 // recorded on top of trainer_state.json's eval metrics
	Force   bool               // replace an existing version with different content
	// HF is recorded as the Hugging Face Hub repository and commit the
	// folder is a snapshot of (refs.Record.HF); nil for a plain folder.
	HF *refs.HFOrigin
}

// PushResult tells what a push read and stored.
type PushResult struct {
	Record    refs.Record
	Unchanged bool // NAME@VERSION already recorded exactly this content
	Files     int
	Symlinked int   // files read through a symbolic link (layout.Entry.Linked)
	Logical   int64 // bytes in the folder
	BytesRead int64 // bytes read from files (0 when the stat cache knew them all)
	Chunks    int
	NewBlobs  int
	NewRaw    int64 // content bytes of blobs that were new to the registry
	NewStored int64 // bytes written to the registry for them (after compression), manifest included
	// DeltaBlobs counts the new blobs stored as deltas (Options.Deltas).
	DeltaBlobs int
	// RepairedBlobs counts blobs found damaged in the registry (a delta
	// whose reference is missing, a damaged header) and replaced in place
	// by their standalone coding from the folder.
	RepairedBlobs int
	// Adapter is set when the folder is a PEFT adapter (layout.DetectAdapter).
	Adapter *layout.Adapter
	// AutoBase is set when the record's base was not given
	// (PushOptions.Base) but found from the adapter's
	// base_model_name_or_path (adapterBase).
	AutoBase bool
}

// DedupeRatio is logical bytes over newly stored bytes (∞ → 0 when nothing new).
func (p *PushResult) DedupeRatio() float64 {
	if p.NewStored == 0 {
		return 0
	}
	return float64(p.Logical) / float64(p.NewStored)
}

var checkpointDir = regexp.MustCompile(`^checkpoint-([0-9]+)$`)

// pushFile is one file of the folder on its way into a manifest.
type pushFile struct {
	entry  layout.Entry
	abs    string
	info   os.FileInfo
	cached bool
	file   manifest.File
	layout *fileLayout // nil: opaque bytes
	plan   []extent
	os     *os.File
}

// Push records the folder dir as opts.Name@opts.Version. Blobs go in first,
// then the manifest, then the ref, so no reader ever sees a checkpoint with
// missing data.
func (r *Registry) Push(ctx context.Context, dir string, opts PushOptions) (*PushResult, error) {
	res, err := r.push(ctx, dir, opts)
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", dir, err)
	}
	return res, nil
}

// pushOp is one push: the registry, what the push was asked, what it saw
// of garbage collection when it started, the keys the registry itself
// showed present, and what it has done so far. It is the blob sink of the
// manifest builder while the push reads the folder.
type pushOp struct {
	r    *Registry
	opts PushOptions
	// gc is what the push saw of garbage collection when it started; gen is
	// the gc generation the known-blob cache was at then (entries this push
	// adds are recorded under it, see Index.syncGCRuns).
	gc  *gcView
	gen uint64
	// dir is the folder pushed (absolute).
	dir string
	// seen collects the keys the registry itself showed present during this
	// push; confirm checks the others (vouched for by a cache) before the
	// push publishes.
	seen *keySet
	// build reads the folder into the manifest, storing through the op.
	build *manifestBuilder
	// scan is the folder as read, manifest is its ID and JSON.
	scan         *folderScan
	manifestID   object.ID
	manifestJSON []byte
	rec          refs.Record
	res          *PushResult
	// deltas are the references this push may code tensor chunks
	// against (delta.go); nil for none.
	deltas        *deltaRefs
	deltaBlobs    atomic.Int64
	repairedBlobs atomic.Int64 // usableBlob
}

func (r *Registry) push(ctx context.Context, dir string, opts PushOptions) (*PushResult, error) {
	if err := refs.CheckName(opts.Name); err != nil {
		return nil, err
	}
	for _, t := range opts.Tags {
		if err := refs.CheckTag(t); err != nil {
			return nil, err
		}
	}
	f, err := readFolder(dir)
	if err != nil {
		return nil, err
	}
	var state *layout.TrainerState
	for _, e := range f.entries {
		if e.Path == "trainer_state.json" {
			if state, err = layout.ReadTrainerState(filepath.Join(f.abs, e.Path)); err != nil {
				return nil, err
			}
		}
	}
	version, step, err := pushVersion(opts.Version, state, f.abs)
	if err != nil {
		return nil, err
	}
	adapter, err := layout.DetectAdapter(os.DirFS(f.abs))
	if err != nil {
		return nil, err
	}
	baseRef, autoBase := opts.Base, false
	if adapter != nil && baseRef == "" {
		if baseRef, err = r.adapterBase(ctx, adapter.Config.Base()); err != nil {
			return nil, err
		}
		autoBase = baseRef != ""
	}
	base, err := r.resolveBase(ctx, baseRef)
	if err != nil {
		return nil, err
	}

	// The gc runs seen now: if another one appears before the ref is written,
	// or one was running, blobs this push found present may have been
	// deleted meanwhile.
	gcSeen, err := r.watchGC(ctx)
	if err != nil {
		return nil, err
	}
	op := &pushOp{r: r, opts: opts, dir: f.abs, gc: gcSeen, gen: r.index.syncGCRuns(r.format.ID, gcSeen.runs), seen: newKeySet()}
	op.build = &manifestBuilder{sink: op, index: r.index, workers: r.workers, prog: r.prog}
	op.deltas = r.deltaReferences(ctx, opts.Name, version, base)

	if op.scan, err = op.build.build(ctx, f); err != nil {
		return nil, err
	}
	op.res = op.scan.res
	op.res.Adapter, op.res.AutoBase = adapter, autoBase
	op.res.DeltaBlobs = int(op.deltaBlobs.Load())
	op.res.RepairedBlobs = int(op.repairedBlobs.Load())
	if op.manifestJSON, op.manifestID, err = op.scan.manifest.Encode(); err != nil {
		return nil, err
	}
	if stored, err := op.putObject(ctx, object.ManifestKey(op.manifestID), op.manifestJSON, object.EncodeHint{Text: true}); err != nil {
		return nil, err
	} else {
		op.res.NewStored += stored
	}
	// The caches may have saved uploads of objects the registry no longer
	// has: check those before the ref can point at them.
	if err := op.confirm(ctx, false); err != nil {
		return nil, err
	}
	r.removeStaleTemp(ctx, false)

	op.rec = refs.Record{
		Name: opts.Name, Version: version, Manifest: op.manifestID, Pushed: time.Now().UTC(), Step: step,
		Base: base, Files: len(op.scan.files), Logical: op.res.Logical, Stored: op.res.NewStored, HF: opts.HF,
	}
	if host, err := os.Hostname(); err == nil {
		op.rec.Source = host + ":" + f.abs
	}
	metrics := map[string]float64{}
	if state != nil {
		op.rec.Epoch = state.Epoch
		for k, v := range state.EvalMetrics(step) {
			metrics[k] = v
		}
		op.rec.TrainerBest = trainerBest(state)
	}
	for k, v := range opts.Metrics {
		metrics[k] = v
	}
	if len(metrics) > 0 {
		op.rec.Metrics = metrics
	}
	op.res.Record = op.rec

	if err := op.publish(ctx); err != nil {
		return nil, err
	}
	op.res.Record = op.rec
	for _, t := range opts.Tags {
		if err := r.Tag(ctx, opts.Name, op.rec.Version, t); err != nil {
			return nil, err
		}
	}
	r.index.storeFiles(op.scan.stat)
	return op.res, nil
}

// resolveBase resolves the NAME@REF a push records as its base; "" is none.
func (r *Registry) resolveBase(ctx context.Context, base string) (*refs.BaseRef, error) {
	if base == "" {
		return nil, nil
	}
	bname, bref, err := refs.Parse(base, false)
	if err != nil {
		return nil, mark(fmt.Errorf("base: %w", err), ErrBadBase)
	}
	rec, err := r.Resolve(ctx, bname, bref)
	if err != nil {
		return nil, mark(fmt.Errorf("base: %w", err), ErrBadBase)
	}
	return &refs.BaseRef{Name: rec.Name, Version: rec.Version, Manifest: rec.Manifest}, nil
}

// adapterBase is the NAME@VERSION a PEFT adapter is linked to when its
// push names no base: the NAME its adapter_config.json's
// base_model_name_or_path names, at the version or tag its revision names
// if it is one, else at its latest version; else a version imported from
// the Hugging Face repo it names (hfBase); "" when neither is found (a
// local path, an id never imported, nothing). Only an exact NAME or repo
// id matches: a path's last element is not guessed at.
func (r *Registry) adapterBase(ctx context.Context, b layout.AdapterBase) (string, error) {
	if b.Name == "" {
		return "", nil
	}
	if refs.CheckName(b.Name) == nil {
		c, err := r.Catalog(ctx, b.Name)
		if err != nil {
			return "", mark(fmt.Errorf("base %s named by %s: %w", b.Name, layout.AdapterConfigName, err), ErrBadBase)
		}
		if recs := c.Records[b.Name]; len(recs) > 0 {
			if b.Revision != "" {
				if rec, err := c.Resolve(b.Name, b.Revision); err == nil {
					return rec.Name + "@" + rec.Version, nil
				}
			}
			latest := recs[len(recs)-1]
			return latest.Name + "@" + latest.Version, nil
		}
	}
	return r.hfBase(ctx, b)
}

// hfBase is the version imported from the Hugging Face repo b names (its
// record's hf member, written by import): the import of the commit b's
// revision names when that is a full commit, else the most recently pushed
// import of the repo; "" when there is none, or when the repo was imported
// under more than one NAME (which one the adapter means is not guessed).
// Refs that cannot be read or verified are skipped: a base is only ever
// linked from a record that verifies.
func (r *Registry) hfBase(ctx context.Context, b layout.AdapterBase) (string, error) {
	c, err := r.ReadCatalog(ctx, "", CatalogOptions{KeepGoing: true})
	if err != nil {
		return "", mark(fmt.Errorf("base %s named by %s: %w", b.Name, layout.AdapterConfigName, err), ErrBadBase)
	}
	commit := len(b.Revision) == 40 && strings.Trim(b.Revision, "0123456789abcdef") == ""
	var found *refs.Record
	names := map[string]bool{}
	for _, recs := range c.Records {
		for i, rec := range recs {
			if rec.HF == nil || rec.HF.Repo != b.Name || commit && rec.HF.Revision != b.Revision {
				continue
			}
			names[rec.Name] = true
			if found == nil || rec.Pushed.After(found.Pushed) {
				found = &recs[i]
			}
		}
	}
	if found == nil || len(names) > 1 {
		return "", nil
	}
	return found.Name + "@" + found.Version, nil
}

// trainerBest is what trainer_state.json says about Trainer's best
// checkpoint, nil when it says nothing.
func trainerBest(state *layout.TrainerState) *refs.TrainerBest {
	tb := &refs.TrainerBest{Value: state.BestMetric, Metric: state.BestMetricName(),
		GlobalStep: state.BestGlobalStep, ModelCheckpoint: state.BestModelCheckpoint}
	if tb.IsZero() {
		return nil
	}
	return tb
}

// folder is a local folder as layout sees it.
type folder struct {
	abs     string
	entries []layout.Entry
	byPath  map[string]bool
}

// readFolder lists the files of dir and their roles.
func readFolder(dir string) (*folder, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	entries, err := layout.ScanDir(abs)
	if err != nil {
		return nil, err
	}
	byPath := make(map[string]bool, len(entries))
	for _, e := range entries {
		byPath[e.Path] = true
	}
	return &folder{abs: abs, entries: entries, byPath: byPath}, nil
}

// blobSink is where the manifest builder puts the content it cuts from a
// folder: the registry during a push (pushOp), nowhere for a scan
// (discardSink).
type blobSink interface {
	// ensure makes sure the sink holds key; only when it does not does it
	// call load for the content and store it (encoded by hint). It returns
	// the stored size of what it wrote, 0 when it wrote nothing.
	ensure(ctx context.Context, key string, hint object.EncodeHint, load func() ([]byte, error)) (int64, error)
}

// discardSink stores nothing: the manifest of a folder without a registry.
type discardSink struct{}

func (discardSink) ensure(context.Context, string, object.EncodeHint, func() ([]byte, error)) (int64, error) {
	return 0, nil
}

// manifestBuilder reads a folder's files (or takes them from the stat
// cache), cuts and hashes them, hands every chunk to its sink, and returns
// the folder's manifest.
type manifestBuilder struct {
	sink    blobSink
	index   *Index // the stat cache; nil for none
	workers int
	prog    Progress // nil for none
}

// folderScan is a folder read by the manifest builder.
type folderScan struct {
	manifest *manifest.Manifest
	files    []*pushFile
	// stat holds the stat-cache entries of the files read: a push records
	// them once it succeeded.
	stat map[string]statEntry
	res  *PushResult
}

// build reads (or takes from the stat cache), hashes and stores the
// folder's files, and returns their manifest.
func (b *manifestBuilder) build(ctx context.Context, f *folder) (*folderScan, error) {
	var err error
	files := make([]*pushFile, len(f.entries))
	for i, e := range f.entries {
		pf := &pushFile{entry: e, abs: filepath.Join(f.abs, filepath.FromSlash(e.Path))}
		if pf.info, err = os.Stat(pf.abs); err != nil {
			return nil, err
		}
		if cached, ok := b.index.lookupFile(pf.abs, pf.info); ok {
			pf.cached, pf.file = true, cached
		}
		files[i] = pf
	}
	if err := checkShards(f.abs, f.entries, f.byPath); err != nil {
		return nil, err
	}
	for _, pf := range files {
		if pf.cached {
			continue
		}
		if pf.layout, err = readLayout(pf.abs, pf.entry, pf.info.Size()); err != nil {
			return nil, err
		}
		pf.plan = planChunks(pf.info.Size(), pf.layout, fileHint(pf.entry))
	}

	res := &PushResult{Files: len(files)}
	for _, pf := range files {
		res.Logical += pf.info.Size()
		if pf.entry.Linked {
			res.Symlinked++
		}
	}
	readStart := time.Now()
	if err := b.storeChunks(ctx, files, res); err != nil {
		return nil, err
	}
	if err := b.ensureCachedChunks(ctx, files, res); err != nil {
		return nil, err
	}

	m := &manifest.Manifest{}
	statEntries := make(map[string]statEntry)
	for _, pf := range files {
		pf.file.Path = pf.entry.Path
		pf.file.Mode = uint32(pf.entry.Mode.Perm())
		pf.file.Role = string(pf.entry.Role)
		m.Files = append(m.Files, pf.file)
		res.Chunks += len(pf.file.Chunks)
		if !pf.cached && !racy(pf.info.ModTime(), readStart) {
			e := statKey(pf.info)
			e.File = pf.file
			e.File.Path = ""
			statEntries[pf.abs] = e
		}
	}
	m.Version = m.MinVersion()
	return &folderScan{manifest: m, files: files, stat: statEntries, res: res}, nil
}

func (b *manifestBuilder) progressStart(label string, total int64) {
	if b.prog != nil {
		b.prog.Start(label, total)
	}
}

func (b *manifestBuilder) progressAdd(n int64) {
	if b.prog != nil {
		b.prog.Add(n)
	}
}

func (b *manifestBuilder) progressFinish() {
	if b.prog != nil {
		b.prog.Finish()
	}
}

// ScanFolder returns the manifest push would record for dir, reading and
// hashing every file but storing nothing (diff of a local folder).
func ScanFolder(ctx context.Context, dir string) (*manifest.Manifest, error) {
	f, err := readFolder(dir)
	if err != nil {
		return nil, err
	}
	b := &manifestBuilder{sink: discardSink{}, workers: defaultWorkers()}
	scan, err := b.build(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", dir, err)
	}
	return scan.manifest, nil
}

// fileHint picks the codec hint for a file that is not cut at tensor
// boundaries. Torch pickles (optimizer.pt and friends) are mostly fp32
// tensors stored 64-byte aligned, so the weights codec with 4-byte elements
// pays on them; small structured files get the stronger zstd level.
func fileHint(e layout.Entry) object.EncodeHint {
	switch e.Role {
	case layout.RoleResumeState:
		if strings.HasSuffix(e.Path, ".pt") || strings.HasSuffix(e.Path, ".bin") {
			return object.EncodeHint{ElemSize: 4}
		}
		return object.EncodeHint{}
	case layout.RoleWeights:
		return object.EncodeHint{}
	}
	return object.EncodeHint{Text: true}
}

// racy reports whether a file modified at mtime, and read from readStart
// on, could have changed after it was read without its mtime changing (a write within the same timestamp tick), so that it
// must not go in the stat cache. File systems with nanosecond timestamps
// tick at the kernel's coarse clock (a few ms); 100 ms covers that. One
// whose mtime has no sub-second part probably has 1-2 s granularity (FAT,
// some network file systems).
func racy(mtime, readStart time.Time) bool {
	window := 100 * time.Millisecond
	if mtime.Nanosecond() == 0 {
		window = 2 * time.Second
	}
	return readStart.Sub(mtime) < window
}

// pushVersion picks the VERSION: the one given, else trainer_state.json's
// global_step, else the N of a checkpoint-N folder.
func pushVersion(given string, state *layout.TrainerState, dir string) (string, int64, error) {
	var step int64
	known := false // a step was found, even if it is 0
	if state != nil && state.GlobalStep != nil {
		step, known = *state.GlobalStep, true
	}
	if m := checkpointDir.FindStringSubmatch(filepath.Base(dir)); m != nil {
		known = true
		if step == 0 {
			step, _ = strconv.ParseInt(m[1], 10, 64)
		}
	}
	v := given
	switch {
	case v != "":
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && step == 0 {
			step = n
		}
	case !known:
		return "", 0, fmt.Errorf("%w: cannot tell the version (no trainer_state.json global_step, folder is not checkpoint-N): give NAME@VERSION", refs.ErrInvalidName)
	default:
		v = strconv.FormatInt(step, 10)
	}
	if err := refs.CheckVersion("VERSION", v); err != nil {
		return "", 0, err
	}
	return v, step, nil
}

// checkShards refuses a folder whose shard index names a missing shard.
func checkShards(dir string, entries []layout.Entry, present map[string]bool) error {
	for _, e := range entries {
		if e.Role != layout.RoleWeightsIndex {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Path))
		if err != nil {
			return err
		}
		ix, err := layout.ParseShardIndex(data)
		if err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
		for _, s := range ix.Shards() {
			p := path.Join(path.Dir(e.Path), s)
			if !present[p] {
				return fmt.Errorf("%s names shard %s, which is missing: the checkpoint is incomplete", e.Path, p)
			}
		}
	}
	return nil
}

// storeChunks reads, hashes and stores every planned extent with bounded
// parallelism, filling in each file's chunks, digest and tensors.
func (b *manifestBuilder) storeChunks(ctx context.Context, files []*pushFile, res *PushResult) error {
	type task struct {
		f *pushFile
		i int
	}
	var tasks []task
	var total int64
	for _, pf := range files {
		if pf.cached {
			continue
		}
		pf.file.Size = pf.info.Size()
		pf.file.Chunks = make([]manifest.Chunk, 0, len(pf.plan))
		for i, ex := range pf.plan {
			tasks = append(tasks, task{pf, i})
			total += ex.size
		}
	}
	chunks := make(map[*pushFile][]manifest.Chunk, len(files))
	digests := make(map[*pushFile]map[int]string)
	for _, pf := range files {
		if !pf.cached {
			chunks[pf] = make([]manifest.Chunk, len(pf.plan))
			digests[pf] = make(map[int]string)
			f, err := os.Open(pf.abs)
			if err != nil {
				return err
			}
			pf.os = f
		}
	}
	defer func() {
		for _, pf := range files {
			if pf.os != nil {
				_ = pf.os.Close() // opened read-only to hash and chunk
			}
		}
	}()

	b.progressStart("push", total)
	defer b.progressFinish()
	var mu sync.Mutex
	var read, newRaw, newStored, newBlobs atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.workers)
	for _, t := range tasks {
		g.Go(func() error {
			ex := t.f.plan[t.i]
			release, err := transfers.acquire(gctx, objectCost(ex.size))
			if err != nil {
				return err
			}
			defer release()
			bp := takeBuf(ex.size)
			defer dropBuf(bp)
			buf := (*bp)[:ex.size]
			if _, err := t.f.os.ReadAt(buf, ex.off); err != nil {
				return fmt.Errorf("read %s: %w", t.f.entry.Path, err)
			}
			read.Add(ex.size)
			var tensorDigests map[int]string
			if len(ex.tensors) > 0 {
				tensorDigests = make(map[int]string, len(ex.tensors))
				for _, ti := range ex.tensors {
					off, size := t.f.layout.span(ti)
					lo := off - ex.off
					tensorDigests[ti] = manifest.SHA256Digest(object.Hash(buf[lo : lo+size]))
				}
			}
			var id object.ID
			if ex.size > 0 {
				id = object.Hash(buf)
				hint := ex.hint
				if ex.trial {
					hint = trialHint(buf)
				}
				stored, err := ensureChunk(gctx, b.sink, object.BlobKey(id), hint, tensorChunkOf(t.f, ex, hint.ElemSize), func() ([]byte, error) { return buf, nil })
				if err != nil {
					return fmt.Errorf("store %s bytes [%d, %d): %w", t.f.entry.Path, ex.off, ex.off+ex.size, err)
				}
				if stored > 0 {
					newBlobs.Add(1)
					newRaw.Add(ex.size)
					newStored.Add(stored)
				}
			}
			mu.Lock()
			chunks[t.f][t.i] = manifest.Chunk{ID: id, Offset: ex.off, Size: ex.size}
			for k, v := range tensorDigests {
				digests[t.f][k] = v
			}
			mu.Unlock()
			b.progressAdd(ex.size)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	res.BytesRead = read.Load()
	res.NewBlobs = int(newBlobs.Load())
	res.NewRaw = newRaw.Load()
	res.NewStored = newStored.Load()

	for _, pf := range files {
		if pf.cached {
			continue
		}
		// The file must not have changed while it was read.
		if fi, err := os.Stat(pf.abs); err != nil {
			return err
		} else if fi.Size() != pf.info.Size() || !fi.ModTime().Equal(pf.info.ModTime()) {
			return fmt.Errorf("%s changed while it was being pushed; push again once it is written", pf.entry.Path)
		}
		for _, c := range chunks[pf] {
			if c.Size > 0 {
				pf.file.Chunks = append(pf.file.Chunks, c)
			}
		}
		if len(pf.file.Chunks) == 1 {
			pf.file.Digest = manifest.SHA256Digest(pf.file.Chunks[0].ID)
		} else if len(pf.file.Chunks) == 0 {
			pf.file.Digest = manifest.SHA256Digest(object.Hash(nil))
		} else {
			pf.file.Digest = manifest.ChunksDigest(pf.file.Chunks)
		}
		switch {
		case pf.layout == nil:
		case pf.layout.st != nil:
			pf.file.Safetensors = safetensorsInfo(pf.layout.st, chunks[pf], digests[pf])
		case pf.layout.format != "":
			pf.file.Tensors = tensorTable(pf.layout, chunks[pf], digests[pf])
		}
	}
	return nil
}

// safetensorsInfo builds the manifest's tensor table of a safetensors
// file. Tensors grouped into a shared chunk already have digests; the
// others take theirs from the chunks that cover exactly them.
func safetensorsInfo(h *layout.SafetensorsHeader, chunks []manifest.Chunk, grouped map[int]string) *manifest.SafetensorsInfo {
	info := &manifest.SafetensorsInfo{DataOffset: h.DataOffset, Metadata: h.Metadata}
	for i, t := range h.Tensors {
		info.Tensors = append(info.Tensors, manifest.Tensor{Name: t.Name, Dtype: string(t.Dtype), Shape: t.Shape, Begin: t.Begin, End: t.End,
			Digest: tensorDigest(h.DataOffset+t.Begin, h.DataOffset+t.End, chunks, grouped, i)})
	}
	return info
}

// putObject stores an encoded object create-only, skipping objects the
// index or the backend already has.
func (op *pushOp) putObject(ctx context.Context, key string, content []byte, hint object.EncodeHint) (int64, error) {
	return op.ensure(ctx, key, hint, func() ([]byte, error) { return content, nil })
}

// ensure makes sure key exists in the registry: it asks the index, then
// the backend, and only when both say no loads the content and stores it.
// What the index alone vouched for is not recorded as seen: confirm checks
// it before the push publishes. It is the op's blobSink.
func (op *pushOp) ensure(ctx context.Context, key string, hint object.EncodeHint, load func() ([]byte, error)) (int64, error) {
	return op.ensureTensor(ctx, key, hint, nil, load)
}

// ensureTensor is ensure for a chunk that holds the tensor extent tc (nil:
// unknown), which may be stored as a delta (storeBlob, delta.go).
func (op *pushOp) ensureTensor(ctx context.Context, key string, hint object.EncodeHint, tc *tensorChunk, load func() ([]byte, error)) (int64, error) {
	r := op.r
	if r.index.known(r.format.ID, key) {
		return 0, nil
	}
	if stored, err := op.usableBlob(ctx, key, hint, load); err == nil {
		r.index.addKnown(r.format.ID, op.gen, []string{key})
		op.seen.add(key)
		return stored, nil
	} else if !errors.Is(err, backend.ErrNotFound) {
		return 0, err
	}
	content, err := load()
	if err != nil {
		return 0, err
	}
	stored, err := op.storeBlob(ctx, key, content, hint, tc)
	if err != nil {
		return 0, err
	}
	r.index.addKnown(r.format.ID, op.gen, []string{key})
	op.seen.add(key)
	return stored, nil
}

// ensureCachedChunks checks that the chunks of files known from the stat
// cache are in the registry, reading and storing any that are not (a gc
// may have deleted them since the file was last pushed). Chunks the
// known-blob cache vouches for are left to confirm.
func (b *manifestBuilder) ensureCachedChunks(ctx context.Context, files []*pushFile, res *PushResult) error {
	var cached []*pushFile
	for _, pf := range files {
		if pf.cached {
			cached = append(cached, pf)
		}
	}
	return b.storeFromFiles(ctx, cached, nil, res, true)
}

// storeFromFiles makes sure the chunks of files are stored (only those in
// only, when it is not nil), reading what must be uploaded from the files
// and checking it against the chunk's ID, with bounded parallelism.
//
// deltas allows coding chunks as deltas; a re-upload while publishing
// (confirm) stores standalone: the gc protocol (docs/format.md, section 9)
// counts on what a push uploads again after a gc to need nothing that gc
// may just have deleted.
func (b *manifestBuilder) storeFromFiles(ctx context.Context, files []*pushFile, only map[object.ID]bool, res *PushResult, deltas bool) error {
	var read, newRaw, newStored, newBlobs atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.workers)
	done := map[object.ID]bool{}
	for _, pf := range files {
		for _, c := range pf.file.Chunks {
			if only != nil && !only[c.ID] || done[c.ID] {
				continue
			}
			done[c.ID] = true
			g.Go(func() error {
				var bp *[]byte
				release := func() {}
				defer func() { dropBuf(bp); release() }()
				// Coded as the first push coded it: by the tensor's element
				// width (a trial where the table does not tell), possibly as
				// a delta.
				tc, elem := fileTensorChunk(&pf.file, c)
				if tc != nil {
					tc.elem = elem
				}
				if !deltas {
					tc = nil
				}
				stored, err := ensureChunk(gctx, b.sink, object.BlobKey(c.ID), object.EncodeHint{ElemSize: elem}, tc, func() ([]byte, error) {
					if c.Size < 0 || c.Size > object.MaxBlobContent {
						return nil, fmt.Errorf("cached chunk size %d of %s is over the limit %d", c.Size, pf.entry.Path, object.MaxBlobContent)
					}
					rel, err := transfers.acquire(gctx, objectCost(c.Size))
					if err != nil {
						return nil, err
					}
					release, bp = rel, takeBuf(c.Size)
					buf := (*bp)[:c.Size]
					if err := readAt(pf.abs, buf, c.Offset); err != nil {
						return nil, err
					}
					read.Add(c.Size)
					if object.Hash(buf) != c.ID {
						return nil, fmt.Errorf("%s changed while it was being pushed; push again once it is written", pf.entry.Path)
					}
					return buf, nil
				})
				if err != nil {
					return fmt.Errorf("store %s bytes [%d, %d): %w", pf.entry.Path, c.Offset, c.Offset+c.Size, err)
				}
				if stored > 0 {
					newBlobs.Add(1)
					newRaw.Add(c.Size)
					newStored.Add(stored)
				}
				return nil
			})
		}
	}
	err := g.Wait()
	res.BytesRead += read.Load()
	res.NewBlobs += int(newBlobs.Load())
	res.NewRaw += newRaw.Load()
	res.NewStored += newStored.Load()
	return err
}

// keySet is a set of object keys safe for concurrent use; a nil set
// records nothing.
type keySet struct {
	mu   sync.Mutex
	keys map[string]bool
}

func newKeySet() *keySet { return &keySet{keys: map[string]bool{}} }

func (s *keySet) add(key string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.keys[key] = true
	s.mu.Unlock()
}

func (s *keySet) has(key string) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[key]
}

// readAt reads len(buf) bytes of the file at path from off.
func readAt(path string, buf []byte, off int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // read-only
	if _, err := f.ReadAt(buf, off); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}
