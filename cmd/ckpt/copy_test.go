package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/miniotest"
	"github.com/ckptdev/ckpt/internal/testutil"
)

// copyDestinations are the destinations ckpt copy is tested with from a
// local registry, and back: a second folder, and a MinIO bucket.
func copyDestinations(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"local": func(t *testing.T) string { return filepath.Join(t.TempDir(), "second") },
		"minio": func(t *testing.T) string {
			srv := miniotest.Start(t)
			t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
			t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
			t.Setenv("AWS_REGION", miniotest.Region)
			t.Setenv("CKPT_S3_ENDPOINT", srv.Endpoint)
			return "s3://" + srv.NewBucket(t) + "/second"
		},
	}
}

func TestCopyCommand(t *testing.T) {
	for name, dest := range copyDestinations(t) {
		t.Run(name, func(t *testing.T) {
			c := newCLI(t)
			base, ckpts := writeRun(t, true)
			c.ok("push", base, "gpt2@1")
			for _, ck := range ckpts {
				c.ok("push", ck, "run", "--base", "gpt2@1")
			}
			c.ok("tag", "run@20", "prod")
			to := dest(t)

			out := c.ok("copy", "run@prod", "--to", to, "--tags")
			assert.Contains(t, out, "copied   gpt2@1  (base)")
			assert.Contains(t, out, "copied   run@20")
			assert.Contains(t, out, "tag run:prod -> 20")

			// The destination serves the checkpoint, its base and tag.
			second := &cli{t: t, repo: to}
			var shown showOutput
			require.NoError(t, json.Unmarshal([]byte(second.ok("show", "run@prod", "--json")), &shown))
			assert.Equal(t, "20", shown.Record.Version)
			require.NotNil(t, shown.Record.Base)
			assert.Equal(t, "gpt2", shown.Record.Base.Name)
			pulled := filepath.Join(t.TempDir(), "pulled")
			second.ok("pull", "run@prod", pulled)
			want := filepath.Join(t.TempDir(), "want")
			c.ok("pull", "run@prod", want)
			assert.Equal(t, testutil.ReadTree(t, want), testutil.ReadTree(t, pulled))

			// Again: nothing to transfer. Every version: only the others.
			var again copyOutput
			require.NoError(t, json.Unmarshal([]byte(c.ok("copy", "run@20", "--to", to, "--json")), &again))
			assert.Zero(t, again.CopiedBlobs+again.CopiedManifests)
			var all copyOutput
			require.NoError(t, json.Unmarshal([]byte(c.ok("copy", "run", "--all-versions", "--to", to, "--json")), &all))
			assert.Len(t, all.Versions, len(ckpts)+1)
			assert.Positive(t, all.PresentObjects)
			second.ok("verify", "--all", "--read-data")

			// And back, into a third registry, from the destination.
			third := filepath.Join(t.TempDir(), "third")
			second.ok("copy", "run", "--all-versions", "--tags", "--to", third)
			(&cli{t: t, repo: third}).ok("verify", "--all", "--read-data")

			// A conflict is named, exits 1 and replaces nothing.
			other := &cli{t: t, repo: filepath.Join(t.TempDir(), "other")}
			other.ok("push", ckpts[0], "run@20")
			code, out, errs := c.run("copy", "run@20", "--to", other.repo, "--json")
			assert.Equal(t, 1, code, errs)
			var conflict copyOutput
			require.NoError(t, json.Unmarshal([]byte(out), &conflict))
			require.Len(t, conflict.Versions, 1, "nothing of a conflicting checkpoint is copied, not even its base")
			assert.Equal(t, "failed", conflict.Versions[0].Status)
			require.NotNil(t, conflict.Versions[0].Error)
			assert.Contains(t, *conflict.Versions[0].Error, "run@20")
			assert.Contains(t, errs, "run@20")
		})
	}
}

func TestCopyCommandUsage(t *testing.T) {
	c := newCLI(t)
	base, _ := writeRun(t, true)
	c.ok("push", base, "gpt2@1")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"copy", "gpt2@1"}, "--to"},
		{[]string{"copy", "--to", "x"}, "at least one"},
		{[]string{"copy", "gpt2@1", "--all-versions", "--to", "x"}, "NAMEs"},
		{[]string{"copy", "gpt2", "--to", "x"}, "gpt2"},
		{[]string{"copy", "gpt2@1", "--to", c.repo}, "is the registry copied from"},
	} {
		code, _, errs := c.run(tc.args...)
		assert.Equal(t, 2, code, "%v: %s", tc.args, errs)
		assert.Contains(t, errs, tc.want, tc.args)
	}
}

// TestCopyProgressLines: with stderr redirected to a file (CI logs, cron),
// a copy prints plain progress lines of the bytes it moves on stderr, and
// stdout holds only the JSON document.
func TestCopyProgressLines(t *testing.T) {
	c := newCLI(t)
	_, ckpts := writeRun(t, false)
	c.ok("push", ckpts[0], "run@1")
	clk := newFakeClock()
	clk.step = 6 * time.Second // every look at the clock is 6 s later
	saved := progressClock
	progressClock = clk
	t.Cleanup(func() { progressClock = saved })

	redirected, err := os.Create(filepath.Join(t.TempDir(), "stderr.log"))
	require.NoError(t, err)
	defer redirected.Close()
	var stdout, stderr bytes.Buffer
	a := newApp()
	a.stdout, a.stderr, a.progressTo = &stdout, &stderr, redirected
	root := a.rootCommand()
	root.SetArgs([]string{"--repo", c.repo, "copy", "run@1", "--to", filepath.Join(t.TempDir(), "second"), "--json"})
	err = root.ExecuteContext(context.Background())
	a.close()
	require.NoError(t, err, stderr.String())

	var out copyOutput
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &out), "stdout is one JSON document: %q", stdout.String())
	got := lines(stderr.String())
	require.GreaterOrEqual(t, len(got), 2, "a progress line and the summary: %q", stderr.String())
	assert.Regexp(t, `^ckpt: copy [0-9.]+ [KMG]?i?B / [0-9.]+ [KMG]?i?B \([0-9]+%\), [0-9.]+ [KMG]?i?B/s, ETA `, got[0])
	assert.Regexp(t, `^ckpt: copy moved [0-9.]+ [KMG]?i?B of [0-9.]+ [KMG]?i?B \(100%\) in `, got[len(got)-1])
}
