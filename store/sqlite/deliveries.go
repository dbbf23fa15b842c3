package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"outreach/campaign"
	"outreach/internal/apperr"
	"outreach/store/internal/storesql"
	"outreach/subscriber"
)

// nullIfEmpty stores an empty string as NULL.
func nullIfEmpty[S ~string](s S) any {
	if s == "" {
		return nil
	}
	return string(s)
}

// deliveryColumns are read by scanDelivery; RETURNING takes them bare,
// a join qualified by "d.".
const (
	deliveryColumns = `id, tenant_id, campaign_id, subscriber_id, channel, status, skip_reason,
	provider, provider_message_id, error_code, attempts, segments, referral_code, created_at,
	updated_at, sent_at`
	deliveryColumnsD = `d.id, d.tenant_id, d.campaign_id, d.subscriber_id, d.channel, d.status,
	d.skip_reason, d.provider, d.provider_message_id, d.error_code, d.attempts, d.segments,
	d.referral_code, d.created_at, d.updated_at, d.sent_at`
)

// scanDelivery reads deliveryColumns, then extra.
func scanDelivery(r scanner, extra ...any) (campaign.Delivery, error) {
	var (
		d                                                campaign.Delivery
		skip, provider, msgID, errCode, referral, sentAt sql.NullString
		createdAt, updatedAt                             string
	)
	dest := append([]any{&d.ID, &d.TenantID, &d.CampaignID, &d.SubscriberID, &d.Channel, &d.Status,
		&skip, &provider, &msgID, &errCode, &d.Attempts, &d.Segments, &referral, &createdAt, &updatedAt,
		&sentAt}, extra...)
	if err := r.Scan(dest...); err != nil {
		return d, err
	}
	d.SkipReason = campaign.SkipReason(skip.String)
	d.Provider = provider.String
	d.ProviderMessageID = msgID.String
	d.ErrorCode = errCode.String
	d.ReferralCode = referral.String
	var err error
	if d.CreatedAt, err = unstamp(createdAt); err != nil {
		return d, err
	}
	if d.UpdatedAt, err = unstamp(updatedAt); err != nil {
		return d, err
	}
	if d.SentAt, err = unstampNull(sentAt); err != nil {
		return d, err
	}
	return d, nil
}

// InsertDeliveries writes pending deliveries in one transaction through one
// prepared statement, skipping those that exist.
func (s *Store) InsertDeliveries(ctx context.Context, c campaign.Campaign, ch campaign.Channel, ds []campaign.NewDelivery) (int, error) {
	if len(ds) == 0 {
		return 0, nil
	}
	key, ok := campaignKey(c.ID)
	if !ok {
		return 0, apperr.NotFound("campaign")
	}
	now := stamp(nowMicro())
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite: insert deliveries: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO deliveries
		(tenant_id, campaign_id, subscriber_id, channel, status, referral_code, kind_marketing,
		 created_at, updated_at)
		VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?)
		ON CONFLICT (campaign_id, subscriber_id, channel) DO NOTHING`)
	if err != nil {
		return 0, fmt.Errorf("sqlite: insert deliveries: %w", err)
	}
	defer stmt.Close()
	marketing := c.Kind.Marketing()
	n := 0
	for _, d := range ds {
		res, err := stmt.ExecContext(ctx, c.TenantID, key, d.SubscriberID, string(ch),
			nullIfEmpty(d.ReferralCode), marketing, now, now)
		if err != nil {
			return 0, fmt.Errorf("sqlite: insert deliveries: %w", err)
		}
		k, _ := res.RowsAffected()
		n += int(k)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlite: insert deliveries: %w", err)
	}
	return n, nil
}

// ClaimDeliveries moves the pending ones among the given deliveries to
// sending and returns them with their subscribers, and push deliveries
// with their devices (an SMS needs none). The unary +
// keeps the planner on the unique key (one look-up per id) rather than the
// (campaign_id, status) index, which would scan every pending delivery.
func (s *Store) ClaimDeliveries(ctx context.Context, campaignID string, ch campaign.Channel, subscriberIDs []int64) ([]campaign.Recipient, error) {
	key, ok := campaignKey(campaignID)
	if !ok || len(subscriberIDs) == 0 {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, `UPDATE deliveries
		SET status = 'sending', attempts = attempts + 1, updated_at = ?,
			referral_code = COALESCE(referral_code, CASE WHEN kind_marketing THEN new_referral_code() END)
		WHERE campaign_id = ? AND channel = ? AND +status = 'pending'
		AND subscriber_id IN (SELECT value FROM json_each(?))
		RETURNING `+deliveryColumns,
		stamp(nowMicro()), key, string(ch), int64sJSON(subscriberIDs))
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim deliveries: %w", err)
	}
	var out []campaign.Recipient
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: claim deliveries: %w", err)
		}
		out = append(out, campaign.Recipient{Delivery: d})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: claim deliveries: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SubscriberID < out[j].SubscriberID })
	if err := s.fillRecipients(ctx, out, ch == campaign.ChannelPush); err != nil {
		return nil, fmt.Errorf("sqlite: claim deliveries: %w", err)
	}
	return out, nil
}

// fillRecipients adds subscriber details, and devices if asked, to
// recipients sorted by subscriber id.
func (s *Store) fillRecipients(ctx context.Context, rs []campaign.Recipient, devices bool) error {
	ids := make([]int64, len(rs))
	at := make(map[int64]int, len(rs))
	for i, r := range rs {
		ids[i] = r.SubscriberID
		at[r.SubscriberID] = i
	}
	idsJSON := int64sJSON(ids)
	rows, err := s.db.QueryContext(ctx, `SELECT id, msisdn, region, locale, attributes, opted_out, installed
		FROM subscribers WHERE id IN (SELECT value FROM json_each(?))`, idsJSON)
	if err != nil {
		return err
	}
	for rows.Next() {
		var (
			id     int64
			msisdn string
			region string
			locale string
			attrs  sql.NullString
			opted  bool
			inst   bool
		)
		if err := rows.Scan(&id, &msisdn, &region, &locale, &attrs, &opted, &inst); err != nil {
			rows.Close()
			return err
		}
		r := &rs[at[id]]
		r.MSISDN, r.Region, r.Locale, r.OptedOut, r.Installed = msisdn, region, locale, opted, inst
		if attrs.Valid && attrs.String != "" {
			if err := json.Unmarshal([]byte(attrs.String), &r.Attributes); err != nil {
				rows.Close()
				return fmt.Errorf("subscriber %d attributes: %w", id, err)
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil || !devices {
		return err
	}
	rows, err = s.db.QueryContext(ctx, `SELECT subscriber_id, platform, token, created_at
		FROM devices WHERE subscriber_id IN (SELECT value FROM json_each(?))
		ORDER BY subscriber_id, created_at, token`, idsJSON)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id        int64
			dev       subscriber.Device
			createdAt string
		)
		if err := rows.Scan(&id, &dev.Platform, &dev.Token, &createdAt); err != nil {
			return err
		}
		if dev.CreatedAt, err = unstamp(createdAt); err != nil {
			return err
		}
		r := &rs[at[id]]
		r.Devices = append(r.Devices, dev)
	}
	return rows.Err()
}

// RecordOutcomes writes send results in one transaction. An outcome lands
// only on a delivery that is not final yet (pending, sending or unknown),
// never putting an unknown send back to pending: a late or repeated worker
// cannot overwrite a result or a receipt. A send whose receipt came first
// takes only its segments, provider and message id.
func (s *Store) RecordOutcomes(ctx context.Context, outs []campaign.Outcome) error {
	if len(outs) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: record outcomes: %w", err)
	}
	defer tx.Rollback()
	// As on PostgreSQL (recordOutcomesSQL): an outcome lands on a delivery
	// not final yet, never puts an unknown send back to pending, and gives
	// a send whose receipt came first its segments, provider and message id.
	const lands = `status IN ('pending', 'sending', 'unknown')`
	stmt, err := tx.PrepareContext(ctx, `UPDATE deliveries SET
			status = CASE WHEN `+lands+` THEN ?1 ELSE status END,
			skip_reason = CASE WHEN `+lands+` THEN ?2 ELSE skip_reason END,
			provider = COALESCE(?3, provider), provider_message_id = COALESCE(?4, provider_message_id),
			error_code = CASE WHEN `+lands+` THEN ?5 ELSE error_code END,
			segments = CASE WHEN ?6 > 0 THEN ?6 ELSE segments END,
			attempts = CASE WHEN ?12 AND ?1 = 'pending' AND status = 'sending' THEN max(attempts - 1, 0) ELSE attempts END,
			updated_at = CASE WHEN `+lands+` THEN ?7 ELSE updated_at END,
			sent_at = CASE WHEN NOT `+lands+` THEN sent_at
				ELSE COALESCE(?8, CASE WHEN status = 'unknown' THEN sent_at END) END
		WHERE campaign_id = ?9 AND subscriber_id = ?10 AND channel = ?11
		AND (`+lands+` AND (status <> 'unknown' OR ?1 <> 'pending')
			OR status IN ('sent', 'delivered', 'undelivered') AND ?1 IN ('sent', 'unknown') AND segments = 0 AND ?6 > 0)`)
	if err != nil {
		return fmt.Errorf("sqlite: record outcomes: %w", err)
	}
	defer stmt.Close()
	now := nowMicro()
	for _, o := range outs {
		key, ok := campaignKey(o.CampaignID)
		if !ok {
			continue
		}
		at := o.At
		if at.IsZero() {
			at = now
		}
		var sentAt any
		if o.Status == campaign.StatusSent || o.Status == campaign.StatusUnknown {
			sentAt = stamp(at)
		}
		var skip any
		if o.Status == campaign.StatusSkipped {
			skip = nullIfEmpty(o.SkipReason)
		}
		if _, err := stmt.ExecContext(ctx, string(o.Status), skip, nullIfEmpty(o.Provider),
			nullIfEmpty(o.ProviderMessageID), nullIfEmpty(o.ErrorCode), o.Segments,
			stamp(at), sentAt, key, o.SubscriberID, string(o.Channel), o.Unattempted); err != nil {
			return fmt.Errorf("sqlite: record outcomes: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: record outcomes: %w", err)
	}
	return nil
}

// ApplyCap counts each subscriber's marketing deliveries sent or in flight
// since q.Since (other than the one checked) and reserves the claimed
// deliveries below the cap by setting their sent_at, in one write
// transaction: SQLite's single writer makes two checks take turns, and the
// later one counts the earlier one's reservation.
func (s *Store) ApplyCap(ctx context.Context, q campaign.CapCheck) (campaign.CapResult, error) {
	var res campaign.CapResult
	key, ok := campaignKey(q.CampaignID)
	if !ok || len(q.SubscriberIDs) == 0 {
		return res, nil
	}
	tx, err := s.db.BeginTx(ctx, nil) // immediate: takes the write lock now
	if err != nil {
		return res, fmt.Errorf("sqlite: apply cap: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT subscriber_id, SUM(status <> 'sending' OR updated_at < ?), count(*) FROM deliveries
		WHERE subscriber_id IN (SELECT value FROM json_each(?)) AND kind_marketing AND sent_at >= ?
		AND tenant_id = ? AND status IN ('sending', 'sent', 'delivered', 'unknown')
		AND NOT (campaign_id = ? AND channel = ?)
		GROUP BY subscriber_id`, stamp(q.StaleBefore), int64sJSON(q.SubscriberIDs), stamp(q.Since), q.TenantID, key, string(q.Channel))
	if err != nil {
		return res, fmt.Errorf("sqlite: apply cap: count: %w", err)
	}
	for rows.Next() {
		var id, gone, all int64
		if err := rows.Scan(&id, &gone, &all); err != nil {
			rows.Close()
			return res, fmt.Errorf("sqlite: apply cap: count: %w", err)
		}
		res.Sort(id, gone, all, q.Limit)
	}
	if err := rows.Close(); err != nil {
		return res, fmt.Errorf("sqlite: apply cap: count: %w", err)
	}
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("sqlite: apply cap: count: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET sent_at = ?
		WHERE campaign_id = ? AND channel = ? AND +status = 'sending'
		AND subscriber_id IN (SELECT value FROM json_each(?))`,
		stamp(q.At), key, string(q.Channel), int64sJSON(res.Room(q.SubscriberIDs))); err != nil {
		return res, fmt.Errorf("sqlite: apply cap: reserve: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("sqlite: apply cap: %w", err)
	}
	return res, nil
}

// UnfinishedPage pages the subscribers whose delivery on ch is pending or
// sending and was last touched before olderThan (a zero olderThan means any
// age).
func (s *Store) UnfinishedPage(ctx context.Context, campaignID string, ch campaign.Channel, afterID int64, olderThan time.Time, limit int) ([]int64, error) {
	key, ok := campaignKey(campaignID)
	if !ok || limit <= 0 {
		return nil, nil
	}
	q := `SELECT subscriber_id FROM deliveries
		WHERE campaign_id = ? AND channel = ? AND status IN ('pending', 'sending') AND subscriber_id > ?`
	args := []any{key, string(ch), afterID}
	if !olderThan.IsZero() {
		q += ` AND updated_at < ?`
		args = append(args, stamp(olderThan))
	}
	q += ` ORDER BY subscriber_id LIMIT ?`
	args = append(args, limit)
	ids, err := queryColumn[int64](ctx, s.db, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: unfinished page: %w", err)
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
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM deliveries
		WHERE campaign_id = ? AND status IN ('pending', 'sending')`,
		key).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlite: count unfinished: %w", err)
	}
	return n, nil
}

// applyReceiptSQL moves a delivery forward; the two statements below add
// which delivery: by the provider's message id, or by its key (taking the
// message id if it has none, refusing another).
// A receipt that names its delivery also finds it still sending (see the
// PostgreSQL store's applyReceiptSQL).
var (
	applyReceiptSQL = `UPDATE deliveries SET status = ?1,
			error_code = COALESCE(?2, error_code), updated_at = ?3, sent_at = COALESCE(sent_at, ?4),
			provider_message_id = ?5, provider = COALESCE(provider, NULLIF(?6, ''))
		WHERE ` + storesql.StatusRankSQL("status") + ` < ?7`
	applyReceiptByMessageSQL = applyReceiptSQL + ` AND COALESCE(provider, '') = ?6 AND provider_message_id = ?5`
	applyReceiptByKeySQL     = applyReceiptSQL + ` AND campaign_id = ?8 AND subscriber_id = ?9 AND channel = ?10
			AND (COALESCE(provider, '') = ?6 OR (provider IS NULL AND status = 'sending'))
			AND (provider_message_id IS NULL OR provider_message_id = ?5)`
)

// ApplyReceipt moves a delivery forward to status, never back: the rank
// comparison sits in the update's condition, so a repeated or late receipt
// changes nothing.
func (s *Store) ApplyReceipt(ctx context.Context, r campaign.Receipt) (bool, error) {
	if r.MessageID == "" {
		return false, nil
	}
	at := r.At
	if at.IsZero() {
		at = nowMicro()
	}
	var sentAt any
	switch r.Status {
	case campaign.StatusSent, campaign.StatusDelivered, campaign.StatusUndelivered:
		sentAt = stamp(at)
	}
	q := applyReceiptByMessageSQL
	args := []any{string(r.Status), nullIfEmpty(r.ErrorCode), stamp(at), sentAt, r.MessageID,
		r.Provider, storesql.StatusRank(r.Status)}
	if k := r.Delivery; k != nil {
		key, ok := campaignKey(k.CampaignID)
		if !ok {
			return false, nil
		}
		q = applyReceiptByKeySQL
		args = append(args, key, k.SubscriberID, string(k.Channel))
	}
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("sqlite: apply receipt: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlite: apply receipt: %w", err)
	}
	return n > 0, nil
}

// ownCampaign answers apperr.ErrNotFound unless the campaign is the tenant's.
func (s *Store) ownCampaign(ctx context.Context, tenantID, campaignID string) (string, error) {
	key, ok := campaignKey(campaignID)
	if !ok {
		return "", apperr.NotFound("campaign")
	}
	var one int
	err := s.db.QueryRowContext(ctx, `SELECT 1 FROM campaigns WHERE id = ? AND tenant_id = ?`,
		key, tenantID).Scan(&one)
	if err == sql.ErrNoRows {
		return "", apperr.NotFound("campaign")
	}
	if err != nil {
		return "", err
	}
	return key, nil
}

// DeliveryCounts summarises a campaign's deliveries in one pass (two when
// the campaign has more than one channel: the audience then needs the
// distinct subscribers).
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
	rows, err := s.db.QueryContext(ctx, `SELECT status, COALESCE(skip_reason, ''), channel,
			count(*), COALESCE(sum(segments), 0)
		FROM deliveries WHERE campaign_id = ? GROUP BY status, skip_reason, channel`, key)
	if err != nil {
		return c, fmt.Errorf("sqlite: delivery counts: %w", err)
	}
	var total int64
	for rows.Next() {
		var (
			status  campaign.Status
			skip    campaign.SkipReason
			ch      campaign.Channel
			n, segs int64
		)
		if err := rows.Scan(&status, &skip, &ch, &n, &segs); err != nil {
			rows.Close()
			return c, fmt.Errorf("sqlite: delivery counts: %w", err)
		}
		c.ByStatus[status] += n
		if skip != "" {
			c.BySkip[skip] += n
		}
		c.ByChannel[ch] += n
		c.Segments += segs
		total += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("sqlite: delivery counts: %w", err)
	}
	if len(c.ByChannel) <= 1 {
		c.Audience = total
		return c, nil
	}
	err = s.db.QueryRowContext(ctx, `SELECT count(DISTINCT subscriber_id) FROM deliveries
		WHERE campaign_id = ?`, key).Scan(&c.Audience)
	if err != nil {
		return c, fmt.Errorf("sqlite: delivery counts: %w", err)
	}
	return c, nil
}

// ListDeliveries pages a campaign's deliveries by id, with each one's
// MSISDN. Without a status filter it merges one ordered range per status of
// the (campaign_id, status) index.
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
	var (
		q    strings.Builder
		args []any
	)
	q.WriteString(`SELECT ` + deliveryColumnsD + `, COALESCE(s.msisdn, '') FROM (`)
	for i, st := range statuses {
		if i > 0 {
			q.WriteString(` UNION ALL `)
		}
		q.WriteString(`SELECT * FROM (SELECT id FROM deliveries
			WHERE campaign_id = ? AND status = ? AND id > ? ORDER BY id LIMIT ?)`)
		args = append(args, key, string(st), afterID, limit)
	}
	q.WriteString(` ORDER BY id LIMIT ?) AS page
		JOIN deliveries d ON d.id = page.id
		LEFT JOIN subscribers s ON s.id = d.subscriber_id
		ORDER BY d.id`)
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list deliveries: %w", err)
	}
	defer rows.Close()
	var out []campaign.Delivery
	for rows.Next() {
		var msisdn string
		d, err := scanDelivery(rows, &msisdn)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list deliveries: %w", err)
		}
		d.MSISDN = msisdn
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list deliveries: %w", err)
	}
	return out, nil
}
