package layout

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// filterPaths is huggingface_hub's filter_repo_objects on plain paths: the
// Include/Exclude part of a Selection.
func filterPaths(paths, include, exclude []string) []string {
	s := Selection{Include: include, Exclude: exclude}
	var out []string
	for _, p := range paths {
		if s.Match(p, Classify(p)) {
			out = append(out, p)
		}
	}
	return out
}

// TestSelectionHubCases are the cases of huggingface_hub's
// tests/test_utils_paths.py (TestPathsUtils, TestDefaultIgnorePatterns)
// and the example of filter_repo_objects' docstring.
func TestSelectionHubCases(t *testing.T) {
	dummy := []string{"not_hidden.pdf", "profile.jpg", ".hidden.pdf", ".hidden_picture.png"}
	folders := []string{
		"file.txt", "lfs.bin", "path/to/file.txt", "path/to/lfs.bin",
		"nested/path/to/file.txt", "nested/path/to/lfs.bin",
	}
	defaultIgnore := []string{
		".git", ".git/*", "*/.git", "**/.git/**",
		".cache/huggingface", ".cache/huggingface/*", "*/.cache/huggingface", "**/.cache/huggingface/**",
	}
	toIgnore := []string{
		".git", ".git/file.txt", ".git/folder/file.txt", "path/to/folder/.git", "path/to/folder/.git/file.txt",
		"path/to/.git/folder/file.txt", ".cache/huggingface", ".cache/huggingface/file.txt",
		".cache/huggingface/folder/file.txt", "path/to/.cache/huggingface", "path/to/.cache/huggingface/file.txt",
	}
	valid := []string{
		".gitignore", "path/foo.git/file.txt", "path/.git_bar/file.txt", "path/to/file.git",
		"file.huggingface", "path/file.huggingface", ".cache/huggingface_folder", ".cache/huggingface_folder/file.txt",
	}
	for _, tc := range []struct {
		name             string
		paths            []string
		include, exclude []string
		want             []string
	}{
		{"all pdfs, hidden ones too", dummy, []string{"*.pdf"}, nil, []string{"not_hidden.pdf", ".hidden.pdf"}},
		{"pdfs except hidden", dummy, []string{"*.pdf"}, []string{".*"}, []string{"not_hidden.pdf"}},
		{"all images", dummy, []string{"*.png", "*.jpg"}, nil, []string{"profile.jpg", ".hidden_picture.png"}},
		{"images except hidden", dummy, []string{"*.png", "*.jpg"}, []string{".*"}, []string{"profile.jpg"}},
		{"docstring example", []string{"aaa.pdf", "bbb.jpg", ".ccc.pdf", ".ddd.png"}, []string{"*.pdf"}, []string{".*"}, []string{"aaa.pdf"}},
		{"folder pattern", folders, []string{"path/to/"}, nil, []string{"path/to/file.txt", "path/to/lfs.bin"}},
		{"empty include matches nothing", []string{"file.txt", "lfs.bin"}, []string{""}, nil, nil},
		{"empty exclude excludes nothing", []string{"file.txt", "lfs.bin"}, nil, []string{""}, []string{"file.txt", "lfs.bin"}},
		{"case-sensitive upper", []string{"README.md", "notes.MD"}, []string{"*.MD"}, nil, []string{"notes.MD"}},
		{"case-sensitive lower", []string{"README.md", "notes.MD"}, []string{"*.md"}, nil, []string{"README.md"}},
		{"case-sensitive exclude", []string{"keep.txt", "drop.LOG", "keep.log"}, nil, []string{"*.LOG"}, []string{"keep.txt", "keep.log"}},
		{"backslash pattern", []string{"unet/config.json", "vae/config.json", "unet/model.bin"}, []string{`unet\config.json`}, nil, []string{"unet/config.json"}},
		{"backslash path", []string{`unet\config.json`, `unet\model.bin`}, []string{"unet/*.json"}, nil, []string{`unet\config.json`}},
		{"backslash exclude", []string{"unet/config.json", "unet/model.bin"}, nil, []string{`unet\*.json`}, []string{"unet/model.bin"}},
		{"default ignore patterns", append(append([]string{}, toIgnore...), valid...), nil, defaultIgnore, valid},
		// "*" matches across "/" (filter_repo_objects' docstring, PR #3710).
		{"star crosses folders", []string{"data/file.json", "data/subdir/file.json", "other/file.json"}, []string{"data/*.json"}, nil, []string{"data/file.json", "data/subdir/file.json"}},
		{"star crosses folders in excludes", []string{"model.fp16.safetensors", "text_encoder/model.fp16.safetensors", "model.safetensors"}, nil, []string{"*fp16*"}, []string{"model.safetensors"}},
		{"no patterns", folders, nil, nil, folders},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, filterPaths(tc.paths, tc.include, tc.exclude))
		})
	}
}

// TestMatchPatternFnmatch: cases of CPython's Lib/test/test_fnmatch.py
// (fnmatchcase; translate's set rules) and of fnmatch._translate's range
// handling, with huggingface_hub's separator rule (a backslash is "/").
func TestMatchPatternFnmatch(t *testing.T) {
	for _, tc := range []struct {
		path, pattern string
		want          bool
	}{
		{"abc", "abc", true},
		{"abc", "?*?", true},
		{"abc", "???*", true},
		{"abc", "*???", true},
		{"abc", "???", true},
		{"abc", "*", true},
		{"abc", "ab[cd]", true},
		{"abc", "ab[!de]", true},
		{"abc", "ab[de]", false},
		{"a", "??", false},
		{"a", "b", false},
		{"foo\nbar", "foo*", true},
		{"foo\nbar\n", "foo*", true},
		{"\nfoo", "foo*", false},
		{"\n", "*", true},
		{strings.Repeat("a", 50), "*a*a*a*a*a*a*a*a*a*a", true},
		{strings.Repeat("a", 50) + "b", "*a*a*a*a*a*a*a*a*a*a", false},
		{"AbC", "abc", false},
		{"abc", "AbC", false},
		{"usr/bin", "usr/bin", true},
		// A backslash is a separator here (huggingface_hub), not in
		// plain fnmatchcase.
		{`usr\bin`, "usr/bin", true},
		{"usr/bin", `usr\bin`, true},
		{"/", `[\]`, true},
		{"a", `[!\]`, true},
		{"[", "[[]", true},
		{"&", "[a&&b]", true},
		{"|", "[a||b]", true},
		{"~", "[a~~b]", true},
		{",", "[a-z+--A-Z]", true},
		{".", "[a-z--/A-Z]", true},
		// translate: '[]]' is a set of "]", '[!x]' negated, '[^x]' a set
		// of "^" and "x", '[x' a literal "[".
		{"]", "[]]", true},
		{"y", "[!x]", true},
		{"x", "[!x]", false},
		{"^", "[^x]", true},
		{"y", "[^x]", false},
		{"[x", "[x", true},
		{"x", "[x", false},
		{"A?b", "A*********?[?]?", false},
		{"Axx?b", "A*********?[?]?", true},
		// "?" and "*" match "/" too.
		{"a/b", "a?b", true},
		{"a/b/c.json", "*.json", true},
		// Ranges.
		{"b", "[a-c]", true},
		{"d", "[a-c]", false},
		{"-", "[a-]", true},
		{"-", "[-a]", true},
		{"-", "[!-]", false},
		{"x", "[!-]", true},
		{"-", "[a-c-e]", true}, // a-c, "-", "e"
		{"d", "[a-c-e]", false},
		{"e", "[a-c-e]", true},
		{"^", "[]-a]", true}, // the range "]" to "a"
		{"b", "[z-a]", false},
		{"z", "[z-a]", false},
		{"b", "[!z-a]", true},
		{"/", "[!z-a]", true},
		{"-", "[y-^!-c]", false}, // fnmatch writes [^-c]
		{"c", "[y-^!-c]", false},
		{"b", "[y-^!-c]", true},
		{"/", "[!a]", true},
		{"é", "?", true},
		{"é", "[é]", true},
		{"", "", true},
		{"a", "", false},
		{"", "*", true},
		// A folder pattern selects what is under the folder, not the
		// folder's own name.
		{"path/to", "path/to/", false},
		{"path/to/x/y", "path/to/", true},
		// Invalid UTF-8 is read byte by byte (surrogateescape).
		{"\xff", "?", true},
		{"\xff", "\xfe", false},
		{"\xff", "\xff", true},
	} {
		assert.Equal(t, tc.want, MatchPattern(tc.pattern, tc.path), "MatchPattern(%q, %q)", tc.pattern, tc.path)
	}
}

func TestSelectionOnly(t *testing.T) {
	files := []string{
		"config.json", "adapter_config.json", "generation_config.json", "model-00001-of-00002.safetensors",
		"model.safetensors.index.json", "adapter_model.safetensors", "pytorch_model.bin", "tokenizer.json",
		"optimizer.pt", "trainer_state.json", "rng_state_3.pth", "README.md", "runs/events.out",
	}
	for _, tc := range []struct {
		name string
		sel  Selection
		want []string
	}{
		{"weights", Selection{Only: []Category{CategoryWeights}},
			[]string{"model-00001-of-00002.safetensors", "model.safetensors.index.json", "adapter_model.safetensors", "pytorch_model.bin"}},
		{"config", Selection{Only: []Category{CategoryConfig}},
			[]string{"config.json", "adapter_config.json", "generation_config.json"}},
		{"tokenizer", Selection{Only: []Category{CategoryTokenizer}}, []string{"tokenizer.json"}},
		{"resume", Selection{Only: []Category{CategoryResume}}, []string{"optimizer.pt", "trainer_state.json", "rng_state_3.pth"}},
		{"weights and tokenizer", Selection{Only: []Category{CategoryTokenizer, CategoryWeights}},
			[]string{"model-00001-of-00002.safetensors", "model.safetensors.index.json", "adapter_model.safetensors", "pytorch_model.bin", "tokenizer.json"}},
		{"categories and patterns narrow each other", Selection{Only: []Category{CategoryWeights}, Include: []string{"*.safetensors"}, Exclude: []string{"adapter_*"}},
			[]string{"model-00001-of-00002.safetensors"}},
		{"everything but resume state, by pattern", Selection{Exclude: []string{"optimizer.pt", "rng_state*", "trainer_state.json"}},
			[]string{"config.json", "adapter_config.json", "generation_config.json", "model-00001-of-00002.safetensors",
				"model.safetensors.index.json", "adapter_model.safetensors", "pytorch_model.bin", "tokenizer.json", "README.md", "runs/events.out"}},
		{"other files only without categories", Selection{Include: []string{"runs/"}}, []string{"runs/events.out"}},
		{"unknown category selects nothing", Selection{Only: []Category{"optimizer"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, f := range files {
				if tc.sel.Match(f, Classify(f)) {
					got = append(got, f)
				}
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestCategories(t *testing.T) {
	// Every role but RoleOther is in exactly one category.
	seen := map[Role]Category{}
	for _, c := range Categories() {
		parsed, err := ParseCategory(string(c))
		require.NoError(t, err)
		assert.Equal(t, c, parsed)
		for _, r := range c.Roles() {
			require.True(t, r.Valid(), r)
			_, dup := seen[r]
			require.False(t, dup, "role %s in two categories", r)
			seen[r] = c
			got, ok := CategoryOf(r)
			assert.True(t, ok)
			assert.Equal(t, c, got)
		}
	}
	for _, r := range []Role{RoleWeights, RoleWeightsIndex, RoleConfig, RoleGenerationConfig, RoleTokenizer, RoleResumeState, RoleTrainerState} {
		assert.Contains(t, seen, r)
	}
	_, ok := CategoryOf(RoleOther)
	assert.False(t, ok)
	_, ok = CategoryOf("nonsense")
	assert.False(t, ok)
	assert.Nil(t, Category("nonsense").Roles())

	_, err := ParseCategory("optimizer")
	require.EqualError(t, err, "unknown file category optimizer (want weights, config, tokenizer or resume)")
	_, err = ParseCategory("we\x1bights")
	require.ErrorContains(t, err, `"we\x1bights"`)
}

func TestSelectionDescribe(t *testing.T) {
	for _, tc := range []struct {
		sel  Selection
		want string
	}{
		{Selection{}, "everything"},
		{Selection{Only: []Category{CategoryWeights, CategoryConfig}, Exclude: []string{"*.bin"}}, "only weights and config; excluding *.bin"},
		{Selection{Only: []Category{CategoryWeights}}, "only weights"},
		{Selection{Only: []Category{CategoryWeights, CategoryTokenizer, CategoryWeights, CategoryResume}}, "only weights, tokenizer and resume"},
		{Selection{Include: []string{"*.safetensors", "config.json"}}, "matching *.safetensors or config.json"},
		{Selection{Include: []string{"a", "b", "c"}, Exclude: []string{"x", "y"}}, "matching a, b or c; excluding x and y"},
		{Selection{Exclude: []string{"bad\nname"}}, `excluding "bad\nname"`},
		{Selection{Include: []string{}, Exclude: []string{}, Only: []Category{}}, "everything"},
	} {
		assert.Equal(t, tc.want, tc.sel.Describe())
		assert.Equal(t, tc.want == "everything", tc.sel.All())
	}
}

// FuzzMatchPattern: any pattern and path are matched without panicking,
// in time linear in their product; "*" matches everything, a pattern
// without metacharacters only itself.
func FuzzMatchPattern(f *testing.F) {
	for _, seed := range [][2]string{
		{"*.safetensors", "model.safetensors"}, {"[y-^!-c]", "b"}, {"[!z-a]", "x"}, {"[]-a]", "^"},
		{"[a-c-e]", "-"}, {"path/to/", "path/to/x"}, {`unet\*.json`, "unet/a.json"}, {"[", "["}, {"[!]", "!"},
		{"*a*a*a*a*a*a*a*a*a*a", strings.Repeat("a", 50) + "b"}, {"\xff[\xfe-\xff]", "\xff\xff"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, pattern, path string) {
		got := MatchPattern(pattern, path)
		require.Equal(t, got, MatchPattern(pattern, path), "deterministic")
		require.True(t, MatchPattern("*", path))
		if !strings.ContainsAny(pattern, `*?[\`) && !strings.HasSuffix(pattern, "/") {
			require.Equal(t, pattern == path, got, "a plain pattern matches only itself")
		}
	})
}
