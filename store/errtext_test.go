package store_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// libraryDirs are the packages (with everything under them) whose errors
// reach users of the library as well as of the CLI: they must not name a
// flag or a command. cmd/ckpt adds those hints (cmd/ckpt/hints.go).
var libraryDirs = []string{"store", "diff", "layout", "retention", "internal/watch", "hfcache"}

// cliWords finds a flag ("--force") or a ckpt command ("`ckpt init`",
// "ckpt verify") in a message.
var cliWords = regexp.MustCompile("--[a-z]|`ckpt |\\bckpt (init|push|pull|ls|show|tag|untag|rm|gc|verify|du|diff|retention|watch)\\b")

// errorTexts returns every string literal of src that may become an error
// message: the arguments of errors.New and fmt.Errorf, the literals in the
// body of any Error() string method, and every literal of a function that
// returns an error (messages built with fmt.Sprintf or +, like refs'
// not-found errors). Each comes with its position.
func errorTexts(fset *token.FileSet, f *ast.File) map[string]string {
	out := map[string]string{}
	collect := func(n ast.Node) {
		ast.Inspect(n, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil {
					out[fset.Position(lit.Pos()).String()] = s
				}
			}
			return true
		})
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.CallExpr:
			if sel, ok := x.Fun.(*ast.SelectorExpr); ok {
				if pkg, ok := sel.X.(*ast.Ident); ok && (pkg.Name == "errors" && sel.Sel.Name == "New" || pkg.Name == "fmt" && sel.Sel.Name == "Errorf") {
					for _, a := range x.Args {
						collect(a)
					}
				}
			}
		case *ast.FuncDecl:
			if x.Body != nil && (x.Recv != nil && x.Name.Name == "Error" || returnsError(x.Type)) {
				collect(x.Body)
			}
		case *ast.FuncLit:
			if returnsError(x.Type) {
				collect(x.Body)
			}
		}
		return true
	})
	return out
}

// returnsError reports whether a function type has an error result.
func returnsError(ft *ast.FuncType) bool {
	if ft.Results == nil {
		return false
	}
	for _, r := range ft.Results.List {
		if id, ok := r.Type.(*ast.Ident); ok && id.Name == "error" {
			return true
		}
	}
	return false
}

// cliWordsIn lists the error messages of the Go source files under dirs
// (tests excluded) that name a flag or a command.
func cliWordsIn(t *testing.T, root string, dirs []string) []string {
	t.Helper()
	var bad []string
	for _, dir := range dirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, p, nil, 0)
			if err != nil {
				return err
			}
			for pos, s := range errorTexts(fset, f) {
				if cliWords.MatchString(s) {
					bad = append(bad, pos+": "+strconv.Quote(s))
				}
			}
			return nil
		})
		require.NoError(t, err)
	}
	return bad
}

// TestLibraryErrorsNameNoFlag: no error message of the library packages
// names a flag or a command of the CLI.
func TestLibraryErrorsNameNoFlag(t *testing.T) {
	assert.Empty(t, cliWordsIn(t, "..", libraryDirs))
}

// The check finds such words where they hide: in errors.New, in
// fmt.Errorf, in a concatenation, and in an Error method.
func TestLibraryErrorCheckCatches(t *testing.T) {
	dir := t.TempDir()
	src := `package x

import ("errors"; "fmt")

var a = errors.New("target folder is not empty (use --force)")
var b = fmt.Errorf("%w (run ` + "`ckpt init`" + `)", a)
var c = fmt.Errorf("%s", "see " + "--allow-incomplete")
var fine = errors.New("manifest version 2 is newer than this ckpt reads")
var notAnError = "--force is a flag"

type e struct{ msg string }

func (e) Error() string { return fmt.Sprint("push with --metric") }

func resolve() error {
	msg := fmt.Sprintf("no version has %s recorded", "eval_loss")
	return e{msg + " (run ckpt verify)"}
}

func label() string { return "--not-an-error" }
`
	require.NoError(t, writeFile(filepath.Join(dir, "lib", "x.go"), src))
	require.NoError(t, writeFile(filepath.Join(dir, "lib", "x_test.go"), "package x\nvar _ = fmt.Errorf(\"--ok-in-tests\")\n"))
	bad := cliWordsIn(t, dir, []string{"lib"})
	assert.Len(t, bad, 5, "%q", bad)
	for _, want := range []string{"--force)", "`ckpt init`", "--allow-incomplete", "--metric", "ckpt verify"} {
		assert.True(t, strings.Contains(strings.Join(bad, "\n"), want), "%s not caught in %q", want, bad)
	}
}

func writeFile(p, content string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(content), 0o644)
}
