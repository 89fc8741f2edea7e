package api

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/linsync/linsync"
)

const (
	ctxWorkspace = "linsync.workspace"
	ctxToken     = "linsync.token"
)

// bearer returns the token of an "Authorization: Bearer …" header.
func bearer(c *gin.Context) string {
	h := c.GetHeader("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// authorize requires a live API token with scope for the workspace in the path. A token of another workspace gets
// 404, as if the workspace did not exist, so nothing about other tenants leaks.
func (s *Server) authorize(scope string) gin.HandlerFunc {
	return func(c *gin.Context) {
		tok, ws, err := s.db.Authenticate(c, bearer(c))
		if err != nil {
			if linsync.ErrorCode(err) == linsync.EINTERNAL {
				err = linsync.Errorf(linsync.EUNAVAILABLE, "token store unavailable; retry later")
			}
			s.writeError(c, err)
			return
		}
		if key := c.Param("ws"); key != ws.ID && key != ws.Slug {
			s.writeError(c, linsync.Errorf(linsync.ENOTFOUND, "workspace not found"))
			return
		}
		if !tok.HasScope(scope) {
			s.writeError(c, linsync.Errorf(linsync.EFORBIDDEN, "this token lacks the %q scope", scope))
			return
		}
		c.Set(ctxWorkspace, ws)
		c.Set(ctxToken, tok)
		c.Next()
	}
}

// requireBootstrap guards operator routes with the bootstrap token from configuration.
func (s *Server) requireBootstrap(c *gin.Context) {
	want := s.cfg.BootstrapToken
	got := bearer(c)
	if want == "" || got == "" || subtle.ConstantTimeCompare([]byte(want), []byte(got)) != 1 {
		s.writeError(c, linsync.Errorf(linsync.EUNAUTHORIZED, "a valid bootstrap token is required"))
		return
	}
	c.Next()
}

func workspaceOf(c *gin.Context) *linsync.Workspace {
	return c.MustGet(ctxWorkspace).(*linsync.Workspace)
}

// bindJSON decodes a request body strictly into v: malformed JSON is 400, a wrong type or an unknown field is 422
// with the field's path.
func bindJSON(c *gin.Context, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, 1<<20))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return linsync.Errorf(linsync.ETOOLARGE, "request body exceeds 1 MiB")
		}
		return linsync.Errorf(linsync.EINVALID, "read request body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: te.Field,
				Message: fmt.Sprintf("%s must be %s", te.Field, jsonKind(te.Type.Kind().String()))}
		case errors.As(err, &se), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return linsync.Errorf(linsync.EINVALID, "malformed JSON: %v", err)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: f, Message: fmt.Sprintf("unknown field %q", f)}
		default:
			return linsync.Errorf(linsync.EINVALID, "malformed JSON: %v", err)
		}
	}
	if dec.More() {
		return linsync.Errorf(linsync.EINVALID, "malformed JSON: trailing data")
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int", "int64", "int32", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	}
	return goKind
}
