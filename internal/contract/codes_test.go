package contract_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/soulapp/soul/api"
	"github.com/soulapp/soul/internal/problem"
)

const problemImport = "github.com/soulapp/soul/internal/problem"

// The document's Problem.code enum is exactly the set of codes the server
// can answer, read from the source: the code of every problem.New call and
// problem.Error literal, and the codes problem.CodeForStatus gives the
// statuses it names (problem.From, and so Caddy's own errors, take their
// code from it). A code given any other way (a variable, an assignment to
// Code) fails the test, so that a new code cannot slip past it.
//
// CodeForStatus's fallback, "http_" and the status, is for a 4xx status it
// does not name; no route answers one, so the enum does not list it.
func TestProblemCodesMatchTheServer(t *testing.T) {
	server := serverCodes(t)
	for s := 400; s <= 599; s++ {
		if c := problem.CodeForStatus(s); !strings.HasPrefix(c, "http_") {
			server[c] = append(server[c], "problem.CodeForStatus("+strconv.Itoa(s)+")")
		}
	}
	if len(server) < 10 {
		t.Fatalf("found only %d codes in the source; is the walk looking in the right place?", len(server))
	}

	doc := documentCodes(t)
	var missing, extra []string
	for c, where := range server {
		if !doc[c] {
			missing = append(missing, c+" (from "+where[0]+")")
		}
	}
	for c := range doc {
		if server[c] == nil {
			extra = append(extra, c)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("the server answers codes that Problem.code does not list: %s", strings.Join(missing, ", "))
	}
	if len(extra) > 0 {
		t.Errorf("Problem.code lists codes the server never answers: %s", strings.Join(extra, ", "))
	}
}

// documentCodes is the enum of Problem.code in the document.
func documentCodes(t *testing.T) map[string]bool {
	t.Helper()
	var doc struct {
		Components struct {
			Schemas struct {
				Problem struct {
					Properties struct {
						Code struct {
							Enum []string `json:"enum"`
						} `json:"code"`
					} `json:"properties"`
				} `json:"Problem"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	enum := doc.Components.Schemas.Problem.Properties.Code.Enum
	if len(enum) == 0 {
		t.Fatal("Problem.code has no enum")
	}
	out := make(map[string]bool, len(enum))
	for _, c := range enum {
		if out[c] {
			t.Errorf("Problem.code lists %q twice", c)
		}
		out[c] = true
	}
	return out
}

// serverCodes walks the module's non-test Go files and returns each
// problem code they give, with where it was found.
func serverCodes(t *testing.T) map[string][]string {
	t.Helper()
	root := filepath.Join("..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no module root at %s: %v", root, err)
	}
	codes := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		collectCodes(t, fset, f, filepath.ToSlash(filepath.Dir(path)) == filepath.ToSlash(filepath.Join(root, "internal", "problem")), codes)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return codes
}

// collectCodes adds the codes of one file. inProblem tells the problem
// package itself, where New and Error are not qualified.
func collectCodes(t *testing.T, fset *token.FileSet, f *ast.File, inProblem bool, codes map[string][]string) {
	t.Helper()
	pkg := ""
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == problemImport {
			pkg = "problem"
			if imp.Name != nil {
				pkg = imp.Name.Name
			}
		}
	}
	if pkg == "" && !inProblem {
		return
	}
	// is reports whether e names the problem package's identifier name.
	is := func(e ast.Expr, name string) bool {
		switch e := e.(type) {
		case *ast.Ident:
			return inProblem && e.Name == name
		case *ast.SelectorExpr:
			x, ok := e.X.(*ast.Ident)
			return ok && x.Name == pkg && e.Sel.Name == name
		}
		return false
	}
	literal := func(e ast.Expr, what string) {
		pos := fset.Position(e.Pos())
		where := filepath.Base(filepath.Dir(pos.Filename)) + "/" + filepath.Base(pos.Filename) + ":" + strconv.Itoa(pos.Line)
		lit, ok := e.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			t.Errorf("%s: the code of %s is not a string literal, so this test cannot list it", where, what)
			return
		}
		c, err := strconv.Unquote(lit.Value)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
		codes[c] = append(codes[c], where)
	}
	// tables are the struct types of this file with an Err error and a
	// Code string field (a table from domain errors to answers, such as
	// auth.Outcome), by
	// name, with the position of Code among their fields: the codes are
	// those of their literals, and problem.New(x.Status, x.Code, ...) on
	// one of them gives no code of its own.
	tables := map[string]int{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok {
			continue
		}
		for _, sp := range g.Specs {
			ts, ok := sp.(*ast.TypeSpec)
			if !ok {
				continue
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				continue
			}
			hasErr := false
			for _, fl := range st.Fields.List {
				for _, name := range fl.Names {
					if id, ok := fl.Type.(*ast.Ident); ok && name.Name == "Err" && id.Name == "error" {
						hasErr = true
					}
				}
			}
			if !hasErr {
				continue
			}
			i := 0
			for _, fl := range st.Fields.List {
				n := max(len(fl.Names), 1)
				for _, name := range fl.Names {
					if id, ok := fl.Type.(*ast.Ident); ok && name.Name == "Code" && id.Name == "string" {
						tables[ts.Name.Name] = i
					}
					i++
				}
				if len(fl.Names) == 0 {
					i += n
				}
			}
		}
	}
	fromTable := func(e ast.Expr) bool {
		sel, ok := e.(*ast.SelectorExpr)
		return ok && sel.Sel.Name == "Code" && len(tables) > 0
	}
	ast.Inspect(f, func(n ast.Node) bool {
		if lit, ok := n.(*ast.CompositeLit); ok {
			// A table's rows: []Outcome{{...}, {...}}, their type elided.
			if arr, ok := lit.Type.(*ast.ArrayType); ok {
				if id, ok := arr.Elt.(*ast.Ident); ok {
					if _, ok := tables[id.Name]; ok {
						for _, el := range lit.Elts {
							if row, ok := el.(*ast.CompositeLit); ok && row.Type == nil {
								row.Type = id
							}
						}
					}
				}
			}
			if id, ok := lit.Type.(*ast.Ident); ok {
				if at, ok := tables[id.Name]; ok {
					for i, el := range lit.Elts {
						if kv, ok := el.(*ast.KeyValueExpr); ok {
							if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Code" {
								literal(kv.Value, "a "+id.Name+" literal")
							}
						} else if i == at {
							literal(el, "a "+id.Name+" literal")
						}
					}
					return true
				}
			}
		}
		switch n := n.(type) {
		case *ast.FuncDecl:
			// New itself builds its Error from its argument, which the
			// calls of New give.
			return !(inProblem && n.Recv == nil && n.Name.Name == "New")
		case *ast.CallExpr:
			if is(n.Fun, "New") {
				if len(n.Args) != 3 {
					t.Errorf("%s: problem.New with %d arguments", fset.Position(n.Pos()), len(n.Args))
					return true
				}
				if fromTable(n.Args[1]) {
					return true // the codes of the table's literals
				}
				literal(n.Args[1], "problem.New")
			}
		case *ast.CompositeLit:
			if !is(n.Type, "Error") {
				return true
			}
			for _, el := range n.Elts {
				kv, ok := el.(*ast.KeyValueExpr)
				if !ok {
					t.Errorf("%s: a problem.Error literal without field names", fset.Position(n.Pos()))
					continue
				}
				if k, ok := kv.Key.(*ast.Ident); !ok || k.Name != "Code" {
					continue
				}
				if call, ok := kv.Value.(*ast.CallExpr); ok && is(call.Fun, "CodeForStatus") {
					continue // the table, listed from CodeForStatus itself
				}
				literal(kv.Value, "a problem.Error literal")
			}
		case *ast.AssignStmt:
			for _, lhs := range n.Lhs {
				if sel, ok := lhs.(*ast.SelectorExpr); ok && sel.Sel.Name == "Code" {
					t.Errorf("%s: an assignment to a Code field; give a problem's code in problem.New or a problem.Error literal",
						fset.Position(n.Pos()))
				}
			}
		}
		return true
	})
}
