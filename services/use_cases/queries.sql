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
