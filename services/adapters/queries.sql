-- The adapters' statements, each run by name (`SQL["..."]`) from services/adapters/.

-- name: database_exists
SELECT 1 FROM pg_database WHERE datname = %s

-- name: create_database
-- composed with psycopg.sql: the name is an identifier, which cannot be a parameter
CREATE DATABASE {}

-- name: migration_lock
-- held to the end of the transaction: two `orgsync migrate` at once run one after the other
SELECT pg_advisory_xact_lock(%s)

-- name: create_migrations_table
-- the runner's own bookkeeping, made before any migration runs, so it cannot be one of them
CREATE TABLE IF NOT EXISTS schema_migrations (
    version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())

-- name: applied_migrations
SELECT version FROM schema_migrations

-- name: record_migration
INSERT INTO schema_migrations (version) VALUES (%s)

-- name: claim_outbox_messages
-- SKIP LOCKED: two relays never claim the same row; delay_ms is what is left of deliver_at; a
-- held row waits for its organization's share (release_share)
SELECT id, message_id, queue_name, actor_name, payload,
       greatest(0, extract(epoch FROM deliver_at - now()) * 1000)::bigint AS delay_ms
FROM outbox
WHERE message_id = ANY(%s) AND NOT held AND sent_at IS NULL ORDER BY id FOR UPDATE SKIP LOCKED

-- name: claim_stale_outbox_messages
-- rows nobody relayed: their writer died between its commit and its relay
SELECT id, message_id, queue_name, actor_name, payload,
       greatest(0, extract(epoch FROM deliver_at - now()) * 1000)::bigint AS delay_ms
FROM outbox
WHERE created_at < now() - make_interval(secs => %s) AND NOT held AND sent_at IS NULL
ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED

-- name: mark_outbox_sent
-- published: a page stays, in flight, until its consumer finishes it (finish_outbox_message)
WITH gone AS (DELETE FROM outbox WHERE id = ANY(%(ids)s) AND org_id IS NULL)
UPDATE outbox SET sent_at = now() WHERE id = ANY(%(ids)s) AND org_id IS NOT NULL

-- name: outbox_shares
-- the (organization, queue, lane) of these rows, or of every row that waits for its share
SELECT DISTINCT org_id, queue_name, lane FROM outbox
WHERE org_id IS NOT NULL AND (message_id = ANY(%(ids)s) OR (%(every)s AND held))
ORDER BY org_id, queue_name, lane

-- name: lock_share
-- held to the end of the transaction: one relay at a time counts and releases a share
SELECT pg_advisory_xact_lock(hashtextextended(%s || '/' || %s || '/' || %s, 25))

-- name: release_share
-- the oldest held pages of one share become ready while fewer than `cap` of its pages are
-- ready or in flight (a page in flight longer than `expiry` seconds no longer counts)
UPDATE outbox SET held = false WHERE id IN (
    SELECT id FROM outbox
    WHERE held AND org_id = %(org)s AND queue_name = %(queue)s AND lane = %(lane)s
    ORDER BY id
    LIMIT greatest(0, %(cap)s - (
        SELECT count(*) FROM outbox
        WHERE NOT held AND org_id = %(org)s AND queue_name = %(queue)s AND lane = %(lane)s
          AND (sent_at IS NULL OR sent_at > now() - make_interval(secs => %(expiry)s)))))
RETURNING message_id

-- name: lock_outbox_message
-- waits for a relay still publishing it: a consumer can finish a message before the relay that
-- published it has committed, and a DELETE would skip the row it sees unsent without waiting
SELECT id FROM outbox WHERE message_id = %s FOR UPDATE

-- name: finish_outbox_message
-- its consumer is done with it: its share has room for the next (run after lock_outbox_message,
-- so that this statement sees the relay's commit)
DELETE FROM outbox WHERE message_id = %s AND sent_at IS NOT NULL
RETURNING org_id, queue_name, lane

-- name: forget_expired_outbox_messages
-- in flight for longer than RabbitMQ's own consumer timeout: lost with a dead-lettered or
-- purged message; the stalled-sync sweeper re-drives what it leaves behind
DELETE FROM outbox WHERE sent_at < now() - make_interval(secs => %s)

-- name: sealed_credentials
-- composed with psycopg.sql for each sealed table and its key column (keys.SEALED_COLUMNS);
-- the first parameter true reads every credential, to check that each one opens
SELECT {key} AS id, credentials_key_id, credentials FROM {table}
WHERE credentials IS NOT NULL AND (%s OR credentials_key_id <> %s)

-- name: stored_key_ids
-- the key ids the stored credentials are sealed under, with how many each: the keys that must
-- never be lost (what `orgsync keys generate` and `orgsync check` name)
SELECT credentials_key_id AS key_id, count(*) AS n FROM (
    SELECT credentials_key_id FROM organizations WHERE credentials IS NOT NULL
    UNION ALL
    SELECT credentials_key_id FROM accounts WHERE credentials IS NOT NULL
) sealed GROUP BY credentials_key_id ORDER BY credentials_key_id

-- name: reseal_credentials
-- composed like sealed_credentials; replaces a credential only if it is still what was read
UPDATE {table} SET credentials_key_id = %s, credentials = %s
WHERE {key} = %s AND credentials_key_id = %s AND credentials = %s

-- name: lock_budget
-- the organization's override is read with the row, so a changed one holds from the next call;
-- the time is PostgreSQL's, the one clock every process shares
SELECT b.rate, b.tokens, b.refilled_at AS at, b.run, b.run_since, b.calls, b.throttled,
       b.decreased_after, b.decreased_at, o.aws_rates AS override,
       extract(epoch FROM clock_timestamp())::float8 AS now
FROM aws_budgets b LEFT JOIN organizations o ON o.org_id = b.scope
WHERE b.scope = %s AND b.api = %s FOR UPDATE OF b

-- name: budget_rate_override
SELECT aws_rates FROM organizations WHERE org_id = %s

-- name: create_budget
-- two processes may create the same budget at once: the second one's row is dropped
INSERT INTO aws_budgets (scope, api, rate, tokens, refilled_at, run_since)
SELECT %s, %s, %s, %s, now, now FROM extract(epoch FROM clock_timestamp()) AS now
ON CONFLICT DO NOTHING

-- name: store_budget
UPDATE aws_budgets SET rate = %(rate)s, tokens = %(tokens)s, refilled_at = %(at)s, run = %(run)s,
    run_since = %(run_since)s,
    calls = %(calls)s, throttled = %(throttled)s, decreased_after = %(decreased_after)s,
    decreased_at = %(decreased_at)s,
    last_throttled_at = CASE WHEN %(throttled)s > throttled THEN now() ELSE last_throttled_at END
WHERE scope = %(scope)s AND api = %(api)s
