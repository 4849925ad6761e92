package testmode

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOnlyTestsEnable walks the module: no file outside _test.go turns test mode on, and
// none imports "testing" or internal/vectors (test switches and helpers live in tests,
// export_test.go or this package).
func TestOnlyTestsEnable(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	var files int
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		files++
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "testing" || p == "github.com/meshsync/meshsync/internal/vectors" {
				t.Errorf("%s imports %s outside a test file", path, imp.Path.Value)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Enable" {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "testmode" {
				t.Errorf("%s calls testmode.Enable outside a test file", fset.Position(sel.Pos()))
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("walked %d Go files: not the module root?", files)
	}
}

func TestOnEnable(t *testing.T) {
	// Test mode may already be on in this binary; a hook registered then runs at once.
	var ran int
	OnEnable(func() { ran++ })
	Enable()
	Enable()
	if !Enabled() || ran != 1 {
		t.Fatalf("Enabled %v, hook ran %d times, want true and 1", Enabled(), ran)
	}
}
