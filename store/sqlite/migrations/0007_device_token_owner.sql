-- A push token identifies one app install on one phone, so within a tenant
-- it belongs to one subscriber, on one platform: registering it for
-- another number (the phone changed hands, the app was reinstalled under
-- another number) takes it away from the old one, or an exposure alert
-- would reach someone else's phone.
--
-- devices gets its subscriber's tenant (a subscriber never changes tenant)
-- so that a unique index can hold that rule; the store upserts on it.
-- SQLite cannot add a NOT NULL column without a default, so the table is
-- rebuilt; existing duplicates are left behind on the way, keeping the
-- most recently created registration of each token. The (tenant_id, token)
-- index serves every token look-up, so the (platform, token) index goes.
CREATE TABLE devices_new (
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    platform      TEXT NOT NULL CHECK (platform IN ('fcm', 'apns')),
    token         TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    UNIQUE (subscriber_id, platform, token)
);

INSERT INTO devices_new (subscriber_id, platform, token, created_at, tenant_id)
SELECT subscriber_id, platform, token, created_at, tenant_id FROM (
    SELECT d.subscriber_id, d.platform, d.token, d.created_at, s.tenant_id,
           row_number() OVER (PARTITION BY s.tenant_id, d.token
                              ORDER BY d.created_at DESC, d.rowid DESC) AS n
    FROM devices d JOIN subscribers s ON s.id = d.subscriber_id)
WHERE n = 1;

DROP TABLE devices;
ALTER TABLE devices_new RENAME TO devices;
CREATE UNIQUE INDEX devices_tenant_token_key ON devices (tenant_id, token);
