package hfcache

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// maxSnapshotEntries is the most files and folders FindSnapshot reads in
// a snapshot. A variable for the tests.
var maxSnapshotEntries = 100_000

// Bounds on what is read from a cache, which is outside input.
const (
	// maxSnapshotDepth is the deepest folder nesting FindSnapshot follows.
	maxSnapshotDepth = 64
	// maxRefBytes is the largest ref file read. A ref holds 40 bytes.
	maxRefBytes = 1024
	// maxScanned is the most folder entries read to build an error message.
	maxScanned = 100_000
	// maxListed is the most refs or snapshots an error lists.
	maxListed = 50
	// maxSimilar is the most close repository ids an error suggests.
	maxSimilar = 5
)

// Snapshot is one cached revision of a repository, as FindSnapshot found
// it.
type Snapshot struct {
	Repo RepoID
	// RepoDir is the repository folder, <cache>/<Repo.FolderName()>.
	RepoDir string
	// Dir is the snapshot folder, RepoDir/snapshots/<Commit>.
	Dir    string
	Commit string
	// Ref is the branch or tag the revision was resolved through, "" when
	// it was given as a commit hash.
	Ref string
	// Files are sorted by Path.
	Files []File
}

// File is one file of a snapshot.
type File struct {
	// Path is slash-separated, relative to the snapshot folder.
	Path string
	// Blob is the absolute, symlink-free path of the file that holds the
	// content: the target of the snapshot's symlink, inside the
	// repository's blobs/ folder; or, for a snapshot file that is not a
	// symlink, that file itself.
	Blob string
	Size int64
	// Linked is false for a regular file standing in the snapshot folder
	// itself, as Hub clients leave them where symlinks are unavailable.
	Linked bool
}

// FindSnapshot finds a model in the cache at cacheDir: repoID is "ORG/NAME"
// or "NAME", revision a branch or tag (resolved through refs/<revision>;
// "" means "main") or a full 40-hex-digit commit hash. It is FindRepo for a
// model.
func FindSnapshot(cacheDir, repoID, revision string) (Snapshot, error) {
	repo, err := ParseRepoID(repoID)
	if err != nil {
		return Snapshot{}, err
	}
	return FindRepo(cacheDir, repo, revision)
}

// FindRepo finds a cached snapshot of repo and lists its files. It reads
// the cache and never writes to it.
//
// A revision that is 40 lowercase hex digits is a commit; anything else is
// a ref name whose file must hold one. An abbreviated commit is not
// expanded: Hub clients name and look up snapshots by the full hash only,
// so a snapshot found by a prefix would be one they cannot find; the
// RevisionNotFoundError lists the snapshots it matches instead.
//
// What is missing is reported as *RepoNotFoundError (with close repository
// ids) or *RevisionNotFoundError (with the refs and snapshots there are),
// both matching ErrNotCached. A cache that breaks the layout is reported as
// *CorruptError, matching ErrCorrupt, naming the path: a ref file that does
// not hold exactly a 40-hex-digit commit (one trailing newline is
// tolerated), a ref or snapshot folder that is a symlink, a snapshot
// symlink that dangles (also matching fs.ErrNotExist), loops, leads to a
// directory or a non-regular file, or resolves outside the repository's
// blobs/ folder, a file name that CheckPath refuses (control characters,
// backslashes), and special files. Symlinks outside blobs/ are refused
// rather than followed: a cache written by Hub clients never has them, and
// following one could read any file of the user's into a checkpoint.
func FindRepo(cacheDir string, repo RepoID, revision string) (Snapshot, error) {
	if err := repo.check(); err != nil {
		return Snapshot{}, fmt.Errorf("%w %q: %s", ErrInvalidRepoID, repo, err)
	}
	if cacheDir == "" {
		return Snapshot{}, errors.New("no Hugging Face cache folder given")
	}
	if revision == "" {
		revision = DefaultRevision
	}
	repoDir := filepath.Join(cacheDir, repo.FolderName())
	info, err := os.Stat(repoDir)
	if errors.Is(err, fs.ErrNotExist) {
		return Snapshot{}, repoNotFound(cacheDir, repo)
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("reading the Hugging Face cache: %w", err)
	}
	if !info.IsDir() {
		return Snapshot{}, corrupt(repoDir, "not a directory", nil)
	}

	snap := Snapshot{Repo: repo, RepoDir: repoDir, Commit: revision}
	if !IsCommitHash(revision) {
		if err := checkRefName(revision); err != nil {
			return Snapshot{}, fmt.Errorf("revision %q: %w", revision, err)
		}
		commit, err := readRef(repoDir, revision)
		if errors.Is(err, fs.ErrNotExist) {
			return Snapshot{}, revisionNotFound(repo, repoDir, revision, "")
		}
		if err != nil {
			return Snapshot{}, err
		}
		snap.Commit, snap.Ref = commit, revision
	}

	snapshots := filepath.Join(repoDir, "snapshots")
	snap.Dir = filepath.Join(snapshots, snap.Commit)
	for _, dir := range []string{snapshots, snap.Dir} {
		info, err := os.Lstat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return Snapshot{}, revisionNotFound(repo, repoDir, revision, snap.Commit)
		}
		if err != nil {
			return Snapshot{}, fmt.Errorf("reading the Hugging Face cache: %w", err)
		}
		if !info.IsDir() {
			return Snapshot{}, corrupt(dir, "not a directory ("+describeMode(info.Mode())+")", nil)
		}
	}

	w, err := newSnapshotWalker(repoDir, snap.Dir)
	if err != nil {
		return Snapshot{}, err
	}
	if err := w.walk("", 0); err != nil {
		return Snapshot{}, err
	}
	slices.SortFunc(w.files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	snap.Files = w.files
	return snap, nil
}

// readRef returns the commit held by refs/<name>, or an error matching
// fs.ErrNotExist if there is no such ref file. The refs folder must not be
// a symlink, and symlinks under it must stay inside it (os.Root).
func readRef(repoDir, name string) (string, error) {
	refsDir := filepath.Join(repoDir, "refs")
	info, err := os.Lstat(refsDir)
	if err != nil {
		return "", err
	}
	if !info.IsDir() {
		return "", corrupt(refsDir, "not a directory ("+describeMode(info.Mode())+")", nil)
	}
	root, err := os.OpenRoot(refsDir)
	if err != nil {
		return "", err
	}
	defer func() { _ = root.Close() }() // a directory handle: nothing buffered
	refPath := filepath.Join(refsDir, filepath.FromSlash(name))
	rel := filepath.FromSlash(name)
	info, err = root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err != nil {
		return "", corrupt(refPath, "cannot read ref", err)
	}
	if !info.Mode().IsRegular() {
		return "", corrupt(refPath, "ref is not a regular file ("+describeMode(info.Mode())+")", nil)
	}
	f, err := root.Open(rel)
	if err != nil {
		return "", corrupt(refPath, "cannot read ref", err)
	}
	defer func() { _ = f.Close() }() // read-only
	data, err := io.ReadAll(io.LimitReader(f, maxRefBytes+1))
	if err != nil {
		return "", corrupt(refPath, "cannot read ref", err)
	}
	commit, err := parseRef(data)
	if err != nil {
		return "", corrupt(refPath, err.Error(), nil)
	}
	return commit, nil
}

// parseRef returns the commit hash a ref file holds: exactly 40 lowercase
// hex digits, as Hub clients write it, or followed by one newline, as git
// and hand-written files have it.
func parseRef(data []byte) (string, error) {
	if len(data) > maxRefBytes {
		return "", fmt.Errorf("ref is larger than %d bytes; it must hold a 40-hex-digit commit hash", maxRefBytes)
	}
	s := strings.TrimSuffix(string(data), "\n")
	if !IsCommitHash(s) {
		snippet := s
		if len(snippet) > 48 {
			snippet = snippet[:48] + "..."
		}
		return "", fmt.Errorf("ref holds %q (%d bytes), not a 40-hex-digit commit hash", snippet, len(data))
	}
	return s, nil
}

type snapshotWalker struct {
	dir       string // absolute snapshot folder
	realBlobs string // the repository's blobs/ folder, absolute and symlink-free; "" if there is none
	files     []File
	entries   int // folder entries read so far
}

func newSnapshotWalker(repoDir, snapDir string) (*snapshotWalker, error) {
	abs, err := filepath.Abs(snapDir)
	if err != nil {
		return nil, err
	}
	w := &snapshotWalker{dir: abs}
	blobs, err := filepath.Abs(filepath.Join(repoDir, "blobs"))
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(blobs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// No blobs: every symlink of the snapshot dangles or leads elsewhere.
	case err != nil:
		return nil, corrupt(blobs, "cannot resolve", err)
	default:
		info, err := os.Stat(real)
		if err != nil {
			return nil, corrupt(blobs, "cannot read", err)
		}
		if !info.IsDir() {
			return nil, corrupt(blobs, "not a directory ("+describeMode(info.Mode())+")", nil)
		}
		w.realBlobs = real
	}
	return w, nil
}

func (w *snapshotWalker) walk(rel string, depth int) error {
	dir := filepath.Join(w.dir, filepath.FromSlash(rel))
	if depth > maxSnapshotDepth {
		return corrupt(dir, fmt.Sprintf("snapshot folders nested deeper than %d", maxSnapshotDepth), nil)
	}
	entries, err := w.readDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := path.Join(rel, e.Name())
		full := filepath.Join(w.dir, filepath.FromSlash(p))
		if err := CheckPath(p); err != nil {
			return corrupt(full, "file name not accepted", err)
		}
		switch t := e.Type(); {
		case t.IsDir():
			if err := w.walk(p, depth+1); err != nil {
				return err
			}
		case t&fs.ModeSymlink != 0:
			if err := w.addLink(p, full); err != nil {
				return err
			}
		case t.IsRegular():
			info, err := e.Info()
			if err != nil {
				return corrupt(full, "cannot read", err)
			}
			w.files = append(w.files, File{Path: p, Blob: full, Size: info.Size()})
		default:
			return corrupt(full, "not a regular file, folder or symlink ("+describeMode(t)+")", nil)
		}
	}
	return nil
}

// readDir reads a folder of the snapshot within the walk's entry budget.
func (w *snapshotWalker) readDir(dir string) ([]fs.DirEntry, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, corrupt(dir, "cannot read folder", err)
	}
	defer func() { _ = f.Close() }() // read-only
	var all []fs.DirEntry
	for {
		batch, err := f.ReadDir(1024)
		all = append(all, batch...)
		w.entries += len(batch)
		if w.entries > maxSnapshotEntries {
			return nil, corrupt(w.dir, fmt.Sprintf("snapshot has more than %d files and folders", maxSnapshotEntries), nil)
		}
		if errors.Is(err, io.EOF) {
			return all, nil
		}
		if err != nil {
			return nil, corrupt(dir, "cannot read folder", err)
		}
	}
}

func (w *snapshotWalker) addLink(p, full string) error {
	target, err := filepath.EvalSymlinks(full)
	if err != nil {
		dest, _ := os.Readlink(full)
		if errors.Is(err, fs.ErrNotExist) {
			return corrupt(full, "symlink to a missing blob ("+showPath(dest)+")", fs.ErrNotExist)
		}
		return corrupt(full, "cannot resolve symlink ("+showPath(dest)+"), a loop?", err)
	}
	if w.realBlobs == "" || !isWithin(w.realBlobs, target) {
		return corrupt(full, "symlink resolves outside the repository's blobs folder (to "+showPath(target)+")", nil)
	}
	info, err := os.Stat(target)
	if err != nil {
		return corrupt(full, "cannot read blob "+showPath(target), err)
	}
	if !info.Mode().IsRegular() {
		return corrupt(full, "symlink to "+showPath(target)+", which is not a regular file ("+describeMode(info.Mode())+")", nil)
	}
	w.files = append(w.files, File{Path: p, Blob: target, Size: info.Size(), Linked: true})
	return nil
}

func describeMode(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m.IsRegular():
		return "a regular file"
	}
	return "an irregular file"
}

// repoNotFound builds the error for a repository without a folder,
// looking for close ids in the cache. The scan is a hint: its own failures
// are not reported.
func repoNotFound(cacheDir string, repo RepoID) error {
	e := &RepoNotFoundError{CacheDir: cacheDir, Repo: repo}
	f, err := os.Open(cacheDir)
	if err != nil {
		e.CacheMissing = errors.Is(err, fs.ErrNotExist)
		return e
	}
	defer func() { _ = f.Close() }() // read-only
	names, _ := f.Readdirnames(maxScanned)
	type scored struct {
		id   RepoID
		dist int
	}
	var close []scored
	want := strings.ToLower(repo.String())
	for _, name := range names {
		id, err := ParseFolderName(name)
		if err != nil || id.Type != repo.Type {
			continue
		}
		e.Cached++
		have := strings.ToLower(id.String())
		d := editDistance(want, have)
		if d <= max(2, len(want)/5) || strings.EqualFold(id.Name, repo.Name) {
			close = append(close, scored{id, d})
		}
	}
	slices.SortFunc(close, func(a, b scored) int {
		if a.dist != b.dist {
			return a.dist - b.dist
		}
		return strings.Compare(a.id.String(), b.id.String())
	})
	for i := 0; i < len(close) && i < maxSimilar; i++ {
		e.Similar = append(e.Similar, close[i].id)
	}
	return e
}

// revisionNotFound builds the error for a revision without a snapshot,
// listing what the repository folder holds. The listing is a hint: its own
// failures are not reported.
func revisionNotFound(repo RepoID, repoDir, revision, commit string) error {
	e := &RevisionNotFoundError{Repo: repo, RepoDir: repoDir, Revision: revision, Commit: commit}
	if f, err := os.Open(filepath.Join(repoDir, "snapshots")); err == nil {
		names, _ := f.Readdirnames(maxScanned)
		_ = f.Close() // read-only
		slices.Sort(names)
		abbreviated := len(revision) >= 4 && len(revision) < 40 && strings.Trim(revision, "0123456789abcdef") == ""
		for _, name := range names {
			if len(e.Snapshots) < maxListed {
				e.Snapshots = append(e.Snapshots, showPath(name))
			}
			if abbreviated && strings.HasPrefix(name, revision) && len(e.Prefixed) < maxListed {
				e.Prefixed = append(e.Prefixed, name)
			}
		}
	}
	refsDir := filepath.Join(repoDir, "refs")
	_ = filepath.WalkDir(refsDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || len(e.Refs) >= maxListed {
			return filepath.SkipAll
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(refsDir, p)
		if err != nil {
			return nil
		}
		name := filepath.ToSlash(rel)
		ref := CachedRef{Name: showPath(name)}
		if commit, err := readRef(repoDir, name); err == nil {
			ref.Commit = commit
		}
		e.Refs = append(e.Refs, ref)
		return nil
	})
	return e
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
