// Package npmtest installs npm packages for interop tests: clients that no
// one here wrote (transformers.js, @huggingface/gguf, @huggingface/hub),
// run with Node.js against what ckpt writes. A package is installed once,
// with npm --ignore-scripts, into a git-ignored folder under the module
// root (.cache/npm-*), and reused by later runs.
package npmtest

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/miniotest"
)

// Package is one npm package at an exact version, installed into its own
// folder.
type Package struct {
	// Name is the npm name, e.g. "@huggingface/hub".
	Name string
	// Version is the exact version installed and required.
	Version string
	// Cache is the folder it is installed into, relative to the module
	// root, e.g. ".cache/npm-hfhub" (/.cache/ is git-ignored).
	Cache string
	// Purpose names the test in error messages, e.g. "the @huggingface/hub
	// interop test".
	Purpose string
}

// Install returns the folder holding node_modules/<Name> at Version,
// installing it the first time. The install goes into a fresh folder
// beside the cache and is renamed into place, so concurrent runs never
// see a half-installed cache (at worst both install, and one keeps the
// other's); a stale cache (another version, or broken) is moved aside.
// Missing tools or a failed install fail the test: it is never skipped.
func Install(tb testing.TB, p Package) string {
	tb.Helper()
	Tool(tb, "node", p.Purpose)
	npm := Tool(tb, "npm", p.Purpose)
	root, err := miniotest.ModuleRoot()
	require.NoError(tb, err)
	dir := filepath.Join(root, filepath.FromSlash(p.Cache))
	if Installed(dir, p.Name) == p.Version {
		return dir
	}

	parent := filepath.Dir(dir)
	require.NoError(tb, os.MkdirAll(parent, 0o755))
	tmp, err := os.MkdirTemp(parent, filepath.Base(dir)+".tmp-")
	require.NoError(tb, err)
	defer os.RemoveAll(tmp) // gone already once renamed into place
	// A package.json of its own keeps npm from looking for a project above.
	require.NoError(tb, os.WriteFile(filepath.Join(tmp, "package.json"), []byte(`{"name": "ckpt-`+filepath.Base(dir)+`", "private": true}`+"\n"), 0o644))

	ctx, cancel := context.WithTimeout(context.Background(), installTimeout(tb))
	defer cancel()
	spec := p.Name + "@" + p.Version
	cmd := exec.CommandContext(ctx, npm, "install", "--ignore-scripts", "--no-audit", "--no-fund",
		"--no-progress", "--no-update-notifier", "--save-exact", "--prefix", tmp, spec)
	cmd.Dir = tmp
	cmd.Env = Env()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	require.NoError(tb, err, "npm install %s into %s failed (%v after %s); %s needs Node.js, npm and the npm registry. npm output:\n%s",
		spec, tmp, err, time.Since(start).Round(time.Second), p.Purpose, out)
	require.Equal(tb, p.Version, Installed(tmp, p.Name), "npm install %s did not install that version into %s; npm output:\n%s", spec, tmp, out)
	tb.Logf("installed %s into %s in %s", spec, dir, time.Since(start).Round(100*time.Millisecond))

	for range 3 {
		if err := os.Rename(tmp, dir); err == nil {
			return dir
		}
		if Installed(dir, p.Name) == p.Version {
			return dir
		}
		stale, err := os.MkdirTemp(parent, filepath.Base(dir)+".stale-")
		require.NoError(tb, err)
		err = os.Rename(dir, filepath.Join(stale, "old"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			os.RemoveAll(stale)
			require.NoError(tb, err, "cannot move the stale cache %s aside", dir)
		}
		require.NoError(tb, os.RemoveAll(stale))
	}
	tb.Fatalf("cannot put the npm install into %s: another process keeps replacing it", dir)
	return ""
}

// Installed is the version of the package name installed under dir, or ""
// if there is none.
func Installed(dir, name string) string {
	data, err := os.ReadFile(filepath.Join(dir, "node_modules", filepath.FromSlash(name), "package.json"))
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
func installTimeout(tb testing.TB) time.Duration {
	d := 10 * time.Minute
	if t, ok := tb.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := t.Deadline(); ok {
			if left := time.Until(deadline) - time.Minute; left < d {
				d = max(left, 10*time.Second)
			}
		}
	}
	return d
}

// Env is the ambient environment (proxy settings, .npmrc, npm's own cache
// under HOME) without AWS_* and HF_* variables, for npm.
func Env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "HF_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// Tool is the path of the program name on PATH; a missing one fails the
// test, naming purpose (the test is never skipped).
func Tool(tb testing.TB, name, purpose string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	require.NoError(tb, err, "%s is not on PATH: %s needs Node.js 20+ and npm (install them; the test is never skipped)", name, purpose)
	return p
}
