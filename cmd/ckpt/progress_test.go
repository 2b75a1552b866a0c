package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is a clock the test moves by hand. Its ticker channel is
// unbuffered: a send returns once the poll goroutine has taken the tick.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	step  time.Duration // added after every Now
	ticks chan time.Time
	// polls records the period asked of Ticks.
	polls []time.Duration
}

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newFakeClock() *fakeClock { return &fakeClock{now: epoch, ticks: make(chan time.Time)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now
	c.now = c.now.Add(c.step)
	return now
}

func (c *fakeClock) Ticks(d time.Duration) (<-chan time.Time, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.polls = append(c.polls, d)
	return c.ticks, func() {}
}

// at sets the clock to epoch+d.
func (c *fakeClock) at(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = epoch.Add(d)
}

// tick delivers a tick at epoch+d to the poll goroutine.
func (c *fakeClock) tick(d time.Duration) { c.ticks <- epoch.Add(d) }

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

const mib = 1 << 20

func TestLineProgressSchedule(t *testing.T) {
	// Bytes arrive; the clock says when. Total 4 GiB = 4096 MiB.
	type step struct {
		at    time.Duration
		add   int64
		wantA string // the line this Add prints, "" for none
	}
	for _, tc := range []struct {
		name        string
		total       int64
		steps       []step
		finishAt    time.Duration
		wantSummary string // "" for none
	}{
		{
			name:  "short transfer prints nothing",
			total: 4096 * mib,
			steps: []step{
				{at: time.Second, add: 1000 * mib},
				{at: 4*time.Second + 999*time.Millisecond, add: 3096 * mib},
			},
			finishAt: 4*time.Second + 999*time.Millisecond,
		},
		{
			name:  "first line at 5s, then every 10s",
			total: 4096 * mib,
			steps: []step{
				{at: time.Second, add: 100 * mib},
				{at: 4 * time.Second, add: 300 * mib},
				// 500 MiB in 5 s: 100 MiB/s, 3596 MiB left: 35.96 s.
				{at: 5 * time.Second, add: 100 * mib, wantA: "ckpt: push 500.0 MiB / 4.0 GiB (12%), 100.0 MiB/s, ETA 36s"},
				{at: 6 * time.Second, add: 100 * mib},
				{at: 14*time.Second + 999*time.Millisecond, add: 100 * mib},
				// 1200 MiB in 15 s: 80 MiB/s, 2896 MiB left: 36.2 s.
				{at: 15 * time.Second, add: 500 * mib, wantA: "ckpt: push 1.2 GiB / 4.0 GiB (29%), 80.0 MiB/s, ETA 36s"},
				{at: 24 * time.Second, add: 0},
				// No bytes since: the rate falls, the ETA grows.
				{at: 25 * time.Second, add: 0, wantA: "ckpt: push 1.2 GiB / 4.0 GiB (29%), 48.0 MiB/s, ETA 1m0s"},
				// A late Add prints one line, not the ones it missed, and
				// keeps the 10 s cadence (next at 65 s).
				{at: 57 * time.Second, add: 2896 * mib, wantA: "ckpt: push 4.0 GiB / 4.0 GiB (100%), 71.9 MiB/s, ETA 0s"},
				{at: 64 * time.Second, add: 0},
			},
			finishAt:    64 * time.Second,
			wantSummary: "ckpt: push moved 4.0 GiB of 4.0 GiB (100%) in 1m4s, 64.0 MiB/s average",
		},
		{
			name:  "unknown total: no percent, no ETA",
			total: 0,
			steps: []step{
				{at: 5 * time.Second, add: 50 * mib, wantA: "ckpt: push 50.0 MiB, 10.0 MiB/s"},
			},
			finishAt:    7 * time.Second,
			wantSummary: "ckpt: push moved 50.0 MiB in 7s, 7.1 MiB/s average",
		},
		{
			name:  "nothing moved yet",
			total: 10 * mib,
			steps: []step{
				{at: 6 * time.Second, add: 0, wantA: "ckpt: push 0 B / 10.0 MiB (0%), 0 B/s, ETA unknown"},
			},
			finishAt:    8 * time.Second,
			wantSummary: "ckpt: push moved 0 B of 10.0 MiB (0%) in 8s, 0 B/s average",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			clk := newFakeClock()
			p := newLineProgress(&out, clk)
			p.Start("push", tc.total)
			for _, s := range tc.steps {
				clk.at(s.at)
				before := out.Len()
				p.Add(s.add)
				got := strings.TrimSuffix(out.String()[before:], "\n")
				assert.Equal(t, s.wantA, got, "Add at %s", s.at)
			}
			clk.at(tc.finishAt)
			before := out.Len()
			p.Finish()
			assert.Equal(t, tc.wantSummary, strings.TrimSuffix(out.String()[before:], "\n"), "Finish")
			assert.Equal(t, []time.Duration{time.Second}, clk.polls)
		})
	}
}

// TestLineProgressStall: with no bytes arriving, the poll ticker still
// prints the lines.
func TestLineProgressStall(t *testing.T) {
	var out bytes.Buffer
	clk := newFakeClock()
	p := newLineProgress(&out, clk)
	p.Start("pull", 100*mib)
	clk.at(time.Second)
	p.Add(20 * mib)
	for _, at := range []time.Duration{2, 3, 4, 5, 6, 14, 15, 16} {
		clk.tick(at * time.Second)
	}
	clk.at(17 * time.Second)
	p.Finish() // waits for the poll goroutine: every tick was handled
	assert.Equal(t, []string{
		"ckpt: pull 20.0 MiB / 100.0 MiB (20%), 4.0 MiB/s, ETA 20s",
		"ckpt: pull 20.0 MiB / 100.0 MiB (20%), 1.3 MiB/s, ETA 1m0s",
		"ckpt: pull moved 20.0 MiB of 100.0 MiB (20%) in 17s, 1.2 MiB/s average",
	}, lines(out.String()))

	// The next operation starts afresh: its own delay, its own summary.
	out.Reset()
	clk.at(100 * time.Second)
	p.Start("pull", 10*mib)
	clk.at(104 * time.Second)
	p.Add(10 * mib)
	p.Finish()
	assert.Empty(t, out.String())
}

func TestLineProgressFinishWithoutStart(t *testing.T) {
	var out bytes.Buffer
	p := newLineProgress(&out, newFakeClock())
	p.Add(1) // a stray Add prints nothing and does not block
	p.Finish()
	assert.Empty(t, out.String())
}

func TestLineProgressETA(t *testing.T) {
	for _, tc := range []struct {
		remaining int64
		rate      float64
		want      string
	}{
		{0, 10, "0s"},
		{-5, 10, "0s"},
		{10, 0, "unknown"},
		{100, 3, "33s"},
		{125 * mib, mib, "2m5s"},
		{1 << 50, 1, "over 100h"},
	} {
		assert.Equal(t, tc.want, eta(tc.remaining, tc.rate), "%d bytes at %v B/s", tc.remaining, tc.rate)
	}
}

func TestNewProgressChoice(t *testing.T) {
	notTerminal, err := os.Create(filepath.Join(t.TempDir(), "stderr.log"))
	require.NoError(t, err)
	defer notTerminal.Close()
	var stderr bytes.Buffer

	assert.Nil(t, newProgress(true, notTerminal, &stderr, newFakeClock()), "--quiet")
	assert.Nil(t, newProgress(false, nil, &stderr, newFakeClock()), "stderr not the process's own")
	p := newProgress(false, notTerminal, &stderr, newFakeClock())
	require.IsType(t, &lineProgress{}, p, "stderr not a terminal")
	assert.Same(t, &stderr, p.(*lineProgress).out.(*bytes.Buffer), "lines go to stderr")
}

// TestProgressLinesEndToEnd runs push the way main does with stderr
// redirected to a file: progress lines go to stderr, stdout holds only the
// JSON document, and --quiet prints none.
func TestProgressLinesEndToEnd(t *testing.T) {
	c := newCLI(t)
	_, ckpts := writeRun(t, false)
	clk := newFakeClock()
	clk.step = 6 * time.Second // every look at the clock is 6 s later
	saved := progressClock
	progressClock = clk
	t.Cleanup(func() { progressClock = saved })

	run := func(args ...string) (string, string) {
		t.Helper()
		redirected, err := os.Create(filepath.Join(t.TempDir(), "stderr.log"))
		require.NoError(t, err)
		defer redirected.Close()
		var stdout, stderr bytes.Buffer
		a := newApp()
		a.stdout, a.stderr, a.progressTo = &stdout, &stderr, redirected
		root := a.rootCommand()
		root.SetArgs(append([]string{"--repo", c.repo}, args...))
		err = root.ExecuteContext(context.Background())
		a.close()
		require.NoError(t, err, "ckpt %v: %s", args, stderr.String())
		return stdout.String(), stderr.String()
	}

	stdout, stderr := run("push", ckpts[0], "run@1", "--json")
	var pushed map[string]any
	require.NoError(t, json.Unmarshal([]byte(stdout), &pushed), "stdout is one JSON document: %q", stdout)
	assert.NotContains(t, stdout, "ckpt:")
	got := lines(stderr)
	require.GreaterOrEqual(t, len(got), 2, "a progress line and the summary: %q", stderr)
	assert.Regexp(t, `^ckpt: push [0-9.]+ [KMG]?i?B / [0-9.]+ [KMG]?i?B \([0-9]+%\), [0-9.]+ [KMG]?i?B/s, ETA `, got[0])
	assert.Regexp(t, `^ckpt: push moved [0-9.]+ [KMG]?i?B of [0-9.]+ [KMG]?i?B \(100%\) in [0-9hms]+, [0-9.]+ [KMG]?i?B/s average$`, got[len(got)-1])

	stdout, stderr = run("pull", "run@1", filepath.Join(t.TempDir(), "out"), "--full")
	assert.NotContains(t, stdout, "ckpt: pull")
	assert.Contains(t, stderr, "ckpt: pull moved ")

	stdout, stderr = run("--quiet", "pull", "run@1", filepath.Join(t.TempDir(), "out"), "--full")
	assert.Empty(t, stdout)
	assert.Empty(t, stderr, "--quiet")
}
