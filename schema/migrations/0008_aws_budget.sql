-- The AWS rate budget shared by every worker process and machine (services/budget.py): one row
-- per (scope, api), where scope is an organization id (its role's Organizations calls) or
-- 'service' (orgsync's own STS AssumeRole calls, which AWS counts against orgsync's account).
-- A call takes a token under the row's lock; tokens below zero are calls already promised a
-- later slot. `calls` numbers the tokens handed out: a throttled call lowers the rate only if
-- it was granted after the last decrease (`decreased_after`) and a second after it
-- (`decreased_at`), so one burst of throttling lowers it once. Times are PostgreSQL's clock, the one every machine shares.
CREATE TABLE aws_budgets (
    scope text NOT NULL,
    api text NOT NULL,
    rate double precision NOT NULL CHECK (rate > 0),
    tokens double precision NOT NULL,
    refilled_at double precision NOT NULL,
    run integer NOT NULL DEFAULT 0,
    run_since double precision NOT NULL DEFAULT 0,
    calls bigint NOT NULL DEFAULT 0,
    throttled bigint NOT NULL DEFAULT 0,
    decreased_after bigint NOT NULL DEFAULT 0,
    decreased_at double precision NOT NULL DEFAULT 0,
    last_throttled_at timestamptz,
    PRIMARY KEY (scope, api)
);
