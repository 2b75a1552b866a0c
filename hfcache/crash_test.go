//go:build unix

package hfcache

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const crashHelperEnv = "HFCACHE_CRASH_HELPER_CACHE"

// stallingContent writes half of data, says so on stdout, then waits to be
// killed: the state of a writer killed in the middle of a blob.
type stallingContent struct{ data []byte }

func (s stallingContent) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(s.data[:len(s.data)/2])
	if err != nil {
		return int64(n), err
	}
	os.Stdout.WriteString("ready\n")
	select {} // until SIGKILL
}

// TestCrashHelper is the child process of TestWriteSnapshotKilled; it does
// nothing in a normal run.
func TestCrashHelper(t *testing.T) {
	cache := os.Getenv(crashHelperEnv)
	if cache == "" {
		return
	}
	files := []FileSource{
		{Path: "config.json", Size: 2, Content: BytesContent([]byte("{}"))},
		{Path: "model.safetensors", Size: 1 << 20, Content: stallingContent{bytes.Repeat([]byte("w"), 1<<20)}},
	}
	err := WriteSnapshot(cache, testRepo, testRevision, "main", files)
	t.Fatalf("WriteSnapshot returned (%v) instead of being killed", err)
}

// TestWriteSnapshotKilled kills a writer with SIGKILL in the middle of a
// blob: the ref still names the revision it named before (or nothing), no
// client-visible file is left half made, and a rerun completes.
func TestWriteSnapshotKilled(t *testing.T) {
	for _, earlier := range []bool{false, true} {
		t.Run(map[bool]string{false: "fresh cache", true: "over an earlier revision"}[earlier], func(t *testing.T) {
			cache := t.TempDir()
			if earlier {
				require.NoError(t, WriteSnapshot(cache, testRepo, otherRevision, "main",
					[]FileSource{{Path: "config.json", Size: 3, Content: BytesContent([]byte("old"))}}))
			}
			killMidWrite(t, cache)

			repoDir := filepath.Join(cache, testFolder)
			snap, err := FindSnapshot(cache, testRepo, "main")
			if earlier {
				require.NoError(t, err)
				assert.Equal(t, otherRevision, snap.Commit, "refs/main still names the earlier revision")
			} else {
				assert.ErrorIs(t, err, ErrNotCached, "no ref was written")
			}
			_, err = FindSnapshot(cache, testRepo, testRevision)
			var nf *RevisionNotFoundError
			require.ErrorAs(t, err, &nf, "no snapshot folder is made before every blob is in place")
			leftovers, err := filepath.Glob(filepath.Join(repoDir, "blobs", ".ckpt-*.incomplete"))
			require.NoError(t, err)
			assert.Len(t, leftovers, 1, "the half-written blob stays as a temporary in blobs/, where no client looks")
			refs, err := os.ReadDir(filepath.Join(repoDir, "refs"))
			if err == nil {
				for _, r := range refs {
					assert.Equal(t, "main", r.Name(), "nothing but refs in refs/")
				}
			}

			data := bytes.Repeat([]byte("w"), 1<<20)
			require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "main", []FileSource{
				{Path: "config.json", Size: 2, Content: BytesContent([]byte("{}"))},
				{Path: "model.safetensors", Size: 1 << 20, Content: BytesContent(data)},
			}))
			snap, err = FindSnapshot(cache, testRepo, "main")
			require.NoError(t, err)
			assert.Equal(t, testRevision, snap.Commit)
			require.Len(t, snap.Files, 2)
			got, err := os.ReadFile(snap.Files[1].Blob)
			require.NoError(t, err)
			assert.Equal(t, data, got)
		})
	}
}

// killMidWrite runs TestCrashHelper on cache and kills it with SIGKILL
// once it has written half of its big blob.
func killMidWrite(t *testing.T, cache string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+cache)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	lines := bufio.NewScanner(stdout)
	ready := false
	for lines.Scan() {
		if strings.TrimSpace(lines.Text()) == "ready" {
			ready = true
			break
		}
	}
	if !ready {
		// stderr is read only once the helper is gone: its copy into
		// the buffer runs until then.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the helper never got to the middle of its blob; stderr:\n%s", stderr.String())
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	err = cmd.Wait()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	status, ok := exit.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	require.Equal(t, syscall.SIGKILL, status.Signal(), "the helper died of SIGKILL")
}
