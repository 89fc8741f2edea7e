package api

import (
	"fmt"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/linear"
)

const maxRuleLabels = 20

func (s *Server) handleGetRoutingRules(c *gin.Context) {
	rules, version, err := s.db.RoutingRules(c, workspaceOf(c).ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"rules": rules, "version": version})
}

// handlePutRoutingRules replaces the workspace's ordered rules. Every rule is checked before anything is saved:
// globs must compile, failure and event types must exist, and every team must be one the workspace's Linear
// credential sees (a team key is stored as its id).
func (s *Server) handlePutRoutingRules(c *gin.Context) {
	var req struct {
		Rules []linsync.RoutingRule `json:"rules"`
	}
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	if req.Rules == nil {
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "rules", Message: "rules is required (an empty list clears them)"})
		return
	}
	if errs := checkRules(req.Rules); len(errs) > 0 {
		s.writeError(c, errs[0].err())
		return
	}
	ws := workspaceOf(c)
	if err := s.resolveRuleTeams(c, ws.ID, req.Rules); err != nil {
		s.writeError(c, err)
		return
	}
	version, err := s.db.SaveRoutingRules(c, ws.ID, req.Rules)
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.log.InfoContext(c, "routing rules saved", "workspace_id", ws.ID, "rules", len(req.Rules), "version", version)
	out := gin.H{"rules": req.Rules, "version": version}
	s.afterFilingTeamsChanged(c, ws, out) // a rule's private team needs its own webhook (team_webhooks.go)
	c.JSON(http.StatusOK, out)
}

// checkRules validates rules without Linear: shape, globs, enumerations, and a default rule only at the end.
func checkRules(rules []linsync.RoutingRule) []fieldError {
	var errs []fieldError
	fail := func(i int, field, format string, args ...any) {
		errs = append(errs, fieldError{Field: "rules[" + strconv.Itoa(i) + "]" + field, Message: fmt.Sprintf(format, args...)})
	}
	if len(rules) > maxRoutingRules {
		errs = append(errs, fieldError{Field: "rules", Message: fmt.Sprintf("at most %d rules", maxRoutingRules)})
		return errs
	}
	for i, r := range rules {
		if len(r.TagGlob) > maxNameBytes {
			fail(i, ".tag_glob", "tag_glob is at most %d bytes", maxNameBytes)
		}
		if len(r.TeamID) > maxRefBytes {
			fail(i, ".team_id", "team_id is at most %d bytes", maxRefBytes)
		}
		if r.TagGlob != "" {
			if _, err := path.Match(r.TagGlob, ""); err != nil {
				fail(i, ".tag_glob", "tag_glob %q is not a valid glob (use *, ? and [a-z] classes)", r.TagGlob)
			}
		}
		if r.FailureType != "" && !slices.Contains(linsync.FailureTypes, r.FailureType) {
			fail(i, ".failure_type", "failure_type must be one of %s", strings.Join(linsync.FailureTypes, ", "))
		}
		for j, t := range r.EventTypes {
			if !slices.Contains(linsync.EventTypes, t) {
				fail(i, ".event_types["+strconv.Itoa(j)+"]", "event type must be one of %s", strings.Join(linsync.EventTypes, ", "))
			}
		}
		if r.Priority != nil && (*r.Priority < 0 || *r.Priority > 4) {
			fail(i, ".priority", "priority must be Linear's 0 (none), 1 (urgent), 2 (high), 3 (medium) or 4 (low)")
		}
		if len(r.Labels) > maxRuleLabels {
			fail(i, ".labels", "at most %d labels", maxRuleLabels)
		}
		for j, l := range r.Labels {
			if strings.TrimSpace(l) == "" || len(l) > 80 {
				fail(i, ".labels["+strconv.Itoa(j)+"]", "a label name is 1 to 80 characters")
			}
		}
		if len(r.Name) > 100 {
			fail(i, ".name", "name is at most 100 characters")
		}
		criteria := r.TagGlob != "" || r.FailureType != "" || len(r.EventTypes) > 0
		switch {
		case r.Default && criteria:
			fail(i, ".default", "a default rule matches every event; it cannot also set tag_glob, failure_type or event_types")
		case r.Default && i != len(rules)-1:
			fail(i, ".default", "the default rule must be the last rule: rules after it would never match")
		case !r.Default && !criteria:
			fail(i, "", "a rule needs tag_glob, failure_type or event_types, or default: true")
		}
	}
	return errs
}

// resolveRuleTeams checks every rule's team against the teams the workspace's Linear credential sees and stores
// team keys as ids.
func (s *Server) resolveRuleTeams(c *gin.Context, workspaceID string, rules []linsync.RoutingRule) error {
	if !slices.ContainsFunc(rules, func(r linsync.RoutingRule) bool { return r.TeamID != "" }) {
		return nil
	}
	conn, creds, err := s.db.ConnectionCredentials(c, workspaceID)
	if linsync.ErrorCode(err) == linsync.ENOTFOUND {
		return &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "rules",
			Message: "connect Linear first: rule teams are checked against the teams the connection sees"}
	}
	if err != nil {
		return err
	}
	cred := linear.Credential{APIKey: creds.Credential}
	if conn.AuthKind == linsync.AuthOAuth {
		cred = linear.Credential{AccessToken: creds.Credential}
	}
	lc, err := s.linearClient(cred)
	if err != nil {
		return err
	}
	teams, err := lc.ListTeams(c)
	if err != nil {
		return linearRefusal("list Linear teams", err)
	}
	for i := range rules {
		t := rules[i].TeamID
		if t == "" {
			continue
		}
		idx := slices.IndexFunc(teams, func(tf linear.TeamFields) bool { return tf.Id == t || strings.EqualFold(tf.Key, t) })
		if idx < 0 {
			return &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: "rules[" + strconv.Itoa(i) + "].team_id",
				Message: fmt.Sprintf("unknown team %q: the Linear connection does not see it", t)}
		}
		rules[i].TeamID = teams[idx].Id
	}
	return nil
}

func (s *Server) handleGetEventSettings(c *gin.Context) {
	st, err := s.db.EventSettings(c, workspaceOf(c).ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"settings": st})
}

// handlePutEventSettings changes the workspace's event settings; fields left out keep their current values.
func (s *Server) handlePutEventSettings(c *gin.Context) {
	var req struct {
		TitlePrefix             *string  `json:"title_prefix"`
		BrokenLinkWindowSeconds *int64   `json:"broken_link_window_seconds"`
		CreationCapPerHour      *int     `json:"creation_cap_per_hour"`
		TagLabels               []string `json:"tag_labels"`
		DebounceMS              *int64   `json:"debounce_ms"`
	}
	if err := bindJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	ws := workspaceOf(c)
	st, err := s.db.EventSettings(c, ws.ID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	bad := func(field, msg string) {
		s.writeError(c, &linsync.Error{Code: linsync.EUNPROCESSABLE, Field: field, Message: msg})
	}
	if p := req.TitlePrefix; p != nil {
		if t := strings.TrimSpace(*p); t == "" || len(t) > 40 || strings.ContainsAny(t, "[]\n\r") {
			bad("title_prefix", "title_prefix is 1 to 40 characters without brackets or line breaks")
			return
		}
		st.TitlePrefix = strings.TrimSpace(*p)
	}
	if w := req.BrokenLinkWindowSeconds; w != nil {
		minWindow := int64(s.minBrokenLinkWindow() / time.Second)
		if *w < minWindow || *w > 30*24*3600 {
			bad("broken_link_window_seconds", fmt.Sprintf("broken_link_window_seconds is %d to 2592000 (30 days)", minWindow))
			return
		}
		st.BrokenLinkWindow = time.Duration(*w) * time.Second
	}
	if n := req.CreationCapPerHour; n != nil {
		if *n < 0 || *n > 10000 {
			bad("creation_cap_per_hour", "creation_cap_per_hour is 0 to 10000")
			return
		}
		st.CreationCapPerHour = *n
	}
	if req.TagLabels != nil {
		if len(req.TagLabels) > maxTags {
			bad("tag_labels", fmt.Sprintf("at most %d tag labels", maxTags))
			return
		}
		for i, l := range req.TagLabels {
			if strings.TrimSpace(l) == "" || len(l) > 80 {
				bad("tag_labels["+strconv.Itoa(i)+"]", "a tag label is 1 to 80 characters")
				return
			}
		}
		st.TagLabels = req.TagLabels
	}
	if d := req.DebounceMS; d != nil {
		if *d < 0 || *d > 600000 {
			bad("debounce_ms", "debounce_ms is 0 to 600000 (10 minutes)")
			return
		}
		st.Debounce = time.Duration(*d) * time.Millisecond
	}
	saved, err := s.db.SaveEventSettings(c, ws.ID, st)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"settings": saved})
}

// minBrokenLinkWindow is the shortest broken-link window settings accept: a minute unless configured (tests close
// windows in seconds).
func (s *Server) minBrokenLinkWindow() time.Duration {
	if s.cfg.MinBrokenLinkWindow >= time.Second {
		return s.cfg.MinBrokenLinkWindow
	}
	return time.Minute
}
