-- Organizations change events (EventBridge -> SQS), read by `orgsync worker`'s stage `events`.

ALTER TABLE organizations ADD COLUMN events_queue_url text;  -- NULL: no feed

-- When a change event last made orgsync read the account from AWS again. An event older than
-- this (or than the start of the full sync the account belongs to) never overwrites it, and a
-- full walk that started before it does not count the account as unseen.
ALTER TABLE accounts ADD COLUMN feed_at timestamptz;

-- One row per organization whose queue has been read: what `orgsync orgs` shows of the feed.
-- `sync_id` is the feed's own sync, under which its accounts travel the stages; it is dated
-- 2000-01-01 so that it is never an organization's latest sync (nor holds off the scheduler).
CREATE TABLE feeds (
    org_id          text PRIMARY KEY REFERENCES organizations ON DELETE CASCADE,
    sync_id         uuid NOT NULL REFERENCES syncs ON DELETE CASCADE,
    handled         bigint NOT NULL DEFAULT 0,
    last_event_at   timestamptz,         -- eventTime of the newest event handled
    last_handled_at timestamptz,
    lag_seconds     double precision,    -- handled - eventTime, for the last event handled
    polled_at       timestamptz,
    error           text,                -- why the queue cannot be read now; NULL when it can
    error_since     timestamptz,
    retry_at        timestamptz
);

-- Every event handled, by its CloudTrail eventID (the SQS message id when the body has none):
-- a repeated eventID does nothing. outcome: applied, stale, ignored, rejected, failed.
CREATE TABLE change_events (
    org_id      text NOT NULL REFERENCES organizations ON DELETE CASCADE,
    event_id    text NOT NULL,
    event_name  text,
    event_time  timestamptz,
    outcome     text NOT NULL,
    reason      text,
    target      text,
    handled_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, event_id)
);
CREATE INDEX change_events_handled ON change_events (handled_at);
