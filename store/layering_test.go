package store_test

import (
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// module is the import path of this module.
const module = "github.com/ckptdev/ckpt"

// importGraph returns, for every package of the module under root, the
// module packages its non-test files import (of every GOOS and GOARCH:
// build tags are ignored, so a file for another system counts too), by
// path relative to the module ("store/refs").
func importGraph(t *testing.T, root string) map[string][]string {
	t.Helper()
	graph := map[string][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		if _, ok := graph[pkg]; !ok {
			graph[pkg] = nil
		}
		for _, spec := range f.Imports {
			path, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				return err
			}
			if dep, ok := strings.CutPrefix(path, module+"/"); ok && !slices.Contains(graph[pkg], dep) {
				graph[pkg] = append(graph[pkg], dep)
			}
		}
		return nil
	})
	require.NoError(t, err)
	return graph
}

// reach returns every module package pkg imports, directly or not.
func reach(graph map[string][]string, pkg string) []string {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		for _, d := range graph[p] {
			if !seen[d] {
				seen[d] = true
				walk(d)
			}
		}
	}
	walk(pkg)
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// layerRule says what the packages matching pkgs may reach of the module,
// directly or not: only what allowed lists (when only is set), and never
// what forbidden lists. A pattern "x/..." matches x and everything under
// it.
type layerRule struct {
	pkgs      []string
	only      bool
	allowed   []string
	forbidden []string
	why       string
}

func matches(pattern, pkg string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

func matchesAny(patterns []string, pkg string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return matches(p, pkg) })
}

// layerRules is the package map of docs (README "How it is built",
// store/doc.go): imports point downward only.
var layerRules = []layerRule{
	{pkgs: []string{"store/backend"}, only: true,
		why: "the Backend contract is standard library only"},
	{pkgs: []string{"store/backend/local", "store/backend/mem", "store/backend/backendtest"}, only: true, allowed: []string{"store/backend"},
		why: "a backend needs nothing of ckpt but the contract"},
	{pkgs: []string{"store/backend/s3"}, only: true, allowed: []string{"store/backend", "internal/redact"},
		why: "a backend needs nothing of ckpt but the contract (and the S3 one keeps credentials out of its errors)"},
	{pkgs: []string{"store/planes"}, only: true,
		why: "the weights codec is a leaf"},
	{pkgs: []string{"store/object"}, only: true, allowed: []string{"store/planes"},
		why: "the object envelope needs only its codecs"},
	{pkgs: []string{"store/manifest"}, only: true, allowed: []string{"store/object", "store/planes", "layout", "internal/textsafe"},
		why: "manifests build on objects and the HF layout, never on the engine"},
	{pkgs: []string{"store/refs"}, only: true, allowed: []string{"store/object", "store/planes", "store/backend", "retention"},
		why: "refs build on objects, key rules and retention, never on the engine"},
	{pkgs: []string{"layout/...", "retention/..."}, forbidden: []string{"store/...", "diff/...", "cmd/...", "internal/watch/..."},
		why: "layout and retention are pure and know nothing of storage"},
	{pkgs: []string{"store/..."}, forbidden: []string{"cmd/...", "diff/...", "internal/watch/...", "hfcache/..."},
		why: "the engine and its parts never reach up to their users"},
	{pkgs: []string{"diff/...", "internal/watch/..."}, forbidden: []string{"cmd/..."},
		why: "libraries never reach the CLI"},
}

// layeringViolations lists every rule the graph breaks, one line each.
func layeringViolations(graph map[string][]string, rules []layerRule) []string {
	var out []string
	pkgs := make([]string, 0, len(graph))
	for p := range graph {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, rule := range rules {
		for _, pkg := range pkgs {
			if !matchesAny(rule.pkgs, pkg) {
				continue
			}
			for _, dep := range reach(graph, pkg) {
				if rule.only && !matchesAny(rule.allowed, dep) || matchesAny(rule.forbidden, dep) {
					out = append(out, fmt.Sprintf("%s reaches %s (%s)", pkg, dep, rule.why))
				}
			}
		}
	}
	return out
}

// TestLayering: the module's import graph follows the package map, so the
// split of store/ cannot erode.
func TestLayering(t *testing.T) {
	graph := importGraph(t, "..")
	for _, pkg := range []string{"store", "store/backend", "store/backend/local", "store/backend/s3", "store/backend/mem",
		"store/backend/backendtest", "store/object", "store/manifest", "store/refs", "layout", "retention"} {
		require.Contains(t, graph, pkg, "the package map names %s", pkg)
	}
	assert.Empty(t, layeringViolations(graph, layerRules))
}

// TestLayeringRulesCatchViolations: each kind of forbidden edge, direct or
// through another package, is reported.
func TestLayeringRulesCatchViolations(t *testing.T) {
	good := map[string][]string{
		"store":               {"store/backend", "store/object", "store/manifest", "store/refs", "layout", "retention"},
		"store/backend":       nil,
		"store/backend/mem":   {"store/backend"},
		"store/object":        {"store/planes"},
		"store/planes":        nil,
		"store/manifest":      {"store/object", "layout"},
		"store/refs":          {"store/object", "store/backend", "retention"},
		"layout":              {"internal/textsafe"},
		"internal/textsafe":   nil,
		"retention":           nil,
		"diff":                {"store", "layout"},
		"cmd/ckpt":            {"store", "diff"},
		"store/backend/local": {"store/backend"},
	}
	require.Empty(t, layeringViolations(good, layerRules))
	tests := []struct {
		name     string
		from, to string
		want     string
	}{
		{"backend imports the engine", "store/backend/mem", "store", "store/backend/mem reaches store "},
		{"backend reaches through object", "store/backend/local", "store/object", "store/backend/local reaches store/planes "},
		{"contract imports anything", "store/backend", "layout", "store/backend reaches layout "},
		{"object imports the engine", "store/object", "store", "store/object reaches store "},
		{"manifest imports refs", "store/manifest", "store/refs", "store/manifest reaches store/refs "},
		{"refs imports the engine", "store/refs", "store", "store/refs reaches store "},
		{"layout imports store", "layout", "store/object", "layout reaches store/object "},
		{"retention imports the engine", "retention", "store", "retention reaches store "},
		{"engine imports diff", "store", "diff", "store reaches diff "},
		{"diff imports the CLI", "diff", "cmd/ckpt", "diff reaches cmd/ckpt "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := map[string][]string{}
			for k, v := range good {
				bad[k] = slices.Clone(v)
			}
			bad[tt.from] = append(bad[tt.from], tt.to)
			got := layeringViolations(bad, layerRules)
			require.NotEmpty(t, got)
			assert.True(t, slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, tt.want) }), "%q not in %q", tt.want, got)
		})
	}
}

// The graph is read from this checkout.
func TestImportGraphReadsTheModule(t *testing.T) {
	_, err := os.Stat("../go.mod")
	require.NoError(t, err)
	graph := importGraph(t, "..")
	assert.Contains(t, graph["store"], "store/backend")
	assert.Contains(t, graph["store/backend/s3"], "store/backend")
}
