package hfcache

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// revisionDomain is hashed in front of a manifest ID by RevisionFor. Its
// version changes if what a revision covers ever changes.
const revisionDomain = "ckpt hf-cache revision v1\x00"

// RevisionFor derives the revision under which ckpt writes the folder
// described by a manifest: the first 40 hex digits of
// SHA-256("ckpt hf-cache revision v1" || 0x00 || manifestID).
//
// It is 40 lowercase hex digits because Hub clients resolve a cached file
// without asking the Hub only when the revision is a full commit hash (see
// the package documentation). It depends on the manifest alone, so pulling
// the same checkpoint again, under any name or version, lands in the same
// snapshot. It is not simply the first 40 digits of the manifest ID, which
// would read as an abbreviated ckpt ID and could be looked up as one; the
// versioned domain prefix also lets a future change of what a revision
// covers take new names.
func RevisionFor(manifestID [32]byte) string {
	h := sha256.New()
	h.Write([]byte(revisionDomain))
	h.Write(manifestID[:])
	return hex.EncodeToString(h.Sum(nil))[:40]
}

// FileSource is one file to write into a snapshot.
type FileSource struct {
	// Path is slash-separated, relative to the snapshot (see CheckPath).
	Path string
	// Size is the exact number of bytes Content writes.
	Size int64
	// Mode holds the permission bits of a new blob; 0 means 0644. A blob
	// that already exists keeps its own.
	Mode fs.FileMode
	// SHA256 is the lowercase hex SHA-256 of the content, if known. An
	// existing blob of that name is then verified and reused without
	// calling Content; content that does not hash to it is refused.
	SHA256 string
	// Content writes the file's bytes to the writer it is given. It is
	// called at most once, and not at all when the blob is already there
	// and verifies: the one named SHA256, or, without SHA256, one that
	// Verify recognizes, or, without either, the one the snapshot already
	// links Path to (see WriteRepo).
	Content io.WriterTo
	// Verify, for a file without SHA256, makes a fresh Verifier that
	// recognizes the file's content. WriteRepo then looks for the content
	// among the blobs the repository already has before it calls Content:
	// the blob the snapshot links Path to, then every other blob of Size
	// bytes named by a SHA-256, in name order. It reads each candidate
	// once, hashing it and giving it to a new Verifier, and reuses the
	// first that hashes to its name and that the Verifier accepts. So a
	// file whose SHA-256 is not known in advance (ckpt knows a large file
	// by the IDs of its chunks) is neither fetched again nor taken on the
	// word of a link that a confused or hostile writer could have pointed
	// at other content.
	Verify func() Verifier
}

// Verifier recognizes a file's content in a blob that the cache already
// holds (FileSource.Verify).
type Verifier interface {
	// Write is given the blob's content, in order, in pieces of any size.
	// An error stops the reading: the content is not the file's.
	io.Writer
	// Verified reports, once the whole content was written, whether it is
	// the file's.
	Verified() bool
}

// BytesContent is Content for a file held in memory. Unlike a
// bytes.Reader it writes all of data every time, so a FileSource holding
// it can be written again.
func BytesContent(data []byte) io.WriterTo { return bytesContent(data) }

type bytesContent []byte

func (b bytesContent) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}

// FileContent is Content for a file on disk, opened when written.
func FileContent(name string) io.WriterTo { return fileContent(name) }

type fileContent string

func (name fileContent) WriteTo(w io.Writer) (int64, error) {
	f, err := os.Open(string(name))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }() // read-only
	return io.Copy(w, f)
}

// WriteSnapshot writes files as the snapshot revision of the model repoID
// ("ORG/NAME" or "NAME") in the cache at cacheDir, then points
// refs/<branch> at it ("" means "main"). It is WriteRepo for a model.
func WriteSnapshot(cacheDir, repoID, revision, branch string, files []FileSource) error {
	repo, err := ParseRepoID(repoID)
	if err != nil {
		return err
	}
	return WriteRepo(cacheDir, repo, revision, branch, files)
}

// WriteRepo writes files into the cache as Hub clients lay out a download:
//
//	<repo folder>/blobs/<sha256 of the content>
//	<repo folder>/snapshots/<revision>/<path>  -> ../../blobs/<sha256>, one more ../ per folder in path
//	<repo folder>/refs/<branch>                holding revision, no newline
//
// revision must be a full commit hash (40 lowercase hex digits; see
// RevisionFor); branch a ref name, "" meaning "main".
//
// Every input is checked before anything is written: paths by CheckPath,
// no path twice, no path both a file and a folder, sizes, SHA256 strings.
// Then, in three passes:
//
//  1. Blobs. A blob that exists as a regular file of the right size is
//     read and its SHA-256 checked before it is reused; a wrong one is
//     replaced. Without a SHA256, the blob that the snapshot already
//     links the path to is the candidate: a snapshot stands for immutable
//     content (a commit, a manifest), so a rerun costs one hashing read
//     of each blob and produces no content. New content goes to a
//     temporary file in blobs/, is hashed and counted as it is written,
//     fsynced, and renamed into place; the folder is fsynced after the
//     pass. A file whose content is not Size bytes, or does not hash to
//     its SHA256, is refused and nothing of it stays.
//  2. Snapshot symlinks, relative, each created under a temporary name
//     in blobs/ and renamed into place (a link is never half made),
//     skipped when it already points at the right blob. A marker for the
//     path under .no_exist/<revision>/, which would make huggingface_hub
//     report the file as absent, is removed. Touched folders are fsynced.
//  3. refs/<branch>, last and only if it changes, through a temporary
//     file in blobs/, fsync and rename.
//
// So a ref never points at a snapshot whose links were not all made, and a
// link never points at an incomplete blob: an interrupted write leaves at
// worst blobs and links that a rerun reuses, and temporary files named
// blobs/.ckpt-*.incomplete, where no client looks. Running it again with
// the same input changes nothing. Files of the snapshot that are not in
// files are left alone: a snapshot may hold a part of a revision, as a
// partial download does.
//
// All of it happens through an os.Root on the repository folder, so no
// symlink planted in the cache can lead a write outside that folder, and
// the folders blobs/, snapshots/, refs/ and those under them must be real
// folders, not symlinks. The repository folder itself and the cache folder
// may be symlinks (caches moved to another disk are).
func WriteRepo(cacheDir string, repo RepoID, revision, branch string, files []FileSource) error {
	if err := repo.check(); err != nil {
		return fmt.Errorf("%w %q: %s", ErrInvalidRepoID, repo, err)
	}
	if cacheDir == "" {
		return errors.New("no Hugging Face cache folder given")
	}
	if !IsCommitHash(revision) {
		return fmt.Errorf("revision %q is not a full commit hash (40 lowercase hex digits)", revision)
	}
	if branch == "" {
		branch = DefaultRevision
	}
	if err := checkRefName(branch); err != nil {
		return fmt.Errorf("branch %q: %w", branch, err)
	}
	sorted, err := checkSources(files)
	if err != nil {
		return err
	}

	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return fmt.Errorf("creating the Hugging Face cache folder: %w", err)
	}
	repoDir := filepath.Join(cacheDir, repo.FolderName())
	if err := os.Mkdir(repoDir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating the repository folder: %w", err)
	}
	root, err := os.OpenRoot(repoDir)
	if err != nil {
		return fmt.Errorf("opening the repository folder: %w", err)
	}
	defer func() { _ = root.Close() }() // a directory handle: nothing buffered
	w := &repoWriter{root: root, dir: repoDir, verified: map[string]bool{}, dirty: map[string]bool{}}

	if err := w.ensureDir("blobs"); err != nil {
		return err
	}
	snapDir := "snapshots/" + revision
	blobs := make([]string, len(sorted))
	for i, f := range sorted {
		if blobs[i], err = w.writeBlob(f, path.Join(snapDir, f.Path)); err != nil {
			return fmt.Errorf("%s: %w", showPath(f.Path), err)
		}
	}
	if err := w.syncDirty(); err != nil { // blob names are durable before links name them
		return err
	}

	if err := w.ensureDir(snapDir); err != nil { // an empty snapshot still exists
		return err
	}
	for i, f := range sorted {
		if err := w.ensureDir(path.Join(snapDir, path.Dir(f.Path))); err != nil {
			return err
		}
		if err := w.link(path.Join(snapDir, f.Path), blobTarget(f.Path, blobs[i])); err != nil {
			return err
		}
		if err := w.dropNoExist(path.Join(".no_exist", revision, f.Path)); err != nil {
			return err
		}
	}
	if err := w.syncDirty(); err != nil { // links are durable before the ref names them
		return err
	}
	if err := w.writeRef(path.Join("refs", branch), revision); err != nil {
		return err
	}
	return w.syncDirty()
}

// blobTarget is the relative symlink from snapshots/<revision>/<p> to
// blobs/<name>.
func blobTarget(p, name string) string {
	return strings.Repeat("../", strings.Count(p, "/")+2) + "blobs/" + name
}

// checkSources validates files and returns them sorted by path.
func checkSources(files []FileSource) ([]FileSource, error) {
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b FileSource) int { return strings.Compare(a.Path, b.Path) })
	for i, f := range sorted {
		if err := CheckPath(f.Path); err != nil {
			return nil, fmt.Errorf("refusing to write %s: %w", showPath(f.Path), err)
		}
		if f.Size < 0 {
			return nil, fmt.Errorf("%s: negative size %d", f.Path, f.Size)
		}
		if f.Content == nil {
			return nil, fmt.Errorf("%s: no content", f.Path)
		}
		if f.SHA256 != "" && (len(f.SHA256) != 64 || strings.Trim(f.SHA256, "0123456789abcdef") != "") {
			return nil, fmt.Errorf("%s: SHA256 %q is not 64 lowercase hex digits", f.Path, f.SHA256)
		}
		if i > 0 && sorted[i-1].Path == f.Path {
			return nil, fmt.Errorf("%s: given twice", f.Path)
		}
	}
	// "a" and "a/b" cannot both be files. In sorted order "a/b" need not
	// follow "a" directly ("a.txt" sorts between them), so check every
	// folder of every path against the set of files.
	isFile := make(map[string]bool, len(sorted))
	for _, f := range sorted {
		isFile[f.Path] = true
	}
	for _, f := range sorted {
		for dir := path.Dir(f.Path); dir != "."; dir = path.Dir(dir) {
			if isFile[dir] {
				return nil, fmt.Errorf("%s is a file and also the folder of %s", dir, f.Path)
			}
		}
	}
	return sorted, nil
}

type repoWriter struct {
	root     *os.Root
	dir      string          // the repository folder, for messages
	verified map[string]bool // blobs known good in this run
	dirty    map[string]bool // folders with entries added or replaced since the last syncDirty
	// sizes lists the blobs named by a SHA-256 by size, once a file with
	// a Verifier needs them (blobsOfSize); nil until then.
	sizes map[int64][]string
}

func (w *repoWriter) show(rel string) string {
	return showPath(filepath.Join(w.dir, filepath.FromSlash(rel)))
}

// ensureDir creates the folder rel and its parents inside the root,
// refusing any of them that exists as something else than a real folder.
func (w *repoWriter) ensureDir(rel string) error {
	var cur string
	for _, seg := range strings.Split(rel, "/") {
		cur = path.Join(cur, seg)
		info, err := w.root.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			err = w.root.Mkdir(cur, 0o755)
			if errors.Is(err, fs.ErrExist) { // made meanwhile
				info, err = w.root.Lstat(cur)
			} else if err == nil {
				w.dirty[path.Dir(cur)] = true
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("creating folder %s: %w", w.show(cur), err)
		}
		if !info.IsDir() {
			return corrupt(filepath.Join(w.dir, filepath.FromSlash(cur)),
				"refusing to write through it: it is "+describeMode(info.Mode())+", not a folder", nil)
		}
	}
	return nil
}

// writeBlob makes sure blobs/<sha256> holds f's content and returns the
// name. link is where the snapshot's symlink to it goes.
//
// Without f.SHA256, a symlink already at link that names a blob by a
// SHA-256 is taken as the file's, if that blob verifies against its name:
// a snapshot folder stands for immutable content, a commit on the Hub and
// a manifest for ckpt, so what was written there once is what would be
// written again. A rerun then reads each blob once instead of producing
// and hashing the content as well. A blob edited in place no longer
// verifies, and is written again.
//
// With f.Verify (and no SHA256), the candidates are the linked blob and
// the other blobs of f.Size bytes, and a candidate must also be f's
// content by the Verifier's word (findVerified).
func (w *repoWriter) writeBlob(f FileSource, link string) (string, error) {
	sum := f.SHA256
	switch {
	case sum == "" && f.Verify != nil:
		name, err := w.findVerified(f, link)
		if err != nil || name != "" {
			return name, err
		}
	case sum == "":
		sum = w.linkedBlob(link, f.Path)
	}
	if sum != "" {
		ok, err := w.blobOK(sum, f.Size)
		if err != nil || ok {
			return sum, err
		}
	}
	tmp, sum, err := w.writeTemp(f)
	if err != nil {
		return "", err
	}
	defer func() { _ = w.root.Remove(tmp) }() // gone already once renamed into place
	if f.SHA256 != "" && sum != f.SHA256 {
		return "", fmt.Errorf("content has SHA-256 %s, not the expected %s", sum, f.SHA256)
	}
	if f.SHA256 == "" {
		ok, err := w.blobOK(sum, f.Size)
		if err != nil || ok {
			return sum, err
		}
	}
	name := "blobs/" + sum
	if err := w.root.Rename(tmp, name); err != nil {
		return "", fmt.Errorf("putting blob %s into place: %w", w.show(name), err)
	}
	w.dirty["blobs"] = true
	w.verified[sum] = true
	if w.sizes != nil {
		w.sizes[f.Size] = append(w.sizes[f.Size], sum)
	}
	return sum, nil
}

// findVerified returns the name of a blob that holds f's content by
// f.Verify's word and hashes to its name, "" if there is none: the blob
// the snapshot links f's path to, then the other blobs of f.Size bytes
// named by a SHA-256.
func (w *repoWriter) findVerified(f FileSource, link string) (string, error) {
	var candidates []string
	if name := w.linkedBlob(link, f.Path); name != "" {
		candidates = append(candidates, name)
	}
	sized, err := w.blobsOfSize(f.Size)
	if err != nil {
		return "", err
	}
	for _, name := range sized {
		if len(candidates) == 0 || name != candidates[0] {
			candidates = append(candidates, name)
		}
	}
	for _, name := range candidates {
		ok, err := w.blobVerifies(name, f.Size, f.Verify())
		if err != nil || ok {
			return name, err
		}
	}
	return "", nil
}

// blobsOfSize lists, in name order, the blobs of size bytes named by a
// SHA-256 (64 lowercase hex digits). The listing of blobs/ is made once per
// write and bounded (maxScanned entries): a candidate it misses is written
// again, not lost.
func (w *repoWriter) blobsOfSize(size int64) ([]string, error) {
	if w.sizes == nil {
		w.sizes = map[int64][]string{}
		d, err := w.root.Open("blobs")
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", w.show("blobs"), err)
		}
		names, err := d.Readdirnames(maxScanned)
		_ = d.Close() // a directory handle: nothing buffered
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("listing %s: %w", w.show("blobs"), err)
		}
		slices.Sort(names)
		for _, name := range names {
			if !isSHA256Name(name) {
				continue
			}
			info, err := w.root.Lstat("blobs/" + name)
			if err != nil || !info.Mode().IsRegular() {
				continue // gone meanwhile, or not a blob: not a candidate
			}
			w.sizes[info.Size()] = append(w.sizes[info.Size()], name)
		}
	}
	return w.sizes[size], nil
}

func isSHA256Name(name string) bool {
	return len(name) == 64 && strings.Trim(name, "0123456789abcdef") == ""
}

// blobVerifies reports whether blobs/<name> is a regular file of size
// bytes whose content hashes to name and that v accepts. It reads the blob
// once, and stops at the first piece v refuses.
func (w *repoWriter) blobVerifies(name string, size int64, v Verifier) (bool, error) {
	rel := "blobs/" + name
	info, err := w.root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reading blob %s: %w", w.show(rel), err)
	case !info.Mode().IsRegular() || info.Size() != size:
		return false, nil
	}
	f, err := w.root.Open(rel)
	if err != nil {
		return false, fmt.Errorf("reading blob %s: %w", w.show(rel), err)
	}
	defer func() { _ = f.Close() }() // read-only
	h := sha256.New()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		k, err := f.Read(buf)
		if k > 0 {
			h.Write(buf[:k])
			n += int64(k)
			if _, verr := v.Write(buf[:k]); verr != nil {
				return false, nil // not this file's content
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return false, fmt.Errorf("reading blob %s: %w", w.show(rel), err)
		}
	}
	if n != size || hex.EncodeToString(h.Sum(nil)) != name || !v.Verified() {
		return false, nil
	}
	w.verified[name] = true
	return true, nil
}

// linkedBlob returns the blob name that the symlink at link (for the file
// p) points at, if it is exactly the link WriteRepo makes to a SHA-256
// name, and "" otherwise.
func (w *repoWriter) linkedBlob(link, p string) string {
	target, err := w.root.Readlink(link)
	if err != nil {
		return ""
	}
	name, ok := strings.CutPrefix(target, blobTarget(p, ""))
	if !ok || !isSHA256Name(name) {
		return ""
	}
	return name
}

// blobOK reports whether blobs/<sum> exists as a regular file of size
// bytes whose content hashes to sum. Anything else there (a wrong size or
// content, a symlink) is to be replaced; a folder is an error.
func (w *repoWriter) blobOK(sum string, size int64) (bool, error) {
	if w.verified[sum] {
		return true, nil
	}
	name := "blobs/" + sum
	info, err := w.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reading blob %s: %w", w.show(name), err)
	case info.IsDir():
		return false, corrupt(filepath.Join(w.dir, name), "a blob's name is taken by a folder", nil)
	case !info.Mode().IsRegular() || info.Size() != size:
		return false, nil
	}
	f, err := w.root.Open(name)
	if err != nil {
		return false, fmt.Errorf("reading blob %s: %w", w.show(name), err)
	}
	defer func() { _ = f.Close() }() // read-only
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, fmt.Errorf("reading blob %s: %w", w.show(name), err)
	}
	if hex.EncodeToString(h.Sum(nil)) != sum {
		return false, nil
	}
	w.verified[sum] = true
	return true, nil
}

// writeTemp writes f's content to a new temporary file in blobs/, hashing
// and counting it, and fsyncs it. It returns the file's name and the
// content's SHA-256; on error nothing is left.
func (w *repoWriter) writeTemp(f FileSource) (_, _ string, err error) {
	name, err := tempName()
	if err != nil {
		return "", "", err
	}
	mode := f.Mode.Perm()
	if mode == 0 {
		mode = 0o644
	}
	file, err := w.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return "", "", fmt.Errorf("creating a blob: %w", err)
	}
	defer func() {
		if err != nil {
			_ = file.Close()        // already failing: the error above is the one to report
			_ = w.root.Remove(name) // best effort: a partial blob is never named by a snapshot link
		}
	}()
	cw := &countingHash{w: file, h: sha256.New()}
	if _, err = f.Content.WriteTo(cw); err != nil {
		return "", "", fmt.Errorf("writing content: %w", err)
	}
	if cw.n != f.Size {
		return "", "", fmt.Errorf("content is %d bytes, not the expected %d", cw.n, f.Size)
	}
	if err = file.Sync(); err != nil {
		return "", "", fmt.Errorf("writing %s: %w", w.show(name), err)
	}
	if err = file.Close(); err != nil {
		return "", "", fmt.Errorf("writing %s: %w", w.show(name), err)
	}
	return name, hex.EncodeToString(cw.h.Sum(nil)), nil
}

type countingHash struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// link makes rel a symlink to target, replacing whatever else is there
// except a folder, unless it already is one.
func (w *repoWriter) link(rel, target string) error {
	info, err := w.root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("reading %s: %w", w.show(rel), err)
	case info.IsDir():
		return corrupt(filepath.Join(w.dir, filepath.FromSlash(rel)), "a folder is in the way of a file of the snapshot", nil)
	case info.Mode()&fs.ModeSymlink != 0:
		if cur, err := w.root.Readlink(rel); err == nil && cur == target {
			return nil
		}
	}
	tmp, err := tempName()
	if err != nil {
		return err
	}
	if err := w.root.Symlink(target, tmp); err != nil {
		return fmt.Errorf("creating symlink %s: %w", w.show(rel), err)
	}
	if err := w.root.Rename(tmp, rel); err != nil {
		_ = w.root.Remove(tmp) // best effort: a stray temporary link is named nowhere
		return fmt.Errorf("putting symlink %s into place: %w", w.show(rel), err)
	}
	w.dirty[path.Dir(rel)] = true
	return nil
}

// dropNoExist removes the .no_exist marker rel, if there is one:
// huggingface_hub looks there before the snapshot and would report the
// file as absent. Markers are empty files; anything else there is left.
func (w *repoWriter) dropNoExist(rel string) error {
	info, err := w.root.Lstat(rel)
	if err != nil || info.IsDir() {
		return nil // no marker (or no .no_exist at all)
	}
	if err := w.root.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the marker %s: %w", w.show(rel), err)
	}
	return nil
}

// writeRef makes the ref file rel hold commit, without a newline (clients
// compare its content as it is), through a temporary file and a rename.
func (w *repoWriter) writeRef(rel, commit string) error {
	if err := w.ensureDir(path.Dir(rel)); err != nil {
		return err
	}
	info, err := w.root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("reading ref %s: %w", w.show(rel), err)
	case info.IsDir():
		return corrupt(filepath.Join(w.dir, filepath.FromSlash(rel)), "a folder is in the way of the ref", nil)
	case info.Mode().IsRegular() && info.Size() == int64(len(commit)):
		if cur, err := w.root.ReadFile(rel); err == nil && string(cur) == commit {
			return nil
		}
	}
	tmp, err := tempName()
	if err != nil {
		return err
	}
	file, err := w.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("writing ref %s: %w", w.show(rel), err)
	}
	_, err = file.WriteString(commit)
	if err == nil {
		err = file.Sync()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.root.Rename(tmp, rel)
	}
	if err != nil {
		_ = w.root.Remove(tmp) // best effort: a stray temporary ref is named nowhere
		return fmt.Errorf("writing ref %s: %w", w.show(rel), err)
	}
	w.dirty[path.Dir(rel)] = true
	return nil
}

// syncDirty fsyncs the folders whose entries changed, deepest first.
func (w *repoWriter) syncDirty() error {
	dirs := slices.Sorted(maps.Keys(w.dirty))
	slices.Reverse(dirs)
	for _, dir := range dirs {
		if err := w.syncDir(dir); err != nil {
			return err
		}
		delete(w.dirty, dir)
	}
	return nil
}

func (w *repoWriter) syncDir(rel string) error {
	d, err := w.root.Open(rel)
	if err != nil {
		return fmt.Errorf("syncing folder %s: %w", w.show(rel), err)
	}
	defer func() { _ = d.Close() }() // a directory handle: nothing buffered
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing folder %s: %w", w.show(rel), err)
	}
	return nil
}

// tempName is a fresh name for a temporary file, symlink or ref in
// blobs/. Every temporary goes there, whatever its final place, because a
// killed writer leaves it behind and blobs/ is the one folder no client
// lists: a stray file in refs/ would be a ref holding no commit, which
// makes scanCacheDir and scan_cache_dir give up on the whole repository,
// and one in a snapshot would be listed as a file of the revision. A
// rename keeps a symlink's text, so a link made here with its final
// relative target is right once renamed into the snapshot.
func tempName() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "blobs/.ckpt-" + hex.EncodeToString(b[:]) + ".incomplete", nil
}
