package hfcache

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotCached is matched (errors.Is) by RepoNotFoundError and
// RevisionNotFoundError: the cache does not hold what was asked for.
var ErrNotCached = errors.New("not in the Hugging Face cache")

// ErrCorrupt is matched by CorruptError: the cache holds something that
// does not follow the layout, or that this package refuses to follow.
var ErrCorrupt = errors.New("corrupt Hugging Face cache")

// RepoNotFoundError says that the cache has no folder for a repository.
type RepoNotFoundError struct {
	CacheDir string
	Repo     RepoID
	// CacheMissing is set when the cache folder itself does not exist.
	CacheMissing bool
	// Similar lists cached repositories of the same type whose ids are
	// close to Repo's, closest first (at most maxSimilar).
	Similar []RepoID
	// Cached is how many repositories of Repo's type the cache holds.
	Cached int
}

func (e *RepoNotFoundError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s is not in the Hugging Face cache", e.Repo.Type, e.Repo)
	if e.CacheMissing {
		fmt.Fprintf(&b, ": the cache folder %s does not exist", e.CacheDir)
		return b.String()
	}
	fmt.Fprintf(&b, " %s (no folder %s)", e.CacheDir, e.Repo.FolderName())
	switch {
	case len(e.Similar) > 0:
		ids := make([]string, len(e.Similar))
		for i, id := range e.Similar {
			ids[i] = id.String()
		}
		fmt.Fprintf(&b, "; close matches: %s", strings.Join(ids, ", "))
	case e.Cached == 0:
		fmt.Fprintf(&b, "; it holds no %s", e.Repo.Type)
	default:
		fmt.Fprintf(&b, "; none of its %d %s ids is close", e.Cached, e.Repo.Type)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNotCached) true.
func (e *RepoNotFoundError) Is(target error) bool { return target == ErrNotCached }

// CachedRef is a ref file of a cached repository and the commit it holds
// ("" if it holds none).
type CachedRef struct {
	Name   string
	Commit string
}

// RevisionNotFoundError says that a repository is cached but not at the
// revision asked for.
type RevisionNotFoundError struct {
	Repo     RepoID
	RepoDir  string
	Revision string
	// Commit is the commit the revision stands for, when known: the
	// revision itself if it is a commit hash, or what its ref holds. Empty
	// when Revision is a ref name without a ref file.
	Commit string
	// Refs and Snapshots are what the repository folder holds (at most
	// maxListed of each), sorted.
	Refs      []CachedRef
	Snapshots []string
	// Prefixed lists the snapshots whose commit starts with Revision, when
	// Revision looks like an abbreviated commit hash. Hub clients do not
	// expand abbreviations, so neither does FindSnapshot.
	Prefixed []string
}

func (e *RevisionNotFoundError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s in the Hugging Face cache (%s): ", e.Repo.Type, e.Repo, e.RepoDir)
	switch {
	case e.Commit == "":
		fmt.Fprintf(&b, "no ref %q and it is not a full commit hash", e.Revision)
	case e.Commit == e.Revision:
		fmt.Fprintf(&b, "no snapshot of commit %s", e.Commit)
	default:
		fmt.Fprintf(&b, "ref %q holds commit %s, which has no snapshot", e.Revision, e.Commit)
	}
	if len(e.Prefixed) > 0 {
		fmt.Fprintf(&b, "; snapshots whose commit starts with %q: %s (Hugging Face clients need the full 40-digit hash)",
			e.Revision, strings.Join(e.Prefixed, ", "))
	}
	refs := make([]string, len(e.Refs))
	for i, r := range e.Refs {
		refs[i] = r.Name + " -> " + r.Commit
		if r.Commit == "" {
			refs[i] = r.Name + " (no commit hash)"
		}
	}
	fmt.Fprintf(&b, "; refs: %s; snapshots: %s", listOrNone(refs), listOrNone(e.Snapshots))
	return b.String()
}

// Is makes errors.Is(err, ErrNotCached) true.
func (e *RevisionNotFoundError) Is(target error) bool { return target == ErrNotCached }

func listOrNone(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	return strings.Join(items, ", ")
}

// CorruptError names a path of the cache that breaks the layout or that
// this package refuses to follow, and says why.
type CorruptError struct {
	Path    string
	Problem string
	Err     error // the underlying error, if any (e.g. fs.ErrNotExist for a missing blob)
}

func (e *CorruptError) Error() string {
	msg := showPath(e.Path) + ": " + e.Problem
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap makes errors.Is match ErrCorrupt and the underlying error.
func (e *CorruptError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrCorrupt}
	}
	return []error{ErrCorrupt, e.Err}
}

func corrupt(path, problem string, err error) error {
	return &CorruptError{Path: path, Problem: problem, Err: err}
}
