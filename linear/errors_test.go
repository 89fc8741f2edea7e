package linear_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/linsync/linsync/linear"
	"github.com/linsync/linsync/linsynctest"
)

// Bodies as Linear sends them. The rate-limit body is a capture (testdata); the others follow the shape of
// Linear's errors (extensions.type from the SDK's error map, code, statusCode, userPresentableMessage).
const (
	bodyAuth            = `{"errors":[{"message":"Authentication required, not authenticated","extensions":{"type":"authentication error","code":"AUTHENTICATION_ERROR","statusCode":401,"userError":true,"userPresentableMessage":"You need to authenticate to access this operation."}}]}`
	bodyForbidden       = `{"errors":[{"message":"Forbidden","path":["webhookCreate"],"extensions":{"type":"forbidden","code":"FORBIDDEN","statusCode":403,"userError":true,"userPresentableMessage":"You need to be an admin to create webhooks."}}],"data":null}`
	bodyValidation      = `{"errors":[{"message":"Cannot query field \"nope\" on type \"Issue\".","locations":[{"line":1,"column":26}],"extensions":{"code":"GRAPHQL_VALIDATION_FAILED","type":"graphql error","userError":true}}]}`
	bodyInvalidInput    = `{"errors":[{"message":"Argument Validation Error","path":["issueCreate"],"extensions":{"type":"invalid input","code":"INPUT_ERROR","statusCode":400,"userError":true,"userPresentableMessage":"title must be shorter than or equal to 255 characters"}}],"data":null}`
	bodyNotFound        = `{"errors":[{"message":"Entity not found: Issue","path":["issue"],"extensions":{"type":"invalid input","code":"INPUT_ERROR","statusCode":400,"userError":true,"userPresentableMessage":"Could not find referenced Issue."}}],"data":null}`
	bodyConflict        = `{"errors":[{"message":"Issue with id 0f2b7c9e-5d3a-4b1e-8f6a-2c4d6e8f0a1b already exists","path":["issueCreate"],"extensions":{"type":"invalid input","code":"INPUT_ERROR","statusCode":400,"userError":true,"userPresentableMessage":"An issue with this id already exists."}}],"data":null}`
	bodyInternal        = `{"errors":[{"message":"Internal server error","extensions":{"type":"internal error","code":"INTERNAL_SERVER_ERROR","statusCode":500}}],"data":null}`
	bodyLockTimeout     = `{"errors":[{"message":"Lock timeout","extensions":{"type":"lock timeout","statusCode":503}}]}`
	bodyTypeRatelimited = `{"errors":[{"message":"Too many requests","extensions":{"type":"ratelimited","statusCode":429}}]}`
)

func TestClassifyResponse(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	captured, err := os.ReadFile(linsynctest.LinearTestdata(t, "ratelimited_error_body.json"))
	require.NoError(t, err)
	ms := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).UnixMilli(), 10) }
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name    string
		status  int
		header  http.Header
		body    string
		class   linear.ErrorClass
		retryAt time.Time
	}{
		{"ok", 200, nil, `{"data":{"viewer":{"id":"u"}}}`, "", time.Time{}},
		{"ratelimited 400 captured body with requests reset", 400,
			hdr(linear.HeaderRequestsRemaining, "0", linear.HeaderRequestsReset, ms(90*time.Second)),
			string(captured), linear.ClassRateLimited, now.Add(90 * time.Second)},
		{"ratelimited 400 latest of requests, complexity and endpoint resets", 400,
			hdr(linear.HeaderRequestsRemaining, "0", linear.HeaderRequestsReset, ms(time.Minute),
				linear.HeaderComplexityRemaining, "5000", linear.HeaderComplexityReset, ms(time.Hour),
				linear.HeaderEndpointRequestsRemaining, "0", linear.HeaderEndpointRequestsReset, ms(2*time.Minute)),
			string(captured), linear.ClassRateLimited, now.Add(2 * time.Minute)},
		{"ratelimited 200 captured body, Retry-After seconds", 200, hdr("Retry-After", "30"),
			string(captured), linear.ClassRateLimited, now.Add(30 * time.Second)},
		{"ratelimited by extensions.type", 400, hdr("Retry-After", "5"), bodyTypeRatelimited,
			linear.ClassRateLimited, now.Add(5 * time.Second)},
		{"429 Retry-After HTTP date", 429, hdr("Retry-After", now.Add(45*time.Second).Format(http.TimeFormat)),
			"Too Many Requests", linear.ClassRateLimited, now.Add(45 * time.Second)},
		{"429 without hints waits a minute", 429, nil, "", linear.ClassRateLimited, now.Add(time.Minute)},
		{"unauthorized body", 400, nil, bodyAuth, linear.ClassUnauthorized, time.Time{}},
		{"401 plain", 401, nil, "Unauthorized", linear.ClassUnauthorized, time.Time{}},
		{"forbidden body", 200, nil, bodyForbidden, linear.ClassForbidden, time.Time{}},
		{"403 plain", 403, nil, "", linear.ClassForbidden, time.Time{}},
		{"validation", 400, nil, bodyValidation, linear.ClassInvalid, time.Time{}},
		{"invalid input", 400, nil, bodyInvalidInput, linear.ClassInvalid, time.Time{}},
		{"not found", 200, nil, bodyNotFound, linear.ClassNotFound, time.Time{}},
		{"conflict on client-chosen id", 400, nil, bodyConflict, linear.ClassConflict, time.Time{}},
		{"500 body", 500, nil, bodyInternal, linear.ClassTransient, time.Time{}},
		{"lock timeout", 200, nil, bodyLockTimeout, linear.ClassTransient, time.Time{}},
		{"502 html", 502, nil, "<html>Bad Gateway</html>", linear.ClassTransient, time.Time{}},
		{"503 empty", 503, nil, "", linear.ClassTransient, time.Time{}},
		{"200 garbage", 200, nil, "<html>", linear.ClassTransient, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := linear.ClassifyResponse(tt.status, tt.header, []byte(tt.body), now)
			if tt.class == "" {
				require.Nil(t, e)
				return
			}
			require.NotNil(t, e)
			require.Equal(t, tt.class, e.Class, e.Error())
			require.True(t, tt.retryAt.Equal(e.RetryAt), "retry at %v, want %v", e.RetryAt, tt.retryAt)
		})
	}
}

func TestClassifyTransportErrors(t *testing.T) {
	t.Parallel()
	netErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, err := range []error{netErr, context.DeadlineExceeded, fmt.Errorf("post: %w", context.DeadlineExceeded)} {
		require.Equal(t, linear.ClassTransient, linear.ClassOf(err), "%v", err)
	}
	wrapped := fmt.Errorf("create issue: %w", &linear.Error{Class: linear.ClassConflict})
	require.True(t, linear.IsConflict(wrapped))
	require.Empty(t, linear.ClassOf(nil))
}
