package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"outreach/campaign"
	"outreach/internal/apperr"
	"outreach/subscriber"
)

// statusRank orders the statuses as campaign.Status.Advances does: a
// status's rank is the number of statuses it advances from.
func statusRank(s campaign.Status) int {
	r := 0
	for _, t := range campaign.AllStatuses {
		if t.Advances(s) {
			r++
		}
	}
	return r
}

// statusRankSQL renders statusRank as a SQL CASE over expr.
func statusRankSQL(expr string) string {
	var b strings.Builder
	b.WriteString("CASE " + expr)
	for _, s := range campaign.AllStatuses {
		fmt.Fprintf(&b, " WHEN '%s' THEN %d", s, statusRank(s))
	}
	b.WriteString(" ELSE 0 END")
	return b.String()
}

// deliveryColumns are what scanDelivery reads, qualified by the alias d.
const deliveryColumns = `d.id, d.tenant_id, d.campaign_id::text, d.subscriber_id, d.channel, d.status,
	COALESCE(d.skip_reason, ''), COALESCE(d.provider, ''), COALESCE(d.provider_message_id, ''),
	COALESCE(d.error_code, ''), d.attempts, d.segments, COALESCE(d.referral_code, ''),
	d.created_at, d.updated_at, d.sent_at`

// scanDelivery reads deliveryColumns, then extra.
func scanDelivery(r pgx.Row, extra ...any) (campaign.Delivery, error) {
	var (
		d                  campaign.Delivery
		attempts, segments int16
	)
	dest := append([]any{&d.ID, &d.TenantID, &d.CampaignID, &d.SubscriberID, &d.Channel, &d.Status,
		&d.SkipReason, &d.Provider, &d.ProviderMessageID, &d.ErrorCode, &attempts, &segments,
		&d.ReferralCode, &d.CreatedAt, &d.UpdatedAt, &d.SentAt}, extra...)
	if err := r.Scan(dest...); err != nil {
		return d, err
	}
	d.Attempts, d.Segments = int(attempts), int(segments)
	d.CreatedAt, d.UpdatedAt, d.SentAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC(), utcPtr(d.SentAt)
	return d, nil
}

// deliveryStage is the per-connection temporary table InsertDeliveries COPYs
// a batch into; ON COMMIT DELETE ROWS empties it after each transaction, so
// it is created once per connection, not per batch.
const deliveryStage = "delivery_insert_stage"

const createDeliveryStage = `CREATE TEMP TABLE IF NOT EXISTS ` + deliveryStage + ` (
	subscriber_id bigint NOT NULL,
	referral_code text
) ON COMMIT DELETE ROWS`

// InsertDeliveries writes pending deliveries in bulk: COPY into a staging
// table, then one INSERT … SELECT … ON CONFLICT DO NOTHING, whose row count
// is the number of new deliveries.
func (s *Store) InsertDeliveries(ctx context.Context, c campaign.Campaign, ch campaign.Channel, ds []campaign.NewDelivery) (int, error) {
	if len(ds) == 0 {
		return 0, nil
	}
	key, ok := campaignKey(c.ID)
	if !ok {
		return 0, apperr.NotFound("campaign")
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: insert deliveries: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, createDeliveryStage); err != nil {
		return 0, fmt.Errorf("postgres: insert deliveries: stage: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{deliveryStage}, []string{"subscriber_id", "referral_code"},
		pgx.CopyFromSlice(len(ds), func(i int) ([]any, error) {
			d := &ds[i]
			if d.ReferralCode == "" {
				return []any{d.SubscriberID, nil}, nil
			}
			return []any{d.SubscriberID, d.ReferralCode}, nil
		})); err != nil {
		return 0, fmt.Errorf("postgres: insert deliveries: copy: %w", err)
	}
	now := nowMicro()
	tag, err := tx.Exec(ctx, `INSERT INTO deliveries (tenant_id, campaign_id, subscriber_id, channel,
			status, referral_code, kind_marketing, created_at, updated_at)
		SELECT $1, $2, subscriber_id, $3, 'pending', referral_code, $4, $5, $5
		FROM `+deliveryStage+` ORDER BY subscriber_id
		ON CONFLICT DO NOTHING`,
		c.TenantID, key, string(ch), c.Kind.Marketing(), now)
	if err != nil {
		return 0, fmt.Errorf("postgres: insert deliveries: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("postgres: insert deliveries: commit: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// ClaimDeliveries moves the pending ones among the given deliveries to
// sending and returns them with their subscribers and devices. The claim
// and the devices query go in one round trip.
func (s *Store) ClaimDeliveries(ctx context.Context, campaignID string, ch campaign.Channel, subscriberIDs []int64) ([]campaign.Recipient, error) {
	key, ok := campaignKey(campaignID)
	if !ok || len(subscriberIDs) == 0 {
		return nil, nil
	}
	ids := slices.Clone(subscriberIDs)
	slices.Sort(ids) // rows are locked in index order: the same order for every claimer
	ids = slices.Compact(ids)

	b := &pgx.Batch{}
	var out []campaign.Recipient
	b.Queue(`WITH d AS (
			UPDATE deliveries SET status = 'sending', attempts = attempts + 1, updated_at = $4
			WHERE campaign_id = $1 AND channel = $2 AND subscriber_id = ANY($3) AND status = 'pending'
			RETURNING *
		)
		SELECT `+deliveryColumns+`, COALESCE(s.msisdn, ''), COALESCE(s.region, ''),
			COALESCE(s.locale, ''), s.attributes, COALESCE(s.opted_out, false)
		FROM d LEFT JOIN subscribers s ON s.id = d.subscriber_id
		ORDER BY d.subscriber_id`,
		key, string(ch), ids, nowMicro()).Query(func(rows pgx.Rows) error {
		var err error
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (campaign.Recipient, error) {
			var (
				rc     campaign.Recipient
				msisdn string
				err    error
			)
			rc.Delivery, err = scanDelivery(r, &msisdn, &rc.Region, &rc.Locale, &rc.Attributes, &rc.OptedOut)
			rc.MSISDN = msisdn
			return rc, err
		})
		return err
	})
	type device struct {
		id  int64
		dev subscriber.Device
	}
	var devices []device
	b.Queue(`SELECT subscriber_id, platform, token, created_at FROM devices
		WHERE subscriber_id = ANY($1) ORDER BY subscriber_id, created_at, token`, ids).
		Query(func(rows pgx.Rows) error {
			var err error
			devices, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (device, error) {
				var d device
				err := r.Scan(&d.id, &d.dev.Platform, &d.dev.Token, &d.dev.CreatedAt)
				d.dev.CreatedAt = d.dev.CreatedAt.UTC()
				return d, err
			})
			return err
		})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("postgres: claim deliveries: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	at := make(map[int64]int, len(out))
	for i, r := range out {
		at[r.SubscriberID] = i
	}
	for _, d := range devices {
		if i, ok := at[d.id]; ok {
			out[i].Devices = append(out[i].Devices, d.dev)
		}
	}
	return out, nil
}

// recordOutcomesSQL updates one campaign's deliveries on one channel from
// arrays (one element per outcome). An outcome lands only on a delivery
// that is not final yet (pending, sending or unknown): a late or repeated
// worker cannot overwrite a result or a receipt.
const recordOutcomesSQL = `UPDATE deliveries d SET
		status = o.status,
		skip_reason = NULLIF(o.skip_reason, ''),
		provider = COALESCE(NULLIF(o.provider, ''), d.provider),
		provider_message_id = COALESCE(NULLIF(o.message_id, ''), d.provider_message_id),
		error_code = NULLIF(o.error_code, ''),
		segments = CASE WHEN o.segments > 0 THEN o.segments ELSE d.segments END,
		updated_at = o.at,
		sent_at = CASE WHEN o.status IN ('sent', 'unknown') THEN o.at ELSE d.sent_at END
	FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
		$9::smallint[], $10::timestamptz[])
		AS o(subscriber_id, status, skip_reason, provider, message_id, error_code, segments, at)
	WHERE d.campaign_id = $1 AND d.channel = $2 AND d.subscriber_id = o.subscriber_id
	AND d.status IN ('pending', 'sending', 'unknown')`

// RecordOutcomes writes send results in one round trip and one transaction:
// one array-driven UPDATE per campaign and channel (a send task's batch is
// one of each), so each statement reaches one partition.
func (s *Store) RecordOutcomes(ctx context.Context, outs []campaign.Outcome) error {
	if len(outs) == 0 {
		return nil
	}
	type group struct {
		campaign string
		channel  campaign.Channel
	}
	sorted := slices.Clone(outs)
	slices.SortStableFunc(sorted, func(a, b campaign.Outcome) int {
		if c := strings.Compare(a.CampaignID, b.CampaignID); c != 0 {
			return c
		}
		if c := strings.Compare(string(a.Channel), string(b.Channel)); c != 0 {
			return c
		}
		return int(min(max(a.SubscriberID-b.SubscriberID, -1), 1))
	})
	now := nowMicro()
	b := &pgx.Batch{}
	for start := 0; start < len(sorted); {
		g := group{sorted[start].CampaignID, sorted[start].Channel}
		end := start
		for end < len(sorted) && sorted[end].CampaignID == g.campaign && sorted[end].Channel == g.channel {
			end++
		}
		part := sorted[start:end]
		start = end
		key, ok := campaignKey(g.campaign)
		if !ok {
			continue
		}
		var (
			ids                                          = make([]int64, len(part))
			statuses, skips, providers, msgIDs, errCodes = make([]string, len(part)), make([]string, len(part)), make([]string, len(part)), make([]string, len(part)), make([]string, len(part))
			segments                                     = make([]int16, len(part))
			ats                                          = make([]time.Time, len(part))
		)
		for i, o := range part {
			ids[i] = o.SubscriberID
			statuses[i] = string(o.Status)
			if o.Status == campaign.StatusSkipped {
				skips[i] = string(o.SkipReason)
			}
			providers[i], msgIDs[i], errCodes[i] = o.Provider, o.ProviderMessageID, o.ErrorCode
			segments[i] = int16(min(o.Segments, 32767))
			ats[i] = o.At
			if o.At.IsZero() {
				ats[i] = now
			}
		}
		b.Queue(recordOutcomesSQL, key, string(g.channel), ids, statuses, skips, providers, msgIDs,
			errCodes, segments, ats)
	}
	if b.Len() == 0 {
		return nil
	}
	if b.Len() > 1 {
		// A batch of several statements is one implicit transaction only
		// without an explicit one around it; make it explicit anyway.
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return fmt.Errorf("postgres: record outcomes: %w", err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx))
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("postgres: record outcomes: %w", err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("postgres: record outcomes: %w", err)
		}
		return nil
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("postgres: record outcomes: %w", err)
	}
	return nil
}

// MarketingSent counts marketing messages that went out (sent, delivered or
// unknown) to each subscriber since `since`, across the tenant's campaigns.
func (s *Store) MarketingSent(ctx context.Context, tenantID string, subscriberIDs []int64, since time.Time) (map[int64]int, error) {
	out := make(map[int64]int)
	if len(subscriberIDs) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT subscriber_id, count(*) FROM deliveries
		WHERE subscriber_id = ANY($1) AND kind_marketing AND sent_at >= $2
		AND tenant_id = $3 AND status IN ('sent', 'delivered', 'unknown')
		GROUP BY subscriber_id`, subscriberIDs, since, tenantID)
	if err != nil {
		return nil, fmt.Errorf("postgres: marketing sent: %w", err)
	}
	var (
		id int64
		n  int
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &n}, func() error {
		out[id] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: marketing sent: %w", err)
	}
	return out, nil
}

// UnfinishedPage pages the subscribers whose delivery on ch is pending or
// sending and was last touched before olderThan (a zero olderThan means any
// age).
func (s *Store) UnfinishedPage(ctx context.Context, campaignID string, ch campaign.Channel, afterID int64, olderThan time.Time, limit int) ([]int64, error) {
	key, ok := campaignKey(campaignID)
	if !ok || limit <= 0 {
		return nil, nil
	}
	var older any
	if !olderThan.IsZero() {
		older = olderThan
	}
	rows, err := s.pool.Query(ctx, `SELECT subscriber_id FROM deliveries
		WHERE campaign_id = $1 AND channel = $2 AND status IN ('pending', 'sending')
		AND subscriber_id > $3 AND ($4::timestamptz IS NULL OR updated_at < $4)
		ORDER BY subscriber_id LIMIT $5`, key, string(ch), afterID, older, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: unfinished page: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("postgres: unfinished page: %w", err)
	}
	return ids, nil
}

// CountUnfinished counts the campaign's deliveries pending or sending.
func (s *Store) CountUnfinished(ctx context.Context, campaignID string) (int64, error) {
	key, ok := campaignKey(campaignID)
	if !ok {
		return 0, nil
	}
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM deliveries
		WHERE campaign_id = $1 AND status IN ('pending', 'sending')`, key).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: count unfinished: %w", err)
	}
	return n, nil
}

// ApplyReceipt moves a delivery forward to status, never back: the rank
// comparison sits in the update's condition, so a repeated or late receipt
// changes nothing.
func (s *Store) ApplyReceipt(ctx context.Context, provider, messageID string, status campaign.Status, errorCode string, at time.Time) (bool, error) {
	if messageID == "" {
		return false, nil
	}
	if at.IsZero() {
		at = nowMicro()
	}
	var sentAt any
	switch status {
	case campaign.StatusSent, campaign.StatusDelivered, campaign.StatusUndelivered:
		sentAt = at
	}
	tag, err := s.pool.Exec(ctx, `UPDATE deliveries SET status = $1,
			error_code = COALESCE(NULLIF($2, ''), error_code), updated_at = $3,
			sent_at = COALESCE(sent_at, $4)
		WHERE provider_message_id = $5 AND provider = $6 AND `+statusRankSQL("status")+` < $7`,
		string(status), errorCode, at, sentAt, messageID, provider, statusRank(status))
	if err != nil {
		return false, fmt.Errorf("postgres: apply receipt: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// ownCampaign answers apperr.ErrNotFound unless the campaign is the tenant's.
func (s *Store) ownCampaign(ctx context.Context, tenantID, campaignID string) (string, error) {
	key, ok := campaignKey(campaignID)
	if !ok {
		return "", apperr.NotFound("campaign")
	}
	var one int
	err := s.pool.QueryRow(ctx, `SELECT 1 FROM campaigns WHERE id = $1 AND tenant_id = $2`,
		key, tenantID).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", apperr.NotFound("campaign")
	}
	if err != nil {
		return "", err
	}
	return key, nil
}

// DeliveryCounts summarises a campaign's deliveries in one pass over its
// partition (two when the campaign has more than one channel: the audience
// then needs the distinct subscribers).
func (s *Store) DeliveryCounts(ctx context.Context, tenantID, campaignID string) (campaign.Counts, error) {
	c := campaign.Counts{
		ByStatus:  make(map[campaign.Status]int64, len(campaign.AllStatuses)),
		BySkip:    map[campaign.SkipReason]int64{},
		ByChannel: map[campaign.Channel]int64{},
	}
	for _, st := range campaign.AllStatuses {
		c.ByStatus[st] = 0
	}
	key, err := s.ownCampaign(ctx, tenantID, campaignID)
	if err != nil {
		return c, err
	}
	rows, err := s.pool.Query(ctx, `SELECT status, COALESCE(skip_reason, ''), channel,
			count(*), COALESCE(sum(segments), 0)
		FROM deliveries WHERE campaign_id = $1 GROUP BY status, skip_reason, channel`, key)
	if err != nil {
		return c, fmt.Errorf("postgres: delivery counts: %w", err)
	}
	var (
		total   int64
		status  campaign.Status
		skip    campaign.SkipReason
		ch      campaign.Channel
		n, segs int64
	)
	_, err = pgx.ForEachRow(rows, []any{&status, &skip, &ch, &n, &segs}, func() error {
		c.ByStatus[status] += n
		if skip != "" {
			c.BySkip[skip] += n
		}
		c.ByChannel[ch] += n
		c.Segments += segs
		total += n
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("postgres: delivery counts: %w", err)
	}
	if len(c.ByChannel) <= 1 {
		c.Audience = total
		return c, nil
	}
	err = s.pool.QueryRow(ctx, `SELECT count(DISTINCT subscriber_id) FROM deliveries
		WHERE campaign_id = $1`, key).Scan(&c.Audience)
	if err != nil {
		return c, fmt.Errorf("postgres: delivery counts: %w", err)
	}
	return c, nil
}

// ListDeliveries pages a campaign's deliveries by id, with each one's
// MSISDN. Each status is an ordered range of the (campaign_id, status, id)
// index; without a filter the ranges are merged and the page taken from
// the merge.
func (s *Store) ListDeliveries(ctx context.Context, tenantID, campaignID string, status campaign.Status, afterID int64, limit int) ([]campaign.Delivery, error) {
	if limit <= 0 {
		limit = 100
	}
	key, err := s.ownCampaign(ctx, tenantID, campaignID)
	if err != nil {
		return nil, err
	}
	statuses := campaign.AllStatuses
	if status != "" {
		statuses = []campaign.Status{status}
	}
	var q strings.Builder
	q.WriteString(`SELECT ` + deliveryColumns + `, COALESCE(s.msisdn, '') FROM (`)
	for i := range statuses {
		if i > 0 {
			q.WriteString(` UNION ALL `)
		}
		fmt.Fprintf(&q, `SELECT * FROM (SELECT id, status FROM deliveries
			WHERE campaign_id = $1 AND status = $%d AND id > $2 ORDER BY id LIMIT $3) AS s%d`, i+4, i)
	}
	q.WriteString(` ORDER BY id LIMIT $3) AS page
		JOIN deliveries d ON d.campaign_id = $1 AND d.status = page.status AND d.id = page.id
		LEFT JOIN subscribers s ON s.id = d.subscriber_id
		ORDER BY d.id`)
	args := []any{key, afterID, limit}
	for _, st := range statuses {
		args = append(args, string(st))
	}
	rows, err := s.pool.Query(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (campaign.Delivery, error) {
		var msisdn string
		d, err := scanDelivery(r, &msisdn)
		d.MSISDN = msisdn
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list deliveries: %w", err)
	}
	return out, nil
}
