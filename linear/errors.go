package linear

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrorClass is what a failure means for the caller: wait, retry, fix the request, or fetch what already exists.
type ErrorClass string

// The classes every Linear failure falls into. Classify is the one place that decides.
const (
	// ClassRateLimited: wait until Error.RetryAt, then retry.
	ClassRateLimited ErrorClass = "rate_limited"
	// ClassUnauthorized: the credential is missing, wrong, expired or revoked.
	ClassUnauthorized ErrorClass = "unauthorized"
	// ClassForbidden: the credential is valid but may not do this (scope, admin-only, plan).
	ClassForbidden ErrorClass = "forbidden"
	// ClassInvalid: the request is wrong (GraphQL validation or user error); retrying cannot help.
	ClassInvalid ErrorClass = "invalid"
	// ClassNotFound: a referenced entity does not exist (or is not visible to the credential).
	ClassNotFound ErrorClass = "not_found"
	// ClassConflict: the client-chosen id already exists, so an earlier attempt succeeded.
	ClassConflict ErrorClass = "conflict"
	// ClassTransient: 5xx, network failure or timeout; retry with backoff.
	ClassTransient ErrorClass = "transient"
)

// Error is a classified failure of one Linear request.
type Error struct {
	Class ErrorClass
	// Operation is the GraphQL operation name, when known.
	Operation string
	// StatusCode is the HTTP status, 0 when no response arrived.
	StatusCode int
	// Code is the first GraphQL error's extensions.code (or extensions.type), e.g. RATELIMITED.
	Code string
	// Message is the first GraphQL error's message, or a description of the transport failure.
	Message string
	// RetryAt is the earliest time Linear allows another request (rate limited only; zero otherwise).
	RetryAt time.Time
	// NotSent says the request never left linsync: its own rate budget refused it until RetryAt. Such a refusal
	// is no attempt at Linear, so it spends none of a caller's attempts.
	NotSent bool
	// Err is the underlying transport error, if any.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "linear %s", e.Class)
	if e.Operation != "" {
		fmt.Fprintf(&b, " in %s", e.Operation)
	}
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.StatusCode)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if !e.RetryAt.IsZero() {
		fmt.Fprintf(&b, "; retry at %s", e.RetryAt.UTC().Format(time.RFC3339Nano))
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Classify returns err as a *Error: the one in its chain if there is one, otherwise a transport failure classified
// as transient (network errors, timeouts) or, for a cancelled context, transient too so a retry policy decides.
// It returns nil for nil.
func Classify(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	msg := "request failed"
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		msg = "timeout"
	case errors.As(err, &ne):
		msg = "network error"
	}
	return &Error{Class: ClassTransient, Message: msg, Err: err}
}

// ClassOf returns the class of err, or "" for nil.
func ClassOf(err error) ErrorClass {
	if e := Classify(err); e != nil {
		return e.Class
	}
	return ""
}

// IsConflict reports whether err says a client-chosen id already exists: the earlier attempt succeeded.
func IsConflict(err error) bool { return ClassOf(err) == ClassConflict }

// gqlError is one entry of a GraphQL response's errors, with the extensions Linear sets.
type gqlError struct {
	Message    string   `json:"message"`
	Path       []any    `json:"path,omitempty"`
	Extensions gqlExtns `json:"extensions"`
}

type gqlExtns struct {
	Code                   string `json:"code,omitempty"`
	Type                   string `json:"type,omitempty"`
	StatusCode             int    `json:"statusCode,omitempty"`
	UserError              bool   `json:"userError,omitempty"`
	UserPresentableMessage string `json:"userPresentableMessage,omitempty"`
}

// ClassifyResponse classifies one HTTP response from Linear's GraphQL endpoint; it returns nil when the status is
// 200 and the body carries no GraphQL errors. now anchors relative Retry-After values.
func ClassifyResponse(status int, header http.Header, body []byte, now time.Time) *Error {
	var parsed struct {
		Errors []gqlError `json:"errors"`
	}
	jsonErr := json.Unmarshal(body, &parsed)
	if status == http.StatusOK && jsonErr == nil && len(parsed.Errors) == 0 {
		return nil
	}
	e := &Error{StatusCode: status}
	if len(parsed.Errors) > 0 {
		first := parsed.Errors[0]
		e.Code, e.Message = first.Extensions.Code, first.Message
		if e.Code == "" {
			e.Code = first.Extensions.Type
		}
	} else if status == http.StatusOK {
		e.Message = "malformed response body"
	} else {
		e.Message = http.StatusText(status)
	}

	// Linear signals a rate limit with HTTP 400 and RATELIMITED; any error saying so wins over the others.
	limited := status == http.StatusTooManyRequests
	for _, ge := range parsed.Errors {
		if isRateLimited(ge.Extensions) {
			limited, e.Code, e.Message = true, ge.Extensions.Code, ge.Message
			if e.Code == "" {
				e.Code = ge.Extensions.Type
			}
			break
		}
	}
	if limited {
		e.Class = ClassRateLimited
		e.RetryAt = RetryAt(header, now)
		return e
	}
	if len(parsed.Errors) > 0 {
		e.Class = classifyGraphQL(parsed.Errors[0], status)
		return e
	}
	e.Class = classifyStatus(status)
	return e
}

func isRateLimited(x gqlExtns) bool {
	return strings.EqualFold(x.Code, "RATELIMITED") || strings.EqualFold(x.Type, "ratelimited")
}

// classifyGraphQL maps a GraphQL error to a class by Linear's extensions.type (the SDK's vocabulary) and code,
// then by message for the cases Linear reports as "invalid input", then by status.
func classifyGraphQL(ge gqlError, status int) ErrorClass {
	msg := strings.ToLower(ge.Message + " " + ge.Extensions.UserPresentableMessage)
	switch {
	case strings.Contains(msg, "already exists"), strings.Contains(msg, "duplicate key"),
		strings.Contains(msg, "unique constraint"), strings.EqualFold(ge.Extensions.Code, "CONFLICT"):
		return ClassConflict
	case strings.Contains(msg, "entity not found"), strings.Contains(msg, "could not find referenced"),
		strings.EqualFold(ge.Extensions.Code, "NOT_FOUND"):
		return ClassNotFound
	}
	switch strings.ToLower(ge.Extensions.Type) {
	case "authentication error":
		return ClassUnauthorized
	case "forbidden", "feature not accessible", "usage limit exceeded":
		return ClassForbidden
	case "invalid input", "user error", "graphql error":
		return ClassInvalid
	case "internal error", "network error", "lock timeout", "bootstrap error":
		return ClassTransient
	}
	switch strings.ToUpper(ge.Extensions.Code) {
	case "AUTHENTICATION_ERROR", "UNAUTHENTICATED":
		return ClassUnauthorized
	case "FORBIDDEN":
		return ClassForbidden
	case "GRAPHQL_VALIDATION_FAILED", "GRAPHQL_PARSE_FAILED", "BAD_USER_INPUT", "INPUT_ERROR", "INVALID_INPUT":
		return ClassInvalid
	case "INTERNAL_SERVER_ERROR":
		return ClassTransient
	}
	if ge.Extensions.StatusCode != 0 {
		status = ge.Extensions.StatusCode
	}
	if status == http.StatusOK {
		// A 200 with an error nobody labelled: resolvers failing mid-query are usually user errors at Linear,
		// and retrying an unknown error forever helps no one.
		return ClassInvalid
	}
	return classifyStatus(status)
}

func classifyStatus(status int) ErrorClass {
	switch {
	case status == http.StatusUnauthorized:
		return ClassUnauthorized
	case status == http.StatusForbidden:
		return ClassForbidden
	case status == http.StatusNotFound:
		return ClassNotFound
	case status == http.StatusConflict:
		return ClassConflict
	case status == http.StatusTooManyRequests:
		return ClassRateLimited
	case status == http.StatusRequestTimeout, status >= 500, status == http.StatusOK:
		return ClassTransient
	default:
		return ClassInvalid
	}
}

// Rate-limit headers Linear sends (https://linear.app/developers/rate-limiting).
const (
	HeaderRetryAfter                = "Retry-After"
	HeaderRequestsLimit             = "X-RateLimit-Requests-Limit"
	HeaderRequestsRemaining         = "X-RateLimit-Requests-Remaining"
	HeaderRequestsReset             = "X-RateLimit-Requests-Reset"
	HeaderComplexity                = "X-Complexity"
	HeaderComplexityLimit           = "X-RateLimit-Complexity-Limit"
	HeaderComplexityRemaining       = "X-RateLimit-Complexity-Remaining"
	HeaderComplexityReset           = "X-RateLimit-Complexity-Reset"
	HeaderEndpointRequestsLimit     = "X-RateLimit-Endpoint-Requests-Limit"
	HeaderEndpointRequestsRemaining = "X-RateLimit-Endpoint-Requests-Remaining"
	HeaderEndpointRequestsReset     = "X-RateLimit-Endpoint-Requests-Reset"
	HeaderEndpointName              = "X-RateLimit-Endpoint-Name"
)

// RetryAt is the earliest time a rate-limited caller may send again: the latest of Retry-After (seconds or an
// HTTP date) and every exhausted X-RateLimit-*-Reset (epoch ms). Without any of them it is now plus a minute,
// so a rate limit never turns into an immediate retry.
func RetryAt(h http.Header, now time.Time) time.Time {
	var at time.Time
	later := func(t time.Time) {
		if t.After(at) {
			at = t
		}
	}
	if v := strings.TrimSpace(h.Get(HeaderRetryAfter)); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
			later(now.Add(time.Duration(secs * float64(time.Second))))
		} else if t, err := http.ParseTime(v); err == nil {
			later(t)
		}
	}
	resets := []struct{ remaining, reset string }{
		{HeaderRequestsRemaining, HeaderRequestsReset},
		{HeaderComplexityRemaining, HeaderComplexityReset},
		{HeaderEndpointRequestsRemaining, HeaderEndpointRequestsReset},
	}
	for _, r := range resets {
		t, ok := epochMillis(h.Get(r.reset))
		if !ok {
			continue
		}
		// A window with quota left is not what limited us; a missing remaining header counts as exhausted.
		if rem, err := strconv.ParseFloat(h.Get(r.remaining), 64); err == nil && rem > 0 {
			continue
		}
		later(t)
	}
	if at.IsZero() || !at.After(now) {
		if at.IsZero() {
			return now.Add(time.Minute)
		}
		return now
	}
	return at
}

func epochMillis(v string) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, false
	}
	ms, err := strconv.ParseFloat(v, 64)
	if err != nil || ms <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(ms)), true
}
