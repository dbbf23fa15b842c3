package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"outreach/campaign"
)

// ResetStaleSending puts back to pending the campaign's deliveries claimed
// (sending) before olderThan whose worker never recorded an outcome: it
// died. With lookup, an SMS among them (and with fallback a push to a
// subscriber with no device) is recorded unknown from its claim's time
// instead (see the PostgreSQL store's).
func (s *Store) ResetStaleSending(ctx context.Context, campaignID string, olderThan time.Time, lookup string, fallback bool) (int64, error) {
	key, ok := campaignKey(campaignID)
	if !ok {
		return 0, nil
	}
	res, err := s.db.ExecContext(ctx, `UPDATE deliveries SET
			status = CASE WHEN `+staleLookedUp+` THEN 'unknown' ELSE 'pending' END,
			provider = CASE WHEN `+staleLookedUp+` THEN ?3 ELSE provider END,
			error_code = CASE WHEN `+staleLookedUp+` THEN ?4 ELSE error_code END,
			sent_at = CASE WHEN `+staleLookedUp+` THEN updated_at END,
			updated_at = ?5
		WHERE campaign_id = ?1 AND status = 'sending' AND updated_at < ?2`,
		key, stamp(olderThan), lookup, campaign.ErrorStaleClaim, stamp(time.Now()), fallback)
	if err != nil {
		return 0, fmt.Errorf("sqlite: reset stale sending: %w", err)
	}
	return res.RowsAffected()
}

// staleLookedUp: a stale claim to be looked up (?3 names the provider; ?6:
// a push to a subscriber with no device goes by SMS).
const staleLookedUp = `(?3 <> '' AND (channel = 'sms' OR ?6 AND channel = 'push'
	AND NOT EXISTS (SELECT 1 FROM devices v WHERE v.subscriber_id = deliveries.subscriber_id)))`

// AmbiguousSends lists, in subscriber order, up to limit of the campaign's
// deliveries on ch whose send through provider was ambiguous (unknown),
// recorded so at or after since, with their subscribers (those that have
// a number).
func (s *Store) AmbiguousSends(ctx context.Context, campaignID string, ch campaign.Channel, provider string, since time.Time, limit int) ([]campaign.AmbiguousSend, error) {
	key, ok := campaignKey(campaignID)
	if !ok {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT d.subscriber_id, d.sent_at, COALESCE(d.error_code = ?, 0), d.attempts,
			COALESCE(d.referral_code, ''), COALESCE(d.error_code, ''), s.msisdn, s.region, s.locale, s.attributes
		FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id AND s.msisdn <> ''
		WHERE d.campaign_id = ? AND d.status = 'unknown' AND d.channel = ? AND d.updated_at >= ? AND d.provider = ?
		ORDER BY d.subscriber_id LIMIT ?`, campaign.ErrorStaleClaim, key, string(ch), stamp(since), provider, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: ambiguous sends: %w", err)
	}
	defer rows.Close()
	var out []campaign.AmbiguousSend
	for rows.Next() {
		var (
			a     campaign.AmbiguousSend
			at    string
			attrs sql.NullString
		)
		a.CampaignID, a.Channel, a.Status, a.Provider = key, ch, campaign.StatusUnknown, provider
		if err := rows.Scan(&a.SubscriberID, &at, &a.Claimed, &a.Attempts, &a.ReferralCode, &a.ErrorCode,
			&a.MSISDN, &a.Region, &a.Locale, &attrs); err != nil {
			return nil, fmt.Errorf("sqlite: ambiguous sends: %w", err)
		}
		if a.AttemptedAt, err = unstamp(at); err != nil {
			return nil, err
		}
		if attrs.Valid && attrs.String != "" {
			if err := json.Unmarshal([]byte(attrs.String), &a.Attributes); err != nil {
				return nil, fmt.Errorf("sqlite: ambiguous sends: subscriber %d attributes: %w", a.SubscriberID, err)
			}
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: ambiguous sends: %w", err)
	}
	return out, nil
}

// RequeueAmbiguous puts back to pending the campaign's deliveries on ch
// of these sends that are still unknown from the same attempt: their
// provider never took them, so they may be sent. One a receipt moved on
// meanwhile stays, and so does a later attempt's.
func (s *Store) RequeueAmbiguous(ctx context.Context, campaignID string, ch campaign.Channel, sends []campaign.AmbiguousSend) (int64, error) {
	key, ok := campaignKey(campaignID)
	if !ok || len(sends) == 0 {
		return 0, nil
	}
	type attempt struct {
		Sub int64  `json:"s"`
		At  string `json:"a"`
	}
	list := make([]attempt, len(sends))
	for i, a := range sends {
		list[i] = attempt{a.SubscriberID, stamp(a.AttemptedAt)}
	}
	js, err := json.Marshal(list)
	if err != nil {
		return 0, err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE deliveries SET status = 'pending', sent_at = NULL, error_code = NULL, updated_at = ?
		WHERE campaign_id = ? AND channel = ? AND status = 'unknown'
		  AND EXISTS (SELECT 1 FROM json_each(?) AS j
		      WHERE json_extract(j.value, '$.s') = deliveries.subscriber_id AND json_extract(j.value, '$.a') = deliveries.sent_at)`,
		stamp(time.Now()), key, string(ch), string(js))
	if err != nil {
		return 0, fmt.Errorf("sqlite: requeue ambiguous sends: %w", err)
	}
	return res.RowsAffected()
}

// HeldMessageIDs answers which of these provider message ids a delivery
// already holds.
func (s *Store) HeldMessageIDs(ctx context.Context, ids []string) (map[string]bool, error) {
	held := make(map[string]bool)
	if len(ids) == 0 {
		return held, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT provider_message_id FROM deliveries
		WHERE provider_message_id IN (SELECT value FROM json_each(?))`, string(list))
	if err != nil {
		return nil, fmt.Errorf("sqlite: held message ids: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlite: held message ids: %w", err)
		}
		held[id] = true
	}
	return held, rows.Err()
}
