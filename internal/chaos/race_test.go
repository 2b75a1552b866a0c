package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// TestPushDuringGCMark stages the gc-marker race (fixed) without any kill: a folder's
// manifest and blobs are in the registry but unreferenced (its ref was
// removed), a gc --grace 0s starts, and as soon as its run marker appears
// (it then marks, and deletes what nothing references) a push of that
// folder starts. Whatever the interleaving, the registry must verify
// afterwards: the push either re-uploads what the gc took or fails; it
// never publishes a ref to deleted data. Many version refs make the gc's
// mark phase long enough for the push to check its data inside it.
func TestPushDuringGCMark(t *testing.T) {
	data := makeDataset(t)
	for _, backend := range []string{"local", "minio"} {
		t.Run(backend, func(t *testing.T) {
			var reg *registry
			if backend == "minio" {
				reg = minioRegistry(t)
			} else {
				reg = localRegistry(t)
			}
			home := t.TempDir()
			run := func(cache string, args ...string) *proc {
				t.Helper()
				p, err := runOnce(ckptBin, baseEnv(home, cache, reg.env), append([]string{"--repo", reg.repo}, args...))
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			ok := func(cache string, args ...string) *proc {
				t.Helper()
				p := run(cache, args...)
				if p.exit != 0 {
					t.Fatalf("ckpt %s exited %d: %s", strings.Join(args, " "), p.exit, p.stderr.String())
				}
				return p
			}
			ok(t.TempDir(), "push", data.base, "gpt2@1", "--tag", "base")
			p := ok(t.TempDir(), "push", data.ft[0], "keep@1", "--base", "gpt2@base", "--json")
			var pushed struct {
				Record struct {
					Manifest string `json:"manifest"`
				} `json:"record"`
			}
			if err := json.Unmarshal(p.stdout.Bytes(), &pushed); err != nil {
				t.Fatal(err)
			}
			// 2000 more versions of keep: a long mark phase (old-style refs,
			// which readers keep accepting).
			ctx := context.Background()
			g, gctx := errgroup.WithContext(ctx)
			g.SetLimit(16)
			for i := 2; i <= 2000; i++ {
				g.Go(func() error {
					ref, _ := json.Marshal(map[string]any{"name": "keep", "version": fmt.Sprint(i), "manifest": pushed.Record.Manifest})
					return reg.put(gctx, fmt.Sprintf("refs/keep/v/%d", i), ref)
				})
			}
			if err := g.Wait(); err != nil {
				t.Fatal(err)
			}

			src := data.scratch[len(data.scratch)-1]
			for attempt := 1; attempt <= 3; attempt++ {
				// src's data is in the registry, and nothing references it.
				ok(t.TempDir(), "push", src, fmt.Sprintf("s@%d", 2*attempt-1), "--base", "gpt2@base")
				ok(t.TempDir(), "rm", fmt.Sprintf("s@%d", 2*attempt-1))
				markers := countKeys(t, reg, "gc/runs/")

				gc, err := startProc(ckptBin, baseEnv(home, t.TempDir(), reg.env), []string{"--repo", reg.repo, "gc", "--grace", "0s", "--json"}, 0)
				if err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(cmdTimeout)
				for countKeys(t, reg, "gc/runs/") == markers {
					select {
					case <-gc.done:
						t.Fatalf("gc ended before its run marker was seen: %s", gc.outcome())
					default:
					}
					if time.Now().After(deadline) {
						t.Fatal("no gc run marker appeared")
					}
				}
				ref := fmt.Sprintf("s@%d", 2*attempt)
				push := run(t.TempDir(), "push", src, ref, "--base", "gpt2@base", "--json")
				if err := gc.wait(deadline); err != nil {
					t.Fatal(err)
				}
				t.Logf("attempt %d: gc %s %s; push %s %s", attempt, gc.outcome(), strings.Join(strings.Fields(gc.stdout.String()), " "),
					push.outcome(), firstLine(push.stdout.String()))
				v := run(t.TempDir(), "verify", "--all", "--no-cache")
				if v.exit != 0 {
					t.Fatalf("attempt %d: a push that started while gc was marking (push %s) left a registry that does not verify:\n%s%s",
						attempt, push.outcome(), v.stdout.String(), v.stderr.String())
				}
				if push.exit == 0 {
					ok(t.TempDir(), "rm", ref)
				}
			}
		})
	}
}

// countKeys counts the registry's keys under prefix.
func countKeys(t *testing.T, reg *registry, prefix string) int {
	t.Helper()
	keys, _, err := reg.keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}
