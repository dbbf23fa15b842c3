-- A push token identifies one app install on one phone, so within a tenant
-- it belongs to one subscriber, on one platform: registering it for
-- another number (the phone changed hands, the app was reinstalled under
-- another number) takes it away from the old one, or an exposure alert
-- would reach someone else's phone.
--
-- devices gets its subscriber's tenant (a subscriber never changes tenant)
-- so that a unique index can hold that rule; the store upserts on it.
-- Existing duplicates are removed first, keeping the most recently
-- created registration of each token. The (tenant_id, token) index serves
-- every token look-up, so the (platform, token) index goes.
ALTER TABLE devices ADD COLUMN tenant_id text;

UPDATE devices d SET tenant_id = s.tenant_id
FROM subscribers s WHERE s.id = d.subscriber_id;

DELETE FROM devices d
USING (SELECT ctid, row_number() OVER (PARTITION BY tenant_id, token
                                       ORDER BY created_at DESC, subscriber_id DESC, platform DESC) AS n
       FROM devices) dup
WHERE d.ctid = dup.ctid AND dup.n > 1;

ALTER TABLE devices ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE devices ADD CONSTRAINT devices_tenant_token_key UNIQUE (tenant_id, token);
DROP INDEX devices_token_idx;
