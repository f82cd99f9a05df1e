-- Issue 24: accounts.stage holds one of the stage marks (pipelines/account_state.py, StageMark)
-- or NULL (a standalone account, never in a sync), as accounts.status has held AccountStatus's
-- values since 0001. The code has only ever written these four, so existing rows satisfy it.
ALTER TABLE accounts ADD CONSTRAINT accounts_stage_check
    CHECK (stage IN ('discovered', 'validated', 'harvested', 'reconciled'));
