-- Installs, install counts by region, install-link clicks, campaign
-- budgets and the rewards ledger (see the PostgreSQL migration for the
-- reasoning). Times are TEXT in the fixed-width UTC form
-- 2006-01-02T15:04:05.000000Z; booleans INTEGER 0/1. Every write of the
-- ledger runs in one IMMEDIATE transaction (the store opens them so), which
-- SQLite serialises: that is what keeps a budget from being overspent.

CREATE TABLE installs (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    subscriber_id INTEGER,
    msisdn        TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    platform      TEXT NOT NULL CHECK (platform IN ('android', 'ios')),
    installed_at  TEXT NOT NULL,
    received_at   TEXT NOT NULL,
    attributed_at TEXT,
    campaign_id   TEXT,
    duplicate     INTEGER NOT NULL,
    region        TEXT NOT NULL DEFAULT '',
    via           TEXT NOT NULL CHECK (via IN ('referral', 'last_message', 'organic')),
    referral_code TEXT,
    UNIQUE (tenant_id, device_id, msisdn, installed_at)
);
CREATE UNIQUE INDEX installs_counted_idx ON installs (tenant_id, msisdn) WHERE NOT duplicate;
CREATE INDEX installs_campaign_idx ON installs (campaign_id) WHERE campaign_id IS NOT NULL AND NOT duplicate;

CREATE TABLE install_counts (
    tenant_id TEXT NOT NULL,
    region    TEXT NOT NULL,
    installs  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, region)
) WITHOUT ROWID;

CREATE TABLE link_clicks (
    campaign_id   TEXT NOT NULL,
    subscriber_id INTEGER NOT NULL,
    tenant_id     TEXT NOT NULL,
    clicks        INTEGER NOT NULL DEFAULT 0,
    first_at      TEXT NOT NULL,
    last_at       TEXT NOT NULL,
    PRIMARY KEY (campaign_id, subscriber_id)
) WITHOUT ROWID;

CREATE TABLE campaign_budgets (
    campaign_id TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    budget_mb   INTEGER NOT NULL CHECK (budget_mb >= 0),
    spent_mb    INTEGER NOT NULL DEFAULT 0 CHECK (spent_mb >= 0),
    CHECK (spent_mb <= budget_mb)
) WITHOUT ROWID;

CREATE TABLE rewards (
    seq           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    install_id    TEXT NOT NULL UNIQUE,
    tenant_id     TEXT NOT NULL,
    campaign_id   TEXT NOT NULL,
    subscriber_id INTEGER NOT NULL,
    msisdn        TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    data_mb       INTEGER NOT NULL CHECK (data_mb > 0),
    state         TEXT NOT NULL CHECK (state IN ('pending', 'granted', 'failed', 'rejected')),
    reason        TEXT CHECK (reason IN ('budget_exhausted', 'already_rewarded',
                                         'device_already_rewarded', 'outside_window')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    granted_at    TEXT,
    CHECK ((state = 'rejected') = (reason IS NOT NULL))
);
CREATE UNIQUE INDEX rewards_campaign_subscriber_key ON rewards (campaign_id, subscriber_id)
    WHERE state <> 'rejected';
CREATE UNIQUE INDEX rewards_device_key ON rewards (tenant_id, device_id)
    WHERE state <> 'rejected';
CREATE INDEX rewards_pending_idx ON rewards (updated_at) WHERE state = 'pending';
CREATE INDEX rewards_tenant_seq_idx ON rewards (tenant_id, seq);
CREATE INDEX rewards_campaign_state_idx ON rewards (campaign_id, state, seq);
