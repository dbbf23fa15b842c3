package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"outreach/internal/apperr"
	"outreach/reward"
)

var _ reward.Store = (*Store)(nil)

const sqliteRewardColumns = `seq, id, install_id, campaign_id, subscriber_id, data_mb, created_at, updated_at,
	granted_at, attempts, tenant_id, msisdn, device_id, state, COALESCE(reason, ''), COALESCE(last_error, ''), confirm_due`

func scanSQLiteReward(r ledgerScanner) (reward.Reward, error) {
	var (
		x                    reward.Reward
		createdAt, updatedAt string
		grantedAt            sql.NullString
	)
	if err := r.Scan(&x.Seq, &x.ID, &x.InstallID, &x.CampaignID, &x.SubscriberID, &x.DataMB, &createdAt,
		&updatedAt, &grantedAt, &x.Attempts, &x.TenantID, &x.MSISDN, &x.DeviceID, &x.State, &x.Reason,
		&x.LastError, &x.ConfirmDue); err != nil {
		return x, err
	}
	var err error
	if x.CreatedAt, err = ledgerUnstamp(createdAt); err != nil {
		return x, err
	}
	if x.UpdatedAt, err = ledgerUnstamp(updatedAt); err != nil {
		return x, err
	}
	x.GrantedAt, err = ledgerUnstampNull(grantedAt)
	return x, err
}

// CreateReward records a reward once per install, within the campaign's
// budget and the uniqueness rules (see reward.Store). The transaction is
// IMMEDIATE: it holds SQLite's one write lock from its first statement, so
// the checks and the debit below cannot interleave with another's.
func (s *Store) CreateReward(ctx context.Context, r *reward.Reward, budgetMB int64) (bool, error) {
	if r.ID == "" {
		r.ID = uuid.NewString()
	}
	installID, ok := ledgerUUID(r.InstallID)
	if !ok {
		return false, apperr.FieldErrors{"install_id": "must be an install id"}
	}
	key, ok := ledgerUUID(r.CampaignID)
	if !ok {
		return false, apperr.NotFound("campaign")
	}
	r.InstallID, r.CampaignID = installID, key
	if r.CreatedAt.IsZero() {
		r.CreatedAt = ledgerNow()
	}
	// A repeat is answered from a plain read, without queueing for the
	// write lock; the transaction below checks again.
	if stored, err := scanSQLiteReward(s.db.QueryRowContext(ctx, `SELECT `+sqliteRewardColumns+` FROM rewards WHERE install_id = ?`, r.InstallID)); err == nil {
		*r = stored
		return false, nil
	} else if !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("sqlite: reward of install: %w", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("sqlite: create reward: %w", err)
	}
	defer tx.Rollback()

	// One look at the ledger under the write lock: the install's reward
	// (written since the read above), a live reward of the subscriber in
	// the campaign, of the device in the tenant.
	var prior, pair, device bool
	if err := tx.QueryRowContext(ctx, `SELECT
			EXISTS (SELECT 1 FROM rewards WHERE install_id = ?1),
			EXISTS (SELECT 1 FROM rewards WHERE campaign_id = ?2 AND subscriber_id = ?3 AND state IN ('pending', 'granted')),
			EXISTS (SELECT 1 FROM rewards WHERE tenant_id = ?4 AND device_id = ?5 AND state IN ('pending', 'granted'))`,
		r.InstallID, r.CampaignID, r.SubscriberID, r.TenantID, r.DeviceID).Scan(&prior, &pair, &device); err != nil {
		return false, fmt.Errorf("sqlite: create reward: %w", err)
	}
	if prior {
		stored, err := scanSQLiteReward(tx.QueryRowContext(ctx, `SELECT `+sqliteRewardColumns+` FROM rewards WHERE install_id = ?`, r.InstallID))
		if err != nil {
			return false, fmt.Errorf("sqlite: reward of install: %w", err)
		}
		*r = stored
		return false, nil
	}
	if r.State != reward.StateRejected {
		r.State, r.Reason = reward.StatePending, ""
		switch {
		case pair:
			r.State, r.Reason = reward.StateRejected, reward.ReasonAlreadyRewarded
		case device:
			r.State, r.Reason = reward.StateRejected, reward.ReasonDeviceAlreadyRewarded
		}
	}
	if r.State != reward.StateRejected {
		res, err := tx.ExecContext(ctx, `INSERT INTO campaign_budgets (campaign_id, tenant_id, budget_mb, spent_mb)
			SELECT ?1, ?2, ?3, ?4 WHERE ?4 <= ?3
			ON CONFLICT (campaign_id) DO UPDATE SET spent_mb = spent_mb + excluded.spent_mb
			WHERE spent_mb + excluded.spent_mb <= budget_mb`, r.CampaignID, r.TenantID, budgetMB, r.DataMB)
		if err != nil {
			return false, fmt.Errorf("sqlite: debit budget: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return false, fmt.Errorf("sqlite: debit budget: %w", err)
		} else if n == 0 {
			r.State, r.Reason = reward.StateRejected, reward.ReasonBudgetExhausted
		}
	}
	at := ledgerStamp(r.CreatedAt)
	stored, err := scanSQLiteReward(tx.QueryRowContext(ctx, `INSERT INTO rewards (id, install_id, tenant_id,
			campaign_id, subscriber_id, msisdn, device_id, data_mb, state, reason, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING `+sqliteRewardColumns,
		r.ID, r.InstallID, r.TenantID, r.CampaignID, r.SubscriberID, r.MSISDN, r.DeviceID, r.DataMB,
		string(r.State), ledgerNullString(string(r.Reason)), at, at))
	if err != nil {
		return false, fmt.Errorf("sqlite: create reward: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("sqlite: create reward: %w", err)
	}
	*r = stored
	return true, nil
}

// RewardOfInstall reads the reward stored for an install, if any.
func (s *Store) RewardOfInstall(ctx context.Context, installID string) (reward.Reward, bool, error) {
	key, ok := ledgerUUID(installID)
	if !ok {
		return reward.Reward{}, false, nil
	}
	r, err := scanSQLiteReward(s.db.QueryRowContext(ctx, `SELECT `+sqliteRewardColumns+` FROM rewards WHERE install_id = ?`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return reward.Reward{}, false, nil
	}
	if err != nil {
		return reward.Reward{}, false, fmt.Errorf("sqlite: reward of install: %w", err)
	}
	return r, true, nil
}

// GetReward reads a reward of any tenant.
func (s *Store) GetReward(ctx context.Context, id string) (reward.Reward, error) {
	key, ok := ledgerUUID(id)
	if !ok {
		return reward.Reward{}, apperr.NotFound("reward")
	}
	r, err := scanSQLiteReward(s.db.QueryRowContext(ctx, `SELECT `+sqliteRewardColumns+` FROM rewards WHERE id = ?`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return reward.Reward{}, apperr.NotFound("reward")
	}
	if err != nil {
		return reward.Reward{}, fmt.Errorf("sqlite: get reward: %w", err)
	}
	return r, nil
}

// RecordAttempt counts a failed provisioning attempt of a pending reward.
func (s *Store) RecordAttempt(ctx context.Context, id, errMsg string, at time.Time) error {
	key, ok := ledgerUUID(id)
	if !ok {
		return apperr.NotFound("reward")
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE rewards SET attempts = attempts + 1, last_error = NULLIF(?, ''),
		updated_at = ? WHERE id = ? AND state = 'pending'`, errMsg, ledgerStamp(at), key); err != nil {
		return fmt.Errorf("sqlite: record reward attempt: %w", err)
	}
	return nil
}

// FinishReward moves a pending reward to granted, or to failed giving its
// MB back to the budget, in one transaction.
func (s *Store) FinishReward(ctx context.Context, id string, to reward.State, errMsg string, at time.Time) (bool, error) {
	key, ok := ledgerUUID(id)
	if !ok {
		return false, apperr.NotFound("reward")
	}
	stamp := ledgerStamp(at)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("sqlite: finish reward: %w", err)
	}
	defer tx.Rollback()
	var res sql.Result
	switch to {
	case reward.StateGranted:
		res, err = tx.ExecContext(ctx, `UPDATE rewards SET state = 'granted', granted_at = ?1, updated_at = ?1,
			attempts = attempts + 1, last_error = NULL, confirm_due = 1 WHERE id = ?2 AND state = 'pending'`, stamp, key)
	case reward.StateFailed:
		res, err = tx.ExecContext(ctx, `UPDATE rewards SET state = 'failed', last_error = NULLIF(?1, ''),
			updated_at = ?2 WHERE id = ?3 AND state = 'pending'`, errMsg, stamp, key)
	default:
		return false, fmt.Errorf("sqlite: finish reward: cannot move to %q", to)
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: finish reward: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil || n == 0 {
		return false, err
	}
	if to == reward.StateFailed {
		if _, err := tx.ExecContext(ctx, `UPDATE campaign_budgets SET spent_mb = spent_mb -
				(SELECT data_mb FROM rewards WHERE id = ?1)
			WHERE campaign_id = (SELECT campaign_id FROM rewards WHERE id = ?1)`, key); err != nil {
			return false, fmt.Errorf("sqlite: refund budget: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("sqlite: finish reward: %w", err)
	}
	return true, nil
}

// PendingRewards returns pending rewards untouched since before, oldest
// first.
func (s *Store) PendingRewards(ctx context.Context, before time.Time, limit int) ([]reward.Reward, error) {
	return s.queryRewards(ctx, `SELECT `+sqliteRewardColumns+` FROM rewards
		WHERE state = 'pending' AND updated_at < ? ORDER BY updated_at LIMIT ?`, ledgerStamp(before), limit)
}

// DueConfirmations returns the ids of up to limit granted rewards whose
// confirmation is due and that were granted before before, oldest first.
func (s *Store) DueConfirmations(ctx context.Context, before time.Time, limit int) ([]string, error) {
	ids, err := queryColumn[string](ctx, s.db, `SELECT id FROM rewards WHERE confirm_due AND updated_at < ?
		ORDER BY updated_at LIMIT ?`, ledgerStamp(before), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: due confirmations: %w", err)
	}
	return ids, nil
}

// ConfirmationDone records that a reward's confirmation is no longer due.
func (s *Store) ConfirmationDone(ctx context.Context, id string) error {
	key, ok := ledgerUUID(id)
	if !ok {
		return apperr.NotFound("reward")
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE rewards SET confirm_due = 0 WHERE id = ? AND confirm_due`, key); err != nil {
		return fmt.Errorf("sqlite: confirmation done: %w", err)
	}
	return nil
}

// ListRewards pages a tenant's rewards by seq.
func (s *Store) ListRewards(ctx context.Context, tenantID string, q reward.Query) ([]reward.Reward, error) {
	where := []string{"tenant_id = ?", "seq > ?"}
	args := []any{tenantID, q.After}
	if q.CampaignID != "" {
		key, ok := ledgerUUID(q.CampaignID)
		if !ok {
			return nil, nil
		}
		where = append(where, "campaign_id = ?")
		args = append(args, key)
	}
	if q.State != "" {
		where = append(where, "state = ?")
		args = append(args, string(q.State))
	}
	limit := q.Limit
	if limit <= 0 {
		limit = reward.DefaultPageSize
	}
	args = append(args, limit)
	return s.queryRewards(ctx, `SELECT `+sqliteRewardColumns+` FROM rewards WHERE `+strings.Join(where, " AND ")+
		` ORDER BY seq LIMIT ?`, args...)
}

func (s *Store) queryRewards(ctx context.Context, query string, args ...any) ([]reward.Reward, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: rewards: %w", err)
	}
	defer rows.Close()
	var out []reward.Reward
	for rows.Next() {
		r, err := scanSQLiteReward(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: rewards: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: rewards: %w", err)
	}
	return out, nil
}

// RewardTotals sums a tenant's rewards by state, of one campaign when
// campaignID is set.
func (s *Store) RewardTotals(ctx context.Context, tenantID, campaignID string) (reward.Totals, error) {
	t := reward.Totals{Count: map[reward.State]int64{}, MB: map[reward.State]int64{}}
	for _, st := range reward.AllStates {
		t.Count[st], t.MB[st] = 0, 0
	}
	query := `SELECT state, count(*), COALESCE(sum(data_mb), 0) FROM rewards WHERE tenant_id = ?`
	args := []any{tenantID}
	if campaignID != "" {
		key, ok := ledgerUUID(campaignID)
		if !ok {
			return t, nil
		}
		query += ` AND campaign_id = ?`
		args = append(args, key)
	}
	rows, err := s.db.QueryContext(ctx, query+` GROUP BY state`, args...)
	if err != nil {
		return t, fmt.Errorf("sqlite: reward totals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st reward.State
		var n, mb int64
		if err := rows.Scan(&st, &n, &mb); err != nil {
			return t, fmt.Errorf("sqlite: reward totals: %w", err)
		}
		t.Count[st], t.MB[st] = n, mb
	}
	if err := rows.Err(); err != nil {
		return t, fmt.Errorf("sqlite: reward totals: %w", err)
	}
	return t, nil
}

// CampaignBudget reports a campaign's reward budget and what is committed
// to it (pending and granted rewards); zeros before its first reward.
func (s *Store) CampaignBudget(ctx context.Context, campaignID string) (budgetMB, spentMB int64, err error) {
	key, ok := ledgerUUID(campaignID)
	if !ok {
		return 0, 0, nil
	}
	err = s.db.QueryRowContext(ctx, `SELECT budget_mb, spent_mb FROM campaign_budgets WHERE campaign_id = ?`, key).
		Scan(&budgetMB, &spentMB)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: campaign budget: %w", err)
	}
	return budgetMB, spentMB, nil
}
