-- Issue 25: each organization's pages leave the outbox a few at a time per queue and lane
-- (services/adapters/relay.py), so RabbitMQ's FIFO never holds more than that share of one
-- organization ahead of another's, and a page's row stays until its consumer has finished with
-- it: held (waiting for its organization's share), ready (to publish), sent (in flight).
-- Rows without an organization (none today) are published and deleted as before.
ALTER TABLE outbox
    ADD COLUMN org_id text,
    ADD COLUMN lane text NOT NULL DEFAULT 'bulk' CHECK (lane IN ('live', 'bulk')),
    ADD COLUMN held boolean NOT NULL DEFAULT false,
    ADD COLUMN sent_at timestamptz;
CREATE INDEX outbox_share ON outbox (org_id, queue_name, lane, id) WHERE org_id IS NOT NULL;
