package store

import (
	"context"
	"fmt"
	"io"

	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/refs"
)

// Selection is the list of files a pull of rec writes: of its resolved base
// chain (ResolveChain), the runnable ones, or all of them with full. It lets
// a caller that writes the files elsewhere than a plain folder (a Hugging
// Face cache) take the same files a pull takes.
func (r *Registry) Selection(ctx context.Context, rec refs.Record, full bool) ([]SourcedFile, error) {
	files, _, err := r.selectFiles(ctx, rec, PullOptions{Full: full})
	return files, err
}

// WriteFileTo writes the content of the manifest file f to w, in order,
// fetching and verifying one chunk at a time under the transfer budget (so
// memory stays bounded by the largest chunk whatever the file's size), and
// returns the number of bytes written. It reports no progress (the caller
// knows the whole transfer, the registry only this file). A chunk that does not hash to its
// ID, or a manifest whose chunks do not tile the file, is an error before
// any of its bytes reach w.
func (r *Registry) WriteFileTo(ctx context.Context, f *manifest.File, w io.Writer) (int64, error) {
	src := r.chunkSource()
	var n int64
	for _, c := range f.Chunks {
		if c.Offset != n {
			return n, fmt.Errorf("%s: chunk at offset %d, expected %d: the manifest's chunks do not tile the file", f.Path, c.Offset, n)
		}
		data, l, err := fetchChunk(ctx, src, c)
		if err != nil {
			return n, fmt.Errorf("%s: %w", f.Path, err)
		}
		m, err := w.Write(data)
		l.done()
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	if n != f.Size {
		return n, fmt.Errorf("%s: chunks cover %d bytes, the manifest says %d", f.Path, n, f.Size)
	}
	return n, nil
}
