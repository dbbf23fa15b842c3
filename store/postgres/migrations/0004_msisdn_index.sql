-- Inbound SMS (STOP, START) and delivery receipts name a phone, not a
-- tenant: find a number across tenants without a scan.
CREATE INDEX IF NOT EXISTS subscribers_msisdn_idx ON subscribers (msisdn);
