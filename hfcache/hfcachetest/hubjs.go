package hfcachetest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/npmtest"
)

// HubJS is the Hugging Face client caches are checked against:
// @huggingface/hub, installed by the tests themselves (npmtest) into a
// git-ignored cache under the module root.
var HubJS = npmtest.Package{
	Name: "@huggingface/hub", Version: "2.17.5", Cache: ".cache/npm-hfhub",
	Purpose: "the @huggingface/hub interop test",
}

// InstallHubJS returns the folder holding node_modules/@huggingface/hub at
// HubJS.Version, installing it the first time.
func InstallHubJS(tb testing.TB) string { return npmtest.Install(tb, HubJS) }

// hubJSScript runs the client's own cache code on the caches the Go test
// prepared: scanCacheDir on each, and downloadFileToCacheDir (the cached
// file lookup; it returns the snapshot path when the file is cached) for
// each requested file, hashing the bytes it resolves to. Every fetch,
// global or passed in, throws and is recorded: no request can leave, and
// the test sees whether the client tried one.
const hubJSScript = `
import { scanCacheDir, downloadFileToCacheDir, getHFHubCachePath, getRepoFolderName } from '@huggingface/hub';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { relative, sep } from 'node:path';

const req = JSON.parse(readFileSync(0, 'utf8'));
const requests = [];
const noNetwork = async (input) => {
  const url = String(input?.url ?? input);
  requests.push(url);
  throw new Error('network access attempted: ' + url);
};
globalThis.fetch = noNetwork;

const out = {
  version: JSON.parse(readFileSync('node_modules/@huggingface/hub/package.json', 'utf8')).version,
  cachePath: getHFHubCachePath(),
  folderNames: {},
  scans: [],
  lookups: [],
};
for (const name of req.folderNames) out.folderNames[name] = getRepoFolderName({ type: 'model', name });
for (const dir of req.scan) {
  const info = await scanCacheDir(dir);
  out.scans.push({
    dir,
    warnings: info.warnings.map((w) => String(w?.message ?? w)),
    repos: info.repos.map((r) => ({
      type: r.id.type, name: r.id.name, path: r.path, size: r.size, filesCount: r.filesCount,
      revisions: r.revisions.map((v) => ({
        commit: v.commitOid, refs: v.refs, size: v.size,
        files: v.files.map((f) => ({ path: relative(v.path, f.path).split(sep).join('/'), size: f.blob.size, blob: f.blob.path })),
      })),
    })),
  });
}
for (const l of req.lookups) {
  const res = { ...l };
  const before = requests.length;
  try {
    const p = await downloadFileToCacheDir({ repo: { type: 'model', name: l.repo }, path: l.path, revision: l.revision, cacheDir: l.cacheDir, fetch: noNetwork });
    const data = readFileSync(p);
    Object.assign(res, { pointer: p, size: data.length, sha256: createHash('sha256').update(data).digest('hex') });
  } catch (e) {
    res.error = String(e?.message ?? e);
  }
  res.requests = requests.slice(before);
  out.lookups.push(res);
}
process.stdout.write(JSON.stringify(out));
`

// HubJSRequest is what RunHubJS asks the client.
type HubJSRequest struct {
	// FolderNames are model ids for getRepoFolderName.
	FolderNames []string `json:"folderNames"`
	// Scan are cache folders for scanCacheDir.
	Scan []string `json:"scan"`
	// Lookups are files for downloadFileToCacheDir (CacheDir, Repo, Path,
	// Revision set).
	Lookups []HubJSLookup `json:"lookups"`
}

// HubJSLookup is one downloadFileToCacheDir call and what it returned:
// the snapshot path, the size and SHA-256 of the bytes node read there,
// or the error, and the requests it tried (all refused).
type HubJSLookup struct {
	CacheDir string   `json:"cacheDir"`
	Repo     string   `json:"repo"`
	Path     string   `json:"path"`
	Revision string   `json:"revision"`
	Pointer  string   `json:"pointer"`
	Size     int64    `json:"size"`
	SHA256   string   `json:"sha256"`
	Error    string   `json:"error"`
	Requests []string `json:"requests"`
}

// HubJSFile is a file of a revision as scanCacheDir lists it.
type HubJSFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	Blob string `json:"blob"`
}

// HubJSRevision is a revision as scanCacheDir lists it.
type HubJSRevision struct {
	Commit string      `json:"commit"`
	Refs   []string    `json:"refs"`
	Size   int64       `json:"size"`
	Files  []HubJSFile `json:"files"`
}

// HubJSRepo is a repository as scanCacheDir lists it.
type HubJSRepo struct {
	Type       string          `json:"type"`
	Name       string          `json:"name"`
	Path       string          `json:"path"`
	Size       int64           `json:"size"`
	FilesCount int             `json:"filesCount"`
	Revisions  []HubJSRevision `json:"revisions"`
}

// HubJSScan is scanCacheDir's result on one folder.
type HubJSScan struct {
	Dir      string      `json:"dir"`
	Warnings []string    `json:"warnings"`
	Repos    []HubJSRepo `json:"repos"`
}

// HubJSOutput is everything the client said.
type HubJSOutput struct {
	Version     string            `json:"version"`
	CachePath   string            `json:"cachePath"`
	FolderNames map[string]string `json:"folderNames"`
	Scans       []HubJSScan       `json:"scans"`
	Lookups     []HubJSLookup     `json:"lookups"`
}

// RunHubJS runs the client's own cache code with node from pkgDir
// (InstallHubJS), in an environment holding PATH, a throw-away HOME and
// env, with every network request refused and recorded.
func RunHubJS(tb testing.TB, pkgDir string, env map[string]string, req HubJSRequest) HubJSOutput {
	tb.Helper()
	node := npmtest.Tool(tb, "node", HubJS.Purpose)
	if req.FolderNames == nil {
		req.FolderNames = []string{}
	}
	if req.Scan == nil {
		req.Scan = []string{}
	}
	if req.Lookups == nil {
		req.Lookups = []HubJSLookup{}
	}
	body, err := json.Marshal(req)
	require.NoError(tb, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--input-type=module", "--eval", hubJSScript)
	cmd.Dir = pkgDir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + tb.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = bytes.NewReader(body)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	require.NoError(tb, err, "node with %s %s failed (%s in %s); stderr:\n%s\nstdout:\n%s",
		HubJS.Name, HubJS.Version, err, pkgDir, stderr.String(), stdout.String())
	var out HubJSOutput
	require.NoError(tb, json.Unmarshal(stdout.Bytes(), &out), "node printed no result; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	require.Equal(tb, HubJS.Version, out.Version, "@huggingface/hub version loaded by node")
	return out
}
