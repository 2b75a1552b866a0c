package diff

import (
	"sort"

	"github.com/ckptdev/ckpt/store/manifest"
)

// Kind is how one item (file, JSON key, tensor, token role) differs.
type Kind string

// The kinds of difference.
const (
	Same    Kind = "same"
	Added   Kind = "added"   // only in B
	Removed Kind = "removed" // only in A
	Changed Kind = "changed"
	// DtypeChanged and ShapeChanged are for tensors: the element type (and
	// maybe the shape) differs, or only the shape does.
	DtypeChanged Kind = "dtype-changed"
	ShapeChanged Kind = "shape-changed"
)

// FileChange is one path of either side, compared by digest.
type FileChange struct {
	Path  string `json:"path"`
	Role  string `json:"role"` // B's role, else A's
	Kind  Kind   `json:"kind"`
	SizeA int64  `json:"size_a"` // 0 when only in B
	SizeB int64  `json:"size_b"` // 0 when only in A
	// FromA and FromB name the base (NAME@VERSION) a registry side
	// inherits the file from; empty for the side's own files.
	FromA string `json:"from_a,omitempty"`
	FromB string `json:"from_b,omitempty"`
}

// diffFiles compares every path of a and b, sorted by path.
func diffFiles(a, b *Side) []FileChange {
	byPath := map[string]*FileChange{}
	for _, f := range a.Manifest.Files {
		byPath[f.Path] = &FileChange{Path: f.Path, Role: f.Role, Kind: Removed, SizeA: f.Size, FromA: a.Inherited[f.Path]}
	}
	for _, f := range b.Manifest.Files {
		fc, ok := byPath[f.Path]
		if !ok {
			byPath[f.Path] = &FileChange{Path: f.Path, Role: f.Role, Kind: Added, SizeB: f.Size, FromB: b.Inherited[f.Path]}
			continue
		}
		fc.Role, fc.SizeB, fc.FromB = f.Role, f.Size, b.Inherited[f.Path]
		fc.Kind = Changed
		if a.Manifest.File(f.Path).Digest == f.Digest {
			fc.Kind = Same
		}
	}
	out := make([]FileChange, 0, len(byPath))
	for _, fc := range byPath {
		out = append(out, *fc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// filesOf returns the files of m whose role is one of roles.
func filesOf(m *manifest.Manifest, roles ...string) []*manifest.File {
	var out []*manifest.File
	for i := range m.Files {
		for _, r := range roles {
			if m.Files[i].Role == r {
				out = append(out, &m.Files[i])
				break
			}
		}
	}
	return out
}
