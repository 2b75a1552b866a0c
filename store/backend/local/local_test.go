package local

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/backend/backendtest"
)

func newBackend(t *testing.T) backend.Backend {
	b, err := New(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { requireNoTemp(t, b.Root) })
	return b
}

// requireNoTemp checks that no temporary file is left behind.
func requireNoTemp(t *testing.T, root string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, tmpDir))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Empty(t, names, "files left in %s", tmpDir)
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, newBackend, backendtest.Options{LargeObjectSize: 3<<20 + 17})
}

// Two hosts sharing the folder are two Backend values on it: creating one
// key from both at once still has exactly one winner.
func TestTwoHostsRace(t *testing.T) {
	dir := t.TempDir()
	hosts := make([]*Backend, 2)
	for i := range hosts {
		var err error
		hosts[i], err = New(dir)
		require.NoError(t, err)
	}
	const racers = 16
	ctx := t.Context()
	for round := range 20 {
		key := "refs/r" + string(rune('a'+round))
		errs := make([]error, racers)
		contents := make([][]byte, racers)
		start := make(chan struct{})
		var g errgroup.Group
		for i := range racers {
			contents[i] = bytes.Repeat([]byte{byte(i)}, 1000+i)
			g.Go(func() error {
				<-start
				errs[i] = hosts[i%2].Put(ctx, key, bytes.NewReader(contents[i]), int64(len(contents[i])))
				return nil
			})
		}
		close(start)
		require.NoError(t, g.Wait())
		winner := -1
		for i, err := range errs {
			if err == nil {
				require.Equal(t, -1, winner, "round %d: racers %d and %d both won", round, winner, i)
				winner = i
				continue
			}
			require.ErrorIs(t, err, backend.ErrExists)
		}
		require.NotEqual(t, -1, winner)
		for _, h := range hosts {
			rc, err := h.Get(ctx, key, 0, -1)
			require.NoError(t, err)
			got, err := io.ReadAll(rc)
			rc.Close()
			require.NoError(t, err)
			require.Equal(t, contents[winner], got)
		}
	}
	requireNoTemp(t, dir)
}

// Whatever the outcome of a Put, .tmp ends up empty.
func TestNoTempLeftovers(t *testing.T) {
	boom := errors.New("boom")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		r       io.Reader
		size    int64
		wantErr error
	}{
		{"Success", context.Background(), bytes.NewReader([]byte("hello")), 5, nil},
		{"Exists", context.Background(), bytes.NewReader([]byte("other")), 5, backend.ErrExists},
		{"FailingReader", context.Background(), io.MultiReader(bytes.NewReader([]byte("he")), errReader{boom}), 5, boom},
		{"Short", context.Background(), bytes.NewReader([]byte("hel")), 5, nil},
		{"Cancelled", cancelled, bytes.NewReader([]byte("hello")), 5, context.Canceled},
	}
	b, err := New(t.TempDir())
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "k/" + tt.name
			if tt.name == "Exists" {
				key = "k/Success"
			}
			err := b.Put(tt.ctx, key, tt.r, tt.size)
			switch {
			case tt.name == "Success":
				require.NoError(t, err)
			case tt.wantErr != nil:
				require.ErrorIs(t, err, tt.wantErr)
			default:
				require.Error(t, err)
			}
			requireNoTemp(t, b.Root)
		})
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// Objects are read-only files: a stray writer cannot alter them in place.
func TestObjectsAreReadOnly(t *testing.T) {
	b, err := New(t.TempDir())
	require.NoError(t, err)
	require.NoError(t, b.Put(t.Context(), "a/b", bytes.NewReader([]byte("x")), 1))
	fi, err := os.Stat(filepath.Join(b.Root, "a", "b"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o444), fi.Mode().Perm())
}

// A prefix cannot make List walk outside the registry folder.
func TestListStaysInside(t *testing.T) {
	parent := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(parent, "sibling"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(parent, "sibling", "secret"), []byte("s"), 0o644))
	b, err := New(filepath.Join(parent, "registry"))
	require.NoError(t, err)
	require.NoError(t, b.Put(t.Context(), "a", bytes.NewReader([]byte("a")), 1))
	for _, prefix := range []string{"../", "../sibling/", "..", "a/../../", "/"} {
		var keys []string
		require.NoError(t, b.List(t.Context(), prefix, func(info backend.ObjectInfo) error {
			keys = append(keys, info.Key)
			return nil
		}))
		assert.Empty(t, keys, "List(%q)", prefix)
	}
}
