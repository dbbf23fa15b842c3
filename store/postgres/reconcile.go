package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"outreach/campaign"
)

// ResetStaleSending puts back to pending the campaign's deliveries claimed
// (sending) before olderThan whose worker never recorded an outcome: it
// died. They may have reached the provider just before: with lookup (the
// SMS provider's name, when it can look messages up) an SMS among them is
// recorded unknown instead, from its claim's time (ErrorStaleClaim), for
// the engine to look up, and so is a push to a subscriber with no device
// when fallback says the campaign sends those an SMS; else the reconciler
// counts them as the in-flight sends a crash can double.
func (s *Store) ResetStaleSending(ctx context.Context, campaignID string, olderThan time.Time, lookup string, fallback bool) (int64, error) {
	id, err := uuid.Parse(campaignID)
	if err != nil {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, `UPDATE deliveries SET
			status = CASE WHEN `+staleLookedUp+` THEN 'unknown' ELSE 'pending' END,
			provider = CASE WHEN `+staleLookedUp+` THEN $3 ELSE provider END,
			error_code = CASE WHEN `+staleLookedUp+` THEN $4 ELSE error_code END,
			sent_at = CASE WHEN `+staleLookedUp+` THEN updated_at END,
			updated_at = now()
		WHERE campaign_id = $1 AND status = 'sending' AND updated_at < $2`, id, olderThan, lookup, campaign.ErrorStaleClaim, fallback)
	if err != nil {
		return 0, fmt.Errorf("postgres: reset stale sending: %w", err)
	}
	return tag.RowsAffected(), nil
}

// staleLookedUp: a stale claim to be looked up ($3 names the provider; $5:
// a push to a subscriber with no device goes by SMS).
const staleLookedUp = `($3 <> '' AND (channel = 'sms' OR $5 AND channel = 'push'
	AND NOT EXISTS (SELECT 1 FROM devices v WHERE v.subscriber_id = deliveries.subscriber_id)))`

// AmbiguousSends lists, in subscriber order, up to limit of the campaign's
// deliveries on ch whose send through provider was ambiguous (unknown),
// recorded so at or after since, with their subscribers (those that have
// a number).
func (s *Store) AmbiguousSends(ctx context.Context, campaignID string, ch campaign.Channel, provider string, since time.Time, limit int) ([]campaign.AmbiguousSend, error) {
	id, err := uuid.Parse(campaignID)
	if err != nil {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT d.subscriber_id, d.sent_at, COALESCE(d.error_code = $5, false), d.attempts,
			COALESCE(d.referral_code, ''), COALESCE(d.error_code, ''), s.msisdn, s.region, s.locale, s.attributes
		FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id AND s.msisdn <> ''
		WHERE d.campaign_id = $1 AND d.status = 'unknown' AND d.channel = $2 AND d.updated_at >= $3 AND d.provider = $6
		ORDER BY d.subscriber_id LIMIT $4`, id, string(ch), since, limit, campaign.ErrorStaleClaim, provider)
	if err != nil {
		return nil, fmt.Errorf("postgres: ambiguous sends: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (campaign.AmbiguousSend, error) {
		a := campaign.AmbiguousSend{}
		a.CampaignID, a.Channel, a.Status, a.Provider = id.String(), ch, campaign.StatusUnknown, provider
		err := r.Scan(&a.SubscriberID, &a.AttemptedAt, &a.Claimed, &a.Attempts, &a.ReferralCode, &a.ErrorCode,
			&a.MSISDN, &a.Region, &a.Locale, &a.Attributes)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: ambiguous sends: %w", err)
	}
	return out, nil
}

// RequeueAmbiguous puts back to pending the campaign's deliveries on ch
// of these sends that are still unknown from the same attempt: their
// provider never took them, so they may be sent. One a receipt moved on
// meanwhile stays, and so does a later attempt's.
func (s *Store) RequeueAmbiguous(ctx context.Context, campaignID string, ch campaign.Channel, sends []campaign.AmbiguousSend) (int64, error) {
	id, err := uuid.Parse(campaignID)
	if err != nil || len(sends) == 0 {
		return 0, nil
	}
	subs, at := make([]int64, len(sends)), make([]time.Time, len(sends))
	for i, a := range sends {
		subs[i], at[i] = a.SubscriberID, a.AttemptedAt
	}
	tag, err := s.pool.Exec(ctx, `UPDATE deliveries AS d SET status = 'pending', updated_at = now(), sent_at = NULL, error_code = NULL
		FROM unnest($3::bigint[], $4::timestamptz[]) AS u(subscriber_id, at)
		WHERE d.campaign_id = $1 AND d.channel = $2 AND d.subscriber_id = u.subscriber_id
		  AND d.status = 'unknown' AND d.sent_at = u.at`,
		id, string(ch), subs, at)
	if err != nil {
		return 0, fmt.Errorf("postgres: requeue ambiguous sends: %w", err)
	}
	return tag.RowsAffected(), nil
}

// HeldMessageIDs answers which of these provider message ids a delivery
// already holds.
func (s *Store) HeldMessageIDs(ctx context.Context, ids []string) (map[string]bool, error) {
	held := make(map[string]bool)
	if len(ids) == 0 {
		return held, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT d.provider_message_id
		FROM unnest($1::text[]) AS u(id) JOIN deliveries d ON d.provider_message_id = u.id`, ids)
	if err != nil {
		return nil, fmt.Errorf("postgres: held message ids: %w", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: held message ids: %w", err)
	}
	for _, id := range got {
		held[id] = true
	}
	return held, nil
}
