-- An Idempotency-Key's claim is done once its alert is whole: until then a
-- request sent again is told to try again (409), not answered the alert
-- (its creation may yet fail and cancel it). Claims made before this
-- column, and by a process not yet upgraded (which never marks one done),
-- count as done, as they did; a new claim sets it to 0 (ClaimRequestKey).
ALTER TABLE request_keys ADD COLUMN done INTEGER NOT NULL DEFAULT 1;
