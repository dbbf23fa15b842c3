package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"outreach/campaign"
	"outreach/install"
	"outreach/reward"
)

// Install callbacks come in by the thousand a second, each wanting one
// read (its attribution) and one write (the install, and its reward). Done
// one by one, every write was a commit of its own, a WAL flush each
// (fdatasync, ~0.36 ms on the reference machine), and every read planned
// and started scans of all 16 partitions of deliveries: measured there,
// ~1,150 µs of PostgreSQL CPU per callback (~390 µs per autocommitted
// write, 100-200 µs per read). So concurrent callbacks are gathered: the
// reads of all waiting callbacks go out as one statement, and their writes
// as one set-based statement, one commit, one round trip (~420 µs per
// callback at 16 in flight; see BENCHMARKS.md). Nothing waits for a batch
// to fill: a call that finds no batch running starts one at once, and the
// calls that arrive meanwhile make up the next, so batches grow with the
// load and an idle server answers about as fast as before.

const (
	// maxInstallBatch bounds the callbacks one statement carries.
	maxInstallBatch = 128
	// attributionFlights is how many attribution reads may run at once.
	// One: every read statement pays a fixed cost (it opens and locks all
	// 16 partitions of deliveries and their indexes, and is a round trip
	// and a wake-up on each side) that a bigger batch shares. Two reads in
	// flight made batches of ~2.6 callbacks and cost ~10% more CPU per
	// callback, in PostgreSQL and here, at a worse p99 (BENCHMARKS.md).
	attributionFlights = 1
	// installBatchTimeout bounds one batch statement: it runs on no
	// caller's context, so that a caller who leaves does not cancel the
	// others' work.
	installBatchTimeout = 30 * time.Second
)

// installBatches holds the Store's install batchers. Its zero value is
// ready to use.
type installBatches struct {
	mu     sync.Mutex
	pool   *pgxpool.Pool // see generic
	closed bool

	attribution batcher[attributionQuery, install.AttributionLookup]
	// Writes run one batch at a time: two batches of one process could
	// otherwise take the same rows' locks (budget and count shards,
	// subscribers) in opposite orders and deadlock. A batch whose
	// statement fails is answered errBatchFailed, and its callers take
	// the one-by-one path, each to its own answer.
	counted batcher[countedInstall, countedResult]
}

// errBatchFailed tells a caller that its batch failed as a whole (one
// callback's reward conflicted, say): it must do its own write alone.
var errBatchFailed = errors.New("postgres: install batch failed")

// batcher gathers concurrent calls into batches for run, with at most
// flights batches running at once.
type batcher[I, O any] struct {
	mu      sync.Mutex
	queue   []*batchCall[I, O]
	running int
}

type batchCall[I, O any] struct {
	ctx  context.Context
	in   I
	out  O
	err  error
	done chan struct{}
}

// do runs in in a batch and returns its answer, or ctx's error if the
// caller stops waiting first (the batch may still carry it out).
func (b *batcher[I, O]) do(ctx context.Context, in I, flights int, run func(context.Context, []I) ([]O, error)) (O, error) {
	c := &batchCall[I, O]{ctx: ctx, in: in, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	if b.running < flights {
		b.running++
		go b.work(run)
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.out, c.err
	case <-ctx.Done():
		var zero O
		return zero, ctx.Err()
	}
}

// work runs batches until the queue is empty.
func (b *batcher[I, O]) work(run func(context.Context, []I) ([]O, error)) {
	for {
		b.mu.Lock()
		n := min(len(b.queue), maxInstallBatch)
		if n == 0 {
			b.running--
			b.mu.Unlock()
			return
		}
		calls := make([]*batchCall[I, O], 0, n)
		for _, c := range b.queue[:n] {
			// A caller who gave up is not written for.
			if err := c.ctx.Err(); err != nil {
				c.err = err
				close(c.done)
				continue
			}
			calls = append(calls, c)
		}
		rest := copy(b.queue, b.queue[n:])
		clear(b.queue[rest:]) // no stale calls kept alive
		b.queue = b.queue[:rest]
		b.mu.Unlock()
		if len(calls) == 0 {
			continue
		}
		ins := make([]I, len(calls))
		for i, c := range calls {
			ins[i] = c.in
		}
		ctx, cancel := context.WithTimeout(context.Background(), installBatchTimeout)
		outs, err := run(ctx, ins)
		cancel()
		if err == nil && len(outs) != len(calls) {
			err = fmt.Errorf("postgres: install batch: %d answers for %d calls", len(outs), len(calls))
		}
		for i, c := range calls {
			if err != nil {
				c.err = err
			} else {
				c.out = outs[i]
			}
			close(c.done)
		}
	}
}

// generic returns the pool that the batch statements run on, opened on
// first use: up to one connection per batch in flight, each with
// plan_cache_mode force_generic_plan. These statements join over every
// partition of deliveries; PostgreSQL's custom plans, made afresh for each
// execution, took 10-16 ms to plan, many times their execution. Only these
// statements run there, so no other query's plans change.
func (s *Store) generic(ctx context.Context) (*pgxpool.Pool, error) {
	b := &s.batches
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("postgres: store closed")
	}
	if b.pool != nil {
		return b.pool, nil
	}
	cfg := s.pool.Config()
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	cfg.MaxConns = attributionFlights + 1
	cfg.MinConns = 0
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open the install batch pool: %w", err)
	}
	b.pool = pool
	return pool, nil
}

// close closes the batch pool, if it was opened.
func (b *installBatches) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.pool != nil {
		b.pool.Close()
	}
}

// queryGeneric runs sql with args on the batch pool, with scan reading its
// rows.
func (s *Store) queryGeneric(ctx context.Context, sql string, args []any, scan func(pgx.Rows) error) error {
	pool, err := s.generic(ctx)
	if err != nil {
		return err
	}
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if err := scan(rows); err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

type attributionQuery struct {
	tenantID, code, msisdn string
	at                     time.Time
	defaultDays            int
}

// LookUpAttribution makes attribute's look-ups for one callback, in one
// statement shared with the other callbacks waiting (see
// install.AttributionStore).
func (s *Store) LookUpAttribution(ctx context.Context, tenantID string, cb install.Callback, defaultDays int) (install.AttributionLookup, error) {
	return s.batches.attribution.do(ctx, attributionQuery{tenantID: tenantID, code: cb.ReferralCode,
		msisdn: cb.MSISDN, at: cb.InstalledAt.UTC(), defaultDays: defaultDays}, attributionFlights, s.lookUpAttributions)
}

// lookUpAttributionsSQL is AttributionByReferral, InstallTarget and
// LastPromotion (see each) for a batch of callbacks, each only when
// install.Service.attribute would need it: the subscriber is looked up
// when the callback names a number that the code's delivery (if any) did
// not go to, and their last promotion when they were found. Each look-up
// is planned apart (OFFSET 0 keeps the code's delivery looked up first, as
// AttributionByReferral's MATERIALIZED does).
const lookUpAttributionsSQL = `SELECT x.n,
	r.campaign_id, r.subscriber_id, r.msisdn, r.region, r.sent, r.reward,
	x.msisdn <> '' AND r.msisdn IS DISTINCT FROM x.msisdn,
	t.id, t.region,
	lp.campaign_id, lp.sent_at, lp.reward
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::int[])
	WITH ORDINALITY AS x(tenant_id, code, msisdn, at, default_days, n)
LEFT JOIN LATERAL (
	SELECT d.campaign_id::text AS campaign_id, d.subscriber_id, s.msisdn, s.region,
		COALESCE(d.sent_at, d.created_at) AS sent, c.reward
	FROM (
		SELECT campaign_id, subscriber_id, sent_at, created_at FROM deliveries
		WHERE x.code <> '' AND referral_code = x.code AND tenant_id = x.tenant_id
		OFFSET 0
	) d
	JOIN campaigns c ON c.id = d.campaign_id
	JOIN subscribers s ON s.id = d.subscriber_id
	WHERE c.kind = 'install_promotion'
	ORDER BY d.sent_at DESC NULLS LAST
	LIMIT 1
) r ON true
LEFT JOIN LATERAL (
	SELECT id, region FROM subscribers
	WHERE x.msisdn <> '' AND r.msisdn IS DISTINCT FROM x.msisdn
	  AND tenant_id = x.tenant_id AND msisdn = x.msisdn
) t ON true
LEFT JOIN LATERAL (
	SELECT d.campaign_id::text AS campaign_id, d.sent_at, c.reward
	FROM deliveries d
	JOIN campaigns c ON c.id = d.campaign_id
	WHERE t.id IS NOT NULL AND d.subscriber_id = t.id AND d.kind_marketing AND d.sent_at IS NOT NULL
	  AND d.sent_at <= x.at + $7::interval AND d.sent_at >= x.at - make_interval(days => GREATEST($6::int, x.default_days))
	  AND d.tenant_id = x.tenant_id AND d.status IN ('sent', 'delivered') AND c.kind = 'install_promotion'
	  AND d.sent_at >= x.at - make_interval(days => COALESCE((c.reward->>'attribution_days')::int, x.default_days))
	ORDER BY d.sent_at DESC
	LIMIT 1
) lp ON true`

func (s *Store) lookUpAttributions(ctx context.Context, qs []attributionQuery) ([]install.AttributionLookup, error) {
	tenants := make([]string, len(qs))
	codes := make([]string, len(qs))
	msisdns := make([]string, len(qs))
	ats := make([]time.Time, len(qs))
	days := make([]int32, len(qs))
	for i, q := range qs {
		tenants[i], codes[i], msisdns[i], ats[i], days[i] = q.tenantID, q.code, q.msisdn, q.at, int32(q.defaultDays)
	}
	out := make([]install.AttributionLookup, len(qs))
	seen := 0
	err := s.queryGeneric(ctx, lookUpAttributionsSQL, []any{tenants, codes, msisdns, ats, days, campaign.MaxAttributionDays, reward.InstallSkew}, func(rows pgx.Rows) error {
		return s.scanAttributions(rows, qs, out, &seen)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: look up attributions: %w", err)
	}
	if seen != len(qs) {
		return nil, fmt.Errorf("postgres: look up attributions: %d rows for %d callbacks", seen, len(qs))
	}
	return out, nil
}

func (s *Store) scanAttributions(rows pgx.Rows, qs []attributionQuery, out []install.AttributionLookup, seen *int) error {
	for rows.Next() {
		var (
			n                          int64
			codeCampaign, codeMSISDN   *string
			codeRegion                 *string
			codeSubscriber             *int64
			codeSent                   *time.Time
			codeReward, lastReward     *campaign.Reward
			looked                     bool
			targetID                   *int64
			targetRegion, lastCampaign *string
			lastSent                   *time.Time
		)
		if err := rows.Scan(&n, &codeCampaign, &codeSubscriber, &codeMSISDN, &codeRegion, &codeSent, &codeReward,
			&looked, &targetID, &targetRegion, &lastCampaign, &lastSent, &lastReward); err != nil {
			return err
		}
		if n < 1 || int(n) > len(qs) {
			return fmt.Errorf("row %d of %d", n, len(qs))
		}
		q, l := qs[n-1], &out[n-1]
		if codeCampaign != nil {
			l.ByCode = &install.Attribution{CampaignID: *codeCampaign, SentAt: codeSent.UTC(), Reward: codeReward,
				Target: install.Target{SubscriberID: *codeSubscriber, MSISDN: *codeMSISDN, Region: *codeRegion}}
		}
		l.TargetLooked = looked
		if targetID != nil {
			l.Target = &install.Target{SubscriberID: *targetID, MSISDN: q.msisdn, Region: *targetRegion}
			if lastCampaign != nil {
				l.Last = &install.Attribution{CampaignID: *lastCampaign, SentAt: lastSent.UTC(), Reward: lastReward,
					Target: install.Target{SubscriberID: *targetID}}
			}
		}
		*seen++
	}
	return rows.Err()
}

// countedInstall is the first write of an install: as counted (not a
// duplicate), with its pending reward when rewardID is set.
type countedInstall struct {
	id, tenantID, msisdn, deviceID, platform, region, via string
	subscriberID                                          *int64
	campaignID, referral                                  *string
	installedAt, receivedAt                               time.Time
	attributedAt                                          *time.Time
	countShard                                            int16
	// The reward, when rewardID is set: data_mb debited from budgetShard
	// of campaignID.
	rewardID    *string
	dataMB      int64
	rewardAt    time.Time
	budgetShard int16
}

// countedResult is what the batch did with one countedInstall: inserted
// is false on any unique conflict of the install (nothing was written for
// it); seq is the reward's when it was stored (nil: not, for want of room
// in the budget shard or of a budget).
type countedResult struct {
	inserted bool
	seq      *int64
}

// recordCounted writes c in the current batch of counted installs.
func (s *Store) recordCounted(ctx context.Context, c countedInstall) (countedResult, error) {
	return s.batches.counted.do(ctx, c, 1, s.recordCountedBatch)
}

// recordCountedSQL is recordInstallRewardedSQL (and the first attempt of
// recordInstallSQL) for a batch: one statement, one commit. Every install
// is inserted as counted, unless a unique index says otherwise; those that
// were inserted mark their subscriber installed, add to their region's
// count shard, and debit their reward, if any, from its budget shard (all
// the rewards of one shard together, only if they all fit), then store it
// pending. Counts and debits are summed per row (a statement may update a
// row only once). A reward's unique conflict (a live reward of the
// subscriber in the campaign, or of the device) fails the whole statement:
// nothing of the batch is written, and each install is then written alone.
const recordCountedSQL = `WITH input AS (
	-- Plain arrays (0, '' and the zero time for NULL) encode cheaply.
	SELECT id::uuid AS id, NULLIF(subscriber_id, 0) AS subscriber_id, installed_at, received_at,
		NULLIF(attributed_at, '0001-01-01 00:00:00+00') AS attributed_at, NULLIF(campaign_id, '')::uuid AS campaign_id,
		tenant_id, msisdn, device_id, platform, region, via, NULLIF(referral_code, '') AS referral_code, count_shard,
		NULLIF(reward_id, '')::uuid AS reward_id, data_mb, reward_at, budget_shard, n
	FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[],
		$6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
		$14::smallint[], $15::text[], $16::bigint[], $17::timestamptz[], $18::smallint[])
		WITH ORDINALITY AS x(id, subscriber_id, installed_at, received_at, attributed_at, campaign_id,
			tenant_id, msisdn, device_id, platform, region, via, referral_code, count_shard,
			reward_id, data_mb, reward_at, budget_shard, n)
), ins AS (
	INSERT INTO installs (id, subscriber_id, installed_at, received_at, attributed_at, campaign_id,
		duplicate, tenant_id, msisdn, device_id, platform, region, via, referral_code)
	SELECT id, subscriber_id, installed_at, received_at, attributed_at, campaign_id,
		false, tenant_id, msisdn, device_id, platform, region, via, referral_code
	FROM input ORDER BY n
	ON CONFLICT DO NOTHING
	RETURNING id
), done AS (
	SELECT input.* FROM input JOIN ins ON ins.id = input.id
), marked AS (
	UPDATE subscribers s SET installed = true, installed_at = done.installed_at, updated_at = done.received_at
	FROM done
	WHERE s.id = done.subscriber_id AND NOT s.installed
	RETURNING s.id
), counted AS (
	INSERT INTO install_counts AS ic (tenant_id, region, shard, installs)
	SELECT tenant_id, region, count_shard, count(*) FROM done
	GROUP BY tenant_id, region, count_shard
	ORDER BY tenant_id, region, count_shard
	ON CONFLICT (tenant_id, region, shard) DO UPDATE SET installs = ic.installs + EXCLUDED.installs
	RETURNING 1
), debit AS (
	UPDATE campaign_budgets b SET spent_mb = b.spent_mb + w.mb
	FROM (
		SELECT campaign_id, budget_shard, sum(data_mb)::bigint AS mb FROM done
		WHERE reward_id IS NOT NULL
		GROUP BY campaign_id, budget_shard
	) w
	WHERE b.campaign_id = w.campaign_id AND b.shard = w.budget_shard AND b.spent_mb + w.mb <= b.budget_mb
	RETURNING b.campaign_id, b.shard
), rw AS (
	INSERT INTO rewards (id, install_id, campaign_id, subscriber_id, data_mb, created_at, updated_at,
		tenant_id, msisdn, device_id, state, budget_shard)
	SELECT done.reward_id, done.id, done.campaign_id, done.subscriber_id, done.data_mb, done.reward_at,
		done.reward_at, done.tenant_id, done.msisdn, done.device_id, 'pending', debit.shard
	FROM done
	JOIN debit ON debit.campaign_id = done.campaign_id AND debit.shard = done.budget_shard
	WHERE done.reward_id IS NOT NULL
	ORDER BY done.n
	RETURNING install_id, seq
)
SELECT input.n, ins.id IS NOT NULL, rw.seq
FROM input
LEFT JOIN ins ON ins.id = input.id
LEFT JOIN rw ON rw.install_id = input.id`

func (s *Store) recordCountedBatch(ctx context.Context, cs []countedInstall) ([]countedResult, error) {
	k := len(cs)
	var (
		ids, tenants, msisdns, devices = make([]string, k), make([]string, k), make([]string, k), make([]string, k)
		platforms, regions, vias       = make([]string, k), make([]string, k), make([]string, k)
		campaigns, referrals, rewards  = make([]string, k), make([]string, k), make([]string, k)
		subscribers, dataMB            = make([]int64, k), make([]int64, k)
		installedAt, receivedAt        = make([]time.Time, k), make([]time.Time, k)
		attributedAt, rewardAt         = make([]time.Time, k), make([]time.Time, k)
		countShards, budgetShards      = make([]int16, k), make([]int16, k)
	)
	for i, c := range cs {
		ids[i], tenants[i], msisdns[i], devices[i] = c.id, c.tenantID, c.msisdn, c.deviceID
		platforms[i], regions[i], vias[i] = c.platform, c.region, c.via
		installedAt[i], receivedAt[i] = c.installedAt, c.receivedAt
		countShards[i], budgetShards[i], dataMB[i], rewardAt[i] = c.countShard, c.budgetShard, c.dataMB, c.rewardAt
		if c.subscriberID != nil {
			subscribers[i] = *c.subscriberID
		}
		if c.campaignID != nil {
			campaigns[i] = *c.campaignID
		}
		if c.referral != nil {
			referrals[i] = *c.referral
		}
		if c.rewardID != nil {
			rewards[i] = *c.rewardID
		}
		if c.attributedAt != nil {
			attributedAt[i] = *c.attributedAt
		}
	}
	out := make([]countedResult, k)
	seen := 0
	err := s.queryGeneric(ctx, recordCountedSQL, []any{ids, subscribers, installedAt, receivedAt, attributedAt,
		campaigns, tenants, msisdns, devices, platforms, regions, vias, referrals, countShards,
		rewards, dataMB, rewardAt, budgetShards}, func(rows pgx.Rows) error {
		for rows.Next() {
			var n int64
			var r countedResult
			if err := rows.Scan(&n, &r.inserted, &r.seq); err != nil {
				return err
			}
			if n < 1 || int(n) > k {
				return fmt.Errorf("row %d of %d", n, k)
			}
			out[n-1] = r
			seen++
		}
		return rows.Err()
	})
	if err != nil {
		// A unique conflict, say: nothing of the batch was written.
		return nil, errors.Join(errBatchFailed, err)
	}
	if seen != k {
		return nil, fmt.Errorf("%w: %d rows for %d installs", errBatchFailed, seen, k)
	}
	return out, nil
}
