package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/text/unicode/norm"

	"outreach/campaign"
	"outreach/internal/apperr"
)

var _ campaign.Store = (*Store)(nil)

// nowMicro is the current time at the precision the database keeps.
func nowMicro() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// utcPtr returns t in UTC (pgx reads times in the local zone).
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// timeOrNull is NULL for a nil or zero time.
func timeOrNull(t *time.Time) any {
	if t == nil || t.IsZero() {
		return nil
	}
	return *t
}

// campaignKey normalises a campaign id; ok is false when it is no uuid, which
// can then name no campaign (and would make PostgreSQL refuse the query).
func campaignKey(id string) (string, bool) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

func toStrings[S ~string](xs []S) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = string(x)
	}
	return out
}

const campaignColumns = `id::text, tenant_id, name, kind, channels, templates, audience,
	push_fallback_sms, rate_per_second, start_at, end_by, reward, state, fanout_cursor,
	fanout_done, created_by, created_at, updated_at, started_at, finished_at, locale_templates`

const campaignInsertColumns = `id, tenant_id, name, kind, channels, templates, audience,
	push_fallback_sms, rate_per_second, start_at, end_by, reward, state, fanout_cursor,
	fanout_done, created_by, created_at, updated_at, started_at, finished_at, locale_templates`

func scanCampaign(r pgx.Row) (campaign.Campaign, error) {
	var (
		c        campaign.Campaign
		channels []string
	)
	if err := r.Scan(&c.ID, &c.TenantID, &c.Name, &c.Kind, &channels, &c.Templates, &c.Audience,
		&c.PushFallbackSMS, &c.RatePerSecond, &c.StartAt, &c.EndBy, &c.Reward, &c.State, &c.FanoutCursor,
		&c.FanoutDone, &c.CreatedBy, &c.CreatedAt, &c.UpdatedAt, &c.StartedAt, &c.FinishedAt, &c.LocaleTemplates); err != nil {
		return c, err
	}
	if len(c.LocaleTemplates) == 0 {
		c.LocaleTemplates = nil
	}
	c.Channels = make([]campaign.Channel, len(channels))
	for i, ch := range channels {
		c.Channels[i] = campaign.Channel(ch)
	}
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	c.StartAt, c.EndBy, c.StartedAt, c.FinishedAt = utcPtr(c.StartAt), utcPtr(c.EndBy), utcPtr(c.StartedAt), utcPtr(c.FinishedAt)
	return c, nil
}

func (s *Store) queryCampaigns(ctx context.Context, query string, args ...any) ([]campaign.Campaign, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: campaigns: %w", err)
	}
	defer rows.Close()
	var out []campaign.Campaign
	for rows.Next() {
		c, err := scanCampaign(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: campaigns: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: campaigns: %w", err)
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
	if c.CreatedAt.IsZero() {
		c.CreatedAt = nowMicro()
	}
	c.UpdatedAt = c.CreatedAt
	templates, err := json.Marshal(c.Templates)
	if err != nil {
		return fmt.Errorf("postgres: create campaign: %w", err)
	}
	audience, err := json.Marshal(c.Audience)
	if err != nil {
		return fmt.Errorf("postgres: create campaign: %w", err)
	}
	byLocale := []byte("{}")
	if len(c.LocaleTemplates) > 0 {
		if byLocale, err = json.Marshal(c.LocaleTemplates); err != nil {
			return fmt.Errorf("postgres: create campaign: %w", err)
		}
	}
	var reward []byte // nil: NULL
	if c.Reward != nil {
		if reward, err = json.Marshal(c.Reward); err != nil {
			return fmt.Errorf("postgres: create campaign: %w", err)
		}
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO campaigns (`+campaignInsertColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`,
		c.ID, c.TenantID, c.Name, string(c.Kind), toStrings(c.Channels), templates, audience,
		c.PushFallbackSMS, c.RatePerSecond, timeOrNull(c.StartAt), timeOrNull(c.EndBy), reward,
		string(c.State), c.FanoutCursor, c.FanoutDone, c.CreatedBy, c.CreatedAt, c.UpdatedAt,
		timeOrNull(c.StartedAt), timeOrNull(c.FinishedAt), byLocale)
	if err != nil {
		return fmt.Errorf("postgres: create campaign: %w", err)
	}
	return nil
}

// GetCampaign reads a campaign of this tenant.
func (s *Store) GetCampaign(ctx context.Context, tenantID, id string) (campaign.Campaign, error) {
	key, ok := campaignKey(id)
	if !ok {
		return campaign.Campaign{}, apperr.NotFound("campaign")
	}
	c, err := scanCampaign(s.pool.QueryRow(ctx,
		`SELECT `+campaignColumns+` FROM campaigns WHERE id = $1 AND tenant_id = $2`, key, tenantID))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, apperr.NotFound("campaign")
	}
	if err != nil {
		return c, fmt.Errorf("postgres: get campaign: %w", err)
	}
	return c, nil
}

// CampaignByID reads a campaign of any tenant.
func (s *Store) CampaignByID(ctx context.Context, id string) (campaign.Campaign, error) {
	key, ok := campaignKey(id)
	if !ok {
		return campaign.Campaign{}, apperr.NotFound("campaign")
	}
	c, err := scanCampaign(s.pool.QueryRow(ctx,
		`SELECT `+campaignColumns+` FROM campaigns WHERE id = $1`, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, apperr.NotFound("campaign")
	}
	if err != nil {
		return c, fmt.Errorf("postgres: campaign by id: %w", err)
	}
	return c, nil
}

// ListCampaigns lists the tenant's campaigns newest first; a limit of 0 or
// less means 100.
func (s *Store) ListCampaigns(ctx context.Context, tenantID string, kind campaign.Kind, after string, limit int) ([]campaign.Campaign, error) {
	if limit <= 0 {
		limit = 100
	}
	var afterKey any // NULL: from the newest
	if after != "" {
		key, ok := campaignKey(after)
		if !ok {
			return []campaign.Campaign{}, nil
		}
		afterKey = key
	}
	return s.queryCampaigns(ctx, `SELECT `+campaignColumns+` FROM campaigns
		WHERE tenant_id = $1 AND ($2 = '' OR kind = $2)
		  AND ($3::uuid IS NULL OR (created_at, id) <
		       (SELECT created_at, id FROM campaigns WHERE tenant_id = $1 AND id = $3::uuid))
		ORDER BY created_at DESC, id DESC LIMIT $4`, tenantID, string(kind), afterKey, limit)
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
		started = at
	}
	if to.Final() {
		finished = at
	}
	c, err := scanCampaign(s.pool.QueryRow(ctx, `UPDATE campaigns SET state = $1, updated_at = $2,
			started_at = COALESCE(started_at, $3), finished_at = COALESCE($4, finished_at)
		WHERE id = $5 AND tenant_id = $6 AND state = ANY($7)
		RETURNING `+campaignColumns,
		string(to), at, started, finished, key, tenantID, toStrings(from)))
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("postgres: transition campaign: %w", err)
	}
	var state string
	err = s.pool.QueryRow(ctx, `SELECT state FROM campaigns WHERE id = $1 AND tenant_id = $2`,
		key, tenantID).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return campaign.Campaign{}, apperr.NotFound("campaign")
	}
	if err != nil {
		return campaign.Campaign{}, fmt.Errorf("postgres: transition campaign: %w", err)
	}
	return campaign.Campaign{}, apperr.Conflict("campaign is %s, cannot become %s", state, to)
}

// DueScheduled returns scheduled campaigns whose start is due, oldest first.
// A scheduled campaign with no start time is due at once.
func (s *Store) DueScheduled(ctx context.Context, now time.Time) ([]campaign.Campaign, error) {
	return s.queryCampaigns(ctx, `SELECT `+campaignColumns+` FROM campaigns
		WHERE state = 'scheduled' AND (start_at IS NULL OR start_at <= $1)
		ORDER BY start_at, id`, now)
}

// ActiveCampaigns returns running and paused campaigns of every tenant.
func (s *Store) ActiveCampaigns(ctx context.Context) ([]campaign.Campaign, error) {
	return s.queryCampaigns(ctx, `SELECT `+campaignColumns+` FROM campaigns
		WHERE state IN ('running', 'paused') ORDER BY created_at, id`)
}

// UnsettledCampaigns returns the cancelled campaigns finished from `from` to `to`
// with deliveries still pending or sending (the partial index of unfinished
// deliveries answers each).
func (s *Store) UnsettledCampaigns(ctx context.Context, from, to time.Time) ([]campaign.Campaign, error) {
	return s.queryCampaigns(ctx, `SELECT `+campaignColumns+` FROM campaigns c
		WHERE state = 'cancelled' AND finished_at >= $1 AND finished_at < $2
		  AND EXISTS (SELECT 1 FROM deliveries d WHERE d.campaign_id = c.id AND d.status IN ('pending', 'sending'))
		ORDER BY created_at, id`, from.UTC(), to.UTC())
}

// ClaimRequestKey claims an idempotency key (campaign.Store).
func (s *Store) ClaimRequestKey(ctx context.Context, tenantID, key, hash, campaignID string, at, since time.Time) (campaign.RequestKey, error) {
	for range 3 { // a claim released between the insert and the read
		var got string
		err := s.pool.QueryRow(ctx, `INSERT INTO request_keys (tenant_id, key, request_hash, campaign_id, created_at, done)
			VALUES ($1, $2, $3, $4, $5, false)
			ON CONFLICT (tenant_id, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,
				campaign_id = EXCLUDED.campaign_id, created_at = EXCLUDED.created_at, done = false
			WHERE request_keys.created_at < $6
			RETURNING campaign_id`, tenantID, key, hash, campaignID, at, since).Scan(&got)
		if err == nil {
			return campaign.RequestKey{}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return campaign.RequestKey{}, fmt.Errorf("postgres: claim request key: %w", err)
		}
		var held campaign.RequestKey
		err = s.pool.QueryRow(ctx, `SELECT campaign_id, request_hash, created_at, done FROM request_keys WHERE tenant_id = $1 AND key = $2`,
			tenantID, key).Scan(&held.CampaignID, &held.Hash, &held.At, &held.Done)
		if err == nil {
			return held, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return campaign.RequestKey{}, fmt.Errorf("postgres: claim request key: %w", err)
		}
	}
	return campaign.RequestKey{}, fmt.Errorf("postgres: claim request key: claimed and released over and over")
}

// ReleaseRequestKey drops a claim (campaign.Store).
func (s *Store) ReleaseRequestKey(ctx context.Context, tenantID, key, campaignID string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM request_keys WHERE tenant_id = $1 AND key = $2 AND campaign_id = $3`,
		tenantID, key, campaignID); err != nil {
		return fmt.Errorf("postgres: release request key: %w", err)
	}
	return nil
}

// FinishRequestKey marks a claim done (campaign.Store).
func (s *Store) FinishRequestKey(ctx context.Context, tenantID, key, campaignID string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE request_keys SET done = true WHERE tenant_id = $1 AND key = $2 AND campaign_id = $3`,
		tenantID, key, campaignID); err != nil {
		return fmt.Errorf("postgres: finish request key: %w", err)
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
	ids := append([]int64(nil), subscriberIDs...)
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	_, err := s.pool.Exec(ctx, `INSERT INTO campaign_contacts (campaign_id, subscriber_id)
		SELECT $1, unnest($2::bigint[]) ON CONFLICT DO NOTHING`, key, ids)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation
			return apperr.NotFound("campaign")
		}
		return fmt.Errorf("postgres: add contacts: %w", err)
	}
	return nil
}

// AudiencePage walks the audience by keyset on the subscriber id.
//
// Every page must come from an ordered walk (an index in id order, filtered)
// and never from collecting every match past the cursor and sorting it: that
// would make a fan-out of n subscribers cost n²/limit. The planner cannot
// estimate an attribute filter, and it sorts an index range of several
// regions, so the page is planned with sorting disabled; it then walks the
// primary key, the (tenant_id, region, id) or (tenant_id, installed, id)
// index, or a list's members, all in id order, and stops at limit.
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
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if c.Kind == campaign.KindExposureAlert {
		key, ok := campaignKey(c.ID)
		if !ok {
			return nil, nil
		}
		q.WriteString(`SELECT subscriber_id FROM campaign_contacts WHERE campaign_id = ` + arg(key) +
			` AND subscriber_id > ` + arg(afterID) + ` ORDER BY subscriber_id LIMIT ` + arg(limit))
	} else {
		a := c.Audience
		tenant, after := arg(c.TenantID), arg(afterID)
		if a.List != "" {
			q.WriteString(`SELECT s.id FROM list_members m JOIN subscribers s ON s.id = m.subscriber_id
				WHERE m.list_id = (SELECT id FROM lists WHERE tenant_id = ` + tenant + ` AND name = ` + arg(a.List) + `)
				AND m.subscriber_id > ` + after + ` AND s.id > ` + after + ` AND s.tenant_id = ` + tenant + ` AND NOT s.alert_only`)
		} else {
			q.WriteString(`SELECT s.id FROM subscribers s WHERE s.tenant_id = ` + tenant + ` AND s.id > ` + after +
				` AND NOT s.alert_only`)
		}
		switch len(a.Regions) {
		case 0:
		case 1:
			q.WriteString(` AND s.region = ` + arg(a.Regions[0]))
		default:
			q.WriteString(` AND s.region = ANY(` + arg(a.Regions) + `)`)
		}
		if a.Installed != nil {
			q.WriteString(` AND s.installed = ` + arg(*a.Installed))
		}
		keys := make([]string, 0, len(a.Attributes))
		for k := range a.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := a.Attributes[k]
			kd, vd := norm.NFD.String(k), norm.NFD.String(v)
			if kd == k && vd == v {
				q.WriteString(` AND s.attributes ->> ` + arg(k) + ` = ` + arg(v))
				continue
			}
			// An attribute stored before names and values were composed
			// (subscriber.AttributeText) may be decomposed (NFD): either
			// form matches.
			vs := arg([]string{v, vd})
			q.WriteString(` AND (s.attributes ->> ` + arg(k) + ` = ANY(` + vs + `::text[]) OR s.attributes ->> ` +
				arg(kd) + ` = ANY(` + vs + `::text[]))`)
		}
		if unreached {
			key, ok := campaignKey(c.ID)
			if !ok {
				return nil, nil
			}
			// Short of a delivery on any of its channels: a round that
			// failed between channels is caught up on the rest.
			q.WriteString(` AND (SELECT count(*) FROM deliveries d WHERE d.campaign_id = ` + arg(key) +
				` AND d.subscriber_id = s.id) < ` + arg(len(c.Channels)))
		}
		q.WriteString(` ORDER BY s.id LIMIT ` + arg(limit))
	}
	var ids []int64
	b := &pgx.Batch{}
	b.Queue(q.String(), args...).Query(func(rows pgx.Rows) error {
		var err error
		ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	})
	if err := s.sendBatch(ctx, b, keysetPaging...); err != nil {
		return nil, fmt.Errorf("postgres: audience page: %w", err)
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
	tag, err := s.pool.Exec(ctx, `UPDATE campaigns
		SET fanout_cursor = GREATEST(fanout_cursor, $1), fanout_done = fanout_done OR $2
		WHERE id = $3`, cursor, done, key)
	if err != nil {
		return fmt.Errorf("postgres: set fanout progress: %w", err)
	}
	if tag.RowsAffected() == 0 {
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
	tag, err := s.pool.Exec(ctx, `UPDATE campaigns SET fanout_cursor = 0, fanout_done = false WHERE id = $1`, key)
	if err != nil {
		return fmt.Errorf("postgres: restart fanout: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return apperr.NotFound("campaign")
	}
	return nil
}
