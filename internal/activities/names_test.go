package activities

import (
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The workflows call activities by name (api.Act<Method>), without this
// package: every activity the worker registers (a method of *Activities)
// has its api.Act constant, and every constant names one.
func TestEveryActivityHasItsName(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../../api/calls.go", nil, 0)
	require.NoError(t, err)
	named := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			for i, n := range v.Names {
				if !strings.HasPrefix(n.Name, "Act") || i >= len(v.Values) {
					continue
				}
				lit, ok := v.Values[i].(*ast.BasicLit)
				require.True(t, ok, "%s is not a string literal", n.Name)
				value, err := strconv.Unquote(lit.Value)
				require.NoError(t, err)
				named[n.Name] = value
			}
		}
	}
	var methods []string
	typ := reflect.TypeOf(&Activities{})
	for i := 0; i < typ.NumMethod(); i++ {
		methods = append(methods, typ.Method(i).Name)
	}
	sort.Strings(methods)
	for _, m := range methods {
		assert.Equal(t, m, named["Act"+m], "api.Act%s must be %q: the workflows call activity %s by it", m, m, m)
	}
	for c, v := range named {
		assert.Contains(t, methods, v, "api.%s names %q, which no activity is", c, v)
	}
}
