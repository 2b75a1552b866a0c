package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store/manifest"
)

func buildFolders(t *testing.T, parent string) []string {
	t.Helper()
	entries, err := os.ReadDir(parent)
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if strings.Contains(e.Name(), ".ckpt-pull-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// A build folder in use by a running pull (locked) is neither resumed nor
// removed by another pull into the same folder; once free, it is resumed,
// and the build folders of other selections are removed.
func TestBuildDirInUseIsLeftAlone(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "model")
	files := []SourcedFile{{File: manifest.File{Path: "a/config.json", Size: 2, Digest: "sha256:00"}}}
	other := []SourcedFile{{File: manifest.File{Path: "config.json", Size: 3, Digest: "sha256:11"}}}

	first, err := openBuildDir(dir, files, true)
	require.NoError(t, err)
	assert.False(t, first.resumed)
	f, err := openRel(first.dir, "a/config.json", os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	second, err := openBuildDir(dir, files, true) // first is still running
	require.NoError(t, err)
	assert.False(t, second.resumed, "a folder in use must not be resumed")
	assert.NotEqual(t, first.name, second.name)
	third, err := openBuildDir(dir, other, true) // a pull of another selection
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{first.name, second.name, third.name}, buildFolders(t, parent), "folders in use must not be removed")

	first.close() // interrupted
	second.close()
	third.close()
	again, err := openBuildDir(dir, files, true)
	require.NoError(t, err)
	defer again.close()
	assert.True(t, again.resumed)
	assert.Contains(t, []string{first.name, second.name}, again.name)
	assert.Equal(t, []string{again.name}, buildFolders(t, parent), "idle leftovers are removed")
}
