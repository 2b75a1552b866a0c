package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/npmtest"
	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/store"
)

// The Hugging Face client the interop test loads pulled folders with:
// transformers.js, installed by the test itself into a git-ignored cache.
const (
	transformersJSPackage = "@huggingface/transformers"
	transformersJSVersion = "4.3.1"
	// transformersJSCache is relative to the module root (/.cache/ is git-ignored).
	transformersJSCache = ".cache/npm-transformers"
)

// transformersJS is installed by npmtest, once, into transformersJSCache
// (the first install downloads some hundred MB).
var transformersJS = npmtest.Package{Name: transformersJSPackage, Version: transformersJSVersion, Cache: transformersJSCache, Purpose: "the transformers.js interop test"}

// encodeScript loads each requested folder with transformers.js'
// AutoTokenizer, local files only, and prints the ids of every text.
//
// It is run with `node --input-type=module --eval` from the npm cache
// folder, so the bare import below resolves exactly as in a user's project:
// the package's "node" export, dist/transformers.node.mjs. That entry
// imports onnxruntime-node and sharp eagerly; their native binaries ship in
// the npm tarballs (onnxruntime-node's bin/, sharp's @img/* optional
// packages), so it loads even though --ignore-scripts skipped their install
// scripts. The web build is no substitute: in Node it cannot read local
// files.
//
// The file cache is off: transformers.js consults it before the local
// folder, and a stale entry would hide what ckpt pulled.
const encodeScript = `
import { AutoTokenizer, env } from '@huggingface/transformers';
import { readFileSync } from 'node:fs';

const req = JSON.parse(readFileSync(0, 'utf8'));
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.useFSCache = false;
env.useBrowserCache = false;

const models = [];
for (const m of req.models) {
  env.localModelPath = m.root;
  const tok = await AutoTokenizer.from_pretrained(m.name);
  const ids = req.texts.map((text) => tok.encode(text));
  models.push({
    name: m.name,
    class: tok.constructor.name,
    ids,
    decoded: ids.map((x) => tok.decode(x)),
  });
}
process.stdout.write(JSON.stringify({ version: env.version, models }));
`

// interopTexts are encoded by transformers.js from the base folder and from
// the pulled one. The ids are GPT-2's (checked against a separate
// implementation of OpenAI's byte-level BPE on testdata/gpt2).
var interopTexts = []struct {
	text string
	ids  []int
}{
	{"Hello world, checkpoints!", []int{15496, 995, 11, 36628, 0}},
	{"Grüße aus Zürich — 東京 🤗", []int{8642, 9116, 39683, 68, 257, 385, 1168, 9116, 7527, 851, 10545, 251, 109, 12859, 105, 12520, 97, 245}},
	{"Hello<|endoftext|>world", []int{15496, 50256, 6894}},
	{"<|endoftext|> The end.<|endoftext|>", []int{50256, 383, 886, 13, 50256}},
	{"  tabs\tand\nnewlines  ", []int{220, 22524, 197, 392, 198, 3605, 6615, 220, 220}},
}

// TestInteropTransformersJS checks that a folder pulled by ckpt is accepted
// by a real Hugging Face client: transformers.js loads the tokenizer of a
// weights-only fine-tune, inherited from its base at pull time, and encodes
// exactly as it does from the original base folder.
func TestInteropTransformersJS(t *testing.T) {
	pkgDir := npmtest.Install(t, transformersJS)

	e := newEnv(t, newLocal)
	base, ckpts := tinyRun(t, 10, func(s *synth.RunSpec) { s.WeightsOnly = true })
	require.NoFileExists(t, filepath.Join(ckpts[0], "tokenizer.json"), "a weights-only checkpoint must not carry a tokenizer")
	e.push(base, "gpt2", store.PushOptions{Version: "1"})
	e.push(ckpts[0], "sft", store.PushOptions{Base: "gpt2@1"})

	models := filepath.Join(t.TempDir(), "models")
	pulled := filepath.Join(models, "sft-100")
	res, err := e.withoutIndex().Pull(e.ctx, "sft", "100", pulled, store.PullOptions{})
	require.NoError(t, err)
	from := map[string]string{}
	for _, f := range res.Files {
		from[f.Path] = f.From
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		require.Equal(t, "gpt2@1", from[f], "%s of the pull should be inherited from the base", f)
	}

	texts := make([]string, len(interopTexts))
	for i, c := range interopTexts {
		texts[i] = c.text
	}
	out := runTransformersJS(t, pkgDir, texts,
		jsModel{Root: filepath.Dir(base), Name: filepath.Base(base)},
		jsModel{Root: models, Name: filepath.Base(pulled)})

	require.Equal(t, transformersJSVersion, out.Version, "transformers.js version loaded by node")
	require.Len(t, out.Models, 2)
	fromBase, fromPull := out.Models[0], out.Models[1]
	for _, m := range out.Models {
		assert.Equal(t, "GPT2Tokenizer", m.Class, "tokenizer class transformers.js chose for %s", m.Name)
		require.Len(t, m.IDs, len(texts), m.Name)
		require.Len(t, m.Decoded, len(texts), m.Name)
		for i, c := range interopTexts {
			assert.Equal(t, c.ids, m.IDs[i], "%s: ids of %q", m.Name, c.text)
			assert.Equal(t, c.text, m.Decoded[i], "%s: decode(encode(%q))", m.Name, c.text)
		}
	}
	assert.Equal(t, fromBase.IDs, fromPull.IDs, "the pulled folder encodes differently from the original base folder")
}

type jsModel struct {
	Root string `json:"root"` // env.localModelPath
	Name string `json:"name"` // the folder under Root given to from_pretrained
}

type jsResult struct {
	Version string `json:"version"`
	Models  []struct {
		Name    string   `json:"name"`
		Class   string   `json:"class"`
		IDs     [][]int  `json:"ids"`
		Decoded []string `json:"decoded"`
	} `json:"models"`
}

// runTransformersJS runs encodeScript with node from pkgDir, in an
// environment holding only PATH and a throw-away HOME.
func runTransformersJS(t *testing.T, pkgDir string, texts []string, models ...jsModel) jsResult {
	t.Helper()
	node := npmtest.Tool(t, "node", transformersJS.Purpose)
	req, err := json.Marshal(map[string]any{"models": models, "texts": texts})
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--input-type=module", "--eval", encodeScript)
	cmd.Dir = pkgDir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	cmd.Stdin = bytes.NewReader(req)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	require.NoError(t, err, "node with transformers.js %s failed to load the tokenizers (%s in %s); stderr:\n%s\nstdout:\n%s",
		transformersJSVersion, err, pkgDir, stderr.String(), stdout.String())
	t.Logf("transformers.js encoded %d texts with %d tokenizers in %s", len(texts), len(models), time.Since(start).Round(time.Millisecond))

	var out jsResult
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &out), "node printed no result; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	return out
}
