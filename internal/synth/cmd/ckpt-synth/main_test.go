package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/layout"
)

var gpt2Dir = filepath.Join("..", "..", "..", "..", "testdata", "gpt2")

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"1GiB", 1 << 30},
		{"256MiB", 256 << 20},
		{"1.5GiB", 3 << 29},
		{"100MB", 100e6},
		{"2G", 2 << 30},
		{"4096", 4096},
		{"64 KiB", 64 << 10},
	} {
		got, err := parseSize(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
	for _, bad := range []string{"", "GiB", "-1MiB", "ten"} {
		_, err := parseSize(bad)
		assert.Error(t, err, bad)
	}
}

func TestRunTinyPreset(t *testing.T) {
	out := t.TempDir()
	var stdout bytes.Buffer
	require.NoError(t, run([]string{"-out", out, "-preset", "tiny", "-steps", "10,20", "-tokenizer", gpt2Dir, "-optimizer-scale", "0.1"}, &stdout))

	require.NoError(t, layout.CheckRunnableDir(filepath.Join(out, "base")))
	for _, runDir := range []string{"run-a", "run-b"} {
		for _, checkpoint := range []string{"checkpoint-10", "checkpoint-20"} {
			dir := filepath.Join(out, runDir, checkpoint)
			require.NoError(t, layout.CheckCompleteDir(dir))
			assert.Contains(t, stdout.String(), dir)
		}
	}
	assert.FileExists(t, filepath.Join(out, "run-a", "checkpoint-20", "optimizer.pt"))
	assert.NoFileExists(t, filepath.Join(out, "run-b", "checkpoint-20", "config.json"))
	assert.NoDirExists(t, filepath.Join(out, "bench"))
}

func TestRunBenchPreset(t *testing.T) {
	out := t.TempDir()
	var stdout bytes.Buffer
	require.NoError(t, run([]string{"-out", out, "-preset", "bench", "-size", "12MiB", "-tokenizer", gpt2Dir}, &stdout))

	dir := filepath.Join(out, "bench")
	require.NoError(t, layout.CheckRunnableDir(dir))
	info, err := os.Stat(filepath.Join(dir, "model.safetensors"))
	require.NoError(t, err)
	assert.InEpsilon(t, 12<<20, info.Size(), 0.05)
	assert.NoDirExists(t, filepath.Join(out, "base"))
	assert.Contains(t, stdout.String(), "MB/s")
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no out", []string{"-preset", "tiny"}, "-out is required"},
		{"preset", []string{"-out", "x", "-preset", "huge"}, `-preset "huge"`},
		{"steps", []string{"-out", "x", "-steps", "10,x"}, `-steps "10,x"`},
		{"size", []string{"-out", "x", "-size", "lots"}, `-size "lots"`},
		{"extra argument", []string{"-out", "x", "extra"}, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(tc.args, &bytes.Buffer{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
