package hfcache

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dirCases are the environments Dir is checked in, here and against
// @huggingface/hub's getHFHubCachePath in the interop test (which needs
// absolute values: that client expands no "~").
var dirCases = []struct {
	name string
	env  map[string]string
	want string // with /home/u as the home folder
}{
	{"nothing set", nil, "/home/u/.cache/huggingface/hub"},
	{"HF_HUB_CACHE wins", map[string]string{"HF_HUB_CACHE": "/a", "HUGGINGFACE_HUB_CACHE": "/b", "HF_HOME": "/c", "XDG_CACHE_HOME": "/d"}, "/a"},
	{"legacy HUGGINGFACE_HUB_CACHE", map[string]string{"HUGGINGFACE_HUB_CACHE": "/b", "HF_HOME": "/c", "XDG_CACHE_HOME": "/d"}, "/b"},
	{"HF_HOME", map[string]string{"HF_HOME": "/c", "XDG_CACHE_HOME": "/d"}, "/c/hub"},
	{"XDG_CACHE_HOME", map[string]string{"XDG_CACHE_HOME": "/d"}, "/d/huggingface/hub"},
}

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestDirFrom(t *testing.T) {
	home := func() (string, error) { return "/home/u", nil }
	for _, c := range dirCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DirFrom(lookupIn(c.env), home)
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"tilde in HF_HUB_CACHE", map[string]string{"HF_HUB_CACHE": "~/hf"}, "/home/u/hf"},
		{"tilde alone", map[string]string{"HF_HUB_CACHE": "~"}, "/home/u"},
		{"tilde in HF_HOME", map[string]string{"HF_HOME": "~/.hf"}, "/home/u/.hf/hub"},
		{"~user is not expanded", map[string]string{"HF_HUB_CACHE": "~bob/x"}, "~bob/x"},
		{"empty counts as unset", map[string]string{"HF_HUB_CACHE": "", "HF_HOME": "/c"}, "/c/hub"},
		{"relative is kept", map[string]string{"HF_HUB_CACHE": "cache"}, "cache"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := DirFrom(lookupIn(c.env), home)
			require.NoError(t, err)
			assert.Equal(t, filepath.FromSlash(c.want), got)
		})
	}
}

func TestDirFromWithoutHome(t *testing.T) {
	noHome := func() (string, error) { return "", errors.New("no home") }
	_, err := DirFrom(lookupIn(nil), noHome)
	require.ErrorContains(t, err, "no home folder")
	_, err = DirFrom(lookupIn(map[string]string{"HF_HOME": "~/x"}), noHome)
	require.ErrorContains(t, err, `cannot expand "~/x"`)
	got, err := DirFrom(lookupIn(map[string]string{"HF_HUB_CACHE": "/a"}), noHome)
	require.NoError(t, err, "the home folder is not needed when HF_HUB_CACHE is absolute")
	assert.Equal(t, "/a", got)
}

func TestDirUsesTheEnvironment(t *testing.T) {
	t.Setenv("HF_HUB_CACHE", "/from/env")
	got, err := Dir()
	require.NoError(t, err)
	assert.Equal(t, "/from/env", got)
}
