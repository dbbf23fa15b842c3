-- Core tables: tenants, API keys, regions, subscribers, devices, lists.
--
-- Timestamps are TEXT in UTC, fixed width ('2006-01-02T15:04:05.000000Z'),
-- so that they sort and compare as text. Booleans are INTEGER 0/1.
-- Attributes are a JSON object in TEXT.
--
-- subscribers.id is the rowid (INTEGER PRIMARY KEY); every big table refers
-- to it. Audience fan-out walks subscribers by keyset (id > cursor) inside
-- one tenant and filter, hence the (tenant_id, region, id) and
-- (tenant_id, installed, id) indexes. As on PostgreSQL, subscribers and
-- list_members carry no foreign keys, so that imports stay cheap; the store
-- checks the tenant once per batch.

CREATE TABLE tenants (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    install_secret TEXT NOT NULL DEFAULT '',
    created_at     TEXT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'marketer', 'health', 'viewer')),
    hash       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

CREATE TABLE regions (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    code       TEXT NOT NULL,
    name       TEXT NOT NULL,
    population INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, code)
) WITHOUT ROWID;

CREATE TABLE subscribers (
    id           INTEGER PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    msisdn       TEXT NOT NULL,
    region       TEXT NOT NULL DEFAULT '',
    locale       TEXT NOT NULL DEFAULT 'vi' CHECK (locale IN ('vi', 'en')),
    attributes   TEXT NOT NULL DEFAULT '{}',
    opted_out    INTEGER NOT NULL DEFAULT 0,
    opted_out_at TEXT,
    installed    INTEGER NOT NULL DEFAULT 0,
    installed_at TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (tenant_id, msisdn)
);
CREATE INDEX subscribers_region_idx ON subscribers (tenant_id, region, id);
CREATE INDEX subscribers_installed_idx ON subscribers (tenant_id, installed, id);

CREATE TABLE devices (
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    platform      TEXT NOT NULL CHECK (platform IN ('fcm', 'apns')),
    token         TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    UNIQUE (subscriber_id, platform, token)
);
CREATE INDEX devices_token_idx ON devices (platform, token);

CREATE TABLE lists (
    id         INTEGER PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE list_members (
    list_id       INTEGER NOT NULL,
    subscriber_id INTEGER NOT NULL,
    PRIMARY KEY (list_id, subscriber_id)
) WITHOUT ROWID;
CREATE INDEX list_members_subscriber_idx ON list_members (subscriber_id);
