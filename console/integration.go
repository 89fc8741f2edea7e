package console

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/linsync/linsync"
)

// connection is GET …/integrations/linear.
type connection struct {
	Connection struct {
		linsync.LinearConnection
		APIKeyLast4 string `json:"api_key_last4"`
	} `json:"connection"`
	PausedWork []linsync.PausedWork `json:"paused_work"`
}

// team is one team of the picker.
type team struct {
	ID      string `json:"id"`
	Key     string `json:"key"`
	Name    string `json:"name"`
	Private bool   `json:"private"`
	Default bool   `json:"default"`
	Triage  bool   `json:"triage_enabled"`
}

// webhook is one row of …/integrations/linear/webhooks, shown as the API words it.
type webhook struct {
	ID         string     `json:"id"`
	Scope      string     `json:"scope"`
	TeamKey    string     `json:"team_key"`
	TeamName   string     `json:"team_name"`
	URL        string     `json:"url"`
	Health     string     `json:"health"`
	Enabled    *bool      `json:"linear_enabled"`
	LastSeenAt *time.Time `json:"last_delivery_at"`
}

type integrationData struct {
	Connected  bool
	Conn       *connection
	Teams      []team
	TeamsError string
	Webhooks   []webhook
	HooksError string
	// Validated is the second step of connecting: the key checked, its organization and teams listed.
	Validated *validated
	// APIKey is the validated key sealed (by the session's Sealer) for the connect form: never the key itself.
	APIKey     string
	Priorities []priorityOption
	Reconnect  bool
}

type validated struct {
	Viewer struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	} `json:"viewer"`
	Organization struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"organization"`
	APIKeyLast4 string `json:"api_key_last4"`
	Teams       []team `json:"teams"`
}

type priorityOption struct {
	Value    int
	Name     string
	Selected bool
}

func priorities(selected int) []priorityOption {
	out := make([]priorityOption, 0, 5)
	for _, v := range []int{0, 1, 2, 3, 4} {
		out = append(out, priorityOption{Value: v, Name: priorityNames[v], Selected: v == selected})
	}
	return out
}

func (c *Console) integrationPage(w http.ResponseWriter, r *http.Request, s *session, status int, d integrationData, errMsg string) {
	p := c.newPage(r, s, "integration", "Linear integration")
	p.Error = errMsg
	if d.Validated == nil {
		var conn connection
		_, err := c.call(r, s, http.MethodGet, "/integrations/linear", nil, &conn)
		switch {
		case err == nil:
			d.Connected, d.Conn = true, &conn
			var teams struct {
				Teams []team `json:"teams"`
			}
			if _, err := c.call(r, s, http.MethodGet, "/integrations/linear/teams", nil, &teams); err != nil {
				d.TeamsError = errorText(err)
			}
			d.Teams = teams.Teams
			var hooks struct {
				Webhooks []webhook `json:"webhooks"`
			}
			if _, err := c.call(r, s, http.MethodGet, "/integrations/linear/webhooks", nil, &hooks); err != nil {
				d.HooksError = errorText(err)
			}
			d.Webhooks = hooks.Webhooks
			d.Priorities = priorities(conn.Connection.DefaultPriority)
		case notFound(err):
		default:
			p.Error = errorText(err)
		}
	} else if d.Priorities == nil {
		d.Priorities = priorities(3)
	}
	p.Data = d
	c.render(w, status, "integration", p)
}

func (c *Console) handleIntegration(w http.ResponseWriter, r *http.Request, s *session) {
	c.integrationPage(w, r, s, http.StatusOK, integrationData{Reconnect: r.URL.Query().Get("reconnect") == "1"}, "")
}

// handleValidate is the card's first step: the pasted key is checked by the API, which lists the teams it sees.
func (c *Console) handleValidate(w http.ResponseWriter, r *http.Request, s *session) {
	key := strings.TrimSpace(r.PostForm.Get("api_key"))
	var v validated
	if _, err := c.call(r, s, http.MethodPost, "/integrations/linear/validate", map[string]any{"api_key": key}, &v); err != nil {
		c.integrationPage(w, r, s, statusOf(err), integrationData{Reconnect: r.PostForm.Get("reconnect") == "1"}, errorText(err))
		return
	}
	pending, err := c.sealKey(r, key)
	if err != nil {
		c.integrationPage(w, r, s, http.StatusInternalServerError, integrationData{}, "internal error")
		return
	}
	c.integrationPage(w, r, s, http.StatusOK, integrationData{Validated: &v, APIKey: pending}, "")
}

// sealKey seals a pasted Linear key for the connect step's form, so the page never carries the key itself.
func (c *Console) sealKey(r *http.Request, key string) (string, error) {
	b, err := c.opts.Sealer.Encrypt(r.Context(), []byte(key))
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// openKey opens what sealKey sealed; "" when it was not sealed by linsync.
func (c *Console) openKey(r *http.Request, pending string) string {
	b, err := base64.RawURLEncoding.DecodeString(pending)
	if err != nil {
		return ""
	}
	key, err := c.opts.Sealer.Decrypt(r.Context(), b)
	if err != nil {
		return ""
	}
	return string(key)
}

// handleConnect is the card's second step: connect with the key, the team picked and the defaults.
func (c *Console) handleConnect(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostForm
	key := c.openKey(r, f.Get("pending_key"))
	body := map[string]any{"api_key": key, "default_team_id": f.Get("default_team_id"), "labels": splitLabels(f.Get("labels"))}
	prio, perr := strconv.Atoi(f.Get("default_priority"))
	if perr == nil {
		body["default_priority"] = prio
	}
	if _, err := c.call(r, s, http.MethodPost, "/integrations/linear/connect", body, nil); err != nil {
		// Show the picker again with what was chosen, and the API's word on what is wrong.
		var v validated
		if _, verr := c.call(r, s, http.MethodPost, "/integrations/linear/validate", map[string]any{"api_key": key}, &v); verr != nil {
			c.integrationPage(w, r, s, statusOf(err), integrationData{}, errorText(err))
			return
		}
		c.integrationPage(w, r, s, statusOf(err), integrationData{Validated: &v, APIKey: f.Get("pending_key"), Priorities: priorities(prio)}, errorText(err))
		return
	}
	http.Redirect(w, r, Prefix+"/integration?done=connected", http.StatusSeeOther)
}

func (c *Console) handleDefaults(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostForm
	body := map[string]any{"labels": splitLabels(f.Get("labels"))}
	if t := f.Get("default_team_id"); t != "" {
		body["default_team_id"] = t
	}
	if p, err := strconv.Atoi(f.Get("default_priority")); err == nil {
		body["default_priority"] = p
	}
	if _, err := c.call(r, s, http.MethodPatch, "/integrations/linear", body, nil); err != nil {
		c.integrationPage(w, r, s, statusOf(err), integrationData{}, errorText(err))
		return
	}
	http.Redirect(w, r, Prefix+"/integration?done=defaults", http.StatusSeeOther)
}

func (c *Console) handleDisconnect(w http.ResponseWriter, r *http.Request, s *session) {
	if _, err := c.call(r, s, http.MethodDelete, "/integrations/linear", nil, nil); err != nil {
		c.integrationPage(w, r, s, statusOf(err), integrationData{}, errorText(err))
		return
	}
	http.Redirect(w, r, Prefix+"/integration?done=disconnected", http.StatusSeeOther)
}

// handleOAuthStart starts Linear's OAuth through the API and sends the browser to Linear, carrying the API's
// browser-binding cookie over, so the callback completes in this browser only.
func (c *Console) handleOAuthStart(w http.ResponseWriter, r *http.Request, s *session) {
	var out struct {
		AuthorizeURL string `json:"authorize_url"`
	}
	res, err := c.call(r, s, http.MethodPost, "/integrations/linear/oauth/start", nil, &out)
	if err != nil {
		c.integrationPage(w, r, s, statusOf(err), integrationData{}, errorText(err))
		return
	}
	u, perr := url.Parse(out.AuthorizeURL)
	if perr != nil || (u.Scheme != "https" && u.Scheme != "http") {
		c.integrationPage(w, r, s, http.StatusBadGateway, integrationData{}, "the API answered no usable authorize URL")
		return
	}
	for _, ck := range res.Header.Values("Set-Cookie") {
		w.Header().Add("Set-Cookie", ck)
	}
	if r.Header.Get("HX-Request") != "" {
		w.Header().Set("HX-Redirect", out.AuthorizeURL)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, out.AuthorizeURL, http.StatusSeeOther)
}

// splitLabels reads a comma-separated list of label names.
func splitLabels(v string) []string {
	out := []string{}
	for _, l := range strings.Split(v, ",") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
