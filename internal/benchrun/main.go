// Command benchrun is `make bench`: it measures ckpt against the tools a
// user would otherwise run, on one MinIO server and one generated folder, in
// one run, and prints medians as ratios (machines here are shared and
// noisy, so only ratios within a run mean much), as a table and as JSON.
// Every timed command starts after a sync, so that none is charged for
// writing back what an earlier one left in the page cache (ckpt pull
// fsyncs its files before it renames them into place, rclone does not: both
// waited for MinIO's writes of the pushes before them, only one of them
// showed it).
//
//	push            ckpt push (fresh registry)           / rclone copy to the bucket
//	pull            ckpt pull (cold caches)              / rclone copy back
//	repush          unchanged re-push, seconds per GiB of folder
//	stored          ckpt stored bytes / restic (repo v2, default compression), and / raw
//	pull --link     after a plain pull (one content cache) / cp -r
//	peak RSS        of ckpt push and pull
//
// The delta case (-deltas, on by default) pushes the bench folder (bf16)
// and an fp32 folder of the same size as bench@1, then the next checkpoint
// of each (the same tensors drifted a little, driftFolder) with --deltas
// as bench@2, from the same machine (one per-machine cache):
//
//	delta push            ckpt push --deltas of the next checkpoint / rclone copy of it
//	delta pull            ckpt pull of it (cold caches)             / rclone copy back
//	delta pull, warm      the same after a pull of bench@1           / rclone copy back
//	delta stored          new stored bytes of bench@2 / its raw bytes
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ckptdev/ckpt/internal/miniotest"
	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/layout"
)

var (
	profileDir            string
	deltaCase, onlyDeltas bool
)

// profileEnv asks ckpt for a CPU profile of this run, when profiling.
func profileEnv(name string, i int) []string {
	if profileDir == "" || i > 0 {
		return nil
	}
	os.MkdirAll(profileDir, 0o755)
	p, _ := filepath.Abs(filepath.Join(profileDir, name+".pprof"))
	return []string{"CKPT_CPUPROFILE=" + p}
}

type bench struct {
	ckpt    string
	work    string
	folder  string
	srv     *miniotest.Server
	bucket  string
	env     []string // the clean environment every tool runs with
	runs    int
	results map[string]any
}

func main() {
	ckpt := flag.String("ckpt", "bin/ckpt", "the ckpt binary")
	folder := flag.String("folder", "", "the folder to measure (generated 1 GiB bf16 model by default)")
	runs := flag.Int("runs", 3, "runs per measurement (medians are reported)")
	size := flag.String("size", "1GiB", "size of the generated weights")
	out := flag.String("json", ".bench/results.json", "where to write the JSON results")
	flag.StringVar(&profileDir, "profile", "", "write CPU profiles of the first ckpt push and pull into this folder")
	flag.BoolVar(&deltaCase, "deltas", true, "also measure the next checkpoint pushed with --deltas and pulled back (bf16 and fp32)")
	flag.BoolVar(&onlyDeltas, "only-deltas", false, "measure the delta case alone")
	nextOf := flag.String("next-of", "", "only write the next checkpoint of this model folder (the delta case's drift) to -next-out, and exit")
	nextOut := flag.String("next-out", "", "where -next-of writes")
	flag.Parse()
	if *nextOf != "" {
		if err := driftFolder(*nextOf, *nextOut, 7); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*ckpt, *folder, *size, *runs, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ckpt, folder, size string, runs int, out string) error {
	for _, tool := range []string{"rclone", "restic", "cp"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (make bench installs it with apt-get)", tool)
		}
	}
	abs, err := filepath.Abs(ckpt)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "ckpt-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	srv, err := miniotest.StartServer()
	if err != nil {
		return err
	}
	defer srv.Close()
	b := &bench{ckpt: abs, work: work, folder: folder, srv: srv, runs: runs, results: map[string]any{}}
	b.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(work, "home"),
		"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey, "AWS_REGION=" + miniotest.Region,
		"CKPT_S3_ENDPOINT=" + srv.Endpoint,
		"RCLONE_CONFIG_BENCH_TYPE=s3", "RCLONE_CONFIG_BENCH_PROVIDER=Minio", "RCLONE_CONFIG_BENCH_ENDPOINT=" + srv.Endpoint,
		"RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=" + srv.AccessKey, "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=" + srv.SecretKey,
		"RCLONE_CONFIG_BENCH_REGION=" + miniotest.Region, "RESTIC_PASSWORD=bench"}
	if b.folder == "" {
		b.folder = filepath.Join(work, "gen")
		if _, err := b.cmd("go", "run", "./internal/synth/cmd/ckpt-synth", "-out", b.folder, "-preset", "bench", "-size", size, "-tokenizer", "testdata/gpt2"); err != nil {
			return err
		}
		b.folder = filepath.Join(b.folder, "bench")
	}
	b.bucket = createBucket(srv)
	raw := dirSize(b.folder)
	b.results["folder_bytes"] = raw
	fmt.Printf("folder %s: %.2f GiB\n", b.folder, float64(raw)/(1<<30))

	if !onlyDeltas {
		if err := b.measure(raw); err != nil {
			return err
		}
	}
	if deltaCase || onlyDeltas {
		if err := b.measureDeltas(size); err != nil {
			return err
		}
	}
	b.print()
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	data, _ := json.MarshalIndent(b.results, "", "  ")
	fmt.Println(string(data))
	return os.WriteFile(out, data, 0o644)
}

func createBucket(srv *miniotest.Server) string {
	c, err := srv.Client()
	if err != nil {
		panic(err)
	}
	name := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	if err := c.MakeBucket(context.Background(), name, minioMakeBucketOptions()); err != nil {
		panic(err)
	}
	return name
}

// timing is one command's wall time and peak RSS.
type timing struct {
	wall time.Duration
	rss  int64 // bytes
}

func (b *bench) cmd(name string, args ...string) (timing, error) {
	return b.cmdEnv(nil, name, args...)
}

func (b *bench) cmdEnv(extra []string, name string, args ...string) (timing, error) {
	var out strings.Builder
	t, err := b.run(extra, &out, &out, name, args...)
	if err != nil {
		return t, fmt.Errorf("%w\n%s", err, out.String())
	}
	return t, nil
}

// run runs a command with the bench's environment (plus extra; the go tool
// gets this process's), timed, with its peak RSS.
func (b *bench) run(extra []string, stdout, stderr io.Writer, name string, args ...string) (timing, error) {
	c := exec.Command(name, args...)
	c.Env = append(slices.Clone(b.env), extra...)
	if name == "go" {
		c.Env = os.Environ()
	}
	c.Stdout, c.Stderr = stdout, stderr
	syncDisks()
	start := time.Now()
	err := c.Run()
	t := timing{wall: time.Since(start)}
	if c.ProcessState != nil {
		t.rss = peakRSS(c.ProcessState)
	}
	if err != nil {
		return t, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return t, nil
}

func median(ts []timing) timing {
	ws := make([]time.Duration, len(ts))
	var rss int64
	for i, t := range ts {
		ws[i] = t.wall
		rss = max(rss, t.rss)
	}
	slices.Sort(ws)
	return timing{wall: ws[len(ws)/2], rss: rss}
}

func (b *bench) measure(raw int64) error {
	var ckptPush, rclonePush, ckptPull, ckptPullNoCache, rclonePull, repush, link, cpr []timing
	var stored int64
	for i := range b.runs {
		fmt.Printf("run %d/%d\n", i+1, b.runs)
		repo := fmt.Sprintf("s3://%s/ckpt-%d", b.bucket, i)
		cache := []string{"XDG_CACHE_HOME=" + filepath.Join(b.work, fmt.Sprint("cache-", i))}
		t, err := b.cmdEnv(append(cache, profileEnv("push", i)...), b.ckpt, "--repo", repo, "--quiet", "push", b.folder, "bench@1")
		if err != nil {
			return err
		}
		ckptPush = append(ckptPush, t)
		// The stat cache only trusts files older than its racy window.
		t, err = b.cmdEnv(cache, b.ckpt, "--repo", repo, "--quiet", "push", b.folder, "bench@1")
		if err != nil {
			return err
		}
		repush = append(repush, t)

		t, err = b.cmd("rclone", "copy", b.folder, fmt.Sprintf("bench:%s/rclone-%d", b.bucket, i))
		if err != nil {
			return err
		}
		rclonePush = append(rclonePush, t)

		coldCache := []string{"XDG_CACHE_HOME=" + filepath.Join(b.work, fmt.Sprint("pullcache-", i))}
		t, err = b.cmdEnv(append(coldCache, profileEnv("pull", i)...), b.ckpt, "--repo", repo, "--quiet", "pull", "bench@1", filepath.Join(b.work, fmt.Sprint("pull-", i)))
		if err != nil {
			return err
		}
		ckptPull = append(ckptPull, t)
		t, err = b.cmdEnv(coldCache, b.ckpt, "--repo", repo, "--quiet", "--cache-size", "0", "pull", "bench@1", filepath.Join(b.work, fmt.Sprint("pull-nc-", i)))
		if err != nil {
			return err
		}
		ckptPullNoCache = append(ckptPullNoCache, t)
		t, err = b.cmd("rclone", "copy", fmt.Sprintf("bench:%s/rclone-%d", b.bucket, i), filepath.Join(b.work, fmt.Sprint("rclone-pull-", i)))
		if err != nil {
			return err
		}
		rclonePull = append(rclonePull, t)

		// pull --link of the model pulled plainly just before (pull-i, kept
		// meanwhile): the plain pull fed the content cache.
		t, err = b.cmdEnv(coldCache, b.ckpt, "--repo", repo, "--quiet", "pull", "--link", "bench@1", filepath.Join(b.work, fmt.Sprint("link-", i)))
		if err != nil {
			return err
		}
		link = append(link, t)
		t, err = b.cmd("cp", "-r", b.folder, filepath.Join(b.work, fmt.Sprint("cp-", i)))
		if err != nil {
			return err
		}
		cpr = append(cpr, t)
		for _, d := range []string{"pull-", "pull-nc-", "rclone-pull-", "link-", "cp-"} {
			os.RemoveAll(filepath.Join(b.work, fmt.Sprint(d, i)))
		}
		if i == 0 {
			var du struct {
				Stored int64 `json:"stored_bytes"`
			}
			c := exec.Command(b.ckpt, "--repo", repo, "du", "--json")
			c.Env = append(slices.Clone(b.env), cache...)
			outData, err := c.Output()
			if err != nil {
				return fmt.Errorf("ckpt du: %w", err)
			}
			if err := json.Unmarshal(outData, &du); err != nil {
				return err
			}
			stored = du.Stored
		}
	}
	resticRepo := filepath.Join(b.work, "restic")
	if _, err := b.cmd("restic", "init", "--repository-version", "2", "--repo", resticRepo); err != nil {
		return err
	}
	if _, err := b.cmd("restic", "backup", "--repo", resticRepo, b.folder); err != nil {
		return err
	}
	resticBytes := dirSize(resticRepo)

	mp, rp := median(ckptPush), median(rclonePush)
	ml, rl := median(ckptPull), median(rclonePull)
	rep, lk, cp := median(repush), median(link), median(cpr)
	gib := float64(raw) / (1 << 30)
	b.results["push_ratio_vs_rclone"] = mp.wall.Seconds() / rp.wall.Seconds()
	b.results["pull_ratio_vs_rclone"] = ml.wall.Seconds() / rl.wall.Seconds()
	b.results["pull_without_cache_ratio_vs_rclone"] = median(ckptPullNoCache).wall.Seconds() / rl.wall.Seconds()
	b.results["repush_seconds_per_gib"] = rep.wall.Seconds() / gib
	b.results["stored_ratio_vs_restic"] = float64(stored) / float64(resticBytes)
	b.results["stored_ratio_vs_raw"] = float64(stored) / float64(raw)
	b.results["pull_link_ratio_vs_cp"] = lk.wall.Seconds() / cp.wall.Seconds()
	b.results["push_peak_rss_mib"] = float64(mp.rss) / (1 << 20)
	b.results["pull_peak_rss_mib"] = float64(ml.rss) / (1 << 20)
	b.results["runs"] = b.runs
	b.results["seconds"] = map[string]float64{
		"ckpt_push": mp.wall.Seconds(), "rclone_push": rp.wall.Seconds(), "ckpt_pull": ml.wall.Seconds(),
		"rclone_pull": rl.wall.Seconds(), "ckpt_repush": rep.wall.Seconds(), "ckpt_pull_link": lk.wall.Seconds(), "cp_r": cp.wall.Seconds(),
	}
	b.results["bytes"] = map[string]int64{"raw": raw, "ckpt_stored": stored, "restic": resticBytes}
	return nil
}

func (b *bench) print() {
	r := b.results
	fmt.Printf("\n%-34s %10s %10s\n", "measure (median of runs)", "value", "target")
	row := func(name, key, target string) {
		if _, ok := r[key]; ok {
			fmt.Printf("%-34s %10.3f %10s\n", name, r[key], target)
		}
	}
	row("push: ckpt / rclone", "push_ratio_vs_rclone", "<= 0.8")
	row("pull: ckpt / rclone", "pull_ratio_vs_rclone", "<= 1.0")
	row("pull, --cache-size 0 / rclone", "pull_without_cache_ratio_vs_rclone", "")
	row("unchanged re-push, s per GiB", "repush_seconds_per_gib", "<= 0.1")
	row("stored: ckpt / restic", "stored_ratio_vs_restic", "")
	row("stored: ckpt / raw", "stored_ratio_vs_raw", "<= 0.72")
	row("pull --link after a plain pull / cp -r", "pull_link_ratio_vs_cp", "<= 0.05")
	row("ckpt push peak RSS, MiB", "push_peak_rss_mib", "<= 256")
	row("ckpt pull peak RSS, MiB", "pull_peak_rss_mib", "<= 256")
	for _, dt := range []string{"bf16", "f32"} {
		row("delta push ("+dt+"): ckpt / rclone", "delta_push_ratio_vs_rclone_"+dt, "<= 0.8")
		row("delta push, no deltas ("+dt+") / rclone", "delta_plain_push_ratio_vs_rclone_"+dt, "")
		row("delta pull ("+dt+"): ckpt / rclone", "delta_pull_ratio_vs_rclone_"+dt, "<= 1.0")
		row("delta pull, warm ("+dt+") / rclone", "delta_pull_warm_ratio_vs_rclone_"+dt, "<= 1.0")
		row("delta stored ("+dt+"): new / raw", "delta_stored_ratio_vs_raw_"+dt, "")
		row("delta push peak RSS ("+dt+"), MiB", "delta_push_peak_rss_mib_"+dt, "<= 256")
		row("delta pull peak RSS ("+dt+"), MiB", "delta_pull_peak_rss_mib_"+dt, "<= 256")
	}
	fmt.Println()
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// measureDeltas is the delta case: for a bf16 and an fp32 model folder, the
// folder pushed as bench@1, its next checkpoint (driftFolder) pushed with
// --deltas as bench@2 from the same machine, and pulled back.
func (b *bench) measureDeltas(size string) error {
	f32 := filepath.Join(b.work, "gen-f32")
	bytes, err := parseSize(size)
	if err != nil {
		return err
	}
	if err := synth.WriteBase(f32, synth.ModelOfSize(bytes, layout.DtypeF32), 1, "testdata/gpt2"); err != nil {
		return err
	}
	defer os.RemoveAll(f32)
	for _, c := range []struct{ dt, dir string }{{"bf16", b.folder}, {"f32", f32}} {
		next := filepath.Join(b.work, "next-"+c.dt)
		if err := driftFolder(c.dir, next, 7); err != nil {
			return err
		}
		if err := b.measureDelta(c.dt, c.dir, next); err != nil {
			return err
		}
		os.RemoveAll(next)
	}
	return nil
}

func (b *bench) measureDelta(dt, first, next string) error {
	var push, plain, rclonePush, pull, warm, rclonePull []timing
	var stored int64
	raw := dirSize(next)
	for i := range b.runs {
		fmt.Printf("delta %s run %d/%d\n", dt, i+1, b.runs)
		tag := fmt.Sprintf("%s-%d", dt, i)
		repo := fmt.Sprintf("s3://%s/delta-%s", b.bucket, tag)
		cache := []string{"XDG_CACHE_HOME=" + filepath.Join(b.work, "dcache-"+tag)}
		if _, err := b.cmdEnv(cache, b.ckpt, "--repo", repo, "--quiet", "push", first, "bench@1"); err != nil {
			return err
		}
		out, t, err := b.cmdOut(append(cache, profileEnv("delta-push-"+dt, i)...), b.ckpt, "--repo", repo, "push", "--json", "--deltas", next, "bench@2")
		if err != nil {
			return err
		}
		push = append(push, t)
		if i == 0 {
			var res struct {
				NewStored int64 `json:"new_stored_bytes"`
			}
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				return fmt.Errorf("ckpt push --json: %w", err)
			}
			stored = res.NewStored
		}
		// The same next checkpoint pushed without deltas, for comparison.
		plainRepo := fmt.Sprintf("s3://%s/plain-%s", b.bucket, tag)
		plainCache := []string{"XDG_CACHE_HOME=" + filepath.Join(b.work, "pcache-"+tag)}
		if _, err := b.cmdEnv(plainCache, b.ckpt, "--repo", plainRepo, "--quiet", "push", first, "bench@1"); err != nil {
			return err
		}
		if t, err = b.cmdEnv(plainCache, b.ckpt, "--repo", plainRepo, "--quiet", "push", next, "bench@2"); err != nil {
			return err
		}
		plain = append(plain, t)
		if t, err = b.cmd("rclone", "copy", next, fmt.Sprintf("bench:%s/rclone-delta-%s", b.bucket, tag)); err != nil {
			return err
		}
		rclonePush = append(rclonePush, t)

		// The cold pull and rclone's copy back take turns going first: on
		// the shared VM whichever reads right after the pushes above ran
		// 1.2-2x slower than the other (rclone: 6.0 and 8.4 s against 3.5
		// and 3.7 s), with the guest idle and no dirty pages after a sync.
		cold := []string{"XDG_CACHE_HOME=" + filepath.Join(b.work, "dpull-"+tag)}
		coldPull := func() error {
			t, err := b.cmdEnv(append(cold, profileEnv("delta-pull-"+dt, i)...), b.ckpt, "--repo", repo, "--quiet", "pull", "bench@2", filepath.Join(b.work, "dpull-2-"+tag))
			pull = append(pull, t)
			return err
		}
		rcloneBack := func() error {
			t, err := b.cmd("rclone", "copy", fmt.Sprintf("bench:%s/rclone-delta-%s", b.bucket, tag), filepath.Join(b.work, "drclone-"+tag))
			rclonePull = append(rclonePull, t)
			return err
		}
		first, second := coldPull, rcloneBack
		if i%2 == 1 {
			first, second = rcloneBack, coldPull
		}
		if err := first(); err != nil {
			return err
		}
		if err := second(); err != nil {
			return err
		}
		// Warm: a machine that pulled bench@1 before (its content cache
		// holds the references).
		warmCache := []string{"XDG_CACHE_HOME=" + filepath.Join(b.work, "dwarm-"+tag)}
		if _, err = b.cmdEnv(warmCache, b.ckpt, "--repo", repo, "--quiet", "pull", "bench@1", filepath.Join(b.work, "dwarm-1-"+tag)); err != nil {
			return err
		}
		if t, err = b.cmdEnv(warmCache, b.ckpt, "--repo", repo, "--quiet", "pull", "bench@2", filepath.Join(b.work, "dwarm-2-"+tag)); err != nil {
			return err
		}
		warm = append(warm, t)
		for _, d := range []string{"dpull-2-", "dwarm-1-", "dwarm-2-", "drclone-", "dcache-", "pcache-", "dpull-", "dwarm-"} {
			os.RemoveAll(filepath.Join(b.work, d+tag))
		}
	}
	mp, rp, ml, rl := median(push), median(rclonePush), median(pull), median(rclonePull)
	b.results["delta_push_ratio_vs_rclone_"+dt] = mp.wall.Seconds() / rp.wall.Seconds()
	b.results["delta_plain_push_ratio_vs_rclone_"+dt] = median(plain).wall.Seconds() / rp.wall.Seconds()
	b.results["delta_pull_ratio_vs_rclone_"+dt] = ml.wall.Seconds() / rl.wall.Seconds()
	b.results["delta_pull_warm_ratio_vs_rclone_"+dt] = median(warm).wall.Seconds() / rl.wall.Seconds()
	b.results["delta_stored_ratio_vs_raw_"+dt] = float64(stored) / float64(raw)
	b.results["delta_push_peak_rss_mib_"+dt] = float64(mp.rss) / (1 << 20)
	b.results["delta_pull_peak_rss_mib_"+dt] = float64(max(ml.rss, median(warm).rss)) / (1 << 20)
	b.results["delta_seconds_"+dt] = map[string]float64{
		"ckpt_push_deltas": mp.wall.Seconds(), "ckpt_push_plain": median(plain).wall.Seconds(), "rclone_push": rp.wall.Seconds(),
		"ckpt_pull": ml.wall.Seconds(), "ckpt_pull_warm": median(warm).wall.Seconds(), "rclone_pull": rl.wall.Seconds(),
	}
	b.results["delta_bytes_"+dt] = map[string]int64{"raw": raw, "ckpt_new_stored": stored}
	return nil
}

// cmdOut is cmdEnv that returns the command's standard output.
func (b *bench) cmdOut(extra []string, name string, args ...string) (string, timing, error) {
	var outBuf, errBuf strings.Builder
	t, err := b.run(extra, &outBuf, &errBuf, name, args...)
	if err != nil {
		return "", t, fmt.Errorf("%w\n%s", err, errBuf.String())
	}
	return outBuf.String(), t, nil
}

// parseSize reads 1GiB, 256MiB, 100MB or a byte count.
func parseSize(text string) (int64, error) {
	for _, u := range []struct {
		suffix string
		scale  float64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"", 1}} {
		if num, ok := strings.CutSuffix(text, u.suffix); ok {
			var v float64
			if _, err := fmt.Sscanf(num, "%g", &v); err != nil || v <= 0 {
				return 0, fmt.Errorf("size %q: want a positive size such as 1GiB", text)
			}
			return int64(v * u.scale), nil
		}
	}
	return 0, fmt.Errorf("size %q: want a positive size such as 1GiB", text)
}
