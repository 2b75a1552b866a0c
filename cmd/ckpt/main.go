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
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/ckptdev/ckpt/store"
)

// memoryLimit is the Go runtime's soft memory limit unless GOMEMLIMIT says
// otherwise: transfers hold at most a few chunk buffers per worker, and the
// limit keeps the garbage collector from letting the heap double past them
// (the target is a peak RSS under 256 MiB for any checkpoint size).
const memoryLimit = 192 << 20

func main() {
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
	app := newApp()
	root := app.rootCommand()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	app.close()
	if err == nil {
		return 0
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
	return errors.As(err, &u) || errors.Is(err, store.ErrInvalidName)
}
