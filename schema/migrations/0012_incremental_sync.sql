-- Incremental re-syncs (issue 26): a sync has a mode, and records per stage how many accounts
-- it sent down and why; an account remembers when it was last validated and when its tags were
-- last read, so an incremental sync sends down only what changed or has grown old.
-- Accounts stored before this migration have neither time: their next incremental sync
-- validates and harvests them once, as a full sync would.

ALTER TABLE syncs
    ADD COLUMN mode text NOT NULL DEFAULT 'full' CHECK (mode IN ('full', 'incremental')),
    ADD COLUMN sent jsonb NOT NULL DEFAULT '{}';

ALTER TABLE accounts
    ADD COLUMN validated_at timestamptz,
    ADD COLUMN tags_read_at timestamptz;
