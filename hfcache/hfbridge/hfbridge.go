// Package hfbridge moves checkpoints between a ckpt registry and the
// Hugging Face Hub cache on the same machine: Import records a cached
// snapshot (what `hf download` or from_pretrained left in the cache) as a
// checkpoint, with the Hub repository id and commit it came from; PullToCache
// writes a checkpoint into the cache, as a snapshot Hub clients find by id
// without the network. It joins package hfcache (the cache layout, local
// files only) and package store (the registry); neither knows the other.
// Nothing here contacts the Hub.
package hfbridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"testing/fstest"

	"github.com/ckptdev/ckpt/hfcache"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/refs"
)

// ImportOptions say which cached snapshot to import and as what.
type ImportOptions struct {
	// CacheDir is the Hugging Face cache folder (hfcache.Dir by default,
	// chosen by the caller).
	CacheDir string
	// Repo is the model's id on the Hub, "ORG/NAME" or "NAME".
	Repo string
	// Revision is a branch or tag, resolved through the cache's
	// refs/<revision>, or a full commit hash; "" means "main".
	Revision string
	// Push is how the snapshot is pushed: Name is required; Version ""
	// means DefaultVersion(commit). Push.HF is set by Import.
	Push store.PushOptions
}

// ImportResult tells what Import found and pushed.
type ImportResult struct {
	// Snapshot is the cached snapshot that was pushed.
	Snapshot hfcache.Snapshot
	Push     *store.PushResult
}

// DefaultVersion is the VERSION an import records when none is given: the
// first 12 hex digits of the commit, so that importing the same snapshot
// again is a no-op and different commits get different versions.
func DefaultVersion(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// Import finds the snapshot of opts.Repo at opts.Revision in the cache
// (hfcache.FindSnapshot: a branch is resolved through refs/<branch> to its
// commit; the snapshot's links are checked to stay inside the repository's
// blobs/) and pushes its folder, recording the repository id and the
// commit in the ref. It reads local files only.
func Import(ctx context.Context, r *store.Registry, opts ImportOptions) (*ImportResult, error) {
	if err := refs.CheckName(opts.Push.Name); err != nil {
		return nil, err
	}
	if opts.Push.Version != "" {
		if err := refs.CheckVersion("VERSION", opts.Push.Version); err != nil {
			return nil, err
		}
	}
	snap, err := hfcache.FindSnapshot(opts.CacheDir, opts.Repo, opts.Revision)
	if err != nil {
		return nil, err
	}
	push := opts.Push
	if push.Version == "" {
		push.Version = DefaultVersion(snap.Commit)
	}
	push.HF = &refs.HFOrigin{Repo: snap.Repo.String(), Revision: snap.Commit}
	res, err := r.Push(ctx, snap.Dir, push)
	if err != nil {
		return nil, err
	}
	return &ImportResult{Snapshot: snap, Push: res}, nil
}

// DefaultRepoPrefix is the namespace of the repository id a checkpoint
// that was not imported from the Hub gets in the cache: ckpt/NAME, with
// any "/" of NAME turned into ".".
const DefaultRepoPrefix = "ckpt/"

// ErrNoRepoID is returned when no repository id is given and none can be
// derived from the checkpoint's NAME.
var ErrNoRepoID = errors.New("no Hugging Face repo id for this checkpoint")

// DefaultRepo is the repository id a checkpoint is written under when the
// caller names none: the id recorded when it was imported from the Hub
// (refs.Record.HF), else DefaultRepoPrefix + NAME with "/" replaced by "."
// (team/llama-sft becomes ckpt/team.llama-sft). A NAME the Hub would not
// accept in an id, and a recorded id that does not parse, are an error
// wrapping ErrNoRepoID.
func DefaultRepo(rec refs.Record) (string, error) {
	if rec.HF != nil {
		id, err := hfcache.ParseRepoID(rec.HF.Repo)
		if err != nil {
			return "", fmt.Errorf("%w: the recorded Hugging Face origin: %w", ErrNoRepoID, err)
		}
		return id.String(), nil
	}
	id, err := hfcache.ParseRepoID(DefaultRepoPrefix + strings.ReplaceAll(rec.Name, "/", "."))
	if err != nil {
		return "", fmt.Errorf("%w: NAME %q does not make one: %w", ErrNoRepoID, rec.Name, err)
	}
	return id.String(), nil
}

// PullOptions say where in the cache a checkpoint goes and which files.
type PullOptions struct {
	// CacheDir is the Hugging Face cache folder.
	CacheDir string
	// Repo is the repository id to write under; "" means DefaultRepo.
	Repo string
	// Branch is the ref pointed at the snapshot; "" means "main".
	Branch string
	// Full adds resume state and trainer_state.json, as store.PullOptions.
	Full bool
	// AllowIncomplete writes a selection that is not a runnable model.
	AllowIncomplete bool
	// Progress is told the bytes of the files to write and those read
	// from the registry as they are; nil for none.
	Progress store.Progress
}

// PullResult tells what PullToCache wrote.
type PullResult struct {
	Record   refs.Record
	Repo     string // the repository id written
	Revision string // the snapshot's name, hfcache.RevisionFor(the manifest ID)
	Branch   string
	// RepoDir is <cache>/models--ORG--NAME, SnapshotDir its
	// snapshots/<Revision> folder.
	RepoDir, SnapshotDir string
	Files                []store.PulledFile
	Bytes                int64
}

// maxCheckedJSON bounds the size of a JSON file (a shard index, an
// adapter config) that PullToCache reads to check that the selection is
// runnable before it writes anything.
const maxCheckedJSON = 64 << 20

// PullToCache writes NAME@REF into the Hugging Face cache as the snapshot
// hfcache.RevisionFor(manifest ID) of the repository opts.Repo, with
// refs/<opts.Branch> pointing at it (hfcache.WriteRepo: blobs named by
// SHA-256, relative symlinks, the ref written last; atomic and
// idempotent). The files are those a pull writes (Registry.Selection), and
// a selection that is not a runnable model is refused before anything is
// written unless AllowIncomplete. Every byte is checked against its chunk
// IDs on the way, and a blob the cache already holds is reused only once
// it is proven to be the file's content.
func PullToCache(ctx context.Context, r *store.Registry, name, ref string, opts PullOptions) (*PullResult, error) {
	rec, err := r.Resolve(ctx, name, ref)
	if err != nil {
		return nil, err
	}
	repo := opts.Repo
	if repo == "" {
		if repo, err = DefaultRepo(rec); err != nil {
			return nil, err
		}
	}
	id, err := hfcache.ParseRepoID(repo)
	if err != nil {
		return nil, err
	}
	branch := opts.Branch
	if branch == "" {
		branch = hfcache.DefaultRevision
	}
	files, err := r.Selection(ctx, rec, opts.Full)
	if err != nil {
		return nil, err
	}
	if !opts.AllowIncomplete {
		if err := checkRunnable(ctx, r, rec, files); err != nil {
			return nil, err
		}
	}

	revision := hfcache.RevisionFor(rec.Manifest)
	sources := make([]hfcache.FileSource, 0, len(files))
	res := &PullResult{Record: rec, Repo: id.String(), Revision: revision, Branch: branch}
	for i := range files {
		f := &files[i].File
		src := hfcache.FileSource{
			Path:    f.Path,
			Size:    f.Size,
			Mode:    fs.FileMode(f.Mode).Perm(),
			Content: fileContent{ctx: ctx, r: r, f: f, prog: opts.Progress},
		}
		if sum, ok := strings.CutPrefix(f.Digest, "sha256:"); ok && len(f.Chunks) == 1 {
			src.SHA256 = sum
		} else {
			src.Verify = func() hfcache.Verifier { return newChunkVerifier(f) }
		}
		sources = append(sources, src)
		res.Files = append(res.Files, store.PulledFile{Path: f.Path, Size: f.Size, Role: f.Role, From: files[i].From})
		res.Bytes += f.Size
	}
	if opts.Progress != nil {
		opts.Progress.Start("pull", res.Bytes)
	}
	err = hfcache.WriteRepo(opts.CacheDir, id, revision, branch, sources)
	if opts.Progress != nil {
		opts.Progress.Finish()
	}
	if err != nil {
		return nil, fmt.Errorf("writing %s@%s into the Hugging Face cache as %s: %w", rec.Name, rec.Version, id, err)
	}
	res.RepoDir = filepath.Join(opts.CacheDir, id.FolderName())
	res.SnapshotDir = filepath.Join(res.RepoDir, "snapshots", revision)
	return res, nil
}

// checkRunnable runs layout.CheckRunnable on the selection as the folder
// it would be: every file present, the JSON files at the top (shard
// indexes, adapter config) read from the registry.
func checkRunnable(ctx context.Context, r *store.Registry, rec refs.Record, files []store.SourcedFile) error {
	fsys := fstest.MapFS{}
	for i := range files {
		f := &files[i].File
		mf := &fstest.MapFile{Mode: fs.FileMode(f.Mode).Perm()}
		if !strings.Contains(f.Path, "/") && strings.HasSuffix(f.Path, ".json") && f.Size <= maxCheckedJSON {
			data, err := r.ReadRange(ctx, f, 0, f.Size)
			if err != nil {
				return err
			}
			mf.Data = data
		}
		fsys[f.Path] = mf
	}
	err := layout.CheckRunnable(fsys)
	var me *layout.MissingError
	if errors.As(err, &me) {
		me.Dir = rec.Name + "@" + rec.Version
		return fmt.Errorf("%w: %w", store.ErrNotRunnable, me)
	}
	return err
}

// fileContent streams a manifest file from the registry (hfcache's
// FileSource.Content).
type fileContent struct {
	ctx  context.Context
	r    *store.Registry
	f    *manifest.File
	prog store.Progress // nil for none
}

func (c fileContent) WriteTo(w io.Writer) (int64, error) {
	if c.prog != nil {
		w = progressWriter{w, c.prog}
	}
	return c.r.WriteFileTo(c.ctx, c.f, w)
}

// progressWriter tells a Progress of the bytes written through it.
type progressWriter struct {
	w    io.Writer
	prog store.Progress
}

func (p progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.prog.Add(int64(n))
	return n, err
}

// chunkVerifier recognizes a file by its chunks: it cuts the content it is
// given at the manifest's chunk boundaries and checks that each piece
// hashes to its chunk's ID (chunk IDs are SHA-256 of the chunk content).
type chunkVerifier struct {
	f   *manifest.File
	i   int   // the chunk being hashed
	off int64 // bytes seen
	h   hash.Hash
	bad bool
}

func newChunkVerifier(f *manifest.File) *chunkVerifier {
	return &chunkVerifier{f: f, h: sha256.New()}
}

var errNotTheFile = errors.New("content differs from the file's chunks")

func (v *chunkVerifier) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if v.bad || v.i >= len(v.f.Chunks) {
			v.bad = true
			return 0, errNotTheFile
		}
		c := v.f.Chunks[v.i]
		end := c.Offset + c.Size
		if c.Offset > v.off || end < v.off {
			v.bad = true // chunks that do not tile the file
			return 0, errNotTheFile
		}
		take := min(int64(len(p)), end-v.off)
		v.h.Write(p[:take])
		v.off += take
		p = p[take:]
		if v.off == end {
			if hex.EncodeToString(v.h.Sum(nil)) != c.ID.String() {
				v.bad = true
				return 0, errNotTheFile
			}
			v.h.Reset()
			v.i++
		}
	}
	return n, nil
}

func (v *chunkVerifier) Verified() bool {
	return !v.bad && v.i == len(v.f.Chunks) && v.off == v.f.Size
}
