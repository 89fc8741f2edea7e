package lineartest

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vektah/gqlparser/v2/ast"
)

// obj is a GraphQL object as the fake serves it: scalar fields hold values, related objects and connections hold
// a lazy resolver so cycles (issue → team → issues) cost nothing until selected.
type obj map[string]any

// lazy resolves a field from its arguments.
type lazy func(args map[string]any) (any, error)

// gqlErr is a GraphQL error as Linear answers it.
type gqlErr struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path,omitempty"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

func (e *gqlErr) Error() string { return e.Message }

// userError is an "invalid input" error the way Linear phrases them.
func userError(msg, presentable string) *gqlErr {
	return &gqlErr{Message: msg, Extensions: map[string]any{
		"type": "invalid input", "code": "INPUT_ERROR", "statusCode": 400, "userError": true,
		"userPresentableMessage": presentable,
	}}
}

func notFound(entity string) *gqlErr {
	return userError("Entity not found: "+entity, "Could not find referenced "+entity+".")
}

func conflict(entity, id string) *gqlErr {
	return userError(fmt.Sprintf("%s with id %s already exists", entity, id),
		fmt.Sprintf("An %s with this id already exists.", strings.ToLower(entity)))
}

// project selects sel from v, resolving lazy fields with their arguments.
func project(v any, sel ast.SelectionSet, vars map[string]any) (any, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case obj:
		out := map[string]any{}
		typename, _ := v["__typename"].(string)
		for _, f := range collectFields(sel, typename) {
			var val any = v[f.Name]
			if f.Name == "__typename" {
				val = typename
			}
			if l, ok := val.(lazy); ok {
				var err error
				if val, err = l(f.ArgumentMap(vars)); err != nil {
					return nil, err
				}
			}
			if len(f.SelectionSet) > 0 {
				var err error
				if val, err = project(val, f.SelectionSet, vars); err != nil {
					return nil, err
				}
			}
			out[f.Alias] = val
		}
		return out, nil
	case []obj:
		out := make([]any, len(v))
		for i, o := range v {
			p, err := project(o, sel, vars)
			if err != nil {
				return nil, err
			}
			out[i] = p
		}
		return out, nil
	default:
		return v, nil
	}
}

// collectFields flattens fragments whose type condition matches typename (or any interface it may implement).
func collectFields(sel ast.SelectionSet, typename string) []*ast.Field {
	var out []*ast.Field
	for _, s := range sel {
		switch s := s.(type) {
		case *ast.Field:
			out = append(out, s)
		case *ast.InlineFragment:
			if applies(s.TypeCondition, s.ObjectDefinition, typename) {
				out = append(out, collectFields(s.SelectionSet, typename)...)
			}
		case *ast.FragmentSpread:
			if s.Definition != nil && applies(s.Definition.TypeCondition, s.ObjectDefinition, typename) {
				out = append(out, collectFields(s.Definition.SelectionSet, typename)...)
			}
		}
	}
	return out
}

func applies(cond string, def *ast.Definition, typename string) bool {
	return cond == "" || cond == typename || typename == "" || (def != nil && def.IsAbstractType())
}

// comparators are the keys of Linear's *Comparator inputs the fake understands.
var comparators = map[string]bool{
	"eq": true, "neq": true, "in": true, "nin": true, "eqIgnoreCase": true, "neqIgnoreCase": true,
	"gt": true, "gte": true, "lt": true, "lte": true, "contains": true, "containsIgnoreCase": true,
	"startsWith": true, "endsWith": true, "null": true,
}

// match evaluates a Linear filter input against o; nested filters follow relations.
func match(o obj, filter map[string]any) (bool, error) {
	for k, cond := range filter {
		switch k {
		case "and", "or":
			subs, _ := cond.([]any)
			some, all := false, true
			for _, s := range subs {
				m, _ := s.(map[string]any)
				ok, err := match(o, m)
				if err != nil {
					return false, err
				}
				some, all = some || ok, all && ok
			}
			if (k == "and" && !all) || (k == "or" && !some && len(subs) > 0) {
				return false, nil
			}
			continue
		case "null":
			if (o == nil) != (cond == true) {
				return false, nil
			}
			continue
		}
		if o == nil {
			return false, nil
		}
		val := o[k]
		if l, ok := val.(lazy); ok {
			var err error
			if val, err = l(nil); err != nil {
				return false, err
			}
		}
		m, _ := cond.(map[string]any)
		if sub, isObj := val.(obj); isObj || (val == nil && !onlyComparators(m)) {
			ok, err := match(sub, m)
			if err != nil || !ok {
				return false, err
			}
			continue
		}
		if !compareAll(val, m) {
			return false, nil
		}
	}
	return true, nil
}

func onlyComparators(m map[string]any) bool {
	for k := range m {
		if !comparators[k] {
			return false
		}
	}
	return true
}

func compareAll(val any, cmp map[string]any) bool {
	for op, want := range cmp {
		if !compare(val, op, want) {
			return false
		}
	}
	return true
}

func compare(val any, op string, want any) bool {
	if op == "null" {
		return (val == nil) == (want == true)
	}
	if val == nil {
		return op == "neq" || op == "nin"
	}
	switch op {
	case "in", "nin":
		list, _ := want.([]any)
		found := false
		for _, w := range list {
			found = found || order(val, w) == 0
		}
		return found == (op == "in")
	case "eqIgnoreCase", "neqIgnoreCase":
		eq := strings.EqualFold(fmt.Sprint(val), fmt.Sprint(want))
		return eq == (op == "eqIgnoreCase")
	case "contains":
		return strings.Contains(fmt.Sprint(val), fmt.Sprint(want))
	case "containsIgnoreCase":
		return strings.Contains(strings.ToLower(fmt.Sprint(val)), strings.ToLower(fmt.Sprint(want)))
	case "startsWith":
		return strings.HasPrefix(fmt.Sprint(val), fmt.Sprint(want))
	case "endsWith":
		return strings.HasSuffix(fmt.Sprint(val), fmt.Sprint(want))
	}
	c := order(val, want)
	switch op {
	case "eq":
		return c == 0
	case "neq":
		return c != 0
	case "gt":
		return c > 0
	case "gte":
		return c >= 0
	case "lt":
		return c < 0
	case "lte":
		return c <= 0
	}
	return false
}

// order compares a field value with a filter value: as times when both parse, as numbers, else as strings.
func order(a, b any) int {
	as, bs := fmt.Sprint(a), fmt.Sprint(b)
	if ta, err := time.Parse(time.RFC3339Nano, as); err == nil {
		if tb, err := time.Parse(time.RFC3339Nano, bs); err == nil {
			return ta.Compare(tb)
		}
	}
	if fa, ok := num(a); ok {
		if fb, ok := num(b); ok {
			switch {
			case fa < fb:
				return -1
			case fa > fb:
				return 1
			}
			return 0
		}
	}
	return strings.Compare(as, bs)
}

func num(v any) (float64, bool) {
	switch v := v.(type) {
	case float64:
		return v, true
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	}
	return 0, false
}

// connection applies Linear's connection arguments (filter, includeArchived, orderBy, first/after) to nodes.
func connection(typename string, nodes []obj, args map[string]any) (obj, error) {
	var kept []obj
	filter, _ := args["filter"].(map[string]any)
	for _, n := range nodes {
		if args["includeArchived"] != true && n["archivedAt"] != nil {
			continue
		}
		if filter != nil {
			ok, err := match(n, filter)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		kept = append(kept, n)
	}
	key := "createdAt"
	if args["orderBy"] == "updatedAt" {
		key = "updatedAt"
	}
	// Newest first, like Linear; ties broken by id so pages are stable.
	sort.SliceStable(kept, func(i, j int) bool {
		if c := order(kept[i][key], kept[j][key]); c != 0 {
			return c > 0
		}
		return fmt.Sprint(kept[i]["id"]) < fmt.Sprint(kept[j]["id"])
	})
	start := 0
	if after, ok := args["after"].(string); ok && after != "" {
		for i, n := range kept {
			if n["id"] == after {
				start = i + 1
			}
		}
	}
	first := 50
	if f, ok := num(args["first"]); ok && f > 0 {
		first = int(f)
	}
	end := min(start+first, len(kept))
	page := kept[start:end]
	edges := make([]obj, len(page))
	for i, n := range page {
		edges[i] = obj{"__typename": typename + "Edge", "node": n, "cursor": n["id"]}
	}
	pi := obj{"__typename": "PageInfo", "hasNextPage": end < len(kept), "hasPreviousPage": start > 0,
		"startCursor": nil, "endCursor": nil}
	if len(page) > 0 {
		pi["startCursor"], pi["endCursor"] = page[0]["id"], page[len(page)-1]["id"]
	}
	return obj{"__typename": typename + "Connection", "nodes": page, "edges": edges, "pageInfo": pi}, nil
}
