-- A STOP (an inbound opt-out keyword, or the provider's "unsubscribed
-- recipient" error) names a phone, not a tenant, and may come before any
-- tenant holds the number. It is kept by number: a subscriber created for
-- the number later, by an import or an alert, starts opted out. A START
-- removes it. It used to be lost: the number, imported after, was
-- marketed to.
CREATE TABLE number_opt_outs (
    msisdn       text PRIMARY KEY,
    opted_out_at timestamptz NOT NULL DEFAULT now()
);
