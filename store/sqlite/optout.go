package sqlite

import (
	"context"
	"fmt"
	"time"
)

// OptOutEverywhere sets or clears the marketing opt-out of a number in
// every tenant that has it: an inbound STOP names a phone, not a tenant.
func (s *Store) OptOutEverywhere(ctx context.Context, msisdn string, optedOut bool) (int64, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE subscribers SET
			opted_out = ?2,
			opted_out_at = CASE WHEN NOT ?2 THEN NULL WHEN opted_out THEN opted_out_at ELSE ?3 END,
			updated_at = ?3
		WHERE msisdn = ?1`, msisdn, optedOut, coreStamp(time.Now()))
	if err != nil {
		return 0, fmt.Errorf("sqlite: opt-out everywhere: %w", err)
	}
	return res.RowsAffected()
}
