package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// show lists a checkpoint's files as pull writes them: its own, and those
// its base chain gives it, each marked with the base it comes from.
func TestShowListsInheritedFiles(t *testing.T) {
	c := newCLI(t)
	base, ckpts := writeRun(t, true)
	c.ok("init")
	c.ok("push", base, "gpt2@1")
	c.ok("push", ckpts[0], "run", "--base", "gpt2@1")

	show := c.ok("show", "run@10")
	assert.Contains(t, show, "tokenizer.json (from gpt2@1)")
	assert.Contains(t, show, "config.json (from gpt2@1)")
	assert.Contains(t, show, "model.safetensors")
	assert.NotContains(t, show, "model.safetensors (from")
}
