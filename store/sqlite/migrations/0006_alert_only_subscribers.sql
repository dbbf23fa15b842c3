-- A number an exposure alert reached that was not a subscriber yet becomes
-- one marked alert_only: it is never in a marketing audience, and when the
-- alert's contact list is purged it goes too, unless something else (an
-- import, a device, an install, an opt-out, another alert) has made it more
-- than an alert contact.
ALTER TABLE subscribers ADD COLUMN alert_only INTEGER NOT NULL DEFAULT 0;
