package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"outreach/campaign"
	"outreach/internal/apperr"
	"outreach/store/internal/storesql"
	"outreach/subscriber"
)

// deliveryColumns are what scanDelivery reads, qualified by the alias d.
const deliveryColumns = `d.id, d.tenant_id, d.campaign_id::text AS campaign_id, d.subscriber_id,
	d.channel, d.status, COALESCE(d.skip_reason, '') AS skip_reason,
	COALESCE(d.provider, '') AS provider, COALESCE(d.provider_message_id, '') AS provider_message_id,
	COALESCE(d.error_code, '') AS error_code, d.attempts, d.segments,
	COALESCE(d.referral_code, '') AS referral_code, d.created_at, d.updated_at, d.sent_at`

// scanDelivery reads deliveryColumns, then extra.
func scanDelivery(r pgx.Row, extra ...any) (campaign.Delivery, error) {
	var (
		d                  campaign.Delivery
		attempts, segments int16
	)
	dest := append([]any{&d.ID, &d.TenantID, &d.CampaignID, &d.SubscriberID, &d.Channel, &d.Status,
		&d.SkipReason, &d.Provider, &d.ProviderMessageID, &d.ErrorCode, &attempts, &segments,
		&d.ReferralCode, &d.CreatedAt, &d.UpdatedAt, &d.SentAt}, extra...)
	if err := r.Scan(dest...); err != nil {
		return d, err
	}
	d.Attempts, d.Segments = int(attempts), int(segments)
	d.CreatedAt, d.UpdatedAt, d.SentAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC(), utcPtr(d.SentAt)
	return d, nil
}

// deliveryStage is the per-connection temporary table the slow path of
// InsertDeliveries COPYs a batch into; ON COMMIT DELETE ROWS empties it
// after each transaction, so it is created once per connection.
const deliveryStage = "delivery_insert_stage"

const createDeliveryStage = `CREATE TEMP TABLE IF NOT EXISTS ` + deliveryStage + ` (
	subscriber_id bigint NOT NULL,
	referral_code text
) ON COMMIT DELETE ROWS`

// InsertDeliveries writes pending deliveries in bulk. Fan-out only moves
// forward, so a batch is almost always entirely new: the fast path COPYs it
// straight into deliveries (heap multi-insert, no staging, no speculative
// insertion) in one transaction. If any row already exists the COPY fails
// whole with a unique violation, and the batch goes the slow way: COPY into
// a staging table, then INSERT … SELECT … ON CONFLICT DO NOTHING, whose row
// count is the number of new deliveries.
func (s *Store) InsertDeliveries(ctx context.Context, c campaign.Campaign, ch campaign.Channel, ds []campaign.NewDelivery) (int, error) {
	if len(ds) == 0 {
		return 0, nil
	}
	key, ok := campaignKey(c.ID)
	if !ok {
		return 0, apperr.NotFound("campaign")
	}
	// In subscriber order: the indexes are filled left to right and
	// concurrent writers of one campaign take their locks in one order.
	ds = slices.Clone(ds)
	slices.SortFunc(ds, func(a, b campaign.NewDelivery) int { return cmp.Compare(a.SubscriberID, b.SubscriberID) })
	now := nowMicro()
	n, err := s.copyDeliveries(ctx, c, key, ch, ds, now)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		n, err = s.stageDeliveries(ctx, c, key, ch, ds, now)
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: insert deliveries: %w", err)
	}
	return n, nil
}

// copyDeliveries COPYs a batch straight into deliveries: one statement,
// atomic on its own.
func (s *Store) copyDeliveries(ctx context.Context, c campaign.Campaign, key string, ch campaign.Channel, ds []campaign.NewDelivery, now time.Time) (int, error) {
	campaignID, err := uuid.Parse(key)
	if err != nil {
		return 0, err
	}
	marketing := c.Kind.Marketing()
	// As a pgtype.UUID, not a uuid.UUID: pgx would encode the latter
	// through its driver.Valuer, a string parsed back, on every row.
	cid := pgtype.UUID{Bytes: campaignID, Valid: true}
	n, err := s.pool.CopyFrom(ctx, pgx.Identifier{"deliveries"},
		[]string{"tenant_id", "campaign_id", "subscriber_id", "channel", "referral_code",
			"kind_marketing", "created_at", "updated_at"}, // status: its default, pending
		pgx.CopyFromSlice(len(ds), func(i int) ([]any, error) {
			var ref any // NULL when empty
			if ds[i].ReferralCode != "" {
				ref = ds[i].ReferralCode
			}
			return []any{c.TenantID, cid, ds[i].SubscriberID, string(ch), ref, marketing, now, now}, nil
		}))
	return int(n), err
}

// stageDeliveries is the slow path, for a batch of which some rows exist.
func (s *Store) stageDeliveries(ctx context.Context, c campaign.Campaign, key string, ch campaign.Channel, ds []campaign.NewDelivery, now time.Time) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, createDeliveryStage); err != nil {
		return 0, fmt.Errorf("stage: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{deliveryStage}, []string{"subscriber_id", "referral_code"},
		pgx.CopyFromSlice(len(ds), func(i int) ([]any, error) {
			if ds[i].ReferralCode == "" {
				return []any{ds[i].SubscriberID, nil}, nil
			}
			return []any{ds[i].SubscriberID, ds[i].ReferralCode}, nil
		})); err != nil {
		return 0, fmt.Errorf("copy: %w", err)
	}
	tag, err := tx.Exec(ctx, `INSERT INTO deliveries (tenant_id, campaign_id, subscriber_id, channel,
			status, referral_code, kind_marketing, created_at, updated_at)
		SELECT $1, $2, subscriber_id, $3, 'pending', referral_code, $4, $5, $5
		FROM `+deliveryStage+` ORDER BY subscriber_id
		ON CONFLICT DO NOTHING`,
		c.TenantID, key, string(ch), c.Kind.Marketing(), now)
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// Plans. Deliveries is partitioned and its statistics lag behind fan-out:
// once a partition has been analysed, a campaign that is not among its most
// common values is estimated at a row or two, however many it has. A
// statement keyed on the campaign alone can then be planned as a walk of
// the whole campaign (a nested loop with the campaign's rows outside, or a
// filter on an array of ids). So the hot statements are written to be
// cheap under any plan:
//   - a claim or a batch of outcomes names its deliveries by an array of
//     subscriber ids and also by the range those ids span. The range is an
//     index bound on every index that leads with the campaign (the primary
//     key and the "unfinished" index), so whichever the planner takes, and
//     whichever way round it joins, it reads only the batch's own stretch
//     of the campaign: the ids of one send task come from one page of the
//     audience, in order, so that stretch is the batch;
//   - cached generic plans (a custom plan of a statement on the partitioned
//     table is planned afresh at every execution);
//   - pages in keyset order are planned with sorting disabled, so
//     they always walk an index in order and stop at the limit, instead of
//     collecting and sorting everything past the cursor.
//
// TestClaimAndRecordPlansAreBounded checks the first point against a
// partition analysed while another campaign filled it.
const (
	genericPlans = `SET LOCAL plan_cache_mode = force_generic_plan`
	noSort       = `SET LOCAL enable_sort = off`
	// noJIT goes with noSort: a sort the plan still needs (the listing's
	// pending and sending deliveries) is costed at 1e10 when sorting is
	// disabled, far past jit_above_cost, and each page was compiled by
	// LLVM: ~0.65 s for a page that runs in 0.1 ms.
	noJIT = `SET LOCAL jit = off`
)

// keysetPaging are the settings of a page read in keyset order.
var keysetPaging = []string{noSort, noJIT}

// sendBatch runs b in one round trip inside one transaction, after the
// given SET LOCAL statements.
func (s *Store) sendBatch(ctx context.Context, b *pgx.Batch, settings ...string) error {
	tb := &pgx.Batch{}
	tb.Queue(`BEGIN`)
	for _, set := range settings {
		tb.Queue(set)
	}
	tb.QueuedQueries = append(tb.QueuedQueries, b.QueuedQueries...)
	tb.Queue(`COMMIT`)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	err = conn.SendBatch(ctx, tb).Close()
	if err != nil && conn.Conn().PgConn().TxStatus() != 'I' {
		// A failed statement skipped the rest of the batch, COMMIT included.
		conn.Exec(context.WithoutCancel(ctx), `ROLLBACK`)
	}
	return err
}

// claimSQL moves the batch's pending deliveries to sending and gives an
// install promotion's delivery its referral code ($7, aligned with the ids
// $5) if it has none yet: a delivery keeps the code of its first claim
// through retries. $3 and $4 are the least and greatest of the ids $5 (see
// Plans).
const claimSQL = `UPDATE deliveries AS d SET status = 'sending', attempts = attempts + 1, updated_at = $6,
		referral_code = COALESCE(d.referral_code, CASE WHEN d.kind_marketing THEN u.code END)
	FROM unnest($5::bigint[], $7::text[]) AS u(subscriber_id, code)
	WHERE d.campaign_id = $1 AND d.channel = $2
	  AND d.subscriber_id BETWEEN $3 AND $4 AND d.subscriber_id = u.subscriber_id
	  AND d.status = 'pending'
	RETURNING ` + deliveryColumns

// ClaimDeliveries moves the pending ones among the given deliveries to
// sending and returns them with their subscribers and, for push, their
// devices, in one round trip: the claim, then the subscribers and their
// devices by primary key and by the devices' leading column.
func (s *Store) ClaimDeliveries(ctx context.Context, campaignID string, ch campaign.Channel, subscriberIDs []int64) ([]campaign.Recipient, error) {
	key, ok := campaignKey(campaignID)
	if !ok || len(subscriberIDs) == 0 {
		return nil, nil
	}
	ids := slices.Clone(subscriberIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)

	var (
		out  []campaign.Recipient
		subs = make(map[int64]campaign.Recipient, len(ids))
		devs = map[int64][]subscriber.Device{}
		now  = nowMicro()
	)
	b := &pgx.Batch{}
	b.Queue(claimSQL, key, string(ch), ids[0], ids[len(ids)-1], ids, now, campaign.NewReferralCodes(len(ids))).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			d, err := scanDelivery(rows)
			if err != nil {
				return err
			}
			out = append(out, campaign.Recipient{Delivery: d})
		}
		return rows.Err()
	})
	b.Queue(`SELECT id, msisdn, region, locale, attributes, opted_out, installed FROM subscribers
		WHERE id = ANY($1)`, ids).Query(func(rows pgx.Rows) error {
		var (
			id int64
			r  campaign.Recipient
		)
		_, err := pgx.ForEachRow(rows, []any{&id, &r.MSISDN, &r.Region, &r.Locale, &r.Attributes, &r.OptedOut, &r.Installed}, func() error {
			subs[id] = r
			r.Attributes = nil // the next row unmarshals into a new map
			return nil
		})
		return err
	})
	if ch == campaign.ChannelPush { // an SMS needs no devices
		b.Queue(`SELECT subscriber_id, platform, token, created_at FROM devices
		WHERE subscriber_id = ANY($1) ORDER BY subscriber_id, created_at, token`, ids).
			Query(func(rows pgx.Rows) error {
				var (
					id  int64
					dev subscriber.Device
				)
				_, err := pgx.ForEachRow(rows, []any{&id, &dev.Platform, &dev.Token, &dev.CreatedAt}, func() error {
					dev.CreatedAt = dev.CreatedAt.UTC()
					devs[id] = append(devs[id], dev)
					return nil
				})
				return err
			})
	}
	if err := s.sendBatch(ctx, b, genericPlans); err != nil {
		return nil, fmt.Errorf("postgres: claim deliveries: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	slices.SortFunc(out, func(a, b campaign.Recipient) int { return cmp.Compare(a.SubscriberID, b.SubscriberID) })
	for i := range out {
		r := &out[i]
		if sub, ok := subs[r.SubscriberID]; ok {
			r.MSISDN, r.Region, r.Locale, r.Attributes, r.OptedOut, r.Installed = sub.MSISDN, sub.Region, sub.Locale, sub.Attributes, sub.OptedOut, sub.Installed
		}
		r.Devices = devs[r.SubscriberID]
	}
	return out, nil
}

// recordOutcomesSQL writes a campaign's outcomes, given as arrays. An
// outcome lands only on a delivery that is not final yet (pending, sending
// or unknown): a late or repeated worker cannot overwrite a result or a
// receipt. An unknown send is never put back to pending (to go again): a
// worker late past OUTREACH_SENDING_STALE_AFTER could otherwise undo
// another's ambiguous send. A send whose receipt came first (the delivery
// already sent, delivered or undelivered, with no segments) takes only
// the send's segments, provider and message id. $2 and $3 bound the
// subscriber ids $4 (see Plans).
const recordOutcomesSQL = `UPDATE deliveries AS d SET
		status = CASE WHEN ` + outcomeLands + ` THEN u.status ELSE d.status END,
		skip_reason = CASE WHEN ` + outcomeLands + ` THEN NULLIF(u.skip, '') ELSE d.skip_reason END,
		provider = COALESCE(NULLIF(u.provider, ''), d.provider),
		provider_message_id = COALESCE(NULLIF(u.message_id, ''), d.provider_message_id),
		error_code = CASE WHEN ` + outcomeLands + ` THEN NULLIF(u.error_code, '') ELSE d.error_code END,
		segments = CASE WHEN u.segments > 0 THEN u.segments ELSE d.segments END,
		attempts = CASE WHEN u.unattempted AND u.status = 'pending' AND d.status = 'sending'
			THEN GREATEST(d.attempts - 1, 0) ELSE d.attempts END,
		updated_at = CASE WHEN ` + outcomeLands + ` THEN u.at ELSE d.updated_at END,
		sent_at = CASE WHEN NOT ` + outcomeLands + ` THEN d.sent_at
			WHEN u.status IN ('sent', 'unknown') THEN u.at
			WHEN d.status = 'unknown' THEN d.sent_at END
	FROM unnest($4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
		$11::smallint[], $12::timestamptz[], $13::bool[])
		AS u(subscriber_id, channel, status, skip, provider, message_id, error_code, segments, at, unattempted)
	WHERE d.campaign_id = $1 AND d.subscriber_id BETWEEN $2 AND $3
	  AND d.subscriber_id = u.subscriber_id AND d.channel = u.channel
	  AND (` + outcomeLands + ` AND (d.status <> 'unknown' OR u.status <> 'pending')
	    OR d.status IN ('sent', 'delivered', 'undelivered') AND u.status IN ('sent', 'unknown')
	       AND d.segments = 0 AND u.segments > 0)`

// outcomeLands: the delivery is not final yet, so the outcome is its status.
const outcomeLands = `d.status IN ('pending', 'sending', 'unknown')`

// RecordOutcomes writes send results in one round trip and one transaction:
// one statement per campaign of the batch.
func (s *Store) RecordOutcomes(ctx context.Context, outs []campaign.Outcome) error {
	if len(outs) == 0 {
		return nil
	}
	sorted := slices.Clone(outs)
	slices.SortStableFunc(sorted, func(a, b campaign.Outcome) int {
		if c := strings.Compare(a.CampaignID, b.CampaignID); c != 0 {
			return c
		}
		if c := cmp.Compare(a.SubscriberID, b.SubscriberID); c != 0 {
			return c
		}
		return strings.Compare(string(a.Channel), string(b.Channel))
	})
	// One outcome per delivery: the first given, as when each was written
	// on its own and the first one made the delivery final.
	sorted = slices.CompactFunc(sorted, func(a, b campaign.Outcome) bool {
		return a.CampaignID == b.CampaignID && a.SubscriberID == b.SubscriberID && a.Channel == b.Channel
	})
	now := nowMicro()
	b := &pgx.Batch{}
	for start := 0; start < len(sorted); {
		end := start + 1
		for end < len(sorted) && sorted[end].CampaignID == sorted[start].CampaignID {
			end++
		}
		group := sorted[start:end]
		start = end
		key, ok := campaignKey(group[0].CampaignID)
		if !ok {
			continue
		}
		n := len(group)
		var (
			sub                                 = make([]int64, n)
			ch, status, skip, prov, msgID, code = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			segs                                = make([]int16, n)
			at                                  = make([]time.Time, n)
			unattempted                         = make([]bool, n)
		)
		for i, o := range group {
			sub[i], ch[i], status[i] = o.SubscriberID, string(o.Channel), string(o.Status)
			if o.Status == campaign.StatusSkipped {
				skip[i] = string(o.SkipReason)
			}
			prov[i], msgID[i], code[i] = o.Provider, o.ProviderMessageID, o.ErrorCode
			segs[i] = int16(min(o.Segments, 32767))
			at[i], unattempted[i] = o.At, o.Unattempted
			if at[i].IsZero() {
				at[i] = now
			}
		}
		b.Queue(recordOutcomesSQL, key, sub[0], sub[n-1], sub, ch, status, skip, prov, msgID, code, segs, at, unattempted)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := s.sendBatch(ctx, b, genericPlans); err != nil {
		return fmt.Errorf("postgres: record outcomes: %w", err)
	}
	return nil
}

// capLockClass is the first key of the frequency cap's advisory locks (the
// second is the tenant's hash with a stripe of its subscribers).
const capLockClass = 7_404_242

// capStripes is how many locks divide a tenant's subscribers for the cap
// check (subscriber id modulo capStripes).
const capStripes = 16

// ApplyCap counts, under transaction locks on the tenant's stripes of the
// subscribers, each subscriber's marketing deliveries sent or in flight
// since q.Since (other than the one checked), and reserves the claimed
// deliveries below the cap by setting their sent_at: two workers checking
// the same subscriber take turns, and the later one counts the earlier
// one's reservation.
func (s *Store) ApplyCap(ctx context.Context, q campaign.CapCheck) (campaign.CapResult, error) {
	var res campaign.CapResult
	key, ok := campaignKey(q.CampaignID)
	if !ok || len(q.SubscriberIDs) == 0 {
		return res, nil
	}
	ids := slices.Clone(q.SubscriberIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("postgres: apply cap: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// One lock per stripe of the tenant's subscribers the batch touches,
	// taken in one order: two checks of a subscriber take turns, while a
	// campaign paced message by message checks up to capStripes at once.
	stripes := make([]int32, 0, capStripes)
	for _, id := range ids {
		stripes = append(stripes, int32(id%capStripes))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	// The settings, the locks and the count go in one round trip, in order.
	// A holder frozen mid-transaction must not stall every batch behind it:
	// the waiter gives up, and its task is retried. The plan is generic: a
	// custom plan over every partition costs more than the check itself.
	// The reservation does not wait for the WAL flush (one per message on
	// a paced campaign): a server crash in the flush's fraction of a second
	// can lose it and let one more message past the cap, the claim itself
	// being durable.
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('lock_timeout', '10s', true),
		set_config('plan_cache_mode', 'force_generic_plan', true), set_config('synchronous_commit', 'off', true)`)
	b.Queue(`SELECT pg_advisory_xact_lock($1, k) FROM (
			SELECT hashtext($2) # s AS k FROM unnest($3::int[]) AS s ORDER BY k) AS locks`,
		capLockClass, q.TenantID, stripes)
	b.Queue(`SELECT subscriber_id, count(*) FILTER (WHERE status <> 'sending' OR updated_at < $6), count(*)
		FROM deliveries
		WHERE subscriber_id = ANY($1) AND kind_marketing AND sent_at >= $2
		AND tenant_id = $3 AND status IN ('sending', 'sent', 'delivered', 'unknown')
		AND NOT (campaign_id = $4 AND channel = $5)
		GROUP BY subscriber_id`, ids, q.Since, q.TenantID, key, string(q.Channel), q.StaleBefore).Query(func(rows pgx.Rows) error {
		var id, gone, all int64
		_, err := pgx.ForEachRow(rows, []any{&id, &gone, &all}, func() error {
			res.Sort(id, gone, all, q.Limit)
			return nil
		})
		return err
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return res, fmt.Errorf("postgres: apply cap: lock and count: %w", err)
	}
	room := res.Room(ids)
	if len(room) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE deliveries SET sent_at = $6
			WHERE campaign_id = $1 AND channel = $2 AND subscriber_id BETWEEN $3 AND $4
			  AND subscriber_id = ANY($5) AND status = 'sending'`,
			key, string(q.Channel), room[0], room[len(room)-1], room, q.At); err != nil {
			return res, fmt.Errorf("postgres: apply cap: reserve: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("postgres: apply cap: %w", err)
	}
	return res, nil
}

// UnfinishedPage pages the subscribers whose delivery on ch is pending or
// sending and was last touched before olderThan (a zero olderThan means any
// age).
func (s *Store) UnfinishedPage(ctx context.Context, campaignID string, ch campaign.Channel, afterID int64, olderThan time.Time, limit int) ([]int64, error) {
	key, ok := campaignKey(campaignID)
	if !ok || limit <= 0 {
		return nil, nil
	}
	var older any
	if !olderThan.IsZero() {
		older = olderThan
	}
	var ids []int64
	b := &pgx.Batch{}
	b.Queue(`SELECT subscriber_id FROM deliveries
		WHERE campaign_id = $1 AND channel = $2 AND status IN ('pending', 'sending')
		AND subscriber_id > $3 AND ($4::timestamptz IS NULL OR updated_at < $4)
		ORDER BY subscriber_id LIMIT $5`, key, string(ch), afterID, older, limit).
		Query(func(rows pgx.Rows) error {
			var err error
			ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
			return err
		})
	if err := s.sendBatch(ctx, b, keysetPaging...); err != nil {
		return nil, fmt.Errorf("postgres: unfinished page: %w", err)
	}
	return ids, nil
}

// CountUnfinished counts the campaign's deliveries pending or sending.
func (s *Store) CountUnfinished(ctx context.Context, campaignID string) (int64, error) {
	key, ok := campaignKey(campaignID)
	if !ok {
		return 0, nil
	}
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM deliveries
		WHERE campaign_id = $1 AND status IN ('pending', 'sending')`, key).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: count unfinished: %w", err)
	}
	return n, nil
}

// applyReceiptSQL moves a delivery forward; the two statements below add
// which delivery: by the provider's message id, or by its key (taking the
// message id if it has none, refusing another). A receipt that names its
// delivery also finds it still sending: the worker records a batch's
// outcomes when the batch ends, and a fast receipt can come first (it
// then gives the delivery its provider).
var (
	applyReceiptSQL = `UPDATE deliveries SET status = $1,
			error_code = COALESCE(NULLIF($2, ''), error_code), updated_at = $3,
			sent_at = COALESCE(sent_at, $4), provider_message_id = $5,
			provider = COALESCE(provider, NULLIF($6, ''))
		WHERE ` + storesql.StatusRankSQL("status") + ` < $7`
	applyReceiptByMessageSQL = applyReceiptSQL + ` AND COALESCE(provider, '') = $6 AND provider_message_id = $5`
	applyReceiptByKeySQL     = applyReceiptSQL + ` AND campaign_id = $8 AND subscriber_id = $9 AND channel = $10
			AND (COALESCE(provider, '') = $6 OR (provider IS NULL AND status = 'sending'))
			AND (provider_message_id IS NULL OR provider_message_id = $5)`
)

// ApplyReceipt moves a delivery forward to its status, never back: the rank
// comparison sits in the update's condition, so a repeated or late receipt
// changes nothing. A receipt that names its delivery is a look-up of one
// key in one partition; one that does not is found by its message id.
func (s *Store) ApplyReceipt(ctx context.Context, r campaign.Receipt) (bool, error) {
	if r.MessageID == "" {
		return false, nil
	}
	at := r.At
	if at.IsZero() {
		at = nowMicro()
	}
	var sentAt any
	switch r.Status {
	case campaign.StatusSent, campaign.StatusDelivered, campaign.StatusUndelivered:
		sentAt = at
	}
	set := applyReceiptByMessageSQL
	args := []any{string(r.Status), r.ErrorCode, at, sentAt, r.MessageID, r.Provider, storesql.StatusRank(r.Status)}
	if k := r.Delivery; k != nil {
		key, ok := campaignKey(k.CampaignID)
		if !ok {
			return false, nil
		}
		set = applyReceiptByKeySQL
		args = append(args, key, k.SubscriberID, string(k.Channel))
	}
	tag, err := s.pool.Exec(ctx, set, args...)
	if err != nil {
		return false, fmt.Errorf("postgres: apply receipt: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// ownCampaign answers apperr.ErrNotFound unless the campaign is the tenant's.
func (s *Store) ownCampaign(ctx context.Context, tenantID, campaignID string) (string, error) {
	key, ok := campaignKey(campaignID)
	if !ok {
		return "", apperr.NotFound("campaign")
	}
	var one int
	err := s.pool.QueryRow(ctx, `SELECT 1 FROM campaigns WHERE id = $1 AND tenant_id = $2`,
		key, tenantID).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", apperr.NotFound("campaign")
	}
	if err != nil {
		return "", err
	}
	return key, nil
}

// DeliveryCounts summarises a campaign's deliveries in one pass over its
// partition (two when the campaign has more than one channel: the audience
// then needs the distinct subscribers).
func (s *Store) DeliveryCounts(ctx context.Context, tenantID, campaignID string) (campaign.Counts, error) {
	c := campaign.Counts{
		ByStatus:  make(map[campaign.Status]int64, len(campaign.AllStatuses)),
		BySkip:    map[campaign.SkipReason]int64{},
		ByChannel: map[campaign.Channel]int64{},
	}
	for _, st := range campaign.AllStatuses {
		c.ByStatus[st] = 0
	}
	key, err := s.ownCampaign(ctx, tenantID, campaignID)
	if err != nil {
		return c, err
	}
	rows, err := s.pool.Query(ctx, `SELECT status, COALESCE(skip_reason, ''), channel,
			count(*), COALESCE(sum(segments), 0)
		FROM deliveries WHERE campaign_id = $1 GROUP BY status, skip_reason, channel`, key)
	if err != nil {
		return c, fmt.Errorf("postgres: delivery counts: %w", err)
	}
	var (
		total   int64
		status  campaign.Status
		skip    campaign.SkipReason
		ch      campaign.Channel
		n, segs int64
	)
	_, err = pgx.ForEachRow(rows, []any{&status, &skip, &ch, &n, &segs}, func() error {
		c.ByStatus[status] += n
		if skip != "" {
			c.BySkip[skip] += n
		}
		c.ByChannel[ch] += n
		c.Segments += segs
		total += n
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("postgres: delivery counts: %w", err)
	}
	if len(c.ByChannel) <= 1 {
		c.Audience = total
		return c, nil
	}
	err = s.pool.QueryRow(ctx, `SELECT count(DISTINCT subscriber_id) FROM deliveries
		WHERE campaign_id = $1`, key).Scan(&c.Audience)
	if err != nil {
		return c, fmt.Errorf("postgres: delivery counts: %w", err)
	}
	return c, nil
}

// listDeliveriesSQL pages the deliveries of campaign $1 in the given
// statuses after id $2, $3 at most (see ListDeliveries).
func listDeliveriesSQL(statuses []campaign.Status) string {
	var q strings.Builder
	q.WriteString(`SELECT page.*, COALESCE((SELECT msisdn FROM subscribers WHERE id = page.subscriber_id), '')
		FROM (`)
	for i, st := range statuses {
		if i > 0 {
			q.WriteString(` UNION ALL `)
		}
		fmt.Fprintf(&q, `SELECT * FROM (SELECT `+deliveryColumns+` FROM deliveries AS d
			WHERE d.campaign_id = $1 AND d.status = '%s' AND d.id > $2 ORDER BY d.id LIMIT $3) AS s%d`, st, i)
	}
	q.WriteString(` ORDER BY id LIMIT $3) AS page ORDER BY page.id`)
	return q.String()
}

// ListDeliveries pages a campaign's deliveries by id, with each one's
// MSISDN. Each finished status is an ordered range of the index of finished
// deliveries; pending and sending ones are read from the index of unfinished
// deliveries (a set the backlog bounds) and sorted. Without a filter the
// statuses are merged (a Merge Append of at most limit rows each) and the
// page taken from the merge. Statuses are written into the statement as
// literals so that the planner can match each to its partial index.
func (s *Store) ListDeliveries(ctx context.Context, tenantID, campaignID string, status campaign.Status, afterID int64, limit int) ([]campaign.Delivery, error) {
	if limit <= 0 {
		limit = 100
	}
	key, err := s.ownCampaign(ctx, tenantID, campaignID)
	if err != nil {
		return nil, err
	}
	var statuses []campaign.Status
	for _, st := range campaign.AllStatuses { // literals from the enum only
		if status == "" || st == status {
			statuses = append(statuses, st)
		}
	}
	if len(statuses) == 0 {
		return nil, nil
	}
	args := []any{key, afterID, limit}
	var out []campaign.Delivery
	b := &pgx.Batch{}
	b.Queue(listDeliveriesSQL(statuses), args...).Query(func(rows pgx.Rows) error {
		var err error
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (campaign.Delivery, error) {
			var msisdn string
			d, err := scanDelivery(r, &msisdn)
			d.MSISDN = msisdn
			return d, err
		})
		return err
	})
	if err := s.sendBatch(ctx, b, keysetPaging...); err != nil {
		return nil, fmt.Errorf("postgres: list deliveries: %w", err)
	}
	return out, nil
}
