package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/internal/redact"
	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/internal/units"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/backend/local"
	"github.com/ckptdev/ckpt/store/refs"
)

// app holds the global flags and what they open.
type app struct {
	repo string
	// deltas lets pushes store delta-coded chunks (push and watch --deltas).
	deltas   bool
	quiet    bool
	noCache  bool
	workers  int
	cacheMax string
	s3       s3Flags
	best     bestFlags
	stdout   io.Writer
	stderr   io.Writer
	// progressTo is the terminal progress bars are drawn on, nil for none
	// (stderr is not the process's own).
	progressTo *os.File
	index      *store.Index
	registry   *store.Registry
	// cacheWarned: the warning about an unusable cache was printed.
	cacheWarned bool
}

func newApp() *app { return &app{stdout: os.Stdout, stderr: os.Stderr} }

func (a *app) close() {
	if a.index != nil {
		if err := a.index.Close(); err != nil {
			a.warn(fmt.Errorf("closing the per-machine cache: %w", err))
		}
	}
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "ckpt",
		Short: "A content-addressed registry for model checkpoints and tokenizers",
		Long: `ckpt records Hugging Face style checkpoint folders in a content-addressed registry.
Identical files and unchanged tensors are stored once across every run; pull
reassembles a runnable model folder, inheriting config and tokenizer from a base.

The registry is --repo (or $CKPT_REPO): a folder path, a file:// URL or an
s3://BUCKET/PREFIX URL. Without either it is $XDG_DATA_HOME/ckpt
(~/.local/share/ckpt), created on first use.

Exit codes: 0 success, 1 failure, 2 usage error.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.repo, "repo", "", "registry location: folder, file:// or s3:// URL (env CKPT_REPO)")
	pf.BoolVarP(&a.quiet, "quiet", "q", false, "print only errors")
	pf.BoolVar(&a.noCache, "no-cache", false, "do not use the per-machine caches (index, earlier pulls, --link files)")
	pf.IntVar(&a.workers, "workers", 0, "parallel transfers (default: 2×CPUs, at least 4)")
	pf.StringVar(&a.cacheMax, "cache-size", "", "cap on what only the per-machine content cache holds (files no pulled folder links), e.g. 20GiB (env CKPT_CACHE_SIZE; default 10GiB)")
	a.s3.register(pf)
	root.AddCommand(
		a.initCommand(), a.pushCommand(), a.importHFCommand(), a.pullCommand(), a.lsCommand(), a.showCommand(),
		a.tagCommand(), a.untagCommand(), a.rmCommand(), a.verifyCommand(), a.duCommand(),
		a.retentionCommand(), a.gcCommand(), a.watchCommand(),
		a.diffCommand(), a.copyCommand(),
	)
	return root
}

// repoURL is the registry location from the flag, the environment or the default.
func (a *app) repoURL() (string, error) {
	if a.repo != "" {
		return a.repo, nil
	}
	if env := os.Getenv("CKPT_REPO"); env != "" {
		return env, nil
	}
	dir := os.Getenv("XDG_DATA_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("default registry: %w (set --repo or CKPT_REPO)", err)
		}
		dir = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(dir, "ckpt"), nil
}

// backend opens the Backend named by the repo URL.
func (a *app) backend(ctx context.Context) (backend.Backend, error) {
	loc, err := a.repoURL()
	if err != nil {
		return nil, err
	}
	return a.backendAt(ctx, loc)
}

// backendAt opens the Backend at loc: a folder path, file:// or s3:// URL.
func (a *app) backendAt(ctx context.Context, loc string) (backend.Backend, error) {
	switch {
	case strings.HasPrefix(loc, "s3://"):
		return a.s3.open(ctx, loc, a.stderr)
	case strings.HasPrefix(loc, "file://"):
		u, err := url.Parse(loc)
		switch {
		case err != nil || u.User != nil:
			// Credentials never belong here; only the redacted form is
			// printed.
			return nil, usagef("--repo %s: want file:///absolute/path, without credentials", redact.URL(loc))
		case u.Host != "" && u.Host != "localhost":
			return nil, usagef("--repo %s: want file:///absolute/path (no host)", redact.URL(loc))
		case u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(loc, "?#"):
			return nil, usagef("--repo %s: want file:///absolute/path (no query or fragment)", redact.URL(loc))
		}
		return local.New(u.Path)
	case strings.Contains(loc, "://"):
		return nil, usagef("--repo %s: unknown scheme (use a folder path, file:// or s3://)", redact.URL(loc))
	}
	return local.New(loc)
}

// remoteWorkers is the default parallelism against a remote registry: its
// requests wait on the network, and the store's transfer budget (7 full
// chunks and their stored forms at once) keeps 8 workers under 256 MiB.
const remoteWorkers = 8

// open opens the registry; create makes it when missing (push, init).
func (a *app) open(ctx context.Context, create bool) (*store.Registry, error) {
	if a.registry != nil {
		return a.registry, nil
	}
	best, err := a.best.rule()
	if err != nil {
		return nil, err
	}
	b, err := a.backend(ctx)
	if err != nil {
		return nil, err
	}
	var limit int64
	if !a.noCache {
		if limit, err = a.cacheLimit(); err != nil {
			return nil, err
		}
		a.openIndex()
	}
	workers := a.workers
	if _, isLocal := b.(*local.Backend); !isLocal && workers == 0 {
		workers = remoteWorkers
	}
	opts := store.Options{Index: a.index, Workers: workers, Progress: a.progress(), Warn: a.warn, Best: best, Deltas: a.deltas}
	if !a.noCache {
		a.openCaches(&opts, b, limit)
	}
	var r *store.Registry
	if create {
		r, _, err = store.Init(ctx, b, opts)
	} else {
		r, err = store.Open(ctx, b, opts)
	}
	if err != nil {
		return nil, err
	}
	a.registry = r
	return r, nil
}

// printf writes to stdout unless --quiet.
func (a *app) printf(format string, args ...any) {
	if !a.quiet {
		fmt.Fprintf(a.stdout, format, args...)
	}
}

// printJSON writes v, one of the output types (output.go), as indented
// JSON to stdout (even with --quiet: it was asked for).
func (a *app) printJSON(v any) error {
	if err := checkOutput(v); err != nil {
		return err
	}
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // "<|endoftext|>" stays readable
	return enc.Encode(v)
}

// exactArgs is cobra.ExactArgs returning a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %d argument(s), got %d\nusage: %s", cmd.Name(), n, len(args), cmd.UseLine())
		}
		return nil
	}
}

func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usagef("%s takes %d to %d argument(s), got %d\nusage: %s", cmd.Name(), lo, hi, len(args), cmd.UseLine())
		}
		return nil
	}
}

// parseRef parses NAME@REF as a usage error when malformed.
func parseRef(s string, allowEmpty bool) (string, string, error) {
	name, ref, err := refs.Parse(s, allowEmpty)
	if err != nil {
		return "", "", usageError{refError(s, err)}
	}
	return name, ref, nil
}

// argText is a command-line argument ready to print in a message: a URL
// redacted, anything else escaped.
func argText(arg string) string {
	if strings.Contains(arg, "://") {
		return textsafe.Name(redact.URL(arg))
	}
	return textsafe.Name(arg)
}

// refError is the error for an argument that is not NAME@REF. A URL given
// instead is shown redacted, never cut at its '@' into a NAME that would
// show the credentials before it.
func refError(arg string, err error) error {
	if strings.Contains(arg, "://") {
		return fmt.Errorf("%q is a URL, not NAME@REF: %w", redact.URL(arg), refs.ErrInvalidName)
	}
	return err
}

// The per-machine caches (index, pulled files, --link files) only save
// work: when they cannot be used the command goes on without them, after
// one warning (cacheWarning), and a damaged index file is set aside with
// its own warning (from the store).

// cacheWarning says, once per command, that a cache is unusable.
func (a *app) cacheWarning(err error) {
	if a.cacheWarned {
		return
	}
	a.cacheWarned = true
	fmt.Fprintf(a.stderr, "ckpt: warning: cannot use the per-machine cache (%v); continuing without it\n", err)
}

// warn prints a problem that does not fail the command.
func (a *app) warn(err error) {
	fmt.Fprintf(a.stderr, "ckpt: warning: %v\n", err)
}

// openIndex opens the per-machine index, or leaves a.index nil after a
// warning.
func (a *app) openIndex() {
	path, err := store.DefaultIndexPath()
	if err == nil {
		a.index, err = store.OpenIndexWith(path, store.IndexOptions{Warn: a.warn})
	}
	if err != nil {
		a.index = nil
		a.cacheWarning(err)
	}
}

// cacheLimit is the cap of the content cache from --cache-size or
// CKPT_CACHE_SIZE.
func (a *app) cacheLimit() (int64, error) {
	size := a.cacheMax
	if size == "" {
		size = os.Getenv("CKPT_CACHE_SIZE")
	}
	if size == "" {
		return store.DefaultCacheSize, nil
	}
	n, err := parseSize(size)
	if err != nil {
		return 0, usagef("--cache-size %q: %v", size, err)
	}
	return n, nil
}

// openCaches adds the per-machine content cache, which every pull feeds
// and reuses, under the cache folder, and takes over the folders of the two
// caches earlier versions kept (pulled/ and files/). One that cannot be
// opened is left out, with a warning.
func (a *app) openCaches(opts *store.Options, _ backend.Backend, limit int64) {
	dir, err := store.DefaultCacheDir()
	if err != nil {
		a.cacheWarning(err)
		return
	}
	if opts.Cache, err = store.OpenContentCache(filepath.Join(dir, "content"), limit); err != nil {
		opts.Cache = nil
		a.cacheWarning(err)
		return
	}
	for _, old := range []string{"pulled", "files"} {
		if _, err := opts.Cache.Adopt(filepath.Join(dir, old)); err != nil {
			a.cacheWarning(err)
		}
	}
}

// parseSize reads sizes like 512MiB, 20GiB, 1.5GB or a plain byte count.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || f < 0 {
				return 0, fmt.Errorf("want a size like 20GiB")
			}
			return int64(f * u.mult), nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want a size like 20GiB")
	}
	return n, nil
}

// humanBytes formats n in binary units.
func humanBytes(n int64) string { return units.Bytes(n) }
