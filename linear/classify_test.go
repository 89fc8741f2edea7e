package linear_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
)

func schema(tb testing.TB) *ast.Schema {
	tb.Helper()
	s, err := linear.LoadSchema("")
	require.NoError(tb, err)
	return s
}

func classify(tb testing.TB, query, opName string, vars map[string]any) (*linear.Operation, error) {
	tb.Helper()
	var raw json.RawMessage
	if vars != nil {
		b, err := json.Marshal(vars)
		require.NoError(tb, err)
		raw = b
	}
	return linear.ClassifyOperation(schema(tb), linsync.GatewayRequest{Query: query, OperationName: opName, Variables: raw})
}

// TestClassifySeedTable classifies every row of the agent gateway seed's table (002) as the seed says, from the
// root field, with the seed's own operation names and documents.
func TestClassifySeedTable(t *testing.T) {
	t.Parallel()
	rows := []struct {
		name, doc    string
		vars         map[string]any
		action, risk string
	}{
		{"IssueCreate", `mutation IssueCreate($input: IssueCreateInput!) { issueCreate(input: $input) { success } }`,
			map[string]any{"input": map[string]any{"title": "Bug", "teamId": "TEAM_ID"}}, "issue.create", "medium"},
		{"IssueUpdate", `mutation IssueUpdate($id: String!, $input: IssueUpdateInput!) { issueUpdate(id: $id, input: $input) { success } }`,
			map[string]any{"id": "ENG-1", "input": map[string]any{"title": "Renamed"}}, "issue.update", "medium"},
		{"IssueDelete", `mutation IssueDelete($id: String!) { issueDelete(id: $id) { success } }`,
			map[string]any{"id": "ENG-1"}, "issue.delete", "high"},
		{"CommentCreate", `mutation CommentCreate($input: CommentCreateInput!) { commentCreate(input: $input) { success } }`,
			map[string]any{"input": map[string]any{"issueId": "ENG-1", "body": "hi"}}, "comment.create", "medium"},
		{"ProjectCreate", `mutation ProjectCreate($input: ProjectCreateInput!) { projectCreate(input: $input) { success } }`,
			map[string]any{"input": map[string]any{"name": "P", "teamIds": []string{"T"}}}, "project.create", "medium"},
		{"ProjectDelete", `mutation ProjectDelete($id: String!) { projectDelete(id: $id) { success } }`,
			map[string]any{"id": "p1"}, "project.delete", "high"},
		{"Issues", `query Issues { issues(first: 10) { nodes { id title } } }`, nil, "read", "low"},
	}
	for _, r := range rows {
		op, err := classify(t, r.doc, r.name, r.vars)
		require.NoError(t, err, r.name)
		require.Len(t, op.Actions, 1, r.name)
		require.Equal(t, r.action, op.Actions[0].Action, r.name)
		require.Equal(t, r.risk, op.Actions[0].Risk, r.name)
		require.Equal(t, r.risk, op.Risk, r.name)
		require.Empty(t, op.NameMismatch, r.name)
	}
}

// TestClassifyBeyondTheSeed covers what the seed's table leaves out: archives, trashing by update, administrative
// roots, reads of secrets, several root fields, and the high-risk words in longer names.
func TestClassifyBeyondTheSeed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		doc     string
		vars    map[string]any
		actions []string
		risk    string
	}{
		{`mutation { issueArchive(id: "ENG-1") { success } }`, nil, []string{"issue.archive"}, "high"},
		{`mutation { issueUnarchive(id: "ENG-1") { success } }`, nil, []string{"issue.unarchive"}, "medium"},
		{`mutation($i: IssueUpdateInput!) { issueUpdate(id: "ENG-1", input: $i) { success } }`,
			map[string]any{"i": map[string]any{"trashed": true}}, []string{"issue.trash"}, "high"},
		{`mutation { issueUpdate(id: "ENG-1", input: {trashed: true}) { success } }`, nil, []string{"issue.trash"}, "high"},
		{`mutation { issueAddLabel(id: "ENG-1", labelId: "l") { success } }`, nil, []string{"issue.add_label"}, "medium"},
		{`mutation { issueLabelCreate(input: {name: "x"}) { success } }`, nil, []string{"issue_label.create"}, "medium"},
		{`mutation { webhookCreate(input: {url: "https://x", resourceTypes: ["Issue"]}) { success } }`, nil, []string{"webhook.create"}, "high"},
		{`mutation { organizationUpdate(input: {name: "x"}) { success } }`, nil, []string{"organization.update"}, "high"},
		{`mutation { organizationInviteCreate(input: {email: "a@b.c"}) { success } }`, nil, []string{"organization_invite.create"}, "high"},
		{`mutation { teamMembershipCreate(input: {teamId: "t", userId: "u"}) { success } }`, nil, []string{"team_membership.create"}, "high"},
		{`mutation { userChangeRole(id: "u", role: admin) { success } }`, nil, []string{"user.change_role"}, "high"},
		{`mutation { oauthApplicationRotateSecret(id: "o") { success } }`, nil, []string{"oauth_application.rotate_secret"}, "high"},
		{`mutation { fileUploadDangerouslyDelete(assetUrl: "u") { success } }`, nil, []string{"file_upload.dangerously_delete"}, "high"},
		{`query { webhooks { nodes { id secret } } }`, nil, []string{"admin.read"}, "high"},
		{`query { viewer { id } organization { id } }`, nil, []string{"read", "read"}, "low"},
		{`mutation { a: commentCreate(input: {issueId: "x", body: "y"}) { success } b: issueDelete(id: "ENG-2") { success } }`,
			nil, []string{"comment.create", "issue.delete"}, "high"},
		{`mutation { __typename }`, nil, nil, "low"},
	}
	for _, c := range cases {
		op, err := classify(t, c.doc, "", c.vars)
		require.NoError(t, err, c.doc)
		var got []string
		for _, a := range op.Actions {
			got = append(got, a.Action)
		}
		require.Equal(t, c.actions, got, c.doc)
		require.Equal(t, c.risk, op.Risk, c.doc)
	}
}

// TestClassifySpoofedOperationName: the name says IssueCreate, the root field deletes; the root field decides and
// the lie is recorded.
func TestClassifySpoofedOperationName(t *testing.T) {
	t.Parallel()
	op, err := classify(t, `mutation IssueCreate($id: String!) { issueDelete(id: $id) { success } }`, "IssueCreate",
		map[string]any{"id": "ENG-1"})
	require.NoError(t, err)
	require.Equal(t, "issue.delete", op.Actions[0].Action)
	require.Equal(t, linsync.RiskHigh, op.Risk)
	require.Equal(t, "operation named IssueCreate runs issueDelete", op.NameMismatch)

	// Aliased to look like a create: the schema's field decides.
	op, err = classify(t, `mutation IssueCreate { issueCreate: issueDelete(id: "ENG-1") { success } }`, "", nil)
	require.NoError(t, err)
	require.Equal(t, linsync.GatewayAction{Field: "issueDelete", Alias: "issueCreate", Action: "issue.delete", Risk: "high"}, op.Actions[0])
	require.NotEmpty(t, op.NameMismatch)
	require.Contains(t, op.Summary, "issueCreate: issueDelete(id: \"ENG-1\")")
}

// TestClassifySelectsTheNamedOperation: with several operations, operationName selects the one that runs; without
// it the document is refused, as Linear refuses it.
func TestClassifySelectsTheNamedOperation(t *testing.T) {
	t.Parallel()
	doc := `query Look { viewer { id } }
mutation Remove { issueDelete(id: "ENG-1") { success } }
mutation Add { issueCreate(input: {teamId: "t", title: "x"}) { success } }`
	for name, want := range map[string]string{"Look": "read", "Remove": "issue.delete", "Add": "issue.create"} {
		op, err := classify(t, doc, name, nil)
		require.NoError(t, err)
		require.Equal(t, want, op.Actions[0].Action, name)
		require.Equal(t, name, op.Name)
	}
	_, err := classify(t, doc, "", nil)
	requireRefused(t, err, "multiple operations")
	_, err = classify(t, doc, "Nope", nil)
	requireRefused(t, err, `Unknown operation named "Nope"`)
}

// TestClassifyFragmentsAliasesVariables: a root field inside a fragment on Mutation, or an inline fragment, is
// classified like any other; variables fill arguments for the summary, the page sizes and the trash check.
func TestClassifyFragmentsAliasesVariables(t *testing.T) {
	t.Parallel()
	op, err := classify(t, `mutation M($id: String!) { ...Hidden ... on Mutation { x: commentDelete(id: $id) { success } } }
fragment Hidden on Mutation { projectDelete(id: $id) { success } }`, "M", map[string]any{"id": "abc"})
	require.NoError(t, err)
	require.Equal(t, []string{"project.delete", "comment.delete"}, linsync.ActionNames(op.Actions))
	require.Equal(t, "x", op.Actions[1].Alias)
	require.Contains(t, op.Summary, `projectDelete(id: "abc")`)
	require.Equal(t, []string{"id"}, op.VariableNames)

	op, err = classify(t, `query Q($n: Int) { issues(first: $n) { nodes { id title } } }`, "", map[string]any{"n": 200})
	require.NoError(t, err)
	require.Equal(t, 241, op.Complexity, "1 + 200 × (nodes 1 + two properties 0.2)")
}

// TestClassifyComplexity follows Linear's published rules: user(id:"me"){name} is 2 points; connections multiply by
// their page size, 50 by default; over 10,000 is refused.
func TestClassifyComplexity(t *testing.T) {
	t.Parallel()
	op, err := classify(t, `{ user(id: "me") { name } }`, "", nil)
	require.NoError(t, err)
	require.Equal(t, 2, op.Complexity)
	op, err = classify(t, `{ teams { nodes { id } } }`, "", nil)
	require.NoError(t, err)
	require.Equal(t, 56, op.Complexity, "teams 1 + 50 × (nodes 1 + id 0.1)")
	_, err = classify(t, `{ issues(first: 100) { nodes { comments(first: 100) { nodes { id body } } } } }`, "", nil)
	requireRefused(t, err, "too complex")
}

// TestClassifyRefusesWhatLinearWould: a syntax error, an unknown field, a wrong variable, a subscription.
func TestClassifyRefusesWhatLinearWould(t *testing.T) {
	t.Parallel()
	for doc, want := range map[string]string{
		`mutation { issueCreate(input: {teamId: "x"}) { success }`: "Expected",
		`query { issueNope { id } }`:                               `Cannot query field "issueNope"`,
		`mutation { issueDelete { success } }`:                     "argument",
		``:                                                         "no query",
	} {
		_, err := classify(t, doc, "", nil)
		requireRefused(t, err, want)
	}
	_, err := classify(t, `subscription { issueCreated { id } }`, "", nil)
	requireRefused(t, err, "subscriptions are not supported")
	_, err = classify(t, `mutation D($id: String!) { issueDelete(id: $id) { success } }`, "", map[string]any{"id": 42})
	requireRefused(t, err, "")
	_, err = linear.ClassifyOperation(schema(t), linsync.GatewayRequest{Query: `query { viewer { id } }`, Variables: json.RawMessage(`[1]`)})
	requireRefused(t, err, "variables must be a JSON object")
}

func requireRefused(t *testing.T, err error, contains string) {
	t.Helper()
	var oe *linear.OperationError
	require.ErrorAs(t, err, &oe)
	require.Contains(t, oe.Message, contains)
	require.True(t, strings.HasPrefix(oe.Code, "GRAPHQL_"), oe.Code)
}

// TestRequestHashIsNormalized: whitespace, comments and the order of variable keys do not change the hash; a changed
// argument, variable or selected operation does.
func TestRequestHashIsNormalized(t *testing.T) {
	t.Parallel()
	base, err := classify(t, `mutation D($id: String!, $x: Boolean!) { issueDelete(id: $id) { success @include(if: $x) } }`, "D", map[string]any{"id": "ENG-1", "x": true})
	require.NoError(t, err)
	same, err := linear.ClassifyOperation(schema(t), linsync.GatewayRequest{OperationName: "D",
		Query:     "# delete it\nmutation D(\n  $id: String!\n  $x: Boolean!\n) {\n  issueDelete(id: $id) {\n    success @include(if: $x)\n  }\n}\n",
		Variables: json.RawMessage(`{"x": true, "id": "ENG-1"}`)})
	require.NoError(t, err)
	require.Equal(t, base.Hash, same.Hash)
	other, err := classify(t, `mutation D($id: String!, $x: Boolean!) { issueDelete(id: $id) { success @include(if: $x) } }`, "D", map[string]any{"id": "ENG-2", "x": true})
	require.NoError(t, err)
	require.NotEqual(t, base.Hash, other.Hash)
	otherDoc, err := classify(t, `mutation D($id: String!, $x: Boolean!) { issueDelete(id: $id) { success @include(if: $x) lastSyncId } }`, "D", map[string]any{"id": "ENG-1", "x": true})
	require.NoError(t, err)
	require.NotEqual(t, base.Hash, otherDoc.Hash)
}

// TestAgentPolicyDecides: defaults, risk levels, action patterns in order, and the strictest effect across actions.
func TestAgentPolicyDecides(t *testing.T) {
	t.Parallel()
	del := linsync.GatewayAction{Action: "issue.delete", Risk: "high"}
	create := linsync.GatewayAction{Action: "issue.create", Risk: "medium"}
	comment := linsync.GatewayAction{Action: "comment.create", Risk: "medium"}
	read := linsync.GatewayAction{Action: "read", Risk: "low"}
	var def linsync.AgentPolicy
	for a, want := range map[linsync.GatewayAction]string{del: "require_approval", create: "allow", read: "allow"} {
		e, _ := def.EffectOf(a)
		require.Equal(t, want, e, a.Action)
	}
	p := linsync.AgentPolicy{Risk: map[string]string{"medium": "require_approval"},
		Actions: []linsync.ActionRule{{Match: "comment.*", Effect: "allow"}, {Match: "*.delete", Effect: "deny"}, {Match: "issue.*", Effect: "allow"}}}
	require.NoError(t, p.Validate())
	e, why := p.Decide([]linsync.GatewayAction{create, del})
	require.Equal(t, "deny", e)
	require.Contains(t, why, "issue.delete")
	e, _ = p.Decide([]linsync.GatewayAction{comment, read})
	require.Equal(t, "allow", e)
	e, _ = p.Decide([]linsync.GatewayAction{{Action: "project.create", Risk: "medium"}})
	require.Equal(t, "require_approval", e)
	e, _ = p.Decide(nil)
	require.Equal(t, "allow", e)
	// A pattern's * stays within one part of the action.
	e, _ = linsync.AgentPolicy{Actions: []linsync.ActionRule{{Match: "issue.*", Effect: "deny"}}}.Decide([]linsync.GatewayAction{{Action: "issue_label.create", Risk: "medium"}})
	require.Equal(t, "allow", e)

	require.Error(t, linsync.AgentPolicy{Risk: map[string]string{"extreme": "deny"}}.Validate())
	require.Error(t, linsync.AgentPolicy{Risk: map[string]string{"low": "maybe"}}.Validate())
	require.Error(t, linsync.AgentPolicy{Actions: []linsync.ActionRule{{Match: "[", Effect: "deny"}}}.Validate())
}

// BenchmarkClassifyOperation classifies real documents against Linear's schema: linsync's own operations
// (linear/operations.graphql, 19 operations and their fragments, one selected by name, as one document), and a
// wide query built from the schema that selects every scalar field of Issue and of the objects around it.
func BenchmarkClassifyOperation(b *testing.B) {
	s := schema(b)
	ops, err := os.ReadFile("operations.graphql")
	require.NoError(b, err)
	docs := map[string]linsync.GatewayRequest{
		"operations.graphql": {Query: string(ops), OperationName: "IssueCreate",
			Variables: json.RawMessage(`{"input":{"teamId":"t","title":"x","description":"y","priority":2,"labelIds":["a","b"]}}`)},
		"wide-issue-query": {Query: wideIssueQuery(s), Variables: json.RawMessage(`{"first":25}`)},
	}
	for name, req := range docs {
		op, err := linear.ClassifyOperation(s, req)
		require.NoError(b, err, name)
		require.NotEmpty(b, op.Actions)
		b.Run(fmt.Sprintf("%s-%dB", name, len(req.Query)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := linear.ClassifyOperation(s, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// wideIssueQuery selects every argument-free scalar field of Issue, and of its team, state, assignee, creator and
// labels, under a page of issues.
func wideIssueQuery(s *ast.Schema) string {
	scalars := func(typ string) string {
		var fs []string
		for _, f := range s.Types[typ].Fields {
			t := s.Types[f.Type.Name()]
			if len(f.Arguments) == 0 && t != nil && (t.Kind == ast.Scalar || t.Kind == ast.Enum) && f.Directives.ForName("deprecated") == nil {
				fs = append(fs, f.Name)
			}
		}
		return strings.Join(fs, " ")
	}
	return fmt.Sprintf(`query Wide($first: Int) { issues(first: $first) { nodes { %s team { %s } state { %s } assignee { %s } creator { %s } labels { nodes { %s } } } } }`,
		scalars("Issue"), scalars("Team"), scalars("WorkflowState"), scalars("User"), scalars("User"), scalars("IssueLabel"))
}
