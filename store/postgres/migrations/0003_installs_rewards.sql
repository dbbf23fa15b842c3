-- Installs, install counts by region, install-link clicks, campaign
-- budgets and the rewards ledger.

-- One row per install callback that was not a replay. The first install of
-- a number in a tenant counts (duplicate = false, at most one, enforced by
-- installs_counted_idx); later ones are kept as duplicates. A replay (the
-- same tenant, device, number and installed_at) is the same row, enforced by
-- installs_replay_key. region is the subscriber's at install time, for the
-- adoption report. No foreign keys: the hot path writes one row per
-- callback and the ids come from the store's own reads.
CREATE TABLE installs (
    id            uuid PRIMARY KEY,
    subscriber_id bigint,                  -- NULL: not one of the tenant's subscribers
    installed_at  timestamptz NOT NULL,
    received_at   timestamptz NOT NULL,
    attributed_at timestamptz,             -- when the attributed message was sent
    campaign_id   uuid,
    duplicate     boolean NOT NULL,
    tenant_id     text NOT NULL,
    msisdn        text NOT NULL,
    device_id     text NOT NULL,
    platform      text NOT NULL CHECK (platform IN ('android', 'ios')),
    region        text NOT NULL DEFAULT '',
    via           text NOT NULL CHECK (via IN ('referral', 'last_message', 'organic')),
    referral_code text,
    CONSTRAINT installs_replay_key UNIQUE (tenant_id, device_id, msisdn, installed_at)
);
CREATE UNIQUE INDEX installs_counted_idx ON installs (tenant_id, msisdn) WHERE NOT duplicate;
-- Campaign stats: counted installs attributed to a campaign.
CREATE INDEX installs_campaign_idx ON installs (campaign_id) WHERE campaign_id IS NOT NULL AND NOT duplicate;

-- Counted installs by region, kept by the install itself so that the
-- adoption report reads a few hundred rows, never tens of millions. Each
-- region's count is split over 64 shards (by number) so that concurrent
-- installs in one province do not queue on one row lock.
CREATE TABLE install_counts (
    tenant_id text NOT NULL,
    region    text NOT NULL,
    shard     smallint NOT NULL,
    installs  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, region, shard)
);

-- Clicks on install links, one row per (campaign, subscriber): a flood of
-- clicks on one link updates a counter rather than growing the table.
CREATE TABLE link_clicks (
    campaign_id   uuid NOT NULL,
    subscriber_id bigint NOT NULL,
    tenant_id     text NOT NULL,
    clicks        bigint NOT NULL DEFAULT 0,
    first_at      timestamptz NOT NULL,
    last_at       timestamptz NOT NULL,
    PRIMARY KEY (campaign_id, subscriber_id)
);

-- What each campaign has committed to rewards (pending and granted). A
-- reward debits one row in the same statement that records it, only while
-- spent_mb + data_mb <= budget_mb; the CHECK makes overspending impossible
-- whatever the code does. One row would serialise every reward of a
-- campaign on its row lock, held until commit (about 3,700 a second on the
-- reference machine), so the budget is split into up to 64 shards, each a
-- whole number of rewards, summing to the budget: a reward debits the shard
-- its install hashes to, or any other with room once that one is spent.
CREATE TABLE campaign_budgets (
    campaign_id uuid NOT NULL,
    shard       smallint NOT NULL,
    tenant_id   text NOT NULL,
    budget_mb   bigint NOT NULL CHECK (budget_mb >= 0),
    spent_mb    bigint NOT NULL DEFAULT 0 CHECK (spent_mb >= 0),
    CONSTRAINT campaign_budgets_within CHECK (spent_mb <= budget_mb),
    PRIMARY KEY (campaign_id, shard)
);

-- The ledger. install_id is the idempotency key (one reward per install);
-- at most one live (not rejected) reward per (campaign, subscriber) and
-- per (tenant, device). Rejected rewards are recorded too, outside those
-- two indexes. seq pages a tenant's listing.
CREATE TABLE rewards (
    seq           bigint GENERATED ALWAYS AS IDENTITY,
    id            uuid PRIMARY KEY,
    install_id    uuid NOT NULL,
    campaign_id   uuid NOT NULL,
    subscriber_id bigint NOT NULL,
    data_mb       bigint NOT NULL CHECK (data_mb > 0),
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    granted_at    timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    tenant_id     text NOT NULL,
    msisdn        text NOT NULL,
    device_id     text NOT NULL,
    state         text NOT NULL CHECK (state IN ('pending', 'granted', 'failed', 'rejected')),
    reason        text CHECK (reason IN ('budget_exhausted', 'already_rewarded',
                                         'device_already_rewarded', 'outside_window')),
    last_error    text,
    budget_shard  smallint,                -- the campaign_budgets row debited
    CONSTRAINT rewards_rejected_reason CHECK ((state = 'rejected') = (reason IS NOT NULL)),
    CONSTRAINT rewards_install_key UNIQUE (install_id)
);
CREATE UNIQUE INDEX rewards_campaign_subscriber_key ON rewards (campaign_id, subscriber_id)
    WHERE state <> 'rejected';
CREATE UNIQUE INDEX rewards_device_key ON rewards (tenant_id, device_id)
    WHERE state <> 'rejected';
-- The reconciler: pending rewards not touched for a while.
CREATE INDEX rewards_pending_idx ON rewards (updated_at) WHERE state = 'pending';
-- Listing (by tenant, optionally campaign and state) and campaign totals.
CREATE INDEX rewards_tenant_seq_idx ON rewards (tenant_id, seq);
CREATE INDEX rewards_campaign_state_idx ON rewards (campaign_id, state, seq);
