package synth

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// failingWriter accepts limit bytes, then fails.
type failingWriter struct {
	bytes.Buffer
	limit int
}

var errDiskFull = errors.New("disk full")

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.Len()+len(p) > f.limit {
		return 0, errDiskFull
	}
	return f.Buffer.Write(p)
}

func TestAsyncWriter(t *testing.T) {
	data := make([]byte, 10_000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, tc := range []struct {
		name    string
		limit   int
		pieces  []int // sizes of the successive writes
		wantErr error
	}{
		{"one write", 1 << 20, []int{10_000}, nil},
		{"many small writes", 1 << 20, []int{1, 99, 900, 3000, 6000}, nil},
		{"exact buffer multiples", 1 << 20, []int{1024, 1024, 7952}, nil},
		{"failing destination", 3000, []int{2000, 2000, 6000}, errDiskFull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := &failingWriter{limit: tc.limit}
			w := newAsyncWriter(dst, 1024, 3)
			rest := data
			var writeErr error
			for _, size := range tc.pieces {
				if _, err := w.Write(rest[:size]); err != nil {
					writeErr = err
					break
				}
				rest = rest[size:]
			}
			closeErr := w.Close()
			if tc.wantErr != nil {
				assert.ErrorIs(t, errors.Join(writeErr, closeErr), tc.wantErr)
				return
			}
			require.NoError(t, writeErr)
			require.NoError(t, closeErr)
			assert.Equal(t, data, dst.Bytes())
			assert.NoError(t, w.Close(), "closing twice is harmless")
		})
	}
}
