package hfcache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/miniotest"
)

// The Hugging Face client this package is checked against: @huggingface/hub,
// installed by the test itself into a git-ignored cache, as
// store/interop_test.go installs transformers.js.
const (
	hfHubPackage = "@huggingface/hub"
	hfHubVersion = "2.17.5"
	// hfHubCache is relative to the module root (/.cache/ is git-ignored).
	hfHubCache = ".cache/npm-hfhub"
)

// hfHubScript runs the client's own cache code on the caches the Go test
// prepared: scanCacheDir on each, and downloadFileToCacheDir (the cached
// file lookup; it returns the snapshot path when the file is cached) for
// each requested file, hashing the bytes it resolves to. Every fetch,
// global or passed in, throws and is recorded: no request can leave, and
// the test sees whether the client tried one.
const hfHubScript = `
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

type jsLookup struct {
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

type jsFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	Blob string `json:"blob"`
}

type jsRevision struct {
	Commit string   `json:"commit"`
	Refs   []string `json:"refs"`
	Size   int64    `json:"size"`
	Files  []jsFile `json:"files"`
}

type jsRepo struct {
	Type       string       `json:"type"`
	Name       string       `json:"name"`
	Path       string       `json:"path"`
	Size       int64        `json:"size"`
	FilesCount int          `json:"filesCount"`
	Revisions  []jsRevision `json:"revisions"`
}

type jsScan struct {
	Dir      string   `json:"dir"`
	Warnings []string `json:"warnings"`
	Repos    []jsRepo `json:"repos"`
}

type jsOutput struct {
	Version     string            `json:"version"`
	CachePath   string            `json:"cachePath"`
	FolderNames map[string]string `json:"folderNames"`
	Scans       []jsScan          `json:"scans"`
	Lookups     []jsLookup        `json:"lookups"`
}

// TestInteropHuggingFaceHubJS checks WriteSnapshot's output, and the
// hand-built cache FindSnapshot is tested on, with @huggingface/hub's own
// cache code: scanCacheDir lists the repository, its revision and refs,
// and the files with their sizes; downloadFileToCacheDir resolves every
// file to the right bytes with every network request refused; and, for
// the record, it does go to the network for a branch name, which is why
// the revision must be a commit hash.
func TestInteropHuggingFaceHubJS(t *testing.T) {
	pkgDir := installHFHub(t)

	cache := filepath.Join(t.TempDir(), "hub")
	files := testFiles(t)
	var calls int
	require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "main", sources(t, files, &calls)))
	require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "v1", sources(t, files, &calls)))
	// What a killed writer leaves behind must not disturb the clients.
	require.NoError(t, os.WriteFile(filepath.Join(cache, testFolder, "blobs", ".ckpt-0123456789abcdef.incomplete"), []byte("half"), 0o644))

	hand := newHandCache(t)
	spec := buildSpecRepo(hand)

	var lookups []jsLookup
	for _, f := range files {
		lookups = append(lookups, jsLookup{CacheDir: cache, Repo: testRepo, Path: f.path, Revision: testRevision})
	}
	lookups = append(lookups,
		jsLookup{CacheDir: cache, Repo: testRepo, Path: "config.json", Revision: "main"},
		jsLookup{CacheDir: hand.dir, Repo: specRepo, Path: "README.md", Revision: newCommit},
		jsLookup{CacheDir: hand.dir, Repo: specRepo, Path: "onnx/model.onnx", Revision: newCommit},
		jsLookup{CacheDir: hand.dir, Repo: specRepo, Path: "README.md", Revision: oldCommit},
	)
	out := runHFHub(t, pkgDir, map[string]string{"HF_HUB_CACHE": cache, "HF_HUB_OFFLINE": "1"}, map[string]any{
		"folderNames": []string{testRepo, specRepo, "gpt2"},
		"scan":        []string{cache, hand.dir},
		"lookups":     lookups,
	})

	require.Equal(t, hfHubVersion, out.Version, "@huggingface/hub version loaded by node")
	assert.Equal(t, cache, out.CachePath, "getHFHubCachePath with HF_HUB_CACHE set")
	for name, folder := range out.FolderNames {
		id, err := ParseRepoID(name)
		require.NoError(t, err)
		assert.Equal(t, folder, id.FolderName(), "getRepoFolderName(%s)", name)
	}

	t.Run("scanCacheDir on what WriteSnapshot wrote", func(t *testing.T) {
		scan := out.Scans[0]
		assert.Empty(t, scan.Warnings)
		require.Len(t, scan.Repos, 1)
		repo := scan.Repos[0]
		assert.Equal(t, "model", repo.Type)
		assert.Equal(t, testRepo, repo.Name)
		assert.Equal(t, filepath.Join(cache, testFolder), repo.Path)
		require.Len(t, repo.Revisions, 1)
		rev := repo.Revisions[0]
		assert.Equal(t, testRevision, rev.Commit)
		assert.ElementsMatch(t, []string{"main", "v1"}, rev.Refs)

		// @huggingface/hub 2.17.5's scanSnapshotDir lists the files at the
		// top of a snapshot and skips its folders, so nested files such as
		// onnx/model.onnx are not in its listing (huggingface_hub's
		// scan_cache_dir walks them). They are checked by the lookups below.
		blobs := realBlobsDir(t, cache, testFolder)
		want := map[string]jsFile{}
		distinct := map[string]int64{}
		for _, f := range files {
			if strings.Contains(f.path, "/") {
				continue
			}
			sum := sha256Hex(f.data)
			want[f.path] = jsFile{Path: f.path, Size: int64(len(f.data)), Blob: filepath.Join(blobs, sum)}
			distinct[sum] = int64(len(f.data))
		}
		got := map[string]jsFile{}
		for _, f := range rev.Files {
			got[f.Path] = f
		}
		assert.Equal(t, want, got, "the files scanCacheDir lists, with sizes and blobs")
		var size int64
		for _, s := range distinct {
			size += s
		}
		assert.Equal(t, len(distinct), repo.FilesCount, "blobs counted once")
		assert.Equal(t, size, repo.Size)
	})

	t.Run("scanCacheDir on the hand-built cache", func(t *testing.T) {
		scan := out.Scans[1]
		assert.Empty(t, scan.Warnings)
		require.Len(t, scan.Repos, 1)
		repo := scan.Repos[0]
		assert.Equal(t, specRepo, repo.Name)
		sort.Slice(repo.Revisions, func(i, j int) bool { return repo.Revisions[i].Commit < repo.Revisions[j].Commit })
		require.Len(t, repo.Revisions, 2)
		assert.Equal(t, oldCommit, repo.Revisions[0].Commit)
		assert.Empty(t, repo.Revisions[0].Refs, "refs/refs/pr/1 is in a folder, which this client's scanRefsDir skips")
		assert.Equal(t, newCommit, repo.Revisions[1].Commit)
		assert.Equal(t, []string{"main"}, repo.Revisions[1].Refs)
		blobs := realBlobsDir(t, hand.dir, specFolder)
		assert.ElementsMatch(t, []jsFile{
			{Path: "README.md", Size: int64(len(spec.newReadme)), Blob: filepath.Join(blobs, gitBlobSHA1(spec.newReadme))},
			{Path: "pytorch_model.bin", Size: int64(len(spec.weights)), Blob: filepath.Join(blobs, sha256Hex(spec.weights))},
		}, repo.Revisions[1].Files)
	})

	t.Run("downloadFileToCacheDir resolves every file without the network", func(t *testing.T) {
		for i, f := range files {
			l := out.Lookups[i]
			require.Equal(t, f.path, l.Path)
			assert.Empty(t, l.Error, f.path)
			assert.Empty(t, l.Requests, "%s: no request", f.path)
			assert.Equal(t, filepath.Join(cache, testFolder, "snapshots", testRevision, filepath.FromSlash(f.path)), l.Pointer, f.path)
			assert.Equal(t, int64(len(f.data)), l.Size, f.path)
			assert.Equal(t, sha256Hex(f.data), l.SHA256, "%s: the bytes node read", f.path)
		}
		for _, l := range out.Lookups[len(files)+1:] {
			assert.Empty(t, l.Error, "%s@%s", l.Path, l.Revision)
			assert.Empty(t, l.Requests, "%s@%s", l.Path, l.Revision)
		}
		want := map[string][]byte{"README.md@" + newCommit: spec.newReadme, "onnx/model.onnx@" + newCommit: spec.onnx, "README.md@" + oldCommit: spec.oldReadme}
		for _, l := range out.Lookups[len(files)+1:] {
			assert.Equal(t, sha256Hex(want[l.Path+"@"+l.Revision]), l.SHA256, "%s@%s in the hand-built cache", l.Path, l.Revision)
		}
	})

	t.Run("a branch name sends the client to the Hub", func(t *testing.T) {
		l := out.Lookups[len(files)]
		require.Equal(t, "main", l.Revision)
		assert.NotEmpty(t, l.Requests, "downloadFileToCacheDir asks the Hub which commit a branch is at, even when refs/main is cached")
		assert.Contains(t, l.Error, "network access attempted")
	})
}

// TestInteropCacheDir compares Dir with @huggingface/hub's
// getHFHubCachePath in the same environments.
func TestInteropCacheDir(t *testing.T) {
	pkgDir := installHFHub(t)
	for _, c := range dirCases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{"HOME": "/home/u"}
			for k, v := range c.env {
				env[k] = v
			}
			out := runHFHub(t, pkgDir, env, map[string]any{"folderNames": []string{}, "scan": []string{}, "lookups": []jsLookup{}})
			got, err := DirFrom(lookupIn(c.env), func() (string, error) { return "/home/u", nil })
			require.NoError(t, err)
			assert.Equal(t, out.CachePath, got)
		})
	}
}

func realBlobsDir(t *testing.T, cache, folder string) string {
	t.Helper()
	p, err := filepath.EvalSymlinks(filepath.Join(cache, folder, "blobs"))
	require.NoError(t, err)
	return p
}

// runHFHub runs hfHubScript with node from pkgDir, in an environment
// holding PATH, a throw-away HOME and env.
func runHFHub(t *testing.T, pkgDir string, env map[string]string, req map[string]any) jsOutput {
	t.Helper()
	node := lookTool(t, "node")
	body, err := json.Marshal(req)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--input-type=module", "--eval", hfHubScript)
	cmd.Dir = pkgDir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = bytes.NewReader(body)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	require.NoError(t, err, "node with %s %s failed (%s in %s); stderr:\n%s\nstdout:\n%s",
		hfHubPackage, hfHubVersion, err, pkgDir, stderr.String(), stdout.String())
	var out jsOutput
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &out), "node printed no result; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	return out
}

// installHFHub returns the folder holding node_modules/@huggingface/hub at
// hfHubVersion, installing it the first time. The install goes into a
// fresh folder beside the cache and is renamed into place, so concurrent
// runs never see a half-installed cache. Missing tools or a failed install
// fail the test: it is never skipped.
func installHFHub(t *testing.T) string {
	t.Helper()
	lookTool(t, "node")
	npm := lookTool(t, "npm")
	root, err := miniotest.ModuleRoot()
	require.NoError(t, err)
	dir := filepath.Join(root, filepath.FromSlash(hfHubCache))
	if installedHFHub(dir) == hfHubVersion {
		return dir
	}

	parent := filepath.Dir(dir)
	require.NoError(t, os.MkdirAll(parent, 0o755))
	tmp, err := os.MkdirTemp(parent, filepath.Base(dir)+".tmp-")
	require.NoError(t, err)
	defer os.RemoveAll(tmp) // gone already once renamed into place
	// A package.json of its own keeps npm from looking for a project above.
	require.NoError(t, os.WriteFile(filepath.Join(tmp, "package.json"), []byte(`{"name": "ckpt-hfcache-interop", "private": true}`+"\n"), 0o644))

	ctx, cancel := context.WithTimeout(context.Background(), installTimeout(t))
	defer cancel()
	spec := hfHubPackage + "@" + hfHubVersion
	cmd := exec.CommandContext(ctx, npm, "install", "--ignore-scripts", "--no-audit", "--no-fund",
		"--no-progress", "--no-update-notifier", "--save-exact", "--prefix", tmp, spec)
	cmd.Dir = tmp
	cmd.Env = npmEnv()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "npm install %s into %s failed (%v after %s); the interop test needs Node.js, npm and the npm registry. npm output:\n%s",
		spec, tmp, err, time.Since(start).Round(time.Second), out)
	require.Equal(t, hfHubVersion, installedHFHub(tmp), "npm install %s did not install that version into %s; npm output:\n%s", spec, tmp, out)
	t.Logf("installed %s into %s in %s", spec, dir, time.Since(start).Round(100*time.Millisecond))

	// Publish: rename into place; if another run got there first, keep
	// theirs; a stale cache (another version, or broken) is moved aside.
	for range 3 {
		if err := os.Rename(tmp, dir); err == nil {
			return dir
		}
		if installedHFHub(dir) == hfHubVersion {
			return dir
		}
		stale, err := os.MkdirTemp(parent, filepath.Base(dir)+".stale-")
		require.NoError(t, err)
		err = os.Rename(dir, filepath.Join(stale, "old"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			os.RemoveAll(stale)
			require.NoError(t, err, "cannot move the stale cache %s aside", dir)
		}
		require.NoError(t, os.RemoveAll(stale))
	}
	t.Fatalf("cannot put the npm install into %s: another process keeps replacing it", dir)
	return ""
}

// installedHFHub is the version of the package installed under dir, or ""
// if there is none.
func installedHFHub(dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, "node_modules", filepath.FromSlash(hfHubPackage), "package.json"))
	if err != nil {
		return ""
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(data, &pkg) != nil {
		return ""
	}
	return pkg.Version
}

// installTimeout is generous for a first install but ends a minute before
// the test binary's own deadline.
func installTimeout(t *testing.T) time.Duration {
	d := 10 * time.Minute
	if deadline, ok := t.Deadline(); ok {
		if left := time.Until(deadline) - time.Minute; left < d {
			d = max(left, 10*time.Second)
		}
	}
	return d
}

// npmEnv is the ambient environment (proxy settings, .npmrc, npm's own
// cache under HOME) without AWS_* and HF_* variables.
func npmEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "HF_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	require.NoError(t, err, "%s is not on PATH: the @huggingface/hub interop test needs Node.js 20+ and npm (install them; the test is never skipped)", name)
	return p
}
