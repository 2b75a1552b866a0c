// Command realbench pushes real training output into a fresh local
// registry, run after run and checkpoint after checkpoint in step order, and
// reports what each push stored (issue 12: storage-aligned chunking of
// torch.save and GGUF files). It is a measurement, not a test: `make
// bench-real` runs it on the family ../shared/train/train.py wrote.
//
//	go run ./internal/realbench -data /work/data/family -runs frozen,ft32
//
// For every checkpoint it prints the bytes of new blobs the push stored,
// those of the weights file (pytorch_model.bin or model.safetensors) and of
// optimizer.pt, and, for torch.save weights, the coded size of the
// storages that changed since the previous checkpoint (each coded alone
// with the byte-plane codec, as a perfect storage-aligned chunker would
// store them): "new/changed" is the weights' new bytes over that. Then,
// per run and file role, stored/raw over all its checkpoints and for its
// first checkpoint alone. Stored bytes are the registry's blob objects
// (envelope included), each counted once, for the first file that needed
// it.
//
// With -peers (`make bench-family`) it then measures the same checkpoints
// and the same retention with restic (restic.go: one repository, forget
// and prune) and an estimate of ZipLLM's scheme (zipllm.go: tensor dedupe
// across the family plus XOR against the base), and prints the peers
// table; with -deltas it runs ckpt without and then with deltas first.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/retention"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/backend/local"
	"github.com/ckptdev/ckpt/store/object"
)

func main() {
	data := flag.String("data", "/work/data/family", "folder with one folder of checkpoint-N folders per run")
	runs := flag.String("runs", "frozen,ft32", "runs to push, comma-separated, in order")
	reg := flag.String("registry", "", "registry folder (default: a temporary one, removed at the end)")
	workers := flag.Int("workers", 2, "push workers")
	var o options
	flag.StringVar(&o.base, "base", "", "RUN@STEP every other run is pushed with as its --base (e.g. pre@600), pushed first")
	flag.BoolVar(&o.deltas, "deltas", false, "push with delta-coded chunks (push --deltas)")
	flag.BoolVar(&o.retain, "retain", false, "then keep the best (eval_loss) plus the last 2 of every run, gc, and report what is left")
	flag.BoolVar(&o.peers, "peers", false, "also measure restic and a ZipLLM estimate and print the peers table (implies -retain; with -deltas, ckpt is run without and then with deltas)")
	flag.StringVar(&o.restic, "restic", "restic", "the restic binary -peers runs (missing: the restic column is skipped)")
	flag.Parse()
	if err := bench(*data, strings.Split(*runs, ","), *reg, *workers, o); err != nil {
		fmt.Fprintln(os.Stderr, "realbench:", err)
		os.Exit(1)
	}
}

// bench runs the ckpt bench (twice, without and with deltas, for -peers
// -deltas) and then the peers.
func bench(data string, runs []string, regDir string, workers int, o options) error {
	if !o.peers {
		_, err := run(data, runs, regDir, workers, o)
		return err
	}
	o.retain = true
	modes := []bool{false}
	if o.deltas {
		modes = append(modes, true)
	}
	var results []benchResult
	for i, deltas := range modes {
		mo := o
		mo.deltas = deltas
		dir := regDir
		if dir != "" && len(modes) > 1 {
			dir = filepath.Join(regDir, fmt.Sprintf("deltas-%v", deltas))
		}
		if i > 0 {
			fmt.Println()
		}
		res, err := run(data, runs, dir, workers, mo)
		if err != nil {
			return err
		}
		results = append(results, res)
	}
	return benchPeers(context.Background(), results, o)
}

// options are the family bench's switches.
type options struct {
	base   string // RUN@STEP the other runs name as their base
	deltas bool
	retain bool
	peers  bool
	restic string // the restic binary
}

// pushed is one checkpoint folder the bench pushed.
type pushed struct {
	run, version string
	dir          string
}

// benchResult is what one ckpt bench run measured, for the peers table.
type benchResult struct {
	deltas bool
	base   string // RUN@STEP
	// pushes are the checkpoints in push order.
	pushes []pushed
	// before and after are the family's raw and stored bytes by file role
	// after all pushes and after retention and gc (blobs held only as
	// references of deltas counted for the role that first stored them).
	before, after map[string]*tally
	// removed are the versions retention removed, by run.
	removed map[string][]string
}

// tally is raw and stored bytes.
type tally struct{ raw, stored int64 }

func (t tally) ratio() string {
	if t.raw == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", float64(t.stored)/float64(t.raw))
}

func run(data string, runs []string, regDir string, workers int, o options) (benchResult, error) {
	ctx := context.Background()
	res := benchResult{deltas: o.deltas, base: o.base, before: map[string]*tally{}}
	if regDir == "" {
		tmp, err := os.MkdirTemp("", "realbench-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(tmp)
		regDir = filepath.Join(tmp, "registry")
	}
	b, err := local.New(regDir)
	if err != nil {
		return res, err
	}
	r, _, err := store.Init(ctx, b, store.Options{Workers: workers, Deltas: o.deltas})
	if err != nil {
		return res, err
	}
	seen, err := blobSizes(ctx, b)
	if err != nil {
		return res, err
	}
	// roleOf is the role of the first file that stored each blob.
	roleOf := map[string]string{}
	baseRun, baseStep, _ := strings.Cut(o.base, "@")
	if baseRun != "" && !slices.Contains(runs, baseRun) {
		runs = append([]string{baseRun}, runs...)
	}
	fmt.Printf("deltas %v, base %q\n", o.deltas, o.base)
	for _, name := range runs {
		ckpts, err := checkpoints(filepath.Join(data, name))
		if err != nil {
			return res, err
		}
		if name == baseRun && baseStep != "" {
			// The base run only up to the base checkpoint.
			step, err := strconv.ParseInt(baseStep, 10, 64)
			if err != nil {
				return res, fmt.Errorf("-base %s: %w", o.base, err)
			}
			ckpts = slices.DeleteFunc(ckpts, func(c checkpoint) bool { return c.step > step })
		}
		pushBase := ""
		if baseRun != "" && name != baseRun {
			pushBase = o.base
		}
		fmt.Printf("\nrun %s (%d checkpoints)\n", name, len(ckpts))
		fmt.Printf("%-16s %12s %12s %12s %12s %12s %11s\n", "checkpoint", "raw", "new stored", "new weights", "changed", "new optim", "new/changed")
		roles := map[string]*tally{}
		first := map[string]*tally{}
		var prev map[string][32]byte
		for i, ck := range ckpts {
			version := strconv.FormatInt(ck.step, 10)
			pr, err := r.Push(ctx, ck.dir, store.PushOptions{Name: name, Version: version, Base: pushBase})
			if err != nil {
				return res, fmt.Errorf("push %s: %w", ck.dir, err)
			}
			res.pushes = append(res.pushes, pushed{run: name, version: version, dir: ck.dir})
			m, err := r.Manifest(ctx, pr.Record.Manifest)
			if err != nil {
				return res, err
			}
			now, err := blobSizes(ctx, b)
			if err != nil {
				return res, err
			}
			perFile := map[string]int64{}
			var total int64
			for _, f := range m.Files {
				role := f.Role
				if strings.HasSuffix(f.Path, "optimizer.pt") {
					role = "optimizer"
				}
				t := roles[role]
				if t == nil {
					t = &tally{}
					roles[role] = t
				}
				t.raw += f.Size
				fam := res.before[role]
				if fam == nil {
					fam = &tally{}
					res.before[role] = fam
				}
				fam.raw += f.Size
				var stored int64
				for _, c := range f.Chunks {
					key := object.BlobKey(c.ID)
					if _, old := seen[key]; old {
						continue
					}
					seen[key] = now[key]
					roleOf[key] = role
					stored += now[key]
				}
				t.stored += stored
				fam.stored += stored
				perFile[f.Path] = stored
				total += stored
				if i == 0 {
					ft := first[role]
					if ft == nil {
						ft = &tally{}
						first[role] = ft
					}
					ft.raw += f.Size
					ft.stored += stored
				}
			}
			weights := perFile["pytorch_model.bin"] + perFile["model.safetensors"]
			changed, cur, err := changedStorages(filepath.Join(ck.dir, "pytorch_model.bin"), prev)
			if err != nil {
				return res, err
			}
			prev = cur
			ratio := "-"
			if changed > 0 && i > 0 {
				ratio = fmt.Sprintf("%.3f", float64(weights)/float64(changed))
			}
			fmt.Printf("%-16s %12d %12d %12d %12d %12d %11s\n", filepath.Base(ck.dir), pr.Logical, total, weights, changed, perFile["optimizer.pt"], ratio)
		}
		fmt.Printf("stored/raw by role (all %d checkpoints; first checkpoint alone)\n", len(ckpts))
		var names []string
		for role := range roles {
			names = append(names, role)
		}
		sort.Strings(names)
		for _, role := range names {
			fmt.Printf("  %-14s raw %12d stored %12d  %s   first: %s\n", role, roles[role].raw, roles[role].stored, roles[role].ratio(), first[role].ratio())
		}
	}
	if o.retain {
		res.after, res.removed, err = retainAndReport(ctx, r, b, runs, roleOf)
	}
	return res, err
}

// retainAndReport keeps the best by eval_loss plus the last 2 checkpoints
// of every run, collects garbage, and prints stored/raw per run and role
// over what is left: every blob the kept manifests reach counted once, for
// the first file that needs it, and the blobs kept only as references of
// deltas on a line of their own. It returns the family's raw and stored
// bytes by role over what is left (blobs held only as references of deltas
// counted for the role roleOf gives them) and the versions retention
// removed, by run.
func retainAndReport(ctx context.Context, r *store.Registry, b backend.Backend, runs []string, roleOf map[string]string) (map[string]*tally, map[string][]string, error) {
	removed := map[string][]string{}
	for _, name := range runs {
		plan, err := r.RetentionPlan(ctx, name, retention.Policy{KeepLast: 2, KeepBest: 1})
		if err != nil {
			return nil, nil, err
		}
		gone, err := r.ApplyPlan(ctx, name, plan)
		if err != nil {
			return nil, nil, err
		}
		removed[name] = gone
	}
	gc, err := r.GC(ctx, store.GCOptions{NoGrace: true})
	if err != nil {
		return nil, nil, err
	}
	sizes, err := blobSizes(ctx, b)
	if err != nil {
		return nil, nil, err
	}
	fmt.Printf("\nafter best + last 2 per run and gc (%d blobs deleted)\n", gc.DeletedBlobs)
	reached := map[string]bool{}
	all := map[string]*tally{}
	for _, name := range runs {
		c, err := r.Catalog(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		roles := map[string]*tally{}
		var kept []string
		for _, rec := range c.Records[name] {
			kept = append(kept, rec.Version)
			m, err := r.Manifest(ctx, rec.Manifest)
			if err != nil {
				return nil, nil, err
			}
			for _, f := range m.Files {
				role := f.Role
				if strings.HasSuffix(f.Path, "optimizer.pt") {
					role = "optimizer"
				}
				for _, t := range []map[string]*tally{roles, all} {
					if t[role] == nil {
						t[role] = &tally{}
					}
				}
				roles[role].raw += f.Size
				all[role].raw += f.Size
				for _, ch := range f.Chunks {
					key := object.BlobKey(ch.ID)
					if reached[key] {
						continue
					}
					reached[key] = true
					roles[role].stored += sizes[key]
					all[role].stored += sizes[key]
				}
			}
		}
		fmt.Printf("run %s keeps %s\n", name, strings.Join(kept, ", "))
		printRoles(roles)
	}
	fmt.Println("whole family")
	printRoles(all)
	var refsOnly tally
	for key, size := range sizes {
		if !reached[key] {
			refsOnly.stored += size
			refsOnly.raw++
			role := roleOf[key]
			if all[role] == nil {
				all[role] = &tally{}
			}
			all[role].stored += size
		}
	}
	fmt.Printf("  %-14s %d blobs, %d bytes held only as references of deltas\n", "delta refs", refsOnly.raw, refsOnly.stored)
	return all, removed, nil
}

func printRoles(roles map[string]*tally) {
	names := make([]string, 0, len(roles))
	for role := range roles {
		names = append(names, role)
	}
	sort.Strings(names)
	for _, role := range names {
		fmt.Printf("  %-14s raw %12d stored %12d  %s\n", role, roles[role].raw, roles[role].stored, roles[role].ratio())
	}
}

type checkpoint struct {
	dir  string
	step int64
}

// checkpoints lists the checkpoint-N folders of a run in step order.
func checkpoints(dir string) ([]checkpoint, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []checkpoint
	for _, e := range entries {
		n, ok := strings.CutPrefix(e.Name(), "checkpoint-")
		if !e.IsDir() || !ok {
			continue
		}
		step, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			continue
		}
		out = append(out, checkpoint{filepath.Join(dir, e.Name()), step})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].step < out[j].step })
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no checkpoint-N folders", dir)
	}
	return out, nil
}

// blobSizes lists the registry's blobs and their stored sizes.
func blobSizes(ctx context.Context, b backend.Backend) (map[string]int64, error) {
	out := map[string]int64{}
	err := b.List(ctx, "blobs/", func(oi backend.ObjectInfo) error {
		out[oi.Key] = oi.Size
		return nil
	})
	return out, err
}

// changedStorages reads the torch.save zip at p (none: 0) and returns the
// byte-plane coded size of its storages whose bytes differ from prev's
// storage of the same key (all of them when prev is nil), each coded alone
// in pieces of MaxChunkSize, and the hashes of its storages by key.
func changedStorages(p string, prev map[string][32]byte) (int64, map[string][32]byte, error) {
	data, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	tz, err := layout.ParseTorchZip(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", p, err)
	}
	cur := map[string][32]byte{}
	var coded int64
	for _, s := range tz.Storages {
		bs := data[s.DataOffset : s.DataOffset+s.Size]
		h := sha256.Sum256(bs)
		cur[s.Key] = h
		if old, ok := prev[s.Key]; ok && old == h {
			continue
		}
		elem := s.ElemSize
		if elem == 0 {
			elem = 4
		}
		for off := 0; off < len(bs); off += object.MaxChunkSize {
			piece := bs[off:min(len(bs), off+object.MaxChunkSize)]
			coded += int64(len(object.Encode(nil, piece, object.EncodeHint{ElemSize: elem})))
		}
	}
	return coded, cur, nil
}
