-- The Idempotency-Key of a POST /v1/alerts: a request sent again (a client's
-- timeout, a double click) answers the alert the first one created instead
-- of warning every contact twice. A key is honoured for a day
-- (ClaimRequestKey); request_hash tells a retry from another request
-- reusing the key.
CREATE TABLE request_keys (
    tenant_id    TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    campaign_id  TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
