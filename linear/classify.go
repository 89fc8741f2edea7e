package linear

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/linsync/linsync"
)

// MaxComplexity is the most complexity points Linear accepts in one request; it rejects anything above.
const MaxComplexity = 10000

// Rules of Linear's published complexity estimate: a scalar field costs 0.1, an object 1, and a connection
// multiplies what it selects by its page size (first or last, 50 when neither is given); the total is rounded up.
const (
	complexityProperty = 0.1
	complexityObject   = 1
	defaultPageSize    = 50
)

// Operation is an agent's GraphQL request as the gateway understands it: the operation the request selects, every
// root field of it classified from the parsed document (never from the operation's name), and what is needed to
// bind an approval to exactly this request.
type Operation struct {
	// Name is the selected operation's name in the document ("" for an anonymous one).
	Name string
	// Type is query or mutation.
	Type    string
	Actions []linsync.GatewayAction
	// Risk is the highest risk of the actions.
	Risk       string
	Complexity int
	// NameMismatch says how the operation's name misrepresents its root fields, "" when it does not.
	NameMismatch string
	// Hash is the hex SHA-256 of the normalized document, the selected operation's name and the variables.
	Hash string
	// VariableNames are the paths of the variables' fields (input.title), for the audit: names, never values.
	VariableNames []string
	// Summary says in a line per root field what the request does, with its arguments, for an approver.
	Summary string
}

// OperationError is a request the gateway refuses before anything is sent: Code is the GraphQL error code Linear
// would answer with (GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED, …).
type OperationError struct {
	Code    string
	Message string
}

func (e *OperationError) Error() string { return e.Code + ": " + e.Message }

func refuse(code, format string, args ...any) *OperationError {
	return &OperationError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ClassifyOperation parses req against Linear's schema, validates it as Linear would, selects its operation
// (req.OperationName when the document has several) and classifies every root field of it. Subscriptions and
// documents over MaxComplexity are refused; so is anything the schema does not accept.
func ClassifyOperation(schema *ast.Schema, req linsync.GatewayRequest) (*Operation, error) {
	if strings.TrimSpace(req.Query) == "" {
		return nil, refuse("GRAPHQL_PARSE_FAILED", "the request has no query")
	}
	doc, errs := gqlparser.LoadQueryWithRules(schema, req.Query, nil)
	if len(errs) > 0 {
		return nil, refuse("GRAPHQL_VALIDATION_FAILED", "%s", errs[0].Message)
	}
	var op *ast.OperationDefinition
	switch {
	case req.OperationName != "":
		if op = doc.Operations.ForName(req.OperationName); op == nil {
			return nil, refuse("GRAPHQL_VALIDATION_FAILED", "Unknown operation named %q.", req.OperationName)
		}
	case len(doc.Operations) == 1:
		op = doc.Operations[0]
	default:
		return nil, refuse("GRAPHQL_VALIDATION_FAILED", "Must provide operation name if query contains multiple operations.")
	}
	if op.Operation == ast.Subscription {
		return nil, refuse("GRAPHQL_VALIDATION_FAILED", "subscriptions are not supported by Linear's HTTP endpoint or the gateway")
	}
	raw, err := decodeVariables(req.Variables)
	if err != nil {
		return nil, err
	}
	vars, gerr := validator.VariableValues(schema, op, raw)
	if gerr != nil {
		return nil, refuse("GRAPHQL_VALIDATION_FAILED", "%s", strings.TrimPrefix(gerr.Error(), "input: "))
	}

	out := &Operation{Name: op.Name, Type: string(op.Operation)}
	var summary []string
	for _, f := range rootFields(op.SelectionSet) {
		if f.Name == "__typename" {
			continue
		}
		a := classifyField(op.Operation, f, vars)
		out.Actions = append(out.Actions, a)
		summary = append(summary, fmt.Sprintf("%s (%s risk): %s", a.Action, a.Risk, describeField(f, vars)))
	}
	out.Risk = linsync.MaxRisk(out.Actions)
	out.Summary = strings.Join(summary, "\n")
	cost := selectionCost(schema, op.SelectionSet, vars, 0)
	if cost > math.MaxInt32 {
		cost = math.MaxInt32
	}
	out.Complexity = int(math.Ceil(cost - 1e-9))
	if out.Complexity > MaxComplexity {
		return nil, refuse("GRAPHQL_VALIDATION_FAILED", "query too complex: an estimated %d points, over Linear's limit of %d; ask for fewer items per page (first)", out.Complexity, MaxComplexity)
	}
	out.NameMismatch = nameMismatch(schema, op, out.Actions)
	out.VariableNames = variablePaths("", raw)
	out.Hash = requestHash(doc, op.Name, raw)
	return out, nil
}

// decodeVariables reads the request's variables.
func decodeVariables(b json.RawMessage) (map[string]any, error) {
	if len(bytes.TrimSpace(b)) == 0 || string(bytes.TrimSpace(b)) == "null" {
		return map[string]any{}, nil
	}
	// Numbers decode as float64, as the schema's validation of Int and String values expects.
	var vars map[string]any
	if err := json.Unmarshal(b, &vars); err != nil {
		return nil, refuse("GRAPHQL_VALIDATION_FAILED", "variables must be a JSON object")
	}
	if vars == nil {
		vars = map[string]any{}
	}
	return vars, nil
}

// rootFields returns the root fields of a selection set in document order, through fragment spreads and inline
// fragments, so a field cannot hide from classification in a fragment. Fields under @skip or @include count too:
// what might run is classified.
func rootFields(set ast.SelectionSet) []*ast.Field {
	var out []*ast.Field
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			out = append(out, s)
		case *ast.InlineFragment:
			out = append(out, rootFields(s.SelectionSet)...)
		case *ast.FragmentSpread:
			if s.Definition != nil {
				out = append(out, rootFields(s.Definition.SelectionSet)...)
			}
		}
	}
	return out
}

// Verbs that start the action part of a mutation's name (issue|AddLabel, issueLabel|Create).
var mutationVerbs = map[string]bool{
	"create": true, "update": true, "delete": true, "archive": true, "unarchive": true, "add": true, "remove": true,
	"batch": true, "restore": true, "retire": true, "rotate": true, "connect": true, "disconnect": true, "link": true,
	"share": true, "unshare": true, "subscribe": true, "unsubscribe": true, "resolve": true, "unresolve": true,
	"merge": true, "upsert": true, "suspend": true, "unsuspend": true, "revoke": true, "move": true, "claim": true,
	"verify": true, "sync": true, "unsync": true, "start": true, "complete": true, "mark": true, "snooze": true,
	"unsnooze": true, "import": true, "process": true, "refresh": true, "reassign": true, "change": true,
	"send": true, "test": true, "enable": true, "disable": true, "dangerously": true, "shift": true, "reset": true,
	"unlink": true, "post": true, "fetch": true, "request": true, "cancel": true, "kick": true, "leave": true,
	"join": true, "promote": true, "demote": true, "trash": true, "finish": true,
}

// Words of an action that make it destructive: high risk whatever the entity.
var destructiveWords = []string{"delete", "archive", "trash", "retire", "merge", "suspend", "revoke", "unlink"}

// Entities whose every mutation is administrative (credentials, webhooks, members, OAuth, integrations,
// organization settings, sign-in), and query roots that read such things (webhook secrets, API keys, audit logs):
// high risk.
var (
	adminEntities = []string{"webhook", "api_key", "organization", "oauth", "integration", "integrations", "team",
		"team_membership", "team_key", "user", "email_intake_address", "git_automation", "saml", "google_user",
		"email_token", "email_user", "passkey", "logout", "leave_organization", "join_organization",
		"resend_organization", "partner_application", "create_organization", "airbyte_integration",
		"jira_integration", "update_integration", "user_revoke", "user_change"}
	adminQueryPrefixes = []string{"webhook", "apiKey", "auditEntr", "authenticationSession", "userSession",
		"integration", "archivedIntegration", "oauth", "organizationInvite", "organizationDomain", "failuresForOauth",
		"ssoUrl", "templatesForIntegration"}
)

// classifyField names a root field's action and risk from the field itself (and, for an update, whether its input
// trashes the entity): queries read (high risk only for administrative roots), mutations are entity.verb.
func classifyField(kind ast.Operation, f *ast.Field, vars map[string]any) linsync.GatewayAction {
	a := linsync.GatewayAction{Field: f.Name}
	if f.Alias != "" && f.Alias != f.Name {
		a.Alias = f.Alias
	}
	if kind == ast.Query {
		a.Action, a.Risk = "read", linsync.RiskLow
		for _, p := range adminQueryPrefixes {
			if strings.HasPrefix(f.Name, p) {
				a.Action, a.Risk = "admin.read", linsync.RiskHigh
			}
		}
		return a
	}
	entity, verb := splitMutation(f.Name)
	if verb == "update" && trashes(f, vars) {
		verb = "trash"
	}
	a.Action, a.Risk = entity+"."+verb, linsync.RiskMedium
	for _, w := range destructiveWords {
		if strings.Contains(verb, w) && !strings.Contains(verb, "un"+w) {
			a.Risk = linsync.RiskHigh
		}
	}
	for _, e := range adminEntities {
		if entity == e || strings.HasPrefix(entity, e+"_") {
			a.Risk = linsync.RiskHigh
		}
	}
	return a
}

// splitMutation splits a mutation root field into its entity and verb, in snake case: issueCreate → issue, create;
// issueLabelCreate → issue_label, create; issueAddLabel → issue, add_label. A name with no known verb is entity.call.
func splitMutation(name string) (entity, verb string) {
	words := camelWords(name)
	for i := 1; i < len(words); i++ {
		if mutationVerbs[words[i]] {
			return strings.Join(words[:i], "_"), strings.Join(words[i:], "_")
		}
	}
	return strings.Join(words, "_"), "call"
}

func camelWords(s string) []string {
	var words []string
	start := 0
	rs := []rune(s)
	for i := 1; i < len(rs); i++ {
		if unicode.IsUpper(rs[i]) && (!unicode.IsUpper(rs[i-1]) || i+1 < len(rs) && unicode.IsLower(rs[i+1])) {
			words = append(words, strings.ToLower(string(rs[start:i])))
			start = i
		}
	}
	return append(words, strings.ToLower(string(rs[start:])))
}

// trashes reports whether an update's input sets trashed: true, which moves the entity to the trash: a delete.
func trashes(f *ast.Field, vars map[string]any) bool {
	arg := f.Arguments.ForName("input")
	if arg == nil || arg.Value == nil {
		return false
	}
	v, err := arg.Value.Value(vars)
	if err != nil {
		return false
	}
	in, _ := v.(map[string]any)
	t, _ := in["trashed"].(bool)
	return t
}

// describeField renders a root field with its arguments' values (variables filled in), each cut to a readable length.
func describeField(f *ast.Field, vars map[string]any) string {
	var args []string
	for _, a := range f.Arguments {
		v, err := a.Value.Value(vars)
		s := "?"
		if err == nil {
			b, _ := json.Marshal(v)
			s = string(b)
		}
		if r := []rune(s); len(r) > 160 {
			s = string(r[:157]) + "…"
		}
		args = append(args, a.Name+": "+s)
	}
	name := f.Name
	if f.Alias != "" && f.Alias != f.Name {
		name = f.Alias + ": " + f.Name
	}
	return name + "(" + strings.Join(args, ", ") + ")"
}

// selectionCost estimates a selection's cost by Linear's published rules. Fragments count in full, an overestimate
// for unions, never an underestimate.
func selectionCost(schema *ast.Schema, set ast.SelectionSet, vars map[string]any, depth int) float64 {
	if depth > 64 {
		return MaxComplexity + 1 // validation forbids cycles; a document this deep is refused anyway
	}
	total := 0.0
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			total += fieldCost(schema, s, vars, depth)
		case *ast.InlineFragment:
			total += selectionCost(schema, s.SelectionSet, vars, depth+1)
		case *ast.FragmentSpread:
			if s.Definition != nil {
				total += selectionCost(schema, s.Definition.SelectionSet, vars, depth+1)
			}
		}
	}
	return total
}

func fieldCost(schema *ast.Schema, f *ast.Field, vars map[string]any, depth int) float64 {
	if f.Definition == nil || len(f.SelectionSet) == 0 {
		return complexityProperty
	}
	children := selectionCost(schema, f.SelectionSet, vars, depth+1)
	if strings.HasSuffix(f.Definition.Type.Name(), "Connection") {
		return complexityObject + pageSize(f, vars)*children
	}
	return complexityObject + children
}

// pageSize is a connection's first or last argument, defaultPageSize when neither is given.
func pageSize(f *ast.Field, vars map[string]any) float64 {
	for _, name := range []string{"first", "last"} {
		arg := f.Arguments.ForName(name)
		if arg == nil {
			continue
		}
		v, err := arg.Value.Value(vars)
		if err != nil || v == nil {
			continue
		}
		switch n := v.(type) {
		case int64:
			return float64(max(n, 0))
		case int:
			return float64(max(n, 0))
		case float64:
			return max(n, 0)
		case json.Number:
			if x, err := n.Float64(); err == nil {
				return max(x, 0)
			}
		}
	}
	return defaultPageSize
}

// nameMismatch reports an operation whose name is another root field's (IssueCreate on an issueDelete): the name is
// recorded as a lie; the root fields decide.
func nameMismatch(schema *ast.Schema, op *ast.OperationDefinition, actions []linsync.GatewayAction) string {
	if op.Name == "" {
		return ""
	}
	var named string
	for _, root := range []*ast.Definition{schema.Query, schema.Mutation} {
		if root == nil {
			continue
		}
		for _, fd := range root.Fields {
			if strings.EqualFold(fd.Name, op.Name) {
				named = fd.Name
			}
		}
	}
	if named == "" {
		return ""
	}
	fields := make([]string, 0, len(actions))
	for _, a := range actions {
		if a.Field == named {
			return ""
		}
		fields = append(fields, a.Field)
	}
	return fmt.Sprintf("operation named %s runs %s", op.Name, strings.Join(fields, ", "))
}

// variablePaths lists the paths of the variables' object fields, sorted: names only.
func variablePaths(prefix string, v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			if sub := variablePaths(p, val); len(sub) > 0 {
				out = append(out, sub...)
			} else {
				out = append(out, p)
			}
		}
	case []any:
		for _, val := range x {
			out = append(out, variablePaths(prefix+"[]", val)...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// requestHash is the hex SHA-256 of the document as gqlparser formats it (so whitespace and comments do not
// matter), the selected operation's name and the variables as canonical JSON (keys sorted).
func requestHash(doc *ast.QueryDocument, opName string, vars map[string]any) string {
	var norm bytes.Buffer
	formatter.NewFormatter(&norm).FormatQueryDocument(doc)
	canon, _ := json.Marshal(vars) // maps marshal with sorted keys
	h := sha256.New()
	h.Write(norm.Bytes())
	h.Write([]byte{0})
	h.Write([]byte(opName))
	h.Write([]byte{0})
	h.Write(canon)
	return hex.EncodeToString(h.Sum(nil))
}
