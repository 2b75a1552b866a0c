//go:build unix

package layout

import (
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestScanDirSpecialFiles(t *testing.T) {
	tests := []struct {
		name    string
		make    func(t *testing.T, dir string) string // returns the path the error must name
		wantErr string
	}{
		{
			name: "named pipe",
			make: func(t *testing.T, dir string) string {
				fifo := filepath.Join(dir, "sub", "pipe")
				require.NoError(t, os.MkdirAll(filepath.Dir(fifo), 0o755))
				require.NoError(t, syscall.Mkfifo(fifo, 0o644))
				return fifo
			},
			wantErr: ": not a regular file (named pipe)",
		},
		{
			name: "socket",
			make: func(t *testing.T, dir string) string {
				sock := filepath.Join(dir, "s.sock")
				listener, err := net.Listen("unix", sock)
				require.NoError(t, err)
				t.Cleanup(func() { _ = listener.Close() })
				return sock
			},
			wantErr: ": not a regular file (socket)",
		},
		{
			name: "symlink to a named pipe inside",
			make: func(t *testing.T, dir string) string {
				require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644))
				link := filepath.Join(dir, "model.safetensors")
				require.NoError(t, os.Symlink("pipe", link))
				return link
			},
			wantErr: "which is not a regular file (named pipe)",
		},
		{
			name: "symlink to a device",
			make: func(t *testing.T, dir string) string {
				link := filepath.Join(dir, "null")
				require.NoError(t, os.Symlink("/dev/null", link))
				return link
			},
			wantErr: "symlink to /dev/null, which is not a regular file (character device)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}"), 0o644))
			named := tt.make(t, dir)

			entries, err := ScanDir(dir)
			assert.Nil(t, entries)
			require.ErrorContains(t, err, named+": ")
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
}
