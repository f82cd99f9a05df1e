-- The use cases' own statements, each run by name (`SQL["..."]`) from services/use_cases/.

-- name: server_version
SHOW server_version

-- name: migrations_table
SELECT to_regclass('schema_migrations') AS t

-- name: applied_migrations
SELECT version FROM schema_migrations

-- name: member_account_to_check
-- a member account to assume the member role in: one that worked before, if any
SELECT account_id FROM accounts WHERE org_id = %s AND status <> 'removed'
AND account_id <> %s ORDER BY status = 'ok' DESC, account_id LIMIT 1

-- name: feed_error
SELECT error FROM feeds WHERE org_id = %s

-- name: add_standalone_account
INSERT INTO accounts (account_id, org_id, name, status, managed_by_org, credentials_key_id,
                      credentials)
VALUES (%s, NULL, %s, 'pending', false, %s, %s)
ON CONFLICT (account_id) DO NOTHING RETURNING account_id

-- name: set_standalone_credentials
-- an account whose organization was deleted becomes standalone with its new role
UPDATE accounts SET credentials_key_id = %s, credentials = %s, managed_by_org = false,
                    updated_at = now()
WHERE account_id = %s

-- name: delete_standalone_account
DELETE FROM accounts WHERE account_id = %s

-- name: lock_account_and_its_organization
SELECT a.org_id, o.nickname FROM accounts a LEFT JOIN organizations o USING (org_id)
WHERE a.account_id = %s FOR UPDATE OF a

-- name: latest_sync
SELECT sync_id::text AS id FROM syncs WHERE org_id = %s ORDER BY started_at DESC LIMIT 1

-- name: add_webhook
INSERT INTO webhooks (webhook_id, url, org_id, types, credentials_key_id, credentials)
VALUES (%s, %s, %s, %s, %s, %s)

-- name: list_webhooks
-- what is kept of each webhook's deliveries, by state, beside it; never its secret
SELECT w.webhook_id, w.url, w.org_id, w.types, w.created_at,
       count(d.*) FILTER (WHERE d.state = 'pending') AS pending,
       count(d.*) FILTER (WHERE d.state = 'delivered') AS delivered,
       count(d.*) FILTER (WHERE d.state = 'failed') AS failed,
       max(d.delivered_at) AS last_delivered_at
FROM webhooks w LEFT JOIN webhook_deliveries d USING (webhook_id)
WHERE w.removed_at IS NULL AND (%(org)s::text IS NULL OR w.org_id = %(org)s)
GROUP BY w.webhook_id ORDER BY w.created_at, w.webhook_id

-- name: remove_webhook
-- kept, removed, with its deliveries: `webhooks deliveries` still shows what it was sent
UPDATE webhooks SET removed_at = now() WHERE webhook_id = %s AND removed_at IS NULL
RETURNING webhook_id

-- name: webhook_exists
SELECT webhook_id, org_id FROM webhooks WHERE webhook_id = %s

-- name: webhook_deliveries
SELECT d.delivery_id, e.id::text AS event_id, e.type, e.subject, d.state, d.attempts,
       d.last_status, d.last_error, d.since, d.next_attempt_at, d.delivered_at
FROM webhook_deliveries d JOIN outbound_events e ON e.seq = d.event_seq
WHERE d.webhook_id = %(webhook)s AND (%(state)s::text IS NULL OR d.state = %(state)s)
ORDER BY d.event_seq DESC LIMIT %(limit)s

-- name: redeliver
-- the same event (same id, same body) once more, with a fresh retry window
UPDATE webhook_deliveries d SET state = 'pending', next_attempt_at = now(), since = now(),
    leased_until = NULL
FROM webhooks w
WHERE d.delivery_id = %s AND w.webhook_id = d.webhook_id AND w.removed_at IS NULL
RETURNING d.delivery_id, d.webhook_id
