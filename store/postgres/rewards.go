package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"outreach/internal/apperr"
	"outreach/reward"
)

var _ reward.Store = (*Store)(nil)

const rewardColumns = `seq, id::text, install_id::text, campaign_id::text, subscriber_id, data_mb,
	created_at, updated_at, granted_at, attempts, tenant_id, msisdn, device_id, state,
	COALESCE(reason, ''), COALESCE(last_error, ''), confirm_due`

func scanReward(r pgx.Row) (reward.Reward, error) {
	var x reward.Reward
	err := r.Scan(&x.Seq, &x.ID, &x.InstallID, &x.CampaignID, &x.SubscriberID, &x.DataMB, &x.CreatedAt,
		&x.UpdatedAt, &x.GrantedAt, &x.Attempts, &x.TenantID, &x.MSISDN, &x.DeviceID, &x.State, &x.Reason,
		&x.LastError, &x.ConfirmDue)
	x.CreatedAt, x.UpdatedAt, x.GrantedAt = x.CreatedAt.UTC(), x.UpdatedAt.UTC(), ledgerUTCPtr(x.GrantedAt)
	return x, err
}

// maxBudgetShards bounds the rows a campaign's budget is split into.
const maxBudgetShards = 64

// budgetShards splits a budget into shard budgets, each a whole number of
// rewards of dataMB, summing to budgetMB (the part too small for a reward
// sits in shard 0, where nothing can spend it).
func budgetShards(budgetMB, dataMB int64) []int64 {
	units := int64(0)
	if dataMB > 0 && budgetMB > 0 {
		units = budgetMB / dataMB
	}
	n := min(int64(maxBudgetShards), max(1, units))
	out := make([]int64, n)
	for i := range out {
		k := units / n
		if int64(i) < units%n {
			k++
		}
		out[i] = k * dataMB
	}
	out[0] += max(0, budgetMB-units*dataMB)
	return out
}

// homeShard is where the ledger's search for room starts: spread by
// install id, so that concurrent rewards of one campaign look at different
// rows first, and repeats of one install at the same row.
func homeShard(installID string, shards int) int16 {
	h := fnv.New32a()
	h.Write([]byte(installID))
	return int16(h.Sum32() % uint32(shards))
}

// shardTurns deals a campaign's rewards to its budget shards in turn, from
// a random first shard (so that processes do not all begin at one): the
// shards fill evenly and are full at about the same time, so a reward finds
// its shard full only when the whole budget is nearly spent. Shards dealt
// at random by install id filled unevenly: with a budget for 30,000 rewards
// in 64 shards, about 3% of them found their shard full while others had
// room, and took the ledger's slower path (CreateReward), which waits on
// the row locks of the shards being debited. Consecutive rewards of one
// campaign also take different row locks.
type shardTurns struct {
	mu   sync.Mutex
	next map[string]uint32 // by campaign
}

// maxShardTurns bounds the campaigns remembered; past it they start over
// from random shards.
const maxShardTurns = 4096

// take returns the next shard of the campaign's budget of shards shards.
func (t *shardTurns) take(campaignID string, shards int) int16 {
	if shards <= 1 {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.next == nil || len(t.next) >= maxShardTurns {
		t.next = make(map[string]uint32)
	}
	n, ok := t.next[campaignID]
	if !ok {
		n = rand.Uint32()
	}
	t.next[campaignID] = n + 1
	return int16(n % uint32(shards))
}

// createRewardSQL debits one shard of the campaign's budget and records the
// reward pending, in one statement: one atomic step, one round trip. The
// debit only happens while spent + data_mb stays within the shard's budget,
// under the row lock the update takes; no row comes back when the install
// has a reward already or the shard has no room. A unique conflict (a live
// reward of the same campaign and subscriber or of the same device, or the
// install's reward written meanwhile) raises an error that rolls the whole
// statement back, debit included; CreateReward then sorts it out.
const createRewardSQL = `WITH prior AS (
	SELECT 1 FROM rewards WHERE install_id = $4::uuid
), debit AS (
	UPDATE campaign_budgets SET spent_mb = spent_mb + $6::bigint
	WHERE campaign_id = $3::uuid AND shard = $10::smallint AND spent_mb + $6::bigint <= budget_mb
	  AND NOT EXISTS (SELECT 1 FROM prior)
	RETURNING shard
)
INSERT INTO rewards (id, install_id, campaign_id, subscriber_id, data_mb, created_at, updated_at,
	tenant_id, msisdn, device_id, state, budget_shard)
SELECT $1::uuid, $4::uuid, $3::uuid, $5::bigint, $6::bigint, $7::timestamptz, $7::timestamptz,
	$2::text, $8::text, $9::text, 'pending', debit.shard
FROM debit
RETURNING ` + rewardColumns

// ensureBudgetSQL creates a campaign's budget shards on its first reward.
// Once they exist it inserts nothing and looks at nothing but one index
// entry: an insert that meets a shard row being debited by another
// transaction would wait for it to end, and a campaign whose shards are
// full comes here for every reward it refuses.
const ensureBudgetSQL = `INSERT INTO campaign_budgets (campaign_id, shard, tenant_id, budget_mb)
SELECT $1::uuid, (s - 1)::smallint, $2::text, b FROM unnest($3::bigint[]) WITH ORDINALITY AS t(b, s)
WHERE NOT EXISTS (SELECT 1 FROM campaign_budgets WHERE campaign_id = $1::uuid)
ON CONFLICT (campaign_id, shard) DO NOTHING`

// roomySQL finds a shard with room for one more reward, the home shard's
// successors first. It reads committed rows without locking: an in-flight
// debit that may still roll back is not seen, so "no room" is never
// answered while room remains.
const roomySQL = `SELECT shard FROM campaign_budgets
WHERE campaign_id = $1::uuid AND spent_mb + $2::bigint <= budget_mb
ORDER BY (shard - $3::int + $4::int) % $4::int
LIMIT 1`

// insertRejectedSQL records a rejected reward, touching no budget; nothing
// when the install has its reward already.
const insertRejectedSQL = `INSERT INTO rewards (id, install_id, campaign_id, subscriber_id, data_mb,
	created_at, updated_at, tenant_id, msisdn, device_id, state, reason)
VALUES ($1::uuid, $4::uuid, $3::uuid, $5, $6, $7, $7, $2, $8, $9, 'rejected', $10)
ON CONFLICT (install_id) DO NOTHING
RETURNING ` + rewardColumns

// Names of the ledger's unique indexes (0003_installs_rewards.sql).
const (
	rewardsInstallKey            = "rewards_install_key"
	rewardsCampaignSubscriberKey = "rewards_campaign_subscriber_key"
	rewardsDeviceKey             = "rewards_device_key"
	rewardsPrimaryKey            = "rewards_pkey"
)

// CreateReward records a reward once per install, within the campaign's
// budget and the uniqueness rules (see reward.Store).
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
	if r.State == reward.StateRejected {
		return s.insertRejected(ctx, r)
	}
	r.State, r.Reason = reward.StatePending, ""
	plan := budgetShards(budgetMB, r.DataMB)
	home := homeShard(r.InstallID, len(plan))
	ensured := false
	// Each turn of the loop that finds no room where it looked follows a
	// debit committed by someone else, so it ends; the bound is a backstop.
	for attempt := 0; attempt < 1000; attempt++ {
		// The shard to debit: the home shard when it has room, else its
		// nearest successor that has. On this store a reward comes here
		// when the install's own statement found its home shard full (or
		// the campaign's budget not yet set up), so the home shard is not
		// tried blind: a debit there would wait on that shard's row lock,
		// which the concurrent installs hold, only to find no room.
		var shard int16
		err := s.pool.QueryRow(ctx, roomySQL, r.CampaignID, r.DataMB, int(home), len(plan)).Scan(&shard)
		if errors.Is(err, pgx.ErrNoRows) && !ensured {
			if _, err := s.pool.Exec(ctx, ensureBudgetSQL, r.CampaignID, r.TenantID, plan); err != nil {
				return false, fmt.Errorf("postgres: create campaign budget: %w", err)
			}
			ensured = true
			continue
		}
		if errors.Is(err, pgx.ErrNoRows) {
			// No room: but a reward the uniqueness rules refuse says so
			// first (reward.Store's order), whatever the budget.
			reason, err := s.uniquenessReason(ctx, r)
			if err != nil {
				return false, err
			}
			r.State, r.Reason = reward.StateRejected, cmp.Or(reason, reward.ReasonBudgetExhausted)
			return s.insertRejected(ctx, r)
		}
		if err != nil {
			return false, fmt.Errorf("postgres: find budget room: %w", err)
		}
		stored, err := scanReward(s.pool.QueryRow(ctx, createRewardSQL, r.ID, r.TenantID, r.CampaignID, r.InstallID,
			r.SubscriberID, r.DataMB, r.CreatedAt, r.MSISDN, r.DeviceID, shard))
		if err == nil {
			*r = stored
			return true, nil
		}
		if errors.Is(err, pgx.ErrNoRows) {
			// The install has its reward already, or the shard's room was
			// taken meanwhile.
			if created, found, err := s.rewardOfInstall(ctx, r); err != nil || found {
				return created, err
			}
			continue
		}
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001") {
			// Chosen as a deadlock's victim (the debit against another
			// process's install batch, which takes shards and subscribers
			// in its own order): the statement was rolled back whole, so it
			// is simply run again rather than answered 500.
			continue
		}
		if !errors.As(err, &pe) || pe.Code != "23505" {
			return false, fmt.Errorf("postgres: create reward: %w", err)
		}
		switch pe.ConstraintName {
		case rewardsInstallKey:
			created, _, err := s.rewardOfInstall(ctx, r)
			return created, err
		case rewardsCampaignSubscriberKey:
			r.State, r.Reason = reward.StateRejected, reward.ReasonAlreadyRewarded
			return s.insertRejected(ctx, r)
		case rewardsDeviceKey:
			r.State, r.Reason = reward.StateRejected, reward.ReasonDeviceAlreadyRewarded
			return s.insertRejected(ctx, r)
		case rewardsPrimaryKey:
			r.ID = uuid.NewString()
		default:
			return false, fmt.Errorf("postgres: create reward: %w", err)
		}
	}
	return false, fmt.Errorf("postgres: create reward: no progress after repeated conflicts")
}

// uniquenessReason is the reason a live reward of r's campaign and
// subscriber, or else of its tenant's device, gives to reject r; "" when
// there is none.
func (s *Store) uniquenessReason(ctx context.Context, r *reward.Reward) (reward.Reason, error) {
	var subscriberHas, deviceHas bool
	err := s.pool.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM rewards WHERE campaign_id = $1 AND subscriber_id = $2 AND state IN ('pending', 'granted')),
			EXISTS (SELECT 1 FROM rewards WHERE tenant_id = $3 AND device_id = $4 AND state IN ('pending', 'granted'))`,
		r.CampaignID, r.SubscriberID, r.TenantID, r.DeviceID).Scan(&subscriberHas, &deviceHas)
	switch {
	case err != nil:
		return "", fmt.Errorf("postgres: reward uniqueness: %w", err)
	case subscriberHas:
		return reward.ReasonAlreadyRewarded, nil
	case deviceHas:
		return reward.ReasonDeviceAlreadyRewarded, nil
	}
	return "", nil
}

func (s *Store) insertRejected(ctx context.Context, r *reward.Reward) (bool, error) {
	stored, err := scanReward(s.pool.QueryRow(ctx, insertRejectedSQL, r.ID, r.TenantID, r.CampaignID, r.InstallID,
		r.SubscriberID, r.DataMB, r.CreatedAt, r.MSISDN, r.DeviceID, string(r.Reason)))
	if errors.Is(err, pgx.ErrNoRows) {
		created, _, err := s.rewardOfInstall(ctx, r)
		return created, err
	}
	if err != nil {
		return false, fmt.Errorf("postgres: record rejected reward: %w", err)
	}
	*r = stored
	return true, nil
}

// rewardOfInstall replaces r with the reward stored for its install, if
// there is one.
func (s *Store) rewardOfInstall(ctx context.Context, r *reward.Reward) (created, found bool, err error) {
	stored, err := scanReward(s.pool.QueryRow(ctx, `SELECT `+rewardColumns+` FROM rewards WHERE install_id = $1`, r.InstallID))
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("postgres: reward of install: %w", err)
	}
	*r = stored
	return false, true, nil
}

// RewardOfInstall reads the reward stored for an install, if any.
func (s *Store) RewardOfInstall(ctx context.Context, installID string) (reward.Reward, bool, error) {
	key, ok := ledgerUUID(installID)
	if !ok {
		return reward.Reward{}, false, nil
	}
	r := reward.Reward{InstallID: key}
	_, found, err := s.rewardOfInstall(ctx, &r)
	return r, found, err
}

// GetReward reads a reward of any tenant.
func (s *Store) GetReward(ctx context.Context, id string) (reward.Reward, error) {
	if _, err := uuid.Parse(id); err != nil {
		return reward.Reward{}, apperr.NotFound("reward")
	}
	r, err := scanReward(s.pool.QueryRow(ctx, `SELECT `+rewardColumns+` FROM rewards WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return reward.Reward{}, apperr.NotFound("reward")
	}
	if err != nil {
		return reward.Reward{}, fmt.Errorf("postgres: get reward: %w", err)
	}
	return r, nil
}

// RecordAttempt counts a failed provisioning attempt of a pending reward.
func (s *Store) RecordAttempt(ctx context.Context, id, errMsg string, at time.Time) error {
	if _, err := uuid.Parse(id); err != nil {
		return apperr.NotFound("reward")
	}
	if _, err := s.pool.Exec(ctx, `UPDATE rewards SET attempts = attempts + 1, last_error = NULLIF($2, ''), updated_at = $3
		WHERE id = $1 AND state = 'pending'`, id, errMsg, at.UTC()); err != nil {
		return fmt.Errorf("postgres: record reward attempt: %w", err)
	}
	return nil
}

// FinishReward moves a pending reward to granted, or to failed giving its
// MB back to the budget, in one statement.
func (s *Store) FinishReward(ctx context.Context, id string, to reward.State, errMsg string, at time.Time) (bool, error) {
	if _, err := uuid.Parse(id); err != nil {
		return false, apperr.NotFound("reward")
	}
	var n int
	var err error
	switch to {
	case reward.StateGranted:
		err = s.pool.QueryRow(ctx, `WITH g AS (
				UPDATE rewards SET state = 'granted', granted_at = $2, updated_at = $2, attempts = attempts + 1,
					last_error = NULL, confirm_due = true
				WHERE id = $1 AND state = 'pending' RETURNING 1)
			SELECT count(*) FROM g`, id, at.UTC()).Scan(&n)
	case reward.StateFailed:
		err = s.pool.QueryRow(ctx, `WITH f AS (
				UPDATE rewards SET state = 'failed', last_error = NULLIF($3, ''), updated_at = $2
				WHERE id = $1 AND state = 'pending' RETURNING campaign_id, data_mb, budget_shard
			), refund AS (
				UPDATE campaign_budgets b SET spent_mb = b.spent_mb - f.data_mb
				FROM f WHERE b.campaign_id = f.campaign_id AND b.shard = f.budget_shard RETURNING 1
			)
			SELECT count(*) FROM f`, id, at.UTC(), errMsg).Scan(&n)
	default:
		return false, fmt.Errorf("postgres: finish reward: cannot move to %q", to)
	}
	if err != nil {
		return false, fmt.Errorf("postgres: finish reward: %w", err)
	}
	return n > 0, nil
}

// PendingRewards returns pending rewards untouched since before, oldest
// first.
func (s *Store) PendingRewards(ctx context.Context, before time.Time, limit int) ([]reward.Reward, error) {
	return s.queryRewards(ctx, `SELECT `+rewardColumns+` FROM rewards
		WHERE state = 'pending' AND updated_at < $1 ORDER BY updated_at LIMIT $2`, before.UTC(), limit)
}

// DueConfirmations returns the ids of up to limit granted rewards whose
// confirmation is due and that were granted before before, oldest first.
func (s *Store) DueConfirmations(ctx context.Context, before time.Time, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id::text FROM rewards WHERE confirm_due AND updated_at < $1
		ORDER BY updated_at LIMIT $2`, before.UTC(), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: due confirmations: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: due confirmations: %w", err)
	}
	return ids, nil
}

// ConfirmationDone records that a reward's confirmation is no longer due.
func (s *Store) ConfirmationDone(ctx context.Context, id string) error {
	if _, err := uuid.Parse(id); err != nil {
		return apperr.NotFound("reward")
	}
	if _, err := s.pool.Exec(ctx, `UPDATE rewards SET confirm_due = false WHERE id = $1 AND confirm_due`, id); err != nil {
		return fmt.Errorf("postgres: confirmation done: %w", err)
	}
	return nil
}

// ListRewards pages a tenant's rewards by seq.
func (s *Store) ListRewards(ctx context.Context, tenantID string, q reward.Query) ([]reward.Reward, error) {
	where := []string{"tenant_id = $1", "seq > $2"}
	args := []any{tenantID, q.After}
	if q.CampaignID != "" {
		key, ok := ledgerUUID(q.CampaignID)
		if !ok {
			return nil, nil
		}
		args = append(args, key)
		where = append(where, "campaign_id = $"+strconv.Itoa(len(args)))
	}
	if q.State != "" {
		args = append(args, string(q.State))
		where = append(where, "state = $"+strconv.Itoa(len(args)))
	}
	limit := q.Limit
	if limit <= 0 {
		limit = reward.DefaultPageSize
	}
	args = append(args, limit)
	return s.queryRewards(ctx, `SELECT `+rewardColumns+` FROM rewards WHERE `+strings.Join(where, " AND ")+
		` ORDER BY seq LIMIT $`+strconv.Itoa(len(args)), args...)
}

func (s *Store) queryRewards(ctx context.Context, query string, args ...any) ([]reward.Reward, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: rewards: %w", err)
	}
	defer rows.Close()
	var out []reward.Reward
	for rows.Next() {
		r, err := scanReward(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: rewards: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: rewards: %w", err)
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
	query := `SELECT state, count(*), COALESCE(sum(data_mb), 0)::bigint FROM rewards WHERE tenant_id = $1`
	args := []any{tenantID}
	if campaignID != "" {
		key, ok := ledgerUUID(campaignID)
		if !ok {
			return t, nil
		}
		query += ` AND campaign_id = $2`
		args = append(args, key)
	}
	rows, err := s.pool.Query(ctx, query+` GROUP BY state`, args...)
	if err != nil {
		return t, fmt.Errorf("postgres: reward totals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st reward.State
		var n, mb int64
		if err := rows.Scan(&st, &n, &mb); err != nil {
			return t, fmt.Errorf("postgres: reward totals: %w", err)
		}
		t.Count[st], t.MB[st] = n, mb
	}
	if err := rows.Err(); err != nil {
		return t, fmt.Errorf("postgres: reward totals: %w", err)
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
	err = s.pool.QueryRow(ctx, `SELECT COALESCE(sum(budget_mb), 0)::bigint, COALESCE(sum(spent_mb), 0)::bigint
		FROM campaign_budgets WHERE campaign_id = $1`, key).Scan(&budgetMB, &spentMB)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres: campaign budget: %w", err)
	}
	return budgetMB, spentMB, nil
}
