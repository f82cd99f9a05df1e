-- Issue 18: a complete walk that would remove more than a set share of an organization's
-- accounts removes nothing; its sync is held with the reason, until a sync started with
-- `orgsync sync ORG --confirm-removals`.
ALTER TABLE syncs ADD COLUMN held text;
ALTER TABLE syncs ADD COLUMN confirm_removals boolean NOT NULL DEFAULT false;
