-- The retention purge keeps a contact who is also a contact of another alert
-- (PurgeAlertContacts): it looks each contact up by subscriber. Without an
-- index that was a scan of every alert's contacts per contact, quadratic in
-- the contacts kept.
CREATE INDEX campaign_contacts_subscriber_idx ON campaign_contacts (subscriber_id);
