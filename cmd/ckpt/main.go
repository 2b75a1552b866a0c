// Command ckpt records Hugging Face style checkpoints in a content-addressed
// registry and reassembles runnable model folders from it.
//
// This package is thin wiring: every behaviour lives in store/, layout/,
// retention/ and diff/. Exit codes: 0 success, 1 failure, 2 usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/ckptdev/ckpt/internal/redact"
	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/store/refs"
)

// The target is a peak RSS under 256 MiB for any checkpoint size. The chunk
// buffers of transfers are bounded by the store's budgets and, on Unix,
// live outside the Go heap; the heap beside them (codec state, manifests,
// about 50 MB in a push) is collected at gcPercent, so it peaks a quarter
// above its live size instead of doubling, without the collector running
// hundreds of times a second as it does when a soft limit is all that holds
// a heap near its live size. memoryLimit (GOMEMLIMIT overrides it) is the
// backstop for a heap that grows anyway, and holds the budgets' buffers
// where they live on the heap. GOGC and GOMEMLIMIT override both.
const (
	gcPercent   = 25
	memoryLimit = 192 << 20
)

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	if path := os.Getenv("CKPT_CPUPROFILE"); path != "" {
		// Where push and pull spend their time (make bench uses it).
		if f, err := os.Create(path); err == nil {
			if err := pprof.StartCPUProfile(f); err == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	pprof.StopCPUProfile()
	os.Exit(code)
}

// run executes one command line and returns the exit code.
func run(ctx context.Context, args []string) int {
	return runWith(ctx, args, os.Stdout, os.Stderr)
}

// runWith executes one command line writing to stdout and stderr, prints
// its error, and returns the exit code. Everything written goes through
// printable: no credential and no raw control character reaches either.
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp()
	if f, ok := stderr.(*os.File); ok && f == os.Stderr {
		app.progressTo = os.Stderr
	}
	filter := printable(redact.FromEnv())
	app.stdout, app.stderr = &filterWriter{w: stdout, filter: filter}, &filterWriter{w: stderr, filter: filter}
	root := app.rootCommand()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	app.close()
	if err == nil {
		return 0
	}
	if cmd != nil {
		err = withHint(strings.TrimPrefix(strings.TrimPrefix(cmd.CommandPath(), root.Name()), " "), err)
	}
	fmt.Fprintln(root.ErrOrStderr(), "ckpt: "+err.Error())
	if isUsage(err) {
		return 2
	}
	return 1
}

// usageError marks errors in how the command was called.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u) || errors.Is(err, refs.ErrInvalidName)
}

// printable is the last line of defence applied to everything ckpt prints:
// the values of secret environment variables are scrubbed (whatever their
// encoding), URLs lose their credentials and query values, key=value pairs
// naming a credential lose their value, and control characters other than
// newline and tab are escaped.
func printable(secrets *redact.Secrets) func(string) string {
	return func(s string) string {
		return textsafe.Message(redact.Text(secrets.Scrub(s)))
	}
}

// filterWriter passes every Write through filter. Each Write is filtered on
// its own: ckpt writes a message (a line, a table, a JSON document) in one
// call.
type filterWriter struct {
	w      io.Writer
	filter func(string) string
}

func (f *filterWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(f.w, f.filter(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
