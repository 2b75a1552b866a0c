package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/backend/local"
	"github.com/ckptdev/ckpt/store/object"
)

// registryBackend opens the CLI's local registry directly, as someone
// editing the bucket or the folder by hand would.
func (c *cli) registryBackend() backend.Backend {
	b, err := local.New(c.repo)
	require.NoError(c.t, err)
	return b
}

func (c *cli) editObject(key string, edit func([]byte) []byte) {
	c.t.Helper()
	b := c.registryBackend()
	ctx := context.Background()
	rc, err := b.Get(ctx, key, 0, -1)
	require.NoError(c.t, err)
	data, err := io.ReadAll(rc)
	rc.Close()
	require.NoError(c.t, err)
	edited := edit(bytes.Clone(data))
	require.NotEqual(c.t, data, edited)
	require.NoError(c.t, b.Delete(ctx, key))
	require.NoError(c.t, b.Put(ctx, key, bytes.NewReader(edited), int64(len(edited))))
}

// objectKeys lists the blobs and manifests of the registry.
func (c *cli) objectKeys() []string {
	c.t.Helper()
	var keys []string
	for _, prefix := range []string{"blobs/", "manifests/"} {
		require.NoError(c.t, c.registryBackend().List(context.Background(), prefix, func(oi backend.ObjectInfo) error {
			keys = append(keys, oi.Key)
			return nil
		}))
	}
	sort.Strings(keys)
	return keys
}

var manifestDigit = regexp.MustCompile(`"manifest": "[0-9a-f]`)

// flipManifestDigit changes the first hex digit of the first manifest field.
func flipManifestDigit(d []byte) []byte {
	loc := manifestDigit.FindIndex(d)
	if loc == nil {
		return d
	}
	i := loc[1] - 1
	if d[i] == '0' {
		d[i] = '1'
	} else {
		d[i] = '0'
	}
	return d
}

func TestGCRefusesUnprovenRefs(t *testing.T) {
	c := newCLI(t)
	_, ckpts := writeRun(t, false)
	c.ok("push", ckpts[0], "run")
	c.ok("push", ckpts[1], "run")
	c.ok("verify", "--all", "--read-data")
	c.editObject("refs/run/v/20", flipManifestDigit)
	before := c.objectKeys()

	code, _, errs := c.run("gc", "--grace", "0")
	assert.Equal(t, 1, code, errs)
	assert.Contains(t, errs, "refs/run/v/20")
	assert.Contains(t, errs, "nothing was deleted")
	assert.Contains(t, errs, "ckpt verify --all")
	assert.Equal(t, before, c.objectKeys(), "gc deleted objects")

	code, out, errs := c.run("verify", "--all")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "PROBLEM refs/run/v/20: ")
	assert.Contains(t, out, "checksum mismatch")
	assert.Contains(t, errs, "refs/run/v/20")

	// Every other reader refuses it too, naming it.
	for _, args := range [][]string{{"ls"}, {"show", "run@20"}, {"show", "run@latest"}, {"pull", "run@20", filepath.Join(t.TempDir(), "out")}} {
		code, _, errs := c.run(args...)
		assert.Equal(t, 1, code, "%v", args)
		assert.Contains(t, errs, "refs/run/v/20", "%v", args)
	}

	// The remedy: remove the corrupt ref by its version; gc then runs.
	assert.Contains(t, c.ok("rm", "run@20"), "removed run@20")
	c.ok("gc", "--grace", "0")
	c.ok("verify", "--all", "--read-data")
}

func TestVerifyReadsRegistryNotCaches(t *testing.T) {
	c := newCLI(t)
	_, ckpts := writeRun(t, false)
	c.ok("push", ckpts[0], "run")
	c.ok("push", ckpts[1], "run", "--tag", "prod")
	c.ok("pull", "run@20", filepath.Join(t.TempDir(), "out"))
	c.ok("verify", "--all", "--read-data")
	var shown struct {
		Record struct {
			Manifest string `json:"manifest"`
		} `json:"record"`
	}
	require.NoError(t, json.Unmarshal([]byte(c.ok("show", "run@20", "--json")), &shown))
	mid, err := object.ParseID(shown.Record.Manifest)
	require.NoError(t, err)
	require.NoError(t, c.registryBackend().Delete(context.Background(), object.ManifestKey(mid)))

	for _, args := range [][]string{{"verify", "--all", "--read-data"}, {"verify", "--all"}, {"verify", "run@prod", "--read-data"}} {
		code, out, errs := c.run(args...)
		assert.Equal(t, 1, code, "%v", args)
		assert.Contains(t, out, "PROBLEM "+object.ManifestKey(mid), "%v", args)
		assert.Contains(t, out, "run@20", "%v", args)
		assert.Contains(t, errs, "verify found problems")
	}
	var rep struct {
		Problems []struct {
			Object string   `json:"object"`
			UsedBy []string `json:"used_by"`
		} `json:"problems"`
	}
	code, out, _ := c.run("verify", "--all", "--json")
	assert.Equal(t, 1, code)
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Len(t, rep.Problems, 1)
	assert.Equal(t, object.ManifestKey(mid), rep.Problems[0].Object)
	assert.Equal(t, []string{"run@20"}, rep.Problems[0].UsedBy)
}

func TestNameCollidingWithRefKindsRefused(t *testing.T) {
	c := newCLI(t)
	_, ckpts := writeRun(t, false)
	c.ok("push", ckpts[0], "x@1")
	code, _, errs := c.run("push", ckpts[1], "x/v/1")
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "reserved")
	assert.Contains(t, c.ok("show", "x@1"), "x@1")
	assert.True(t, strings.Contains(c.ok("verify", "--all", "--read-data"), "all intact"))
}
