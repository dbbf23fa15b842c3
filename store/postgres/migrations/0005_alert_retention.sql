-- Exposure-alert contact lists are health data: after the retention period
-- the link from an alert's deliveries to people is cut, leaving counts.
ALTER TABLE campaigns ADD COLUMN contacts_purged_at timestamptz;
