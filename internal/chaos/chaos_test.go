package chaos

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/internal/testutil"
)

// config is the campaign's size and seed, from the environment (doc.go).
type config struct {
	seed     uint64
	rounds   int           // per backend; 0 with a duration means unbounded
	duration time.Duration // per backend; 0 means no time bound
	backends []string
}

func loadConfig(t *testing.T) config {
	cfg := config{rounds: 24, backends: []string{"local", "minio"}}
	if testing.Short() {
		cfg.rounds = 8
	}
	if s := os.Getenv("CKPT_CHAOS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CKPT_CHAOS_SEED=%q: want an unsigned integer", s)
		}
		cfg.seed = n
	} else {
		cfg.seed = uint64(time.Now().UnixNano())
	}
	if s := os.Getenv("CKPT_CHAOS_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("CKPT_CHAOS_DURATION=%q: want a positive duration like 10m", s)
		}
		cfg.duration, cfg.rounds = d, 0
	}
	if s := os.Getenv("CKPT_CHAOS_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("CKPT_CHAOS_ROUNDS=%q: want a positive integer", s)
		}
		cfg.rounds = n
	}
	if s := os.Getenv("CKPT_CHAOS_BACKENDS"); s != "" {
		cfg.backends = strings.Split(s, ",")
		for _, b := range cfg.backends {
			if b != "local" && b != "minio" {
				t.Fatalf("CKPT_CHAOS_BACKENDS=%q: backends are local and minio", s)
			}
		}
	}
	return cfg
}

func (cfg config) reproduce() string {
	s := fmt.Sprintf("CKPT_CHAOS_SEED=%d", cfg.seed)
	if cfg.rounds > 0 {
		s += fmt.Sprintf(" CKPT_CHAOS_ROUNDS=%d", cfg.rounds)
	}
	if cfg.duration > 0 {
		s += fmt.Sprintf(" CKPT_CHAOS_DURATION=%s", cfg.duration)
	}
	return s
}

// dataset is the generated training run every backend's campaign pushes.
type dataset struct {
	base    string   // the base model, pushed as gpt2@1 --tag base
	ft      []string // weights-only checkpoints inheriting config and tokenizer
	scratch []string // full checkpoints (own config and tokenizer) of a second run
	// expect[src][full] is what a pull of a checkpoint pushed from src writes.
	expect map[string][2]tree
}

func makeDataset(t *testing.T) *dataset {
	// The tiny model with an embedding of 1 MiB, the size from which a
	// tensor has chunks of its own, so that scratch's pushes with --deltas
	// store deltas (its drift is small enough for them to pay).
	model := synth.TinyModel()
	model.Vocab = 8192
	base, ft := testutil.TinyRun(t, synth.RunSpec{
		Model: model, Seed: 11, Steps: []int64{10, 20, 30, 40}, WeightsOnly: true, FrozenEmbedding: true,
		Shards: 2, ResumeState: true, OptimizerScale: 0.5,
	})
	_, scratch := testutil.TinyRun(t, synth.RunSpec{
		Model: model, Seed: 12, Steps: []int64{10, 20, 30}, BaseDir: base, ResumeState: true, OptimizerScale: 0.5,
		Drift: 0.002,
	})
	d := &dataset{base: base, ft: ft, scratch: scratch, expect: map[string][2]tree{}}
	for _, src := range append(append([]string{base}, ft...), scratch...) {
		b := base
		if src == base {
			b = ""
		}
		var e [2]tree
		for i, full := range []bool{false, true} {
			tr, err := expectedPull(src, b, full)
			if err != nil {
				t.Fatalf("reading %s: %v", src, err)
			}
			e[i] = tr
		}
		d.expect[src] = e
	}
	return d
}

// TestKillCampaign is the kill -9 campaign of doc.go: random concurrent
// push, pull, gc and retention processes SIGKILLed at random moments, on a
// local folder registry and on MinIO, with the registry's invariants
// checked after every round and a clean re-run of everything killed.
func TestKillCampaign(t *testing.T) {
	cfg := loadConfig(t)
	t.Logf("kill campaign: %s", cfg.reproduce())
	bin := ckptBin
	data := makeDataset(t)
	for i, name := range cfg.backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // the backends' campaigns are independent; mostly they wait on processes
			var reg *registry
			if name == "minio" {
				reg = minioRegistry(t)
			} else {
				reg = localRegistry(t)
			}
			c := newCampaign(t, cfg, uint64(i), bin, data, reg)
			c.run()
		})
	}
}

// kinds of commands the campaign runs.
const (
	kindPush      = "push"
	kindPull      = "pull"
	kindGC        = "gc"
	kindRetention = "retention"
)

var kinds = []string{kindPush, kindPull, kindGC, kindRetention}

// stats count what a campaign did, for the summary.
type stats struct {
	rounds    int
	started   map[string]int // processes started in the chaos phase
	killed    map[string]int // of those, ended by our SIGKILL
	finished  map[string]int // of those, exited 0 before their kill (or had none)
	refused   map[string]int // of those, exited non-zero for an allowed reason
	recovered map[string]int // clean re-runs after a kill that succeeded
	checks    map[string]int // invariant checks passed, by invariant
	where     map[string]int // where kills landed, as seen from the outside
	deltas    int            // delta blobs stored by the pushes that finished
	rekeyed   int            // deltas gc re-keyed against a new keyframe
	elapsed   time.Duration
}

func newStats() *stats {
	return &stats{started: map[string]int{}, killed: map[string]int{}, finished: map[string]int{},
		refused: map[string]int{}, recovered: map[string]int{}, checks: map[string]int{}, where: map[string]int{}}
}

func (s *stats) summary(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d rounds in %s\n", name, s.rounds, s.elapsed.Round(time.Millisecond))
	for _, k := range kinds {
		fmt.Fprintf(&b, "  %-9s started %4d  killed %4d  finished %4d  refused %3d  recovered %4d\n",
			k, s.started[k], s.killed[k], s.finished[k], s.refused[k], s.recovered[k])
	}
	names := make([]string, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(&b, "  invariant checks passed:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "    %-58s %5d\n", n, s.checks[n])
	}
	fmt.Fprintf(&b, "  where the kills landed:\n")
	wheres := make([]string, 0, len(s.where))
	for w := range s.where {
		wheres = append(wheres, w)
	}
	sort.Strings(wheres)
	for _, w := range wheres {
		fmt.Fprintf(&b, "    %-58s %5d\n", w, s.where[w])
	}
	fmt.Fprintf(&b, "  delta blobs stored by finished pushes: %d; re-keyed by gc: %d\n", s.deltas, s.rekeyed)
	return b.String()
}

// command is one ckpt process of a round.
type command struct {
	kind  string
	args  []string      // after the global flags
	cache string        // XDG_CACHE_HOME
	label string        // the cache's name in the round log: A, B (shared) or own
	start time.Duration // after the round's start
	delay time.Duration // kill after the command's own start; 0: no kill

	// push
	ref     string // NAME@VERSION
	src     string
	tracked bool // an "ft" push: once it exits 0 its ref must stay

	// pull
	pullRef string
	dir     string
	full    bool
	force   bool
	before  tree // DIR's content before the pull (nil: no DIR)
	expect  tree

	p *proc
}

func (cmd *command) String() string {
	s := "ckpt " + strings.Join(cmd.args, " ")
	if cmd.label != "" {
		s = "{cache " + cmd.label + "} " + s
	}
	if cmd.start > 0 {
		s = fmt.Sprintf("[+%s] %s", cmd.start.Round(100*time.Microsecond), s)
	}
	if cmd.delay > 0 {
		s += fmt.Sprintf(" [kill after %s]", cmd.delay.Round(100*time.Microsecond))
	} else {
		s += " [no kill]"
	}
	if cmd.p != nil {
		s += " -> " + cmd.p.outcome()
	}
	return s
}

// campaign is one backend's run of rounds, with the model of what the
// registry must hold.
type campaign struct {
	t       *testing.T
	cfg     config
	backend uint64 // mixes into the per-round seeds
	bin     string
	data    *dataset
	reg     *registry
	work    string
	home    string
	caches  [2]string // shared XDG_CACHE_HOMEs
	checker []string  // environment of the checking processes (own cache, --no-cache)
	round   int
	nextID  int
	stats   *stats
	lines   []string // the round log, dumped on failure

	nextVersion int
	// src of every NAME@VERSION any push was started for (killed or not).
	refSrc map[string]string
	// manifest every pushed folder yields, learned from pushes that exited 0.
	manifestOf map[string]string
	// ft versions whose push exited 0, oldest first: they must stay.
	tracked []string
	// scratch versions listed after the last round (retention removes them).
	scratchListed []string
	// folders a pull completed, for pulls with --force over them.
	pulledDirs []string
	// folders of this round to remove at its end unless they are kept in
	// pulledDirs (the campaign's disk use stays flat however long it runs).
	litter []string
	// kill delay scale per kind: how long that command takes unkilled.
	scale map[string]time.Duration
}

func newCampaign(t *testing.T, cfg config, backend uint64, bin string, data *dataset, reg *registry) *campaign {
	work := t.TempDir()
	c := &campaign{
		t: t, cfg: cfg, backend: backend, bin: bin, data: data, reg: reg, work: work,
		home: filepath.Join(work, "home"), stats: newStats(),
		refSrc: map[string]string{}, manifestOf: map[string]string{}, scale: map[string]time.Duration{},
	}
	for i := range c.caches {
		c.caches[i] = filepath.Join(work, fmt.Sprintf("cache-shared-%d", i))
	}
	c.checker = baseEnv(c.home, filepath.Join(work, "cache-checker"), reg.env)
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("CKPT_CHAOS_VERBOSE") != "" {
			t.Logf("round log of the %s campaign:", reg.name)
			for _, l := range c.lines {
				t.Log(l)
			}
		}
		if t.Failed() {
			t.Logf("reproduce the schedule with %s CKPT_CHAOS_BACKENDS=%s go test -count=1 -run 'TestKillCampaign/%s' ./internal/chaos/",
				cfg.reproduce(), reg.name, reg.name)
		}
	})
	return c
}

func (c *campaign) logf(format string, args ...any) {
	c.lines = append(c.lines, fmt.Sprintf(format, args...))
}

// fatalf fails the campaign, naming the seed and round.
func (c *campaign) fatalf(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf("%s campaign, seed %d, round %d: %s", c.reg.name, c.cfg.seed, c.round, fmt.Sprintf(format, args...))
}

func (c *campaign) pass(check string) { c.stats.checks[check]++ }

func (c *campaign) newDir(prefix string) string {
	c.nextID++
	return filepath.Join(c.work, fmt.Sprintf("%s-%d", prefix, c.nextID))
}

func (c *campaign) env(cache string) []string { return baseEnv(c.home, cache, c.reg.env) }

func (c *campaign) globalArgs(args []string) []string {
	return append([]string{"--repo", c.reg.repo}, args...)
}

// check runs a checking command (fresh process, --no-cache) that must
// succeed, and returns its stdout.
func (c *campaign) check(what string, args ...string) string {
	c.t.Helper()
	full := c.globalArgs(append([]string{"--no-cache"}, args...))
	p, err := runOnce(c.bin, c.checker, full)
	if err != nil {
		c.fatalf("%s: %v", what, err)
	}
	if p.exit != 0 {
		c.fatalf("%s: ckpt %s exited %d\nstdout:\n%s\nstderr:\n%s", what, strings.Join(full, " "), p.exit, p.stdout.String(), p.stderr.String())
	}
	return p.stdout.String()
}

func (c *campaign) run() {
	start := time.Now()
	c.setUp()
	for c.round = 1; ; c.round++ {
		if c.cfg.rounds > 0 && c.round > c.cfg.rounds {
			break
		}
		if c.cfg.duration > 0 && time.Since(start) > c.cfg.duration {
			break
		}
		c.playRound()
		c.stats.rounds++
	}
	c.round = 0
	c.finalChecks()
	c.stats.elapsed = time.Since(start)
	c.t.Log("\n" + c.stats.summary(c.reg.name))
}

// setUp pushes the base, stores the scratch retention policy and measures
// how long each command takes unkilled, to scale the kill delays.
func (c *campaign) setUp() {
	c.logf("set-up")
	measure := func(kind string, args ...string) *proc {
		p, err := runOnce(c.bin, c.env(c.newDir("cache")), c.globalArgs(args))
		if err != nil {
			c.fatalf("set-up: %v", err)
		}
		if p.exit != 0 {
			c.fatalf("set-up: ckpt %s exited %d: %s", strings.Join(args, " "), p.exit, p.stderr.String())
		}
		c.scale[kind] = max(c.scale[kind], p.elapsed)
		c.logf("  ckpt %s -> %s", strings.Join(args, " "), p.outcome())
		return p
	}
	c.refSrc["gpt2@1"] = c.data.base
	p := measure(kindPush, "push", c.data.base, "gpt2@1", "--tag", "base", "--json")
	c.learnPush(&command{ref: "gpt2@1", src: c.data.base}, p)

	ft := c.data.ft[len(c.data.ft)-1]
	cmd := c.pushCommand("ft", ft, true, "")
	p = measure(kindPush, cmd.args...)
	c.learnPush(cmd, p)

	dir := filepath.Join(c.newDir("pull"), "model")
	measure(kindPull, "pull", cmd.ref, dir, "--full")
	c.checkDir("set-up pull", dir, c.data.expect[ft][1])
	c.pulledDirs = append(c.pulledDirs, dir)

	measure(kindRetention, "retention", "set", "scratch", "--keep-last", "2")
	measure(kindRetention, "retention", "apply", "--all", "--json")
	measure(kindGC, "gc", "--grace", "0s", "--json")
	c.logf("  kill delay scales: %v", c.scale)
}

func (c *campaign) pushCommand(name, src string, tracked bool, cache string) *command {
	c.nextVersion++
	ref := fmt.Sprintf("%s@%d", name, c.nextVersion)
	c.refSrc[ref] = src
	args := []string{"push", src, ref, "--base", "gpt2@base", "--json"}
	if name == "scratch" || c.nextVersion%2 == 0 {
		// These code their tensor chunks as deltas where that pays (only
		// scratch has tensors that change and are large enough): the edge
		// protocol and gc's re-keying meet kill -9 too.
		args = append(args, "--deltas")
	}
	return &command{kind: kindPush, ref: ref, src: src, tracked: tracked, cache: cache, args: args}
}

// pick draws one command of the round. It draws the same numbers whatever
// the state, so that a seed gives the same schedule.
func (c *campaign) pick(rng *rand.Rand, busyDirs map[string]bool) *command {
	kindRoll, a, b := rng.Float64(), rng.Uint64(), rng.Uint64()
	flags, cacheRoll, u, noKill := rng.Uint64(), rng.IntN(10), rng.Float64(), rng.Float64() < 0.15
	startRoll := rng.Float64()

	// Half share one of two caches (bbolt lets one process at a time use
	// a cache's index, so they mostly take turns), half have their own and
	// overlap freely, like processes on different machines.
	cache, label := c.caches[0], "A"
	switch {
	case cacheRoll >= 5:
		cache, label = c.newDir("cache"), "own"
		c.litter = append(c.litter, cache)
	case cacheRoll >= 3:
		cache, label = c.caches[1], "B"
	}
	var cmd *command
	switch {
	case kindRoll < 0.22:
		cmd = c.pushCommand("ft", c.data.ft[a%uint64(len(c.data.ft))], true, cache)
	case kindRoll < 0.44:
		src := c.data.scratch[a%uint64(len(c.data.scratch))]
		if b%10 >= 7 {
			src = c.data.ft[b%uint64(len(c.data.ft))]
		}
		cmd = c.pushCommand("scratch", src, false, cache)
	case kindRoll < 0.70:
		cmd = c.pullCommand(a, b, flags, busyDirs)
		cmd.cache = cache
	case kindRoll < 0.88:
		cmd = &command{kind: kindGC, cache: cache, args: []string{"gc", "--grace", "0s", "--json"}}
	default:
		cmd = &command{kind: kindRetention, cache: cache, args: []string{"retention", "apply", "--all", "--json"}}
	}
	// Most start with the round; the others up to half a push later, so
	// that every phase of one command meets every phase of another (a gc
	// that lists blobs/ after a push uploaded them, say).
	cmd.label = label
	if startRoll >= 0.4 {
		cmd.start = time.Duration((startRoll - 0.4) / 0.6 * 0.5 * float64(c.scale[kindPush]))
	}
	if !noKill {
		cmd.delay = time.Duration(u * 1.3 * float64(c.scale[cmd.kind]))
		cmd.delay = max(cmd.delay, time.Microsecond)
	}
	return cmd
}

func (c *campaign) pullCommand(a, b, flags uint64, busyDirs map[string]bool) *command {
	ref := "gpt2@1"
	switch r := a % 10; {
	case r < 5 && len(c.tracked) > 0:
		ref = c.tracked[b%uint64(len(c.tracked))]
	case r >= 7 && len(c.scratchListed) > 0:
		ref = c.scratchListed[b%uint64(len(c.scratchListed))]
	}
	src := c.refSrc[ref]
	cmd := &command{kind: kindPull, pullRef: ref, src: src, full: flags&1 == 1}
	full := 0
	if cmd.full {
		full = 1
	}
	cmd.expect = c.data.expect[src][full]

	link := (flags>>1)%4 == 0
	if (flags>>3)%4 == 0 && len(c.pulledDirs) > 0 {
		dir := c.pulledDirs[(flags>>5)%uint64(len(c.pulledDirs))]
		if !busyDirs[dir] {
			before, ok, err := readTree(dir)
			if err != nil {
				c.fatalf("reading earlier pull %s: %v", dir, err)
			}
			if ok {
				cmd.dir, cmd.force, cmd.before = dir, true, before
			}
		}
	}
	if cmd.dir == "" {
		parent := c.newDir("pull")
		cmd.dir = filepath.Join(parent, "model")
		c.litter = append(c.litter, parent)
	}
	busyDirs[cmd.dir] = true
	cmd.args = []string{"pull", ref, cmd.dir}
	if cmd.full {
		cmd.args = append(cmd.args, "--full")
	}
	if link {
		cmd.args = append(cmd.args, "--link")
	}
	if cmd.force {
		cmd.args = append(cmd.args, "--force")
	}
	return cmd
}

// playRound is one round: chaos, checks, recovery, checks.
func (c *campaign) playRound() {
	rng := rand.New(rand.NewPCG(c.cfg.seed, c.backend<<32|uint64(c.round)))
	n := 2 + rng.IntN(3)
	busy := map[string]bool{}
	cmds := make([]*command, n)
	for i := range cmds {
		cmds[i] = c.pick(rng, busy)
	}
	// Chaos: start them at their offsets (most at once); each dies at its
	// own delay after its start.
	order := append([]*command(nil), cmds...)
	sort.SliceStable(order, func(i, j int) bool { return order[i].start < order[j].start })
	roundStart := time.Now()
	for _, cmd := range order {
		if wait := time.Until(roundStart.Add(cmd.start)); wait > 0 {
			<-time.After(wait) // the offset is part of the random schedule
		}
		p, err := startProc(c.bin, c.env(cmd.cache), c.globalArgs(cmd.args), cmd.delay)
		if err != nil {
			c.fatalf("%v", err)
		}
		cmd.p = p
		c.stats.started[cmd.kind]++
	}
	deadline := time.Now().Add(cmdTimeout)
	var hung []string
	for _, cmd := range cmds {
		if err := cmd.p.wait(deadline); err != nil {
			hung = append(hung, err.Error())
		}
	}
	c.logf("round %d:", c.round)
	for _, cmd := range cmds {
		c.logf("  %s", cmd)
	}
	if len(hung) > 0 {
		c.fatalf("%s", strings.Join(hung, "\n"))
	}

	// Invariant 1 right after the kills: whatever was killed where, every
	// object a ref reaches exists and is intact.
	c.verify("1 verify --all --read-data passes after kills")
	c.checkShapes()

	counts := map[string]int{}
	for _, cmd := range cmds {
		counts[cmd.kind]++
	}
	refs := c.listRefs()
	var recoverPushPull, recoverRetention []*command
	var killedGC *command
	killedGCs := 0
	for _, cmd := range cmds {
		p := cmd.p
		switch {
		case p.killed:
			c.stats.killed[cmd.kind]++
		case p.exit == 0:
			c.stats.finished[cmd.kind]++
		}
		switch cmd.kind {
		case kindPush:
			if p.exit == 0 {
				c.learnPush(cmd, p)
			} else if !p.killed {
				c.fatalf("push failed unkilled: %s\nstderr:\n%s", cmd, p.stderr.String())
			} else {
				recoverPushPull = append(recoverPushPull, cmd)
			}
		case kindPull:
			c.judgePull(cmd, counts[kindRetention] > 0, refs)
			// A killed pull is re-run if its ref is still there (retention
			// may have removed a scratch version meanwhile).
			if _, listed := refs[cmd.pullRef]; p.killed && listed {
				recoverPushPull = append(recoverPushPull, cmd)
			}
		case kindGC:
			switch {
			case p.killed:
				killedGC = cmd
				killedGCs++
			case p.exit == 0:
			case counts[kindGC] > 1 && strings.Contains(p.stderr.String(), "another garbage collection is running"):
				c.stats.refused[kindGC]++
			default:
				c.fatalf("gc failed unkilled: %s\nstderr:\n%s", cmd, p.stderr.String())
			}
		case kindRetention:
			if p.killed {
				recoverRetention = append(recoverRetention, cmd)
			} else if p.exit != 0 {
				c.fatalf("retention apply failed unkilled: %s\nstderr:\n%s", cmd, p.stderr.String())
			}
		}
	}
	for _, cmd := range cmds {
		c.observe(cmd)
		if cmd.kind == kindPush && cmd.p.killed {
			if _, listed := refs[cmd.ref]; listed {
				c.stats.where["push killed after writing its ref"]++
			} else {
				c.stats.where["push killed before writing its ref"]++
			}
		}
	}
	// Invariant 2 after the kills: pushes that exited 0 are there (this
	// round's included), and every ref names its folder's manifest.
	c.checkRefs(refs, false)

	// Recovery: killed pushes and pulls again, unkilled and concurrently,
	// with the same arguments and caches; then retention; then a gc.
	c.recover(recoverPushPull)
	c.recover(recoverRetention)
	if c.reg.ageTemp != nil {
		n, err := c.reg.ageTemp()
		if err != nil {
			c.fatalf("aging the registry's .tmp/ files: %v", err)
		}
		c.stats.where["partial .tmp file of a killed write (aged for the next gc)"] += n
	}
	gcCache := c.caches[0]
	if killedGC != nil {
		gcCache = killedGC.cache
	}
	gcLabel := "A"
	if killedGC != nil {
		gcLabel = killedGC.label
	}
	gc := c.recover([]*command{{kind: kindGC, cache: gcCache, label: gcLabel, args: []string{"gc", "--grace", "0s", "--json"}}})[0]
	c.stats.recovered[kindGC] += killedGCs

	// The invariants again, on the recovered registry.
	c.verify("1 verify --all --read-data passes after recovery")
	refs = c.listRefs()
	c.checkRefs(refs, true)
	c.checkKeys(gc, refs)
	c.prune()
	c.tidy()
}

// tidy removes this round's private caches and pull folders, keeping the
// last few completed pulls for later pulls with --force.
func (c *campaign) tidy() {
	const keep = 6
	if n := len(c.pulledDirs); n > keep {
		for _, d := range c.pulledDirs[:n-keep] {
			c.litter = append(c.litter, filepath.Dir(d))
		}
		c.pulledDirs = append([]string(nil), c.pulledDirs[n-keep:]...)
	}
	kept := map[string]bool{}
	for _, d := range c.pulledDirs {
		kept[filepath.Dir(d)] = true
	}
	for _, d := range c.litter {
		if !kept[d] {
			if err := removeAll(d); err != nil {
				c.fatalf("removing %s: %v", d, err)
			}
		}
	}
	c.litter = c.litter[:0]
}

// recover runs cmds again, unkilled and concurrently; each must succeed.
// It returns the re-runs.
func (c *campaign) recover(cmds []*command) []*command {
	if len(cmds) == 0 {
		return nil
	}
	again := make([]*command, len(cmds))
	for i, cmd := range cmds {
		re := *cmd
		re.start, re.delay, re.p = 0, 0, nil
		if re.kind == kindPull {
			re.before = nil
			got, ok, err := readTree(re.dir)
			if err != nil {
				c.fatalf("reading %s: %v", re.dir, err)
			}
			if ok {
				// DIR is the old content (a pull --force) or the complete
				// new one: either way the re-run replaces it.
				re.before = got
				if !re.force {
					re.force = true
					re.args = append(append([]string(nil), re.args...), "--force")
				}
			}
		}
		p, err := startProc(c.bin, c.env(re.cache), c.globalArgs(re.args), 0)
		if err != nil {
			c.fatalf("%v", err)
		}
		re.p = p
		again[i] = &re
	}
	deadline := time.Now().Add(cmdTimeout)
	for _, re := range again {
		if err := re.p.wait(deadline); err != nil {
			c.logf("  recovery: %s", re)
			c.fatalf("recovery: %v", err)
		}
	}
	for _, re := range again {
		c.logf("  recovery: %s", re)
		if re.p.exit != 0 {
			c.fatalf("4 the clean re-run after a kill failed: %s\nstdout:\n%s\nstderr:\n%s", re, re.p.stdout.String(), re.p.stderr.String())
		}
		if re.kind == kindGC {
			c.pass("4 a clean gc after every round succeeds (stale locks of dead pids)")
		} else {
			c.pass(fmt.Sprintf("4 a clean %s after a kill succeeds", re.kind))
		}
		if re.kind != kindGC {
			c.stats.recovered[re.kind]++
		}
		switch re.kind {
		case kindPush:
			c.learnPush(re, re.p)
		case kindPull:
			c.checkDir("recovery "+re.String(), re.dir, re.expect)
			c.checkBeside(re.dir)
			c.rememberPulled(re.dir)
		}
	}
	return again
}

// observe folds the duration of a command of the chaos phase that had no
// kill planned (so no survivor bias) into its kind's kill delay scale: the
// scale follows how long commands take under the round's concurrency.
func (c *campaign) observe(cmd *command) {
	if cmd.delay == 0 && cmd.p.exit == 0 {
		c.scale[cmd.kind] = (4*c.scale[cmd.kind] + cmd.p.elapsed) / 5
	}
}

func (c *campaign) rememberPulled(dir string) {
	for _, d := range c.pulledDirs {
		if d == dir {
			return
		}
	}
	c.pulledDirs = append(c.pulledDirs, dir)
}

// prune keeps the tracked ft refs few (so a round's checks stay cheap) by
// removing the oldest with `ckpt rm`, unkilled.
func (c *campaign) prune() {
	for len(c.tracked) > 8 {
		ref := c.tracked[0]
		c.check("rm "+ref, "rm", ref)
		c.tracked = c.tracked[1:]
	}
}

func (c *campaign) finalChecks() {
	c.logf("final checks")
	// Every checkpoint still tracked pulls byte-identical, from a cold cache.
	for _, ref := range c.tracked {
		for i, full := range []bool{false, true} {
			dir := filepath.Join(c.newDir("final"), "model")
			args := []string{"pull", ref, dir}
			if full {
				args = append(args, "--full")
			}
			c.check("final pull of "+ref, args...)
			c.checkDir("final pull of "+ref, dir, c.data.expect[c.refSrc[ref]][i])
			if err := removeAll(filepath.Dir(dir)); err != nil {
				c.fatalf("removing %s: %v", dir, err)
			}
			c.pass("2 every pushed checkpoint pulls byte-identical (final, cold cache)")
		}
	}
}
