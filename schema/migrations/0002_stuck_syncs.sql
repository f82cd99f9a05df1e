-- The stuck-sync sweeper (pipelines/stuck.py): when it last re-drove a sync, and how often,
-- so a stalled sync is re-driven at most once per bound; and an index to find a sync's
-- latest movement without scanning every account.
ALTER TABLE syncs ADD COLUMN redriven_at timestamptz;
ALTER TABLE syncs ADD COLUMN redrives integer NOT NULL DEFAULT 0;
CREATE INDEX accounts_sync_stage_at ON accounts (sync_id, stage_at);
