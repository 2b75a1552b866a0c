package synth

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/layout"
)

// gpt2Dir holds the real GPT-2 config and tokenizer.
var gpt2Dir = filepath.Join("..", "..", "testdata", "gpt2")

// tinySpec is a small run with resume state; tests adjust it.
func tinySpec() RunSpec {
	return RunSpec{
		Model:          TinyModel(),
		Seed:           7,
		Steps:          []int64{20, 40, 60},
		ResumeState:    true,
		OptimizerScale: 0.25,
		TokenizerDir:   gpt2Dir,
		OutputDir:      "out",
	}
}

// readTensors reads every tensor of the safetensors weights in dir
// (single file or shards) through layout's header parser: name -> bytes.
func readTensors(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	require.NoError(t, err)
	require.NotEmpty(t, paths, "no safetensors in %s", dir)
	tensors := map[string][]byte{}
	for _, path := range paths {
		header, err := layout.ReadSafetensorsHeader(path)
		require.NoError(t, err)
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		for _, info := range header.Tensors {
			require.NotContains(t, tensors, info.Name)
			tensors[info.Name] = data[header.DataOffset+info.Begin : header.DataOffset+info.End]
		}
	}
	return tensors
}

// readFiles returns every file under dir by slash path relative to dir.
func readFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	require.NoError(t, fs.WalkDir(os.DirFS(dir), ".", func(name string, entry fs.DirEntry, err error) error {
		if err != nil || entry.IsDir() {
			return err
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		files[name] = data
		return err
	}))
	return files
}

// fileNames lists the names of the files directly in dir.
func fileNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, entry := range entries {
		names = append(names, entry.Name())
	}
	return names
}
