-- A reward that failed for good (the carrier refused it: nothing was
-- credited, and its MB went back to the budget) no longer holds its
-- subscriber's place in the campaign or its device's in the tenant: "at
-- most one reward per (campaign, subscriber) and per device" counts the
-- rewards that are, or may yet be, credited. A failed reward used to
-- keep another subscriber installing on the same phone from ever being
-- rewarded (device_already_rewarded, with nothing granted).
DROP INDEX rewards_campaign_subscriber_key;
CREATE UNIQUE INDEX rewards_campaign_subscriber_key ON rewards (campaign_id, subscriber_id)
    WHERE state IN ('pending', 'granted');
DROP INDEX rewards_device_key;
CREATE UNIQUE INDEX rewards_device_key ON rewards (tenant_id, device_id)
    WHERE state IN ('pending', 'granted');
