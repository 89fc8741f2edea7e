package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/linsync/linsync"
	"github.com/linsync/linsync/envelope"
)

// Reply sources are SourceApp and SourceLinear.

// Reply is a reply to a question, written in the app or as a comment in Linear.
type Reply struct {
	ID              string     `json:"id"`
	QuestionID      string     `json:"question_id"`
	ExternalID      *string    `json:"external_id"`
	Body            string     `json:"body"`
	AuthorEmail     string     `json:"author_email"`
	AuthorName      string     `json:"author_name,omitempty"`
	Source          string     `json:"source"`
	LinearCommentID string     `json:"linear_comment_id"`
	Synced          bool       `json:"synced"`
	DeletedAt       *time.Time `json:"deleted_at,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
}

// ReplyInput is a validated reply from the app.
type ReplyInput struct {
	WorkspaceID string
	QuestionID  string
	ExternalID  string
	Body        string
	AuthorEmail string
}

const replyColumns = `id::text, question_id::text, external_id, body, author_email, author_name, source,
	linear_comment_id, synced, deleted_at, created_at`

func scanReply(r pgx.CollectableRow) (Reply, error) {
	var x Reply
	err := r.Scan(&x.ID, &x.QuestionID, &x.ExternalID, &x.Body, &x.AuthorEmail, &x.AuthorName, &x.Source,
		&x.LinearCommentID, &x.Synced, &x.DeletedAt, &x.CreatedAt)
	return x, err
}

// AddReply stores an app reply with its Linear comment id chosen now, before any call to Linear; a reply with the
// same external id on the question is returned instead (created false).
func (db *DB) AddReply(ctx context.Context, in ReplyInput) (*Reply, bool, error) {
	q, err := db.FindQuestion(ctx, in.WorkspaceID, in.QuestionID)
	if err != nil {
		return nil, false, err
	}
	if q.ArchivedAt != nil {
		return nil, false, linsync.Errorf(linsync.ECONFLICT, "question %s is archived", q.ID)
	}
	var ext *string
	if in.ExternalID != "" {
		ext = &in.ExternalID
	}
	var id string
	created := true
	err = db.pool.QueryRow(ctx, `INSERT INTO question_replies (id, question_id, workspace_id, external_id, body,
			author_email, source, linear_comment_id) VALUES ($1, $2, $3, $4, $5, $6, 'app', $7)
		ON CONFLICT ON CONSTRAINT question_replies_external_id_key DO NOTHING RETURNING id::text`,
		uuid.NewString(), q.ID, in.WorkspaceID, ext, in.Body, NormalizeEmail(in.AuthorEmail), uuid.NewString()).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		created = false
		err = db.pool.QueryRow(ctx, `SELECT id::text FROM question_replies WHERE question_id = $1 AND external_id = $2`,
			q.ID, in.ExternalID).Scan(&id)
	}
	if err != nil {
		return nil, false, fmt.Errorf("add reply to question %s: %w", q.ID, err)
	}
	if created {
		if _, err := db.pool.Exec(ctx, `UPDATE questions SET updated_at = now(),
			sync_state = CASE WHEN linked THEN 'pending' ELSE sync_state END WHERE id = $1`, q.ID); err != nil {
			return nil, false, fmt.Errorf("touch question %s: %w", q.ID, err)
		}
	}
	r, err := db.FindReply(ctx, id)
	return r, created, err
}

// FindReply returns one reply.
func (db *DB) FindReply(ctx context.Context, id string) (*Reply, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+replyColumns+` FROM question_replies WHERE id::text = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("query reply %s: %w", id, err)
	}
	r, err := pgx.CollectExactlyOneRow(rows, scanReply)
	if err != nil {
		return nil, notFound(err, "reply")
	}
	return &r, nil
}

// ListReplies returns a question's replies in the order they were written.
func (db *DB) ListReplies(ctx context.Context, questionID string) ([]Reply, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+replyColumns+` FROM question_replies WHERE question_id = $1
		ORDER BY created_at, id`, questionID)
	if err != nil {
		return nil, fmt.Errorf("list replies of question %s: %w", questionID, err)
	}
	out, err := pgx.CollectRows(rows, scanReply)
	if err != nil {
		return nil, fmt.Errorf("scan replies of question %s: %w", questionID, err)
	}
	return out, nil
}

// PendingReplyIDs returns the app replies of a question not yet written to Linear, oldest first.
func (db *DB) PendingReplyIDs(ctx context.Context, questionID string) ([]string, error) {
	rows, err := db.pool.Query(ctx, `SELECT id::text FROM question_replies WHERE question_id = $1 AND source = 'app'
		AND NOT synced ORDER BY created_at, id`, questionID)
	if err != nil {
		return nil, fmt.Errorf("list pending replies of question %s: %w", questionID, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("scan pending replies of question %s: %w", questionID, err)
	}
	return ids, nil
}

// MarkReplySynced records that Linear holds the reply's comment.
func (db *DB) MarkReplySynced(ctx context.Context, id string) error {
	if _, err := db.pool.Exec(ctx, `UPDATE question_replies SET synced = true WHERE id::text = $1`, id); err != nil {
		return fmt.Errorf("mark reply %s synced: %w", id, err)
	}
	return nil
}

// QuestionByID returns a question by id alone, for activities that were handed the id by a workflow.
func (db *DB) QuestionByID(ctx context.Context, id string) (*Question, error) {
	return findQuestion(ctx, db.pool, `WHERE id::text = $1`, id)
}

// PushedField is a field value written to Linear and what Linear holds for it afterwards.
type PushedField struct {
	Value       string `json:"value"`
	LinearValue string `json:"linear_value"`
}

// IssueLink is what Linear answered about a question's issue.
type IssueLink struct {
	Identifier string
	URL        string
	TeamID     string
}

// RecordIssueCreated records that Linear holds the question's issue, with the values it was created with at `at`.
func (db *DB) RecordIssueCreated(ctx context.Context, questionID string, link IssueLink, pushed map[string]PushedField, at time.Time) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		q, err := lockQuestion(ctx, tx, `WHERE id::text = $1`, questionID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE questions SET issue_created = true, linear_identifier = $2, linear_url = $3,
			team_id = $4 WHERE id = $1`, q.ID, link.Identifier, link.URL, link.TeamID); err != nil {
			return fmt.Errorf("record issue of question %s: %w", q.ID, err)
		}
		return recordPush(ctx, tx, q, pushed, at)
	})
}

// BeginPush stores, before the issueUpdate, the values about to be written (see FieldState.Pushing), so that the
// webhook of the write is recognised even if it arrives before RecordPush; at is now, on linsync's clock.
func (db *DB) BeginPush(ctx context.Context, questionID string, pushed map[string]PushedField, at time.Time) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		q, err := lockQuestion(ctx, tx, `WHERE id::text = $1`, questionID)
		if err != nil {
			return err
		}
		for _, name := range slices.Sorted(maps.Keys(pushed)) {
			p := pushed[name]
			if err := saveField(ctx, tx, q.ID, name, MarkPushing(q.Fields[name], p.Value, p.LinearValue, at)); err != nil {
				return err
			}
		}
		return nil
	})
}

// RecordPush records a successful issueUpdate of the given fields, which Linear stamped at `at`.
func (db *DB) RecordPush(ctx context.Context, questionID string, pushed map[string]PushedField, at time.Time) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		q, err := lockQuestion(ctx, tx, `WHERE id::text = $1`, questionID)
		if err != nil {
			return err
		}
		return recordPush(ctx, tx, q, pushed, at)
	})
}

func recordPush(ctx context.Context, tx pgx.Tx, q *Question, pushed map[string]PushedField, at time.Time) error {
	for _, name := range slices.Sorted(maps.Keys(pushed)) {
		p := pushed[name]
		if err := saveField(ctx, tx, q.ID, name, MergePush(q.Fields[name], p.Value, p.LinearValue, at)); err != nil {
			return err
		}
	}
	return nil
}

// SetSyncWarning records something the user should know about the sync that is not a failure (an unmatched
// email), with its audit entry.
func (db *DB) SetSyncWarning(ctx context.Context, questionID, warning string, e AuditEntry) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE questions SET sync_warning = $2, updated_at = now() WHERE id::text = $1`,
			questionID, warning); err != nil {
			return fmt.Errorf("set sync warning of question %s: %w", questionID, err)
		}
		return addAudit(ctx, tx, questionID, e)
	})
}

// ClearSyncWarning forgets a warning once its cause is gone (e.g. the assignee now matches a Linear user).
func (db *DB) ClearSyncWarning(ctx context.Context, questionID string) error {
	if _, err := db.pool.Exec(ctx, `UPDATE questions SET sync_warning = '' WHERE id::text = $1 AND sync_warning <> ''`,
		questionID); err != nil {
		return fmt.Errorf("clear sync warning of question %s: %w", questionID, err)
	}
	return nil
}

// MarkArchiveSynced records that the archive policy was applied in Linear.
func (db *DB) MarkArchiveSynced(ctx context.Context, questionID string) error {
	if _, err := db.pool.Exec(ctx, `UPDATE questions SET archive_synced = true WHERE id::text = $1`, questionID); err != nil {
		return fmt.Errorf("mark archive of question %s synced: %w", questionID, err)
	}
	return nil
}

// SyncWork is what a question still needs from Linear.
type SyncWork struct {
	Linked         bool     `json:"linked"`
	NeedIssue      bool     `json:"need_issue"`
	NeedPush       bool     `json:"need_push"`
	PendingReplies []string `json:"pending_replies"`
	NeedArchive    bool     `json:"need_archive"`
}

// Empty reports whether nothing is left to do.
func (w SyncWork) Empty() bool {
	return !w.Linked || (!w.NeedIssue && !w.NeedPush && len(w.PendingReplies) == 0 && !w.NeedArchive)
}

// QuestionSyncWork reads what a question still needs from Linear.
func (db *DB) QuestionSyncWork(ctx context.Context, questionID string) (*SyncWork, error) {
	q, err := db.QuestionByID(ctx, questionID)
	if err != nil {
		return nil, err
	}
	w := &SyncWork{Linked: q.Linked, NeedIssue: !q.IssueCreated, NeedPush: q.NeedsPush(),
		NeedArchive: q.ArchivedAt != nil && !q.ArchiveSynced}
	if w.PendingReplies, err = db.PendingReplyIDs(ctx, questionID); err != nil {
		return nil, err
	}
	return w, nil
}

// FinishSync sets the question's sync state from what is left to do: synced when nothing, pending otherwise.
func (db *DB) FinishSync(ctx context.Context, questionID string) (string, error) {
	w, err := db.QuestionSyncWork(ctx, questionID)
	if err != nil {
		return "", err
	}
	state := SyncPending
	switch {
	case !w.Linked:
		state = SyncUnlinked
	case w.Empty():
		state = SyncSynced
	}
	// A pass that ends pending or synced is not a failure: the failure count restarts.
	_, err = db.pool.Exec(ctx, `UPDATE questions SET sync_state = $2, sync_attempts = 0, sync_attempted_at = now(),
		sync_reason = CASE WHEN $2 = 'unlinked' THEN sync_reason ELSE '' END WHERE id::text = $1`, questionID, state)
	if err != nil {
		return "", fmt.Errorf("finish sync of question %s: %w", questionID, err)
	}
	return state, nil
}

// MarkSyncFailed records why a question could not be written to Linear and counts the failed pass; the next change
// or reconciliation (UnsyncedQuestions) retries.
func (db *DB) MarkSyncFailed(ctx context.Context, questionID, reason string) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE questions SET sync_state = 'failed', sync_reason = $2,
			sync_attempts = sync_attempts + 1, sync_attempted_at = now() WHERE id::text = $1
			AND linked`, questionID, reason); err != nil {
			return fmt.Errorf("mark sync of question %s failed: %w", questionID, err)
		}
		return addAudit(ctx, tx, questionID, AuditEntry{Kind: AuditSyncFailed, Detail: map[string]any{"reason": reason}})
	})
}

// LinearIssueState is what one Issue webhook says about an issue: its values for the Linear-synced fields (status
// already mapped), as of UpdatedAt.
type LinearIssueState struct {
	IssueID    string
	Identifier string
	URL        string
	TeamID     string
	UpdatedAt  time.Time
	Values     map[string]string
	// Edited names the fields the webhook's updatedFrom lists: edited at exactly UpdatedAt.
	Edited map[string]bool
	// ByOther says the webhook's actor is someone other than linsync (a user, app or integration); without an actor
	// the change may be linsync's own write, which the value of a write in flight then recognises.
	ByOther bool
	Removed bool
}

// LinearApply is what applying a Linear change did to a question.
type LinearApply struct {
	QuestionID string   `json:"question_id"`
	ExternalID string   `json:"external_id"`
	Found      bool     `json:"found"`
	Changed    []string `json:"changed"`
	NeedsPush  bool     `json:"needs_push"`
	Unlinked   bool     `json:"unlinked"`
	Audits     int      `json:"audits"`
}

// ApplyLinearIssue folds an Issue webhook into the question linked to the issue, under the question's row lock,
// field by field (see MergeLinear). A removed issue unlinks the question; a move to another team keeps the link.
func (db *DB) ApplyLinearIssue(ctx context.Context, workspaceID string, st LinearIssueState) (*LinearApply, error) {
	res := &LinearApply{}
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		q, err := lockQuestion(ctx, tx, `WHERE workspace_id = $1 AND linear_issue_id = $2`, workspaceID, st.IssueID)
		if linsync.ErrorCode(err) == linsync.ENOTFOUND {
			return nil
		}
		if err != nil {
			return err
		}
		res.Found, res.QuestionID = true, q.ID
		if q.ExternalID != nil {
			res.ExternalID = *q.ExternalID
		}
		if !q.Linked {
			return nil
		}
		audit := func(e AuditEntry) error { res.Audits++; return addAudit(ctx, tx, q.ID, e) }
		if st.Removed {
			res.Unlinked = true
			reason := fmt.Sprintf("the Linear issue %s was deleted in Linear; the question is no longer linked", q.LinearIdentifier)
			if _, err := tx.Exec(ctx, `UPDATE questions SET linked = false, sync_state = 'unlinked', sync_reason = $2,
				updated_at = now() WHERE id = $1`, q.ID, reason); err != nil {
				return fmt.Errorf("unlink question %s: %w", q.ID, err)
			}
			return audit(AuditEntry{Kind: AuditUnlinked, Detail: map[string]any{"issue_id": st.IssueID, "identifier": q.LinearIdentifier}})
		}
		touch := false
		if st.TeamID != "" && st.TeamID != q.TeamID {
			touch = true
			if err := audit(AuditEntry{Kind: AuditMoved, Detail: map[string]any{"from_team": q.TeamID, "to_team": st.TeamID}}); err != nil {
				return err
			}
		}
		if (st.Identifier != "" && st.Identifier != q.LinearIdentifier) || (st.URL != "" && st.URL != q.LinearURL) {
			touch = true
		}
		title, changed := q.Title, map[string]string{}
		for _, name := range LinearFields {
			v, ok := st.Values[name]
			if !ok {
				continue
			}
			f, ch, e := MergeLinear(q.Fields[name], v, st.UpdatedAt, st.Edited[name], st.ByOther)
			if e != nil {
				e.Field = name
				if err := audit(*e); err != nil {
					return err
				}
			}
			if ch {
				changed[name] = v
				res.Changed = append(res.Changed, name)
				if name == FieldTitle {
					title = v
				}
			}
			if f.Dirty() {
				res.NeedsPush = true
			}
			if !f.Equal(q.Fields[name]) {
				if err := saveField(ctx, tx, q.ID, name, f); err != nil {
					return err
				}
			}
		}
		if len(changed) == 0 && !touch {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE questions SET title = $2, team_id = coalesce(nullif($3, ''), team_id),
			linear_identifier = coalesce(nullif($4, ''), linear_identifier), linear_url = coalesce(nullif($5, ''), linear_url),
			updated_at = now() WHERE id = $1`, q.ID, title, st.TeamID, st.Identifier, st.URL)
		if err != nil {
			return fmt.Errorf("apply linear change to question %s: %w", q.ID, err)
		}
		return nil
	})
	return res, err
}

// LinearComment is a comment written in Linear on an issue.
type LinearComment struct {
	CommentID   string
	IssueID     string
	Body        string
	AuthorEmail string
	AuthorName  string
	CreatedAt   time.Time
}

// AddLinearComment stores a Linear comment on a linked issue as a reply. A comment linsync created (its id is one
// of ours) or one already stored changes nothing: created is false.
func (db *DB) AddLinearComment(ctx context.Context, workspaceID string, c LinearComment) (*LinearApply, bool, error) {
	res := &LinearApply{}
	q, err := findQuestion(ctx, db.pool, `WHERE workspace_id = $1 AND linear_issue_id = $2`, workspaceID, c.IssueID)
	if linsync.ErrorCode(err) == linsync.ENOTFOUND {
		return res, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	res.Found, res.QuestionID = true, q.ID
	if q.ExternalID != nil {
		res.ExternalID = *q.ExternalID
	}
	created := false
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO question_replies (id, question_id, workspace_id, body, author_email,
				author_name, source, linear_comment_id, synced, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'linear', $7, true, $8)
			ON CONFLICT ON CONSTRAINT question_replies_comment_key DO NOTHING`,
			uuid.NewString(), q.ID, workspaceID, c.Body, NormalizeEmail(c.AuthorEmail), c.AuthorName, c.CommentID, c.CreatedAt)
		if err != nil {
			return fmt.Errorf("store linear comment %s: %w", c.CommentID, err)
		}
		if created = tag.RowsAffected() == 1; !created {
			return nil
		}
		res.Changed = []string{"replies"}
		_, err = tx.Exec(ctx, `UPDATE questions SET updated_at = now() WHERE id = $1`, q.ID)
		return err
	})
	return res, created, err
}

// UpdateLinearComment changes the body of a reply that came from Linear; replies written in the app are the app's.
func (db *DB) UpdateLinearComment(ctx context.Context, workspaceID, commentID, body string, deleted bool) (*LinearApply, error) {
	res := &LinearApply{}
	var qid string
	err := db.pool.QueryRow(ctx, `UPDATE question_replies SET body = CASE WHEN $3 THEN body ELSE $4 END,
			deleted_at = CASE WHEN $3 THEN coalesce(deleted_at, now()) ELSE deleted_at END
		WHERE workspace_id = $1 AND linear_comment_id = $2 AND source = 'linear'
			AND (body <> $4 OR ($3 AND deleted_at IS NULL)) RETURNING question_id::text`,
		workspaceID, commentID, deleted, body).Scan(&qid)
	if errors.Is(err, pgx.ErrNoRows) {
		return res, nil
	}
	if err != nil {
		return nil, fmt.Errorf("update linear comment %s: %w", commentID, err)
	}
	res.Found, res.QuestionID, res.Changed = true, qid, []string{"replies"}
	return res, nil
}

// RememberLinearUser keeps a Linear user's email, so later payloads without one resolve without calling Linear.
func (db *DB) RememberLinearUser(ctx context.Context, workspaceID, userID, email, name string) error {
	if userID == "" || email == "" {
		return nil
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO linear_users (workspace_id, user_id, email, name) VALUES ($1, $2, $3, $4)
		ON CONFLICT (workspace_id, user_id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name, updated_at = now()
		WHERE linear_users.email <> EXCLUDED.email OR linear_users.name <> EXCLUDED.name`,
		workspaceID, userID, NormalizeEmail(email), name)
	if err != nil {
		return fmt.Errorf("remember linear user %s: %w", userID, err)
	}
	return nil
}

// LinearUserEmail returns a remembered Linear user's email, "" when unknown.
func (db *DB) LinearUserEmail(ctx context.Context, workspaceID, userID string) (string, error) {
	var email string
	err := db.pool.QueryRow(ctx, `SELECT email FROM linear_users WHERE workspace_id = $1 AND user_id = $2`,
		workspaceID, userID).Scan(&email)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find linear user %s: %w", userID, err)
	}
	return email, nil
}

// Delete policies for an archived question's Linear issue.
const (
	DeletePolicyComment = "comment"
	DeletePolicyCancel  = "cancel"
)

// DefaultStatusMap maps Linear workflow state types to question statuses unless a workspace configures otherwise.
var DefaultStatusMap = map[string]string{
	"triage": StatusOpen, "backlog": StatusOpen, "unstarted": StatusOpen, "started": StatusInProgress,
	"completed": StatusAnswered, "canceled": StatusClosed, "duplicate": StatusClosed,
}

// DefaultStateForStatus is the Linear state type a question status change in the app moves the issue to.
var DefaultStateForStatus = map[string]string{
	StatusOpen: "unstarted", StatusInProgress: "started", StatusAnswered: "completed", StatusClosed: "canceled",
}

// QuestionSettings is a workspace's configuration of question sync.
type QuestionSettings struct {
	StatusMap      map[string]string `json:"status_map"`
	StateForStatus map[string]string `json:"state_for_status"`
	DeletePolicy   string            `json:"delete_policy"`
	CallbackURL    string            `json:"callback_url"`
	// QuestionURLTemplate is the app's URL of a question, {external_id} and {id} replaced; linked from issues.
	QuestionURLTemplate string `json:"question_url_template"`
	// CallbackSecretLast4 shows which callback secret is set, never the secret.
	CallbackSecretLast4 string    `json:"callback_secret_last4"`
	UpdatedAt           time.Time `json:"updated_at"`
}

// StatusOf maps a Linear state type to a question status ("" when the type is unknown).
func (s *QuestionSettings) StatusOf(stateType string) string { return s.StatusMap[stateType] }

// QuestionSettingsInput replaces a workspace's settings; a nil CallbackSecret keeps the stored one.
type QuestionSettingsInput struct {
	StatusMap      map[string]string
	StateForStatus map[string]string
	DeletePolicy   string
	CallbackURL    string
	CallbackSecret *string
	// QuestionURLTemplate is the app's URL of a question, {external_id} and {id} replaced.
	QuestionURLTemplate string
}

// QuestionSettings returns a workspace's settings, the defaults filled in.
func (db *DB) QuestionSettings(ctx context.Context, workspaceID string) (*QuestionSettings, error) {
	s, _, err := db.questionSettings(ctx, workspaceID)
	return s, err
}

func (db *DB) questionSettings(ctx context.Context, workspaceID string) (*QuestionSettings, []byte, error) {
	s := &QuestionSettings{DeletePolicy: DeletePolicyComment}
	var statusMap, stateFor, secret []byte
	err := db.pool.QueryRow(ctx, `SELECT status_map, state_for_status, delete_policy, callback_url,
		callback_secret_ciphertext, callback_secret_last4, question_url_template, updated_at FROM question_settings WHERE workspace_id = $1`,
		workspaceID).Scan(&statusMap, &stateFor, &s.DeletePolicy, &s.CallbackURL, &secret, &s.CallbackSecretLast4, &s.QuestionURLTemplate, &s.UpdatedAt)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, fmt.Errorf("query question settings of workspace %s: %w", workspaceID, err)
	}
	s.StatusMap, s.StateForStatus = maps.Clone(DefaultStatusMap), maps.Clone(DefaultStateForStatus)
	if len(statusMap) > 0 {
		if err := json.Unmarshal(statusMap, &s.StatusMap); err != nil {
			return nil, nil, fmt.Errorf("decode status map: %w", err)
		}
	}
	if len(stateFor) > 0 {
		if err := json.Unmarshal(stateFor, &s.StateForStatus); err != nil {
			return nil, nil, fmt.Errorf("decode state for status: %w", err)
		}
	}
	return s, secret, nil
}

// SaveQuestionSettings stores a workspace's settings, the callback secret encrypted.
func (db *DB) SaveQuestionSettings(ctx context.Context, workspaceID string, in QuestionSettingsInput) (*QuestionSettings, error) {
	var statusMap, stateFor []byte
	var err error
	if in.StatusMap != nil {
		if statusMap, err = json.Marshal(in.StatusMap); err != nil {
			return nil, fmt.Errorf("encode status map: %w", err)
		}
	}
	if in.StateForStatus != nil {
		if stateFor, err = json.Marshal(in.StateForStatus); err != nil {
			return nil, fmt.Errorf("encode state for status: %w", err)
		}
	}
	var secret []byte
	last4 := ""
	if in.CallbackSecret != nil && *in.CallbackSecret != "" {
		if secret, err = db.cipher.Encrypt(ctx, []byte(*in.CallbackSecret)); err != nil {
			return nil, fmt.Errorf("encrypt callback secret: %w", err)
		}
		last4 = envelope.Last4(*in.CallbackSecret)
	}
	if in.DeletePolicy == "" {
		in.DeletePolicy = DeletePolicyComment
	}
	_, err = db.pool.Exec(ctx, `INSERT INTO question_settings (workspace_id, status_map, state_for_status, delete_policy,
			callback_url, callback_secret_ciphertext, callback_secret_last4, question_url_template)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $9)
		ON CONFLICT (workspace_id) DO UPDATE SET status_map = EXCLUDED.status_map,
			state_for_status = EXCLUDED.state_for_status, delete_policy = EXCLUDED.delete_policy,
			callback_url = EXCLUDED.callback_url, question_url_template = EXCLUDED.question_url_template,
			callback_secret_ciphertext = CASE WHEN $8 THEN EXCLUDED.callback_secret_ciphertext ELSE question_settings.callback_secret_ciphertext END,
			callback_secret_last4 = CASE WHEN $8 THEN EXCLUDED.callback_secret_last4 ELSE question_settings.callback_secret_last4 END,
			updated_at = now()`,
		workspaceID, statusMap, stateFor, in.DeletePolicy, in.CallbackURL, secret, last4, in.CallbackSecret != nil,
		in.QuestionURLTemplate)
	if err != nil {
		return nil, fmt.Errorf("save question settings of workspace %s: %w", workspaceID, err)
	}
	return db.QuestionSettings(ctx, workspaceID)
}

// CallbackTarget returns where and with which secret to notify the app of a workspace; an empty URL means no
// callback is configured.
func (db *DB) CallbackTarget(ctx context.Context, workspaceID string) (url string, secret []byte, err error) {
	s, sealed, err := db.questionSettings(ctx, workspaceID)
	if err != nil || s.CallbackURL == "" || sealed == nil {
		return "", nil, err
	}
	if secret, err = db.cipher.Decrypt(ctx, sealed); err != nil {
		return "", nil, fmt.Errorf("decrypt callback secret of workspace %s: %w", workspaceID, err)
	}
	return s.CallbackURL, secret, nil
}
