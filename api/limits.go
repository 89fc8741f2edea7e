package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/linsync/linsync"
)

// What a tenant may store, and so read back: every text field has a cap (the OpenAPI fragments state the same, as
// maxLength), every list endpoint a maximum page size, and a page of large items is cut short by size, so no single
// request or response holds more than a few MiB whatever a workspace has stored.
const (
	maxTitleBytes      = 255
	maxTextBytes       = 64 << 10 // question and reply bodies
	maxEmailBytes      = 320
	maxExternalIDBytes = 255
	maxRefBytes        = 100 // Linear team ids and keys
	maxNameBytes       = 200 // workspace and token names
	maxURLBytes        = 2048
	maxSecretBytes     = 1024
	maxListItems       = 50 // labels, scopes
	maxRoutingRules    = 200
	// maxPageBytes cuts a page of large items (failed events carry their input) short; the next cursor continues.
	maxPageBytes = 4 << 20
)

// tooLong reports the first field, of name/value pairs, longer than its cap; nil when all fit.
func tooLong(max int, fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if len(fields[i+1]) > max {
			return unprocessable(fields[i], fmt.Sprintf("%s must be at most %d bytes", fields[i], max))
		}
	}
	return nil
}

// tooMany refuses a list of more than maxListItems, or with an item longer than maxItem.
func tooMany(field string, items []string, maxItem int) error {
	if len(items) > maxListItems {
		return unprocessable(field, fmt.Sprintf("%s must have at most %d items", field, maxListItems))
	}
	for _, it := range items {
		if len(it) > maxItem {
			return unprocessable(field, fmt.Sprintf("every item of %s must be at most %d bytes", field, maxItem))
		}
	}
	return nil
}

// pageQuery reads ?limit (1 to max, default def) and ?cursor (validated by the store: a cursor it did not make is 400).
func pageQuery(c *gin.Context, def, max int) (linsync.Page, error) {
	p := linsync.Page{Limit: def, Cursor: c.Query("cursor")}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > max {
			return p, &linsync.Error{Code: linsync.EINVALID, Field: "limit", Message: fmt.Sprintf("limit must be between 1 and %d", max)}
		}
		p.Limit = n
	}
	if len(p.Cursor) > 512 {
		return p, &linsync.Error{Code: linsync.EINVALID, Field: "cursor", Message: "cursor is not one this API returned"}
	}
	return p, nil
}

// maxPageItems is the largest page any cursor-paged list answers.
const maxPageItems = 100

// servePage answers one page of a list read by list: {key: [...], "next_cursor": where the next page starts, or
// null on the last}. The page size is ?limit (1 to maxPageItems, default def).
func servePage[T any](s *Server, c *gin.Context, key string, def int, list func(linsync.Page) ([]T, string, error)) {
	p, err := pageQuery(c, def, maxPageItems)
	if err != nil {
		s.writeError(c, err)
		return
	}
	items, next, err := list(p)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if items == nil {
		items = []T{}
	}
	var cursor any
	if next != "" {
		cursor = next
	}
	c.JSON(http.StatusOK, gin.H{key: items, "next_cursor": cursor})
}
