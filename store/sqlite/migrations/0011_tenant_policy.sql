-- A tenant's own marketing compliance settings over the deployment's
-- defaults (time zone, send window, frequency cap, label, opt-out text):
-- carriers sharing a deployment each have their own opt-out short code.
-- '{}' keeps every default.
ALTER TABLE tenants ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
