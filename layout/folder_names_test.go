package layout

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Names that JSON cannot carry faithfully (bytes that are not UTF-8 become
// U+FFFD) or that pull cannot write back as one file on every system (a
// backslash is a separator on Windows) are refused, naming the file quoted.
func TestScanDirRefusesNamesThatCannotRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		path    []string // path components under the folder
		printed string   // how the error names it
	}{
		{"backslash", []string{`a\b.json`}, `"a\\b.json"`},
		{"not UTF-8", []string{"bad\xff.json"}, `"bad\xff.json"`},
		{"not UTF-8 folder", []string{"sub\xfe", "x.json"}, `"sub\xfe"`},
		{"backslash folder", []string{`sub\dir`, "x.json"}, `"sub\\dir"`},
		{"truncated UTF-8", []string{"caf\xc3.txt"}, `"caf\xc3.txt"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, map[string]string{"config.json": "{}"})
			full := filepath.Join(append([]string{dir}, tt.path...)...)
			require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
			require.NoError(t, os.WriteFile(full, []byte("x"), 0o644))

			_, err := ScanDir(dir)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrUnrecordableName)
			assert.Contains(t, err.Error(), tt.printed)
			assert.NotContains(t, err.Error(), tt.path[0], "the name is printed escaped, not raw")
		})
	}
}

// Control characters round-trip through JSON: such names are recorded.
func TestScanDirKeepsControlCharacterNames(t *testing.T) {
	dir := t.TempDir()
	names := []string{"evil\x1b[2Jname.txt", "new\nline.json", "tab\tname", "cr\rname", "日本語.json"}
	for _, n := range names {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644))
	}
	entries, err := ScanDir(dir)
	require.NoError(t, err)
	var got []string
	for _, e := range entries {
		got = append(got, e.Path)
	}
	assert.ElementsMatch(t, names, got)
}

// Errors about other problems name the file escaped too.
func TestScanDirErrorsNameFilesEscaped(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"config.json": "{}"})
	link := filepath.Join(dir, "evil\x1b[2Jlink")
	require.NoError(t, os.Symlink(filepath.Join(dir, "missing"), link))
	_, err := ScanDir(dir)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "\x1b")
	assert.Contains(t, err.Error(), `evil\x1b[2Jlink`)
}

func TestEscapePathError(t *testing.T) {
	_, err := os.Stat(filepath.Join(t.TempDir(), "gone\x1b[2J"))
	err = escapePathError(err)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.NotContains(t, err.Error(), "\x1b")
	assert.Contains(t, err.Error(), `gone\x1b[2J`)

	_, plain := os.Stat(filepath.Join(t.TempDir(), "gone"))
	assert.Same(t, plain, escapePathError(plain), "plain paths keep their *fs.PathError")
}
