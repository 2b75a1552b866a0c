//go:build linux

package store_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store/backend/local"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
)

// peakRSSLimit is the README's promise for any command.
const peakRSSLimit = 256 * mib

// TestHostileRegistryPeakRSS: a registry whose manifest references blobs as
// large as the format allows, many times over, is pulled and verified with
// --read-data by the real ckpt binary with 8 workers, and neither command
// goes past 256 MiB of peak RSS. Without a bound on the bytes in flight,
// 8 workers would each hold such a blob and its stored form at once.
func TestHostileRegistryPeakRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ckpt and moves a few GiB through it")
	}
	bin := buildCkpt(t)
	repo := filepath.Join(t.TempDir(), "registry")
	b, err := local.New(repo)
	require.NoError(t, err)

	// 4 distinct blobs of the largest size a blob may declare, each a
	// 33 KB zstd frame, and 10 files that use them (more files than
	// workers, so every worker has one to fetch).
	const blobs, files = 4, 10
	objects := map[string][]byte{}
	ids := make([]object.ID, blobs)
	content := make([]byte, maxBlob)
	for i := range ids {
		content[0] = byte(i + 1)
		ids[i] = object.Hash(content)
		objects[object.BlobKey(ids[i])] = storedObject(object.CodecZstd, maxBlob, zstdZeros(maxBlob, maxBlob, byte(i+1)))
	}
	content = nil
	var list []manifest.File
	for i := range files {
		list = append(list, oneChunkFile("shard-"+itoa(int64(100+i))+".bin", ids[i%blobs], maxBlob))
	}
	hostileRegistry(t, b, list, objects)

	home := t.TempDir()
	run := func(env []string, args ...string) int64 {
		cmd := exec.Command(bin, append([]string{"--repo", repo, "--workers", "8", "--quiet"}, args...)...)
		cmd.Env = append(cleanEnv("GOMEMLIMIT", "GOGC", "CKPT_REPO"), "HOME="+home, "XDG_CACHE_HOME="+home+"/cache", "XDG_DATA_HOME="+home+"/data")
		cmd.Env = append(cmd.Env, env...)
		var output bytes.Buffer
		cmd.Stdout, cmd.Stderr = &output, &output
		require.NoError(t, cmd.Start())
		peak := watchPeakRSS(cmd.Process.Pid)
		err := cmd.Wait()
		require.NoError(t, err, "ckpt %s: %s", strings.Join(args, " "), output.String())
		return peak()
	}
	out := filepath.Join(t.TempDir(), "out")
	pull := run(nil, "pull", "hostile@1", out, "--full", "--allow-incomplete")
	fi, err := os.Stat(filepath.Join(out, "shard-109.bin"))
	require.NoError(t, err)
	require.Equal(t, int64(maxBlob), fi.Size())
	require.NoError(t, os.RemoveAll(out))
	verify := run(nil, "verify", "hostile@1", "--read-data")
	// The bound is the store's own, not the CLI's soft memory limit's: it
	// holds with the limit off (GOMEMLIMIT set by the user).
	unlimited := run([]string{"GOMEMLIMIT=off"}, "verify", "hostile@1", "--read-data")
	t.Logf("peak RSS: pull %d MiB, verify --read-data %d MiB, the same without a memory limit %d MiB", pull/mib, verify/mib, unlimited/mib)
	assert.LessOrEqual(t, pull, int64(peakRSSLimit), "pull peak RSS %d MiB", pull/mib)
	assert.LessOrEqual(t, verify, int64(peakRSSLimit), "verify peak RSS %d MiB", verify/mib)
	assert.LessOrEqual(t, unlimited, int64(peakRSSLimit), "verify peak RSS without a memory limit %d MiB", unlimited/mib)
}

// watchPeakRSS samples the high-water mark of the resident set (VmHWM) of
// process pid every few milliseconds until it exits; the returned function
// waits for that and returns the last mark seen. (The rusage of a child is
// no use here: Go starts children with vfork, and the kernel counts the
// parent's peak as the child's at exec.)
func watchPeakRSS(pid int) func() int64 {
	var peak int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for range tick.C {
			kb, ok := vmHWM(pid)
			if !ok {
				return // exited
			}
			peak = max(peak, kb*1024)
		}
	}()
	return func() int64 { <-done; return peak }
}

// vmHWM reads VmHWM (in kB) of process pid; ok is false once it has exited.
func vmHWM(pid int) (int64, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, found := strings.CutPrefix(line, "VmHWM:"); found {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb, err == nil
		}
	}
	return 0, false // a zombie has no memory left to report
}

// buildCkpt builds cmd/ckpt into a temporary folder.
func buildCkpt(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build cmd/ckpt: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "ckpt")
	cmd := exec.Command(goBin, "build", "-o", bin, "../cmd/ckpt")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// cleanEnv is the environment without the named variables.
func cleanEnv(drop ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		keep := true
		for _, d := range drop {
			keep = keep && name != d
		}
		if keep {
			env = append(env, kv)
		}
	}
	return env
}
