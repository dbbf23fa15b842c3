package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
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
