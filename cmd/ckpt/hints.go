package main

import (
	"errors"
	"strings"

	"github.com/ckptdev/ckpt/hfcache"
	"github.com/ckptdev/ckpt/hfcache/hfbridge"
	"github.com/ckptdev/ckpt/retention"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/refs"
)

// The library packages (store, diff, layout, retention, internal/watch)
// never name a flag or a command in an error: they return typed or
// sentinel errors, and this table says what a user of the command line can
// do about each. It is the one place the CLI adds such hints.
var hints = []struct {
	err error
	// command limits the hint to one command ("" for every command): the
	// same error can call for another flag elsewhere.
	command string
	hint    string
}{
	{store.ErrNoRegistry, "", "run `ckpt init` to create one, or set --repo or CKPT_REPO"},
	{store.ErrTargetNotEmpty, "pull", "use --force to replace it"},
	{store.ErrNotRunnable, "pull", "push it with --base NAME@REF, or pull with --allow-incomplete"},
	{store.ErrEmptySelection, "pull", "`ckpt show NAME@REF` lists its files; --include/--exclude match whole paths, case-sensitive, as hf download does"},
	{store.ErrNotAdapter, "pull", "--with-base is for PEFT adapters; push an adapter with --base NAME@REF to link its base"},
	{store.ErrNoCache, "pull", "pull without --link"},
	{hfbridge.ErrNoRepoID, "pull", "give the repo id with --hf-repo ORG/NAME"},
	{hfcache.ErrNotCached, "import-hf", "download it first (hf download ORG/NAME), or point --cache-dir at the cache that has it"},
	{store.ErrNeedsForce, "push", "use --force to replace it"},
	{store.ErrBadBase, "push", "--base takes the NAME@REF of a recorded model"},
	{refs.ErrNoMetric, "", "push with --metric METRIC=VALUE to record it, or rank by another metric with --best-by"},
	{retention.ErrKeepsNothing, "", "set --keep-last, --keep-best, --keep-every or --keep-within"},
	{store.ErrUnproven, "gc", "`ckpt verify --all` reports every problem; re-push or `ckpt rm` the refs named, then run gc again"},
}

// withHint returns err with the hint for what command (its path below the
// root, e.g. "pull" or "retention set") returned, if there is one. The
// hint follows on a line of its own when the message has several.
func withHint(command string, err error) error {
	if err == nil {
		return nil
	}
	for _, h := range hints {
		if (h.command == "" || h.command == command) && errors.Is(err, h.err) {
			return &hintedError{err: err, hint: h.hint}
		}
	}
	return err
}

// hintedError is an error with what to do about it.
type hintedError struct {
	err  error
	hint string
}

func (h *hintedError) Error() string {
	msg := h.err.Error()
	if strings.Contains(msg, "\n") {
		return msg + "\n" + h.hint
	}
	return msg + "; " + h.hint
}

func (h *hintedError) Unwrap() error { return h.err }
