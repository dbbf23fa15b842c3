-- A granted reward's confirmation SMS is due until it is sent or given up
-- for good. The ledger, not the queue, remembers it: a confirmation whose
-- task was lost (a restarted server's in-process Redis) is queued again by
-- the reconciler. It used to be lost for good.
ALTER TABLE rewards ADD COLUMN confirm_due INTEGER NOT NULL DEFAULT 0;
CREATE INDEX rewards_confirm_due_idx ON rewards (updated_at) WHERE confirm_due;
