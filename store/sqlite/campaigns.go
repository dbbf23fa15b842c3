package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/text/unicode/norm"

	"outreach/campaign"
	"outreach/internal/apperr"
)

var _ campaign.Store = (*Store)(nil)

// stampLayout is the one form of every time in the database: fixed width,
// UTC, so that times compare as text.
const stampLayout = "2006-01-02T15:04:05.000000Z"

func stamp(t time.Time) string { return t.UTC().Format(stampLayout) }

// stampOrNull is NULL for a nil or zero time.
func stampOrNull(t *time.Time) any {
	if t == nil || t.IsZero() {
		return nil
	}
	return stamp(*t)
}

// unstamp parses a stored time; it also takes RFC 3339, which a row written
// by hand may carry.
func unstamp(s string) (time.Time, error) {
	t, err := time.Parse(stampLayout, s)
	if err != nil {
		if t2, err2 := time.Parse(time.RFC3339Nano, s); err2 == nil {
			return t2.UTC(), nil
		}
		return time.Time{}, fmt.Errorf("sqlite: bad time %q: %w", s, err)
	}
	return t, nil
}

func unstampNull(ns sql.NullString) (*time.Time, error) {
	if !ns.Valid || ns.String == "" {
		return nil, nil
	}
	t, err := unstamp(ns.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// nowMicro is the current time at the precision the database keeps.
func nowMicro() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// int64sJSON renders ids as a JSON array for json_each(?).
func int64sJSON(ids []int64) string {
	b := make([]byte, 0, len(ids)*8+2)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}

func stringsJSON[S ~string](xs []S) string {
	b, _ := json.Marshal(xs)
	return string(b)
}

// campaignKey normalises a campaign id; ok is false when it is no uuid, which
// can then name no campaign.
func campaignKey(id string) (string, bool) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

const campaignColumns = `id, tenant_id, name, kind, channels, templates, audience,
	push_fallback_sms, rate_per_second, start_at, end_by, reward, state, fanout_cursor,
	fanout_done, created_by, created_at, updated_at, started_at, finished_at, locale_templates`

type scanner interface{ Scan(dest ...any) error }

func scanCampaign(r scanner) (campaign.Campaign, error) {
	var (
		c                                       campaign.Campaign
		channels, templates, audience, byLocale string
		reward                                  sql.NullString
		startAt, endBy, startedAt, finishedAt   sql.NullString
		createdAt, updatedAt                    string
	)
	if err := r.Scan(&c.ID, &c.TenantID, &c.Name, &c.Kind, &channels, &templates, &audience,
		&c.PushFallbackSMS, &c.RatePerSecond, &startAt, &endBy, &reward, &c.State, &c.FanoutCursor,
		&c.FanoutDone, &c.CreatedBy, &createdAt, &updatedAt, &startedAt, &finishedAt, &byLocale); err != nil {
		return c, err
	}
	if byLocale != "" && byLocale != "{}" {
		if err := json.Unmarshal([]byte(byLocale), &c.LocaleTemplates); err != nil {
			return c, fmt.Errorf("sqlite: campaign %s locale templates: %w", c.ID, err)
		}
	}
	if err := json.Unmarshal([]byte(channels), &c.Channels); err != nil {
		return c, fmt.Errorf("sqlite: campaign %s channels: %w", c.ID, err)
	}
	if err := json.Unmarshal([]byte(templates), &c.Templates); err != nil {
		return c, fmt.Errorf("sqlite: campaign %s templates: %w", c.ID, err)
	}
	if err := json.Unmarshal([]byte(audience), &c.Audience); err != nil {
		return c, fmt.Errorf("sqlite: campaign %s audience: %w", c.ID, err)
	}
	if reward.Valid && reward.String != "" && reward.String != "null" {
		c.Reward = new(campaign.Reward)
		if err := json.Unmarshal([]byte(reward.String), c.Reward); err != nil {
			return c, fmt.Errorf("sqlite: campaign %s reward: %w", c.ID, err)
		}
	}
	var err error
	if c.CreatedAt, err = unstamp(createdAt); err != nil {
		return c, err
	}
	if c.UpdatedAt, err = unstamp(updatedAt); err != nil {
		return c, err
	}
	for _, p := range []struct {
		dst **time.Time
		src sql.NullString
	}{{&c.StartAt, startAt}, {&c.EndBy, endBy}, {&c.StartedAt, startedAt}, {&c.FinishedAt, finishedAt}} {
		if *p.dst, err = unstampNull(p.src); err != nil {
			return c, err
		}
	}
	return c, nil
}

func (s *Store) queryCampaigns(ctx context.Context, query string, args ...any) ([]campaign.Campaign, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: campaigns: %w", err)
	}
	defer rows.Close()
	var out []campaign.Campaign
	for rows.Next() {
		c, err := scanCampaign(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: campaigns: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: campaigns: %w", err)
	}
	return out, nil
}

// CreateCampaign stores a new campaign. An empty id gets a new uuid; a
// given one must be a uuid. An empty state is draft.
func (s *Store) CreateCampaign(ctx context.Context, c *campaign.Campaign) error {
	if c.ID == "" {
		c.ID = uuid.NewString()
	} else if id, ok := campaignKey(c.ID); ok {
		c.ID = id
	} else {
		return apperr.FieldErrors{"id": "must be a UUID"}
	}
	if c.State == "" {
		c.State = campaign.StateDraft
	}
	now := nowMicro()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	c.UpdatedAt = c.CreatedAt
	channels := c.Channels
	if channels == nil {
		channels = []campaign.Channel{}
	}
	templates, err := json.Marshal(c.Templates)
	if err != nil {
		return fmt.Errorf("sqlite: create campaign: %w", err)
	}
	audience, err := json.Marshal(c.Audience)
	if err != nil {
		return fmt.Errorf("sqlite: create campaign: %w", err)
	}
	byLocale := []byte("{}")
	if len(c.LocaleTemplates) > 0 {
		if byLocale, err = json.Marshal(c.LocaleTemplates); err != nil {
			return fmt.Errorf("sqlite: create campaign: %w", err)
		}
	}
	var reward any
	if c.Reward != nil {
		b, err := json.Marshal(c.Reward)
		if err != nil {
			return fmt.Errorf("sqlite: create campaign: %w", err)
		}
		reward = string(b)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO campaigns (`+campaignColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.TenantID, c.Name, string(c.Kind), stringsJSON(channels), string(templates), string(audience),
		c.PushFallbackSMS, c.RatePerSecond, stampOrNull(c.StartAt), stampOrNull(c.EndBy), reward,
		string(c.State), c.FanoutCursor, c.FanoutDone, c.CreatedBy, stamp(c.CreatedAt), stamp(c.UpdatedAt),
		stampOrNull(c.StartedAt), stampOrNull(c.FinishedAt), string(byLocale))
	if err != nil {
		return fmt.Errorf("sqlite: create campaign: %w", err)
	}
	return nil
}

// GetCampaign reads a campaign of this tenant.
func (s *Store) GetCampaign(ctx context.Context, tenantID, id string) (campaign.Campaign, error) {
	key, ok := campaignKey(id)
	if !ok {
		return campaign.Campaign{}, apperr.NotFound("campaign")
	}
	c, err := scanCampaign(s.db.QueryRowContext(ctx,
		`SELECT `+campaignColumns+` FROM campaigns WHERE id = ? AND tenant_id = ?`, key, tenantID))
	if errors.Is(err, sql.ErrNoRows) {
		return c, apperr.NotFound("campaign")
	}
	if err != nil {
		return c, fmt.Errorf("sqlite: get campaign: %w", err)
	}
	return c, nil
}

// CampaignByID reads a campaign of any tenant.
func (s *Store) CampaignByID(ctx context.Context, id string) (campaign.Campaign, error) {
	key, ok := campaignKey(id)
	if !ok {
		return campaign.Campaign{}, apperr.NotFound("campaign")
	}
	c, err := scanCampaign(s.db.QueryRowContext(ctx,
		`SELECT `+campaignColumns+` FROM campaigns WHERE id = ?`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return c, apperr.NotFound("campaign")
	}
	if err != nil {
		return c, fmt.Errorf("sqlite: campaign by id: %w", err)
	}
	return c, nil
}

// ListCampaigns lists the tenant's campaigns newest first; a limit of 0 or
// less means 100.
func (s *Store) ListCampaigns(ctx context.Context, tenantID string, kind campaign.Kind, after string, limit int) ([]campaign.Campaign, error) {
	if limit <= 0 {
		limit = 100
	}
	return s.queryCampaigns(ctx, `SELECT `+campaignColumns+` FROM campaigns
		WHERE tenant_id = ? AND (? = '' OR kind = ?)
		  AND (? = '' OR (created_at, id) <
		       (SELECT created_at, id FROM campaigns WHERE tenant_id = ? AND id = ?))
		ORDER BY created_at DESC, id DESC LIMIT ?`, tenantID, string(kind), string(kind), after, tenantID, after, limit)
}

// TransitionCampaign changes the state in one conditional update, so two
// racing requests cannot both succeed.
func (s *Store) TransitionCampaign(ctx context.Context, tenantID, id string, from []campaign.State, to campaign.State, at time.Time) (campaign.Campaign, error) {
	key, ok := campaignKey(id)
	if !ok {
		return campaign.Campaign{}, apperr.NotFound("campaign")
	}
	if at.IsZero() {
		at = nowMicro()
	}
	var started, finished any
	if to == campaign.StateRunning {
		started = stamp(at)
	}
	if to.Final() {
		finished = stamp(at)
	}
	c, err := scanCampaign(s.db.QueryRowContext(ctx, `UPDATE campaigns SET state = ?, updated_at = ?,
			started_at = COALESCE(started_at, ?), finished_at = COALESCE(?, finished_at)
		WHERE id = ? AND tenant_id = ? AND state IN (SELECT value FROM json_each(?))
		RETURNING `+campaignColumns,
		string(to), stamp(at), started, finished, key, tenantID, stringsJSON(from)))
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("sqlite: transition campaign: %w", err)
	}
	var state string
	err = s.db.QueryRowContext(ctx, `SELECT state FROM campaigns WHERE id = ? AND tenant_id = ?`,
		key, tenantID).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return campaign.Campaign{}, apperr.NotFound("campaign")
	}
	if err != nil {
		return campaign.Campaign{}, fmt.Errorf("sqlite: transition campaign: %w", err)
	}
	return campaign.Campaign{}, apperr.Conflict("campaign is %s, cannot become %s", state, to)
}

// DueScheduled returns scheduled campaigns whose start is due, oldest first.
// A scheduled campaign with no start time is due at once.
func (s *Store) DueScheduled(ctx context.Context, now time.Time) ([]campaign.Campaign, error) {
	return s.queryCampaigns(ctx, `SELECT `+campaignColumns+` FROM campaigns
		WHERE state = 'scheduled' AND (start_at IS NULL OR start_at <= ?)
		ORDER BY start_at, id`, stamp(now))
}

// ActiveCampaigns returns running and paused campaigns of every tenant.
func (s *Store) ActiveCampaigns(ctx context.Context) ([]campaign.Campaign, error) {
	return s.queryCampaigns(ctx, `SELECT `+campaignColumns+` FROM campaigns
		WHERE state IN ('running', 'paused') ORDER BY created_at, id`)
}

// UnsettledCampaigns returns the cancelled campaigns finished from `from` to `to`
// with deliveries still pending or sending.
func (s *Store) UnsettledCampaigns(ctx context.Context, from, to time.Time) ([]campaign.Campaign, error) {
	return s.queryCampaigns(ctx, `SELECT `+campaignColumns+` FROM campaigns c
		WHERE state = 'cancelled' AND finished_at >= ? AND finished_at < ?
		  AND EXISTS (SELECT 1 FROM deliveries d WHERE d.campaign_id = c.id AND d.status IN ('pending', 'sending'))
		ORDER BY created_at, id`, stamp(from), stamp(to))
}

// ClaimRequestKey claims an idempotency key (campaign.Store).
func (s *Store) ClaimRequestKey(ctx context.Context, tenantID, key, hash, campaignID string, at, since time.Time) (campaign.RequestKey, error) {
	for range 3 { // a claim released between the insert and the read
		var got string
		err := s.db.QueryRowContext(ctx, `INSERT INTO request_keys (tenant_id, key, request_hash, campaign_id, created_at, done)
			VALUES (?, ?, ?, ?, ?, 0)
			ON CONFLICT (tenant_id, key) DO UPDATE SET request_hash = excluded.request_hash,
				campaign_id = excluded.campaign_id, created_at = excluded.created_at, done = 0
			WHERE request_keys.created_at < ?
			RETURNING campaign_id`, tenantID, key, hash, campaignID, stamp(at), stamp(since)).Scan(&got)
		if err == nil {
			return campaign.RequestKey{}, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return campaign.RequestKey{}, fmt.Errorf("sqlite: claim request key: %w", err)
		}
		var held campaign.RequestKey
		var at string
		err = s.db.QueryRowContext(ctx, `SELECT campaign_id, request_hash, created_at, done FROM request_keys WHERE tenant_id = ? AND key = ?`,
			tenantID, key).Scan(&held.CampaignID, &held.Hash, &at, &held.Done)
		if err == nil {
			if held.At, err = unstamp(at); err != nil {
				return campaign.RequestKey{}, fmt.Errorf("sqlite: claim request key: %w", err)
			}
			return held, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return campaign.RequestKey{}, fmt.Errorf("sqlite: claim request key: %w", err)
		}
	}
	return campaign.RequestKey{}, fmt.Errorf("sqlite: claim request key: claimed and released over and over")
}

// ReleaseRequestKey drops a claim (campaign.Store).
func (s *Store) ReleaseRequestKey(ctx context.Context, tenantID, key, campaignID string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM request_keys WHERE tenant_id = ? AND key = ? AND campaign_id = ?`,
		tenantID, key, campaignID); err != nil {
		return fmt.Errorf("sqlite: release request key: %w", err)
	}
	return nil
}

// FinishRequestKey marks a claim done (campaign.Store).
func (s *Store) FinishRequestKey(ctx context.Context, tenantID, key, campaignID string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE request_keys SET done = 1 WHERE tenant_id = ? AND key = ? AND campaign_id = ?`,
		tenantID, key, campaignID); err != nil {
		return fmt.Errorf("sqlite: finish request key: %w", err)
	}
	return nil
}

// AddContacts adds subscribers to an alert's contact list; repeats are
// ignored.
func (s *Store) AddContacts(ctx context.Context, campaignID string, subscriberIDs []int64) error {
	key, ok := campaignKey(campaignID)
	if !ok {
		return apperr.NotFound("campaign")
	}
	if len(subscriberIDs) == 0 {
		return nil
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO campaign_contacts (campaign_id, subscriber_id)
		SELECT ?, value FROM json_each(?) WHERE true
		ON CONFLICT (campaign_id, subscriber_id) DO NOTHING`, key, int64sJSON(subscriberIDs))
	if err != nil {
		if strings.Contains(err.Error(), "FOREIGN KEY") {
			return apperr.NotFound("campaign")
		}
		return fmt.Errorf("sqlite: add contacts: %w", err)
	}
	return nil
}

// AudiencePage walks the audience by keyset on the subscriber id.
//
// Every page must come from an ordered walk (an index in id order, filtered)
// and never from collecting every match past the cursor and sorting it: that
// would make a fan-out of n subscribers cost n²/limit. Without statistics
// SQLite prefers any index with an equality, then sorts, so the query says
// which walk to take: a list's members (CROSS JOIN fixes the join order),
// the (tenant_id, region, id) index for one region, the (tenant_id,
// installed, id) index, or else the rowid itself (NOT INDEXED).
func (s *Store) AudiencePage(ctx context.Context, c campaign.Campaign, afterID int64, limit int) ([]int64, error) {
	return s.audiencePage(ctx, c, afterID, limit, false)
}

// AudienceUnreached is AudiencePage of the subscribers short of a delivery
// of the campaign on one of its channels (fan-out's catch-up pass).
func (s *Store) AudienceUnreached(ctx context.Context, c campaign.Campaign, afterID int64, limit int) ([]int64, error) {
	return s.audiencePage(ctx, c, afterID, limit, true)
}

func (s *Store) audiencePage(ctx context.Context, c campaign.Campaign, afterID int64, limit int, unreached bool) ([]int64, error) {
	if limit <= 0 {
		return nil, nil
	}
	var (
		q    strings.Builder
		args []any
	)
	if c.Kind == campaign.KindExposureAlert {
		key, _ := campaignKey(c.ID)
		q.WriteString(`SELECT subscriber_id FROM campaign_contacts
			WHERE campaign_id = ? AND subscriber_id > ? ORDER BY subscriber_id LIMIT ?`)
		args = append(args, key, afterID, limit)
	} else {
		a := c.Audience
		order := "s.id"
		switch {
		case a.List != "":
			order = "m.subscriber_id"
			q.WriteString(`SELECT s.id FROM list_members m CROSS JOIN subscribers s ON s.id = m.subscriber_id
				WHERE m.list_id = (SELECT id FROM lists WHERE tenant_id = ? AND name = ?)
				AND m.subscriber_id > ? AND s.tenant_id = ? AND NOT s.alert_only`)
			args = append(args, c.TenantID, a.List, afterID, c.TenantID)
		case len(a.Regions) == 1 || a.Installed != nil:
			q.WriteString(`SELECT s.id FROM subscribers s WHERE s.tenant_id = ? AND s.id > ? AND NOT s.alert_only`)
			args = append(args, c.TenantID, afterID)
		default:
			q.WriteString(`SELECT s.id FROM subscribers s NOT INDEXED WHERE s.tenant_id = ? AND s.id > ? AND NOT s.alert_only`)
			args = append(args, c.TenantID, afterID)
		}
		switch len(a.Regions) {
		case 0:
		case 1:
			q.WriteString(` AND s.region = ?`)
			args = append(args, a.Regions[0])
		default:
			// unary +: a filter, never an index (whose ranges would need a sort)
			q.WriteString(` AND +s.region IN (SELECT value FROM json_each(?))`)
			args = append(args, stringsJSON(a.Regions))
		}
		if a.Installed != nil {
			q.WriteString(` AND s.installed = ?`)
			args = append(args, *a.Installed)
		}
		keys := make([]string, 0, len(a.Attributes))
		for k := range a.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if strings.ContainsAny(k, `"\`) {
				return nil, apperr.FieldErrors{"audience.attributes": fmt.Sprintf("attribute name %q may not contain quotes or backslashes", k)}
			}
			v := a.Attributes[k]
			kd, vd := norm.NFD.String(k), norm.NFD.String(v)
			if kd == k && vd == v {
				q.WriteString(` AND json_extract(s.attributes, ?) = ?`)
				args = append(args, `$."`+k+`"`, v)
				continue
			}
			// An attribute stored before names and values were composed
			// (subscriber.AttributeText) may be decomposed (NFD): either
			// form matches.
			q.WriteString(` AND (json_extract(s.attributes, ?) IN (?, ?) OR json_extract(s.attributes, ?) IN (?, ?))`)
			args = append(args, `$."`+k+`"`, v, vd, `$."`+kd+`"`, v, vd)
		}
		if unreached {
			key, _ := campaignKey(c.ID)
			// Short of a delivery on any of its channels: a round that
			// failed between channels is caught up on the rest.
			q.WriteString(` AND (SELECT count(*) FROM deliveries d WHERE d.campaign_id = ? AND d.subscriber_id = s.id) < ?`)
			args = append(args, key, len(c.Channels))
		}
		q.WriteString(` ORDER BY ` + order + ` LIMIT ?`)
		args = append(args, limit)
	}
	ids, err := queryColumn[int64](ctx, s.db, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audience page: %w", err)
	}
	return ids, nil
}

// SetFanoutProgress records how far fan-out got. The cursor only moves
// forward and done stays done, so a late or repeated fan-out task cannot
// rewind a newer one.
func (s *Store) SetFanoutProgress(ctx context.Context, campaignID string, cursor int64, done bool) error {
	key, ok := campaignKey(campaignID)
	if !ok {
		return apperr.NotFound("campaign")
	}
	res, err := s.db.ExecContext(ctx, `UPDATE campaigns
		SET fanout_cursor = max(fanout_cursor, ?), fanout_done = (fanout_done OR ?)
		WHERE id = ?`, cursor, done, key)
	if err != nil {
		return fmt.Errorf("sqlite: set fanout progress: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return apperr.NotFound("campaign")
	}
	return nil
}

// RestartFanout rewinds fan-out to the start of the audience, not done
// (see campaign.Store).
func (s *Store) RestartFanout(ctx context.Context, campaignID string) error {
	key, ok := campaignKey(campaignID)
	if !ok {
		return apperr.NotFound("campaign")
	}
	res, err := s.db.ExecContext(ctx, `UPDATE campaigns SET fanout_cursor = 0, fanout_done = false WHERE id = ?`, key)
	if err != nil {
		return fmt.Errorf("sqlite: restart fanout: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return apperr.NotFound("campaign")
	}
	return nil
}
