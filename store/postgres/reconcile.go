package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"outreach/campaign"
)

// ResetStaleSending puts back to pending the campaign's deliveries claimed
// (sending) before olderThan whose worker never recorded an outcome: it
// died. They may have reached the provider just before, so the reconciler
// counts them as the in-flight sends a crash can double.
func (s *Store) ResetStaleSending(ctx context.Context, campaignID string, olderThan time.Time) (int64, error) {
	id, err := uuid.Parse(campaignID)
	if err != nil {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, `UPDATE deliveries SET status = 'pending', updated_at = now(), sent_at = NULL
		WHERE campaign_id = $1 AND status = 'sending' AND updated_at < $2`, id, olderThan)
	if err != nil {
		return 0, fmt.Errorf("postgres: reset stale sending: %w", err)
	}
	return tag.RowsAffected(), nil
}

// ResetClaims puts back to pending those of the given deliveries of the
// campaign's channel still claimed (sending) since before claimedBefore:
// the claims of a send batch whose worker is known to be dead. Like
// ResetStaleSending's, they may have reached the provider just before it
// died. A claim taken since (by the batch's new task) is left alone.
func (s *Store) ResetClaims(ctx context.Context, campaignID string, ch campaign.Channel, subscriberIDs []int64, claimedBefore time.Time) (int64, error) {
	id, err := uuid.Parse(campaignID)
	if err != nil || len(subscriberIDs) == 0 {
		return 0, nil
	}
	// The id range bounds the look-up on every index that leads with the
	// campaign, as the claim's does.
	tag, err := s.pool.Exec(ctx, `UPDATE deliveries SET status = 'pending', updated_at = $6, sent_at = NULL
		WHERE campaign_id = $1 AND channel = $2 AND subscriber_id BETWEEN $3 AND $4 AND subscriber_id = ANY($5)
		  AND status = 'sending' AND updated_at < $7`,
		id, string(ch), slices.Min(subscriberIDs), slices.Max(subscriberIDs), subscriberIDs, nowMicro(), claimedBefore)
	if err != nil {
		return 0, fmt.Errorf("postgres: reset claims: %w", err)
	}
	return tag.RowsAffected(), nil
}
