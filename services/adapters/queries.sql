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

-- name: claim_unpublished_events
-- events for the exchange orgsync.changes, oldest first; two publishers never claim the same
SELECT seq, id, type, org_id, subject, data, at FROM outbound_events
WHERE published_at IS NULL ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED

-- name: mark_events_published
UPDATE outbound_events SET published_at = now() WHERE seq = ANY(%s)

-- name: fan_out_events
-- each new event becomes a delivery for every webhook whose organization and types it matches
WITH claimed AS (
    SELECT seq FROM outbound_events WHERE fanned_out_at IS NULL
    ORDER BY seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), marked AS (
    UPDATE outbound_events e SET fanned_out_at = now() FROM claimed c WHERE e.seq = c.seq
    RETURNING e.seq, e.type, e.org_id
)
INSERT INTO webhook_deliveries (webhook_id, event_seq)
SELECT w.webhook_id, m.seq FROM marked m JOIN webhooks w
    ON w.removed_at IS NULL AND (w.org_id IS NULL OR w.org_id = m.org_id)
   AND (w.types IS NULL OR m.type = ANY(w.types))
ON CONFLICT DO NOTHING

-- name: announce_completed_syncs
-- a sync is complete once walked with none of its accounts short of its last stage; the mode is
-- the syncs row's where it has one (issue 26), else full; the change feed's own sync never ends
WITH finished AS (
    SELECT s.sync_id FROM syncs s
    WHERE s.completed_at IS NULL AND s.walked_at IS NOT NULL AND s.trigger <> 'events'
      AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.sync_id = s.sync_id
                      AND a.stage IS DISTINCT FROM 'reconciled')
    FOR UPDATE SKIP LOCKED
), marked AS (
    UPDATE syncs s SET completed_at = now() FROM finished f WHERE s.sync_id = f.sync_id
    RETURNING s.*
)
INSERT INTO outbound_events (type, org_id, data)
SELECT 'orgsync.sync.completed', m.org_id, jsonb_build_object(
    'sync_id', m.sync_id, 'org_id', m.org_id, 'mode', coalesce(to_jsonb(m) ->> 'mode', 'full'),
    'trigger', m.trigger, 'complete', m.complete, 'error', m.error, 'held', m.held,
    'started_at', m.started_at, 'walked_at', m.walked_at, 'counts', m.counts,
    'statuses', (SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM (
        SELECT status, count(*) AS n FROM accounts WHERE sync_id = m.sync_id GROUP BY status) c))
FROM marked m
RETURNING seq

-- name: webhooks_with_due_deliveries
-- per webhook, the first due delivery found in webhook_deliveries_due ends the look
SELECT w.webhook_id FROM webhooks w
WHERE w.removed_at IS NULL AND EXISTS (
    SELECT 1 FROM webhook_deliveries d
    WHERE d.webhook_id = w.webhook_id AND d.state = 'pending' AND d.next_attempt_at <= now()
      AND (d.leased_until IS NULL OR d.leased_until < now()))

-- name: claim_due_deliveries
-- one webhook's due deliveries, oldest event first, leased while they are tried
UPDATE webhook_deliveries d SET leased_until = now() + make_interval(secs => %(lease)s)
FROM (SELECT delivery_id FROM webhook_deliveries
      WHERE webhook_id = %(webhook)s AND state = 'pending' AND next_attempt_at <= now()
        AND (leased_until IS NULL OR leased_until < now())
      ORDER BY event_seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED) due
WHERE d.delivery_id = due.delivery_id
RETURNING d.delivery_id, d.attempts, d.since, d.event_seq

-- name: events_by_seq
SELECT seq, id, type, org_id, subject, data, at FROM outbound_events WHERE seq = ANY(%s)

-- name: webhook_for_delivery
SELECT webhook_id, url, credentials_key_id, credentials FROM webhooks
WHERE webhook_id = %s AND removed_at IS NULL

-- name: record_delivered
UPDATE webhook_deliveries d SET state = 'delivered', attempts = attempts + 1,
    last_status = v.status, last_error = NULL, delivered_at = now(), leased_until = NULL
FROM unnest(%s::bigint[], %s::int[]) AS v(delivery_id, status)
WHERE d.delivery_id = v.delivery_id

-- name: record_failed_try
-- a failed try: again after `wait` seconds, or failed once `retry_for` seconds have passed since
-- the first try (or the redelivery)
UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = %(status)s,
    last_error = %(error)s, leased_until = NULL,
    state = CASE WHEN now() >= since + make_interval(secs => %(retry_for)s)
                 THEN 'failed' ELSE 'pending' END,
    next_attempt_at = now() + make_interval(secs => %(wait)s)
WHERE delivery_id = %(delivery)s

-- name: defer_untried
-- the rest of a batch whose receiver just failed: tried again with the failed one, uncounted
UPDATE webhook_deliveries SET leased_until = NULL,
    next_attempt_at = now() + make_interval(secs => %s)
WHERE delivery_id = ANY(%s)

-- name: forget_old_events
-- kept for `days` (a month), then gone with their deliveries, once no delivery of them waits
DELETE FROM outbound_events e
WHERE e.at < now() - make_interval(days => %s)
  AND e.published_at IS NOT NULL AND e.fanned_out_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_seq = e.seq
                  AND d.state = 'pending')
