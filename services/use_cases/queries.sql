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
RETURNING webhook_id, org_id, url

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
RETURNING d.delivery_id, d.webhook_id, w.org_id

-- name: add_grant
INSERT INTO access_grants (group_name, role, org_id) VALUES (%s, %s, %s)
ON CONFLICT (group_name, coalesce(org_id, '')) DO UPDATE SET role = EXCLUDED.role
RETURNING group_name

-- name: list_grants
SELECT g.group_name AS "group", g.role, g.org_id, o.nickname AS org_nickname, g.created_at
FROM access_grants g LEFT JOIN organizations o USING (org_id)
ORDER BY g.group_name, g.org_id NULLS FIRST

-- name: remove_grant
DELETE FROM access_grants WHERE group_name = %s AND coalesce(org_id, '') = coalesce(%s, '')
RETURNING role

-- name: add_token
INSERT INTO api_tokens (name, digest, role, org_id, expires_at)
VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s))
ON CONFLICT (name) DO NOTHING RETURNING expires_at

-- name: list_tokens
SELECT t.name, t.role, t.org_id, o.nickname AS org_nickname, t.created_at, t.expires_at,
       t.expires_at <= now() AS expired, t.last_used_at
FROM api_tokens t LEFT JOIN organizations o USING (org_id) ORDER BY t.name

-- name: revoke_token
DELETE FROM api_tokens WHERE name = %s RETURNING name

-- name: token_by_digest
-- the token's row once it is used; last_used_at moves at most once a minute, so a dashboard
-- polling every second does not write a row a second
UPDATE api_tokens SET last_used_at = now()
WHERE digest = %s AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
RETURNING name, role, org_id, expires_at <= now() AS expired

-- name: token_by_digest_read
SELECT name, role, org_id, expires_at <= now() AS expired FROM api_tokens WHERE digest = %s

-- name: void_group_sessions
-- a grant removed: its group's members sign in again, with what their grants are now
UPDATE web_users SET version = version + 1 WHERE %s = ANY(groups)

-- name: start_session
INSERT INTO web_users AS u (subject, name, groups, signed_in_at) VALUES (%s, %s, %s, now())
ON CONFLICT (subject) DO UPDATE SET name = EXCLUDED.name, groups = EXCLUDED.groups,
                                    signed_in_at = now()
RETURNING version

-- name: session_user
-- a session's user, if its version still holds, and the grants of the user's groups
SELECT u.name, coalesce((SELECT jsonb_agg(jsonb_build_object('role', g.role, 'org_id', g.org_id))
                         FROM access_grants g WHERE g.group_name = ANY(u.groups)), '[]') AS grants
FROM web_users u WHERE u.subject = %s AND u.version = %s

-- name: end_session
UPDATE web_users SET version = version + 1 WHERE subject = %s AND version = %s

-- name: reserve_sign_in
-- one more attempt on each key, counted before the password is checked: a fixed window per key
-- that starts again once it has passed
INSERT INTO sign_in_limits AS l (key, attempts, window_start, window_seconds)
SELECT k, 1, now(), w FROM unnest(%(keys)s::text[], %(windows)s::float8[]) AS t(k, w)
ON CONFLICT (key) DO UPDATE SET
    attempts = CASE WHEN l.window_start <= now() - make_interval(secs => l.window_seconds)
                    THEN 1 ELSE l.attempts + 1 END,
    window_start = CASE WHEN l.window_start <= now() - make_interval(secs => l.window_seconds)
                        THEN now() ELSE l.window_start END,
    window_seconds = EXCLUDED.window_seconds
RETURNING key, attempts,
          extract(epoch FROM window_start + make_interval(secs => window_seconds) - now())
              AS seconds_left

-- name: clear_sign_in
DELETE FROM sign_in_limits WHERE key = ANY(%s)
