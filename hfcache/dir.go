package hfcache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Dir returns the Hugging Face Hub cache folder named by the environment,
// resolved as huggingface_hub (constants.py) and @huggingface/hub
// (getHFHubCachePath) do:
//
//  1. HF_HUB_CACHE;
//  2. else HUGGINGFACE_HUB_CACHE, its older name;
//  3. else $HF_HOME/hub;
//  4. else $XDG_CACHE_HOME/huggingface/hub;
//  5. else ~/.cache/huggingface/hub.
//
// A leading "~" or "~/" is replaced by the home folder, as Python's
// os.path.expanduser does ("~user" and $VARIABLES are left alone). Unlike
// both clients, a variable set to the empty string counts as unset: they
// would use the working directory.
func Dir() (string, error) {
	return DirFrom(os.LookupEnv, os.UserHomeDir)
}

// DirFrom is Dir with the environment and the home folder supplied by the
// caller. home is called only when a path needs it.
func DirFrom(lookupEnv func(string) (string, bool), home func() (string, error)) (string, error) {
	get := func(name string) string {
		v, _ := lookupEnv(name)
		return v
	}
	expand := func(p string) (string, error) {
		if p != "~" && !strings.HasPrefix(p, "~/") {
			return p, nil
		}
		h, err := home()
		if err != nil {
			return "", fmt.Errorf("cannot expand %q: %w", p, err)
		}
		return filepath.Join(h, p[1:]), nil
	}
	for _, name := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"} {
		if v := get(name); v != "" {
			return expand(v)
		}
	}
	if v := get("HF_HOME"); v != "" {
		p, err := expand(v)
		return filepath.Join(p, "hub"), err
	}
	if v := get("XDG_CACHE_HOME"); v != "" {
		p, err := expand(v)
		return filepath.Join(p, "huggingface", "hub"), err
	}
	h, err := home()
	if err != nil {
		return "", fmt.Errorf("no HF_HUB_CACHE, HF_HOME or XDG_CACHE_HOME and no home folder: %w", err)
	}
	if h == "" {
		return "", errors.New("no HF_HUB_CACHE, HF_HOME or XDG_CACHE_HOME and no home folder")
	}
	return filepath.Join(h, ".cache", "huggingface", "hub"), nil
}
