-- Templates, campaigns, alert contacts, deliveries and the audit trail.
-- Times are TEXT in one fixed-width UTC form, 2006-01-02T15:04:05.000000Z,
-- so that they sort and compare as strings; JSON is TEXT.

CREATE TABLE templates (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    name          TEXT NOT NULL,
    channel       TEXT NOT NULL CHECK (channel IN ('sms', 'push')),
    locale        TEXT NOT NULL,
    body          TEXT NOT NULL,
    title         TEXT NOT NULL DEFAULT '',
    data          TEXT,
    transliterate INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL
);

CREATE TABLE campaigns (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    name              TEXT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('install_promotion', 'exposure_alert')),
    channels          TEXT NOT NULL,
    templates         TEXT NOT NULL DEFAULT '{}',
    audience          TEXT NOT NULL DEFAULT '{}',
    push_fallback_sms INTEGER NOT NULL DEFAULT 0,
    rate_per_second   INTEGER NOT NULL DEFAULT 0,
    start_at          TEXT,
    end_by            TEXT,
    reward            TEXT,
    state             TEXT NOT NULL DEFAULT 'draft'
                      CHECK (state IN ('draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled')),
    -- fan-out resumes after the last subscriber id it wrote
    fanout_cursor     INTEGER NOT NULL DEFAULT 0,
    fanout_done       INTEGER NOT NULL DEFAULT 0,
    created_by        TEXT NOT NULL DEFAULT '',
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    started_at        TEXT,
    finished_at       TEXT
);
CREATE INDEX campaigns_tenant_created_idx ON campaigns (tenant_id, created_at DESC);
CREATE INDEX campaigns_state_start_idx ON campaigns (state, start_at);

-- The audience of an exposure alert: the contacts a health authority named.
CREATE TABLE campaign_contacts (
    campaign_id   TEXT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    subscriber_id INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, subscriber_id)
) WITHOUT ROWID;

-- Deliveries: one row per recipient and channel. No foreign keys: rows are
-- written in bulk from the store's own audience pages. tenant_id and
-- kind_marketing are copied from the campaign so the frequency-cap query
-- needs no join. Empty strings are stored as NULL, out of the partial indexes.
CREATE TABLE deliveries (
    id                  INTEGER PRIMARY KEY,
    tenant_id           TEXT NOT NULL,
    campaign_id         TEXT NOT NULL,
    subscriber_id       INTEGER NOT NULL,
    channel             TEXT NOT NULL CHECK (channel IN ('sms', 'push')),
    status              TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'sending', 'sent', 'delivered', 'failed',
                                          'undelivered', 'unknown', 'skipped')),
    skip_reason         TEXT,
    provider            TEXT,
    provider_message_id TEXT,
    error_code          TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    segments            INTEGER NOT NULL DEFAULT 0,
    referral_code       TEXT,
    kind_marketing      INTEGER NOT NULL,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    sent_at             TEXT,
    UNIQUE (campaign_id, subscriber_id, channel)
);
-- Listing by id (the rowid, implicitly the last column of every index),
-- filtered by status or not, and the report counts.
CREATE INDEX deliveries_campaign_status_idx ON deliveries (campaign_id, status);
-- The reconciler and completion checks: only the unfinished deliveries.
CREATE INDEX deliveries_unfinished_idx ON deliveries (campaign_id, channel, subscriber_id)
    WHERE status IN ('pending', 'sending');
CREATE INDEX deliveries_provider_message_idx ON deliveries (provider_message_id)
    WHERE provider_message_id IS NOT NULL;
CREATE INDEX deliveries_marketing_sent_idx ON deliveries (subscriber_id, sent_at)
    WHERE kind_marketing AND sent_at IS NOT NULL;
CREATE INDEX deliveries_referral_idx ON deliveries (referral_code)
    WHERE referral_code IS NOT NULL;

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    object_type TEXT NOT NULL DEFAULT '',
    object_id   TEXT NOT NULL DEFAULT '',
    details     TEXT,
    at          TEXT NOT NULL
);
CREATE INDEX audit_log_tenant_at_idx ON audit_log (tenant_id, at);
