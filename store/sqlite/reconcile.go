package sqlite

import (
	"context"
	"fmt"
	"time"

	"outreach/campaign"
)

// ResetStaleSending puts back to pending the campaign's deliveries claimed
// (sending) before olderThan whose worker never recorded an outcome: it
// died. They may have reached the provider just before, so the reconciler
// counts them as the in-flight sends a crash can double.
func (s *Store) ResetStaleSending(ctx context.Context, campaignID string, olderThan time.Time) (int64, error) {
	key, ok := campaignKey(campaignID)
	if !ok {
		return 0, nil
	}
	res, err := s.db.ExecContext(ctx, `UPDATE deliveries SET status = 'pending', sent_at = NULL, updated_at = ?
		WHERE campaign_id = ? AND status = 'sending' AND updated_at < ?`, stamp(time.Now()), key, stamp(olderThan))
	if err != nil {
		return 0, fmt.Errorf("sqlite: reset stale sending: %w", err)
	}
	return res.RowsAffected()
}

// ResetClaims puts back to pending those of the given deliveries of the
// campaign's channel still claimed (sending) since before claimedBefore:
// the claims of a send batch whose worker is known to be dead. Like
// ResetStaleSending's, they may have reached the provider just before it
// died. A claim taken since (by the batch's new task) is left alone.
func (s *Store) ResetClaims(ctx context.Context, campaignID string, ch campaign.Channel, subscriberIDs []int64, claimedBefore time.Time) (int64, error) {
	key, ok := campaignKey(campaignID)
	if !ok || len(subscriberIDs) == 0 {
		return 0, nil
	}
	res, err := s.db.ExecContext(ctx, `UPDATE deliveries SET status = 'pending', sent_at = NULL, updated_at = ?
		WHERE campaign_id = ? AND channel = ? AND +status = 'sending' AND updated_at < ?
		AND subscriber_id IN (SELECT value FROM json_each(?))`,
		stamp(nowMicro()), key, string(ch), stamp(claimedBefore), int64sJSON(subscriberIDs))
	if err != nil {
		return 0, fmt.Errorf("sqlite: reset claims: %w", err)
	}
	return res.RowsAffected()
}
