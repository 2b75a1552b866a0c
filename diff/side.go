package diff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/refs"
)

// FileReader reads n bytes from offset off of one file of a side's
// manifest. *store.Registry implements it.
type FileReader interface {
	ReadRange(ctx context.Context, f *manifest.File, off, n int64) ([]byte, error)
}

// Registry is what FromRegistry needs of a registry; *store.Registry has it.
type Registry interface {
	Resolve(ctx context.Context, name, ref string) (refs.Record, error)
	// ResolveChain returns the checkpoint's files with those it inherits
	// from its base chain, as pull writes them.
	ResolveChain(ctx context.Context, rec refs.Record) (*store.Chain, error)
	FileReader
}

// Side is one of the two checkpoints of a comparison.
type Side struct {
	// Label names the side in reports: NAME@VERSION, or the folder path.
	Label string
	// Manifest lists the side's files, sorted by path. For a registry
	// checkpoint it includes the config, generation-config and tokenizer
	// files inherited from its base chain, as pull would write them.
	Manifest *manifest.Manifest
	// Inherited maps the path of every inherited file to the NAME@VERSION
	// of the base it comes from.
	Inherited map[string]string
	// Data reads the bytes of the manifest's files. Compare reads only
	// through it, so a caller may wrap it (to count or limit reads).
	Data FileReader
}

// FromRegistry resolves NAME@REF in r and returns it as a side, with the
// files it inherits from its base chain (store.Registry.ResolveChain, the
// resolver pull uses). Nothing but refs and manifests is read.
func FromRegistry(ctx context.Context, r Registry, name, ref string) (*Side, error) {
	rec, err := r.Resolve(ctx, name, ref)
	if err != nil {
		return nil, fmt.Errorf("%s@%s: %w", name, ref, err)
	}
	label := rec.Name + "@" + rec.Version
	chain, err := r.ResolveChain(ctx, rec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	inherited := map[string]string{}
	for _, f := range chain.Files {
		if f.Inherited {
			inherited[f.Path] = f.From
		}
	}
	return &Side{Label: label, Manifest: chain.Manifest(), Inherited: inherited, Data: r}, nil
}

// FromFolder returns the local folder dir as a side: its manifest is the one
// push would record (every file is read and hashed, nothing is stored), and
// its data is read from the files directly.
func FromFolder(ctx context.Context, dir string) (*Side, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s: not a folder", dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	m, err := store.ScanFolder(ctx, abs)
	if err != nil {
		return nil, err
	}
	return &Side{Label: dir, Manifest: m, Data: folderReader{abs}}, nil
}

// folderReader reads manifest files from the folder they were scanned from.
type folderReader struct{ dir string }

func (fr folderReader) ReadRange(ctx context.Context, f *manifest.File, off, n int64) ([]byte, error) {
	if err := manifest.CheckRelPath(f.Path); err != nil {
		return nil, err
	}
	if off < 0 || n < 0 || off+n > f.Size {
		return nil, fmt.Errorf("%s: range [%d, %d) outside the file (%d bytes)", f.Path, off, off+n, f.Size)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, err := os.Open(filepath.Join(fr.dir, filepath.FromSlash(f.Path)))
	if err != nil {
		return nil, err
	}
	defer func() { _ = h.Close() }() // read-only
	info, err := h.Stat()
	if err != nil {
		return nil, err
	}
	if info.Size() != f.Size {
		return nil, fmt.Errorf("%s: changed since it was scanned (%d bytes, was %d)", h.Name(), info.Size(), f.Size)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(io.NewSectionReader(h, off, n), buf); err != nil {
		return nil, fmt.Errorf("%s: %w", h.Name(), err)
	}
	return buf, nil
}

// maxTextFile is the largest JSON or tokenizer file diff reads whole.
const maxTextFile = 256 << 20

// errTooLarge marks a file skipped for its size.
var errTooLarge = errors.New("too large to compare")

// readWhole reads all of f, refusing files over maxTextFile.
func (s *Side) readWhole(ctx context.Context, f *manifest.File) ([]byte, error) {
	if f.Size > maxTextFile {
		return nil, fmt.Errorf("%s: %s: %w (%d bytes)", s.Label, f.Path, errTooLarge, f.Size)
	}
	data, err := s.Data.ReadRange(ctx, f, 0, f.Size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Label, err)
	}
	return data, nil
}
