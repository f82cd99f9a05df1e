-- Pages of accounts between stages: the accounts of a page that AWS answered with a transient
-- error go round again as a smaller page, published to the stage's delay queue so it comes
-- back after a jittered wait. The outbox keeps when that is, so a row relayed late (by the
-- sweeper, after a crash) still waits no longer than it should.
ALTER TABLE outbox ADD COLUMN deliver_at timestamptz;
