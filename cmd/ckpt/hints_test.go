package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store"
)

func TestWithHint(t *testing.T) {
	notEmpty := fmt.Errorf("pull run@1: /x: %w", store.ErrTargetNotEmpty)
	tests := []struct {
		name, command string
		err           error
		want          string
	}{
		{"matching command", "pull", notEmpty, "pull run@1: /x: target folder is not empty; use --force to replace it"},
		{"other command", "push", notEmpty, "pull run@1: /x: target folder is not empty"},
		{"any command", "ls", fmt.Errorf("/r: %w", store.ErrNoRegistry), "/r: no ckpt registry here; run `ckpt init` to create one, or set --repo or CKPT_REPO"},
		{"several lines", "gc", &store.UnprovenError{Faults: []string{"a", "b"}}, "a\n  b\n`ckpt verify --all` reports every problem"},
		{"no hint", "pull", errors.New("boom"), "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := withHint(tt.command, tt.err)
			assert.Contains(t, got.Error(), tt.want)
			assert.ErrorIs(t, got, tt.err, "the hint keeps the error")
		})
	}
	assert.NoError(t, withHint("pull", nil))
}

// Each error the library types gets its command-line hint on stderr.
func TestErrorHints(t *testing.T) {
	c := newCLI(t)
	base, ckpts := writeRun(t, true) // weights only
	code, _, errs := c.run("ls")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "run `ckpt init`")
	c.ok("init")
	c.ok("push", base, "gpt2@1")
	c.ok("push", ckpts[0], "run@1")

	other := filepath.Join(t.TempDir(), "other")
	require.NoError(t, os.CopyFS(other, os.DirFS(ckpts[1])))
	nonEmpty := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(nonEmpty, "x"), []byte("x"), 0o644))
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"push", other, "run@1"}, 1, "version already exists with different content (recorded manifest "},
		{[]string{"push", other, "run@1"}, 1, "; use --force to replace it"},
		{[]string{"push", other, "run@2", "--base", "gpt2@9"}, 1, "--base takes the NAME@REF of a recorded model"},
		{[]string{"pull", "run@1", filepath.Join(t.TempDir(), "out")}, 1, "push it with --base NAME@REF, or pull with --allow-incomplete"},
		{[]string{"pull", "gpt2@1", nonEmpty}, 1, "target folder is not empty; use --force to replace it"},
		{[]string{"pull", "gpt2@1", filepath.Join(t.TempDir(), "sel"), "--include", "*.gguf"}, 1, "; `ckpt show NAME@REF` lists its files"},
		{[]string{"pull", "gpt2@1", filepath.Join(t.TempDir(), "wb"), "--with-base"}, 1, "not a PEFT adapter with a base: gpt2@1 has no adapter_config.json, or full-model weights of its own; --with-base is for PEFT adapters"},
		{[]string{"show", "gpt2@best"}, 1, "no version of gpt2 has eval_loss recorded; push with --metric METRIC=VALUE to record it, or rank by another metric with --best-by"},
		{[]string{"retention", "set", "run", "--keep-last", "0"}, 2, "every rule is off; set --keep-last, --keep-best, --keep-every or --keep-within"},
	}
	for _, tc := range cases {
		code, _, errs := c.run(tc.args...)
		assert.Equal(t, tc.code, code, "%v: %s", tc.args, errs)
		assert.Contains(t, errs, tc.want, "%v", tc.args)
	}
}
