package layout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/npmtest"
	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/layout"
)

// The GGUF parser ParseGGUF is cross-checked against: Hugging Face's own,
// installed by the test into a git-ignored cache like the transformers.js
// interop test of store/.
const (
	ggufJSPackage = "@huggingface/gguf"
	ggufJSVersion = "0.4.6"
	// ggufJSCache is relative to the module root (/.cache/ is git-ignored).
	ggufJSCache = ".cache/npm-gguf"
)

// ggufJS is installed by npmtest, once, into ggufJSCache.
var ggufJS = npmtest.Package{Name: ggufJSPackage, Version: ggufJSVersion, Cache: ggufJSCache, Purpose: "the @huggingface/gguf interop test"}

// ggufScript parses each requested file with @huggingface/gguf's gguf()
// (local files allowed, typed metadata) and prints what it found, numbers
// that may exceed 2^53 as strings. It also prints the package's
// GGML_QUANT_SIZES (bits per weight by type), which the package keeps in a
// bundled chunk rather than exporting: the test compares tensor sizes
// with it.
const ggufScript = `
import { gguf, GGMLQuantizationType } from '@huggingface/gguf';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const req = JSON.parse(readFileSync(0, 'utf8'));
// The package's folder (node runs in the install folder).
const pkgDir = join(process.cwd(), 'node_modules', '@huggingface', 'gguf');
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));

let quantSizes = null;
for (const f of readdirSync(join(pkgDir, 'dist')).filter((f) => /^chunk-.*\.mjs$/.test(f))) {
  const mod = await import(join(pkgDir, 'dist', f));
  if (mod.GGML_QUANT_SIZES) quantSizes = mod.GGML_QUANT_SIZES;
}
if (!quantSizes) throw new Error('GGML_QUANT_SIZES not found in the package');

const plain = (v) => {
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.map(plain);
  return v;
};
const files = [];
for (const path of req.files) {
  const r = await gguf(path, { allowLocalFile: true, typedMetadata: true });
  const metadata = {};
  for (const [k, e] of Object.entries(r.typedMetadata)) {
    metadata[k] = { type: e.type, subType: e.subType ?? null, value: plain(e.value) };
  }
  files.push({
    littleEndian: r.littleEndian,
    tensorDataOffset: r.tensorDataOffset.toString(),
    metadata,
    tensors: r.tensorInfos.map((t) => ({
      name: t.name,
      nDims: t.n_dims,
      shape: t.shape.map(String),
      dtype: t.dtype,
      typeName: GGMLQuantizationType[t.dtype],
      offset: t.offset.toString(),
    })),
  });
}
process.stdout.write(JSON.stringify({ version: pkg.version, quantSizes, files }));
`

type ggufJSResult struct {
	Version    string             `json:"version"`
	QuantSizes map[string]float64 `json:"quantSizes"`
	Files      []struct {
		LittleEndian     bool   `json:"littleEndian"`
		TensorDataOffset string `json:"tensorDataOffset"`
		Metadata         map[string]struct {
			Type    layout.GGUFValueType  `json:"type"`
			SubType *layout.GGUFValueType `json:"subType"`
			Value   json.RawMessage       `json:"value"`
		} `json:"metadata"`
		Tensors []struct {
			Name     string   `json:"name"`
			NDims    int      `json:"nDims"`
			Shape    []string `json:"shape"`
			Dtype    uint32   `json:"dtype"`
			TypeName string   `json:"typeName"`
			Offset   string   `json:"offset"`
		} `json:"tensors"`
	} `json:"files"`
}

// TestInteropHuggingFaceGGUF writes GGUF files with every metadata value
// type and every ggml type ParseGGUF knows, and checks that Hugging Face's
// GGUF parser reads from them the same tensors (names, shapes, types,
// offsets), the same data section start and the same metadata, and that
// its bits-per-weight table gives the same tensor sizes.
func TestInteropHuggingFaceGGUF(t *testing.T) {
	pkgDir := npmtest.Install(t, ggufJS)

	dir := t.TempDir()
	files := []synth.GGUFFile{
		{Metadata: allValuesMetadata(), Tensors: allTypesTensors(t)},
		{Version: 2, Alignment: 64, Metadata: allValuesMetadata(), Tensors: allTypesTensors(t)},
		{BigEndian: true, Metadata: allValuesMetadata(), Tensors: allTypesTensors(t)},
	}
	var paths []string
	var parsed []*layout.GGUF
	for i, f := range files {
		data, err := synth.EncodeGGUF(f)
		require.NoError(t, err)
		path := filepath.Join(dir, fmt.Sprintf("model-%d.gguf", i))
		require.NoError(t, os.WriteFile(path, data, 0o644))
		g, err := layout.ParseGGUF(bytes.NewReader(data), int64(len(data)))
		require.NoError(t, err)
		paths, parsed = append(paths, path), append(parsed, g)
	}

	out := runGGUFJS(t, pkgDir, paths)
	require.Equal(t, ggufJSVersion, out.Version, "@huggingface/gguf version loaded by node")
	require.Len(t, out.Files, len(files))
	for i, js := range out.Files {
		g := parsed[i]
		t.Run(filepath.Base(paths[i]), func(t *testing.T) {
			assert.Equal(t, !g.BigEndian, js.LittleEndian)
			assert.Equal(t, strconv.FormatInt(g.DataOffset, 10), js.TensorDataOffset, "data section start")
			require.Len(t, js.Tensors, len(g.Tensors))
			for k, jt := range js.Tensors {
				tensor := g.Tensors[k]
				assert.Equal(t, tensor.Name, jt.Name)
				assert.Equal(t, len(tensor.Dims), jt.NDims)
				dims := make([]string, len(tensor.Dims))
				for d, v := range tensor.Dims {
					dims[d] = strconv.FormatUint(v, 10)
				}
				assert.Equal(t, dims, jt.Shape, tensor.Name)
				assert.Equal(t, uint32(tensor.Type), jt.Dtype, tensor.Name)
				assert.Equal(t, tensor.Type.String(), jt.TypeName, tensor.Name)
				assert.Equal(t, strconv.FormatInt(tensor.Offset-g.DataOffset, 10), jt.Offset, tensor.Name)

				// Sizes from the package's bits per weight. Q8_1's entry is
				// gguf-py's stale 4+4+32 bytes per 32; ggml's block_q8_1 is
				// two halves and 32 quants (36 bytes) since 2023.
				bpw, ok := out.QuantSizes[strconv.FormatUint(uint64(tensor.Type), 10)]
				require.True(t, ok, "no bits per weight for %s", tensor.Type)
				elements := uint64(1)
				for _, d := range tensor.Dims {
					elements *= d
				}
				jsSize := int64(math.Round(float64(elements) * bpw / 8))
				if tensor.Type == layout.GGMLQ8_1 {
					assert.Equal(t, jsSize*36/40, tensor.Size)
					continue
				}
				assert.Equal(t, jsSize, tensor.Size, "size of %s", tensor.Type)
			}

			require.Len(t, js.Metadata, len(g.Metadata)+3, "metadata plus version, tensor_count and kv_count")
			assert.Equal(t, fmt.Sprint(g.Version), string(js.Metadata["version"].Value))
			assert.Equal(t, strconv.Quote(fmt.Sprint(len(g.Tensors))), string(js.Metadata["tensor_count"].Value))
			for _, kv := range g.Metadata {
				jkv, ok := js.Metadata[kv.Key]
				require.True(t, ok, "key %s", kv.Key)
				assert.Equal(t, kv.Type, jkv.Type, kv.Key)
				if kv.Type == layout.GGUFArray {
					require.NotNil(t, jkv.SubType, kv.Key)
					assert.Equal(t, kv.ArrayType, *jkv.SubType, kv.Key)
				}
				assert.JSONEq(t, ggufValueJSON(t, kv.Value), string(jkv.Value), kv.Key)
			}
		})
	}
}

// ggufValueJSON renders a metadata value as the node script prints it:
// 64-bit integers as strings, float32 widened to float64.
func ggufValueJSON(t *testing.T, v any) string {
	t.Helper()
	var plain func(v any) any
	plain = func(v any) any {
		switch x := v.(type) {
		case uint64:
			return strconv.FormatUint(x, 10)
		case int64:
			return strconv.FormatInt(x, 10)
		case float32:
			return float64(x)
		case []uint64:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = plain(e)
			}
			return out
		case []int64:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = plain(e)
			}
			return out
		case []float32:
			out := make([]float64, len(x))
			for i, e := range x {
				out[i] = float64(e)
			}
			return out
		case []uint8:
			out := make([]int, len(x)) // not base64
			for i, e := range x {
				out[i] = int(e)
			}
			return out
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = plain(e)
			}
			return out
		}
		return v
	}
	data, err := json.Marshal(plain(v))
	require.NoError(t, err)
	return string(data)
}

// runGGUFJS runs ggufScript with node from pkgDir, in an environment
// holding only PATH and a throw-away HOME.
func runGGUFJS(t *testing.T, pkgDir string, paths []string) ggufJSResult {
	t.Helper()
	node := npmtest.Tool(t, "node", ggufJS.Purpose)
	req, err := json.Marshal(map[string]any{"files": paths})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--input-type=module", "--eval", ggufScript)
	cmd.Dir = pkgDir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	cmd.Stdin = bytes.NewReader(req)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	require.NoError(t, err, "node with %s %s failed (%s in %s); stderr:\n%s\nstdout:\n%s",
		ggufJSPackage, ggufJSVersion, err, pkgDir, stderr.String(), stdout.String())
	var out ggufJSResult
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &out), "node printed no result; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	return out
}
