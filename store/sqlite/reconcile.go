package sqlite

import (
	"context"
	"fmt"
	"time"
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
