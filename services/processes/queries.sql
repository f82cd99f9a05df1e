-- The processes' own statements, each run by name (`SQL["..."]`) from services/processes/.
-- The stages' statements live with the stages, in pipelines/; feed_poller.py and actors.py keep
-- theirs inline for now.

-- name: reject_message
INSERT INTO rejected_messages (queue_name, message_id, reason, body) VALUES (%s, %s, %s, %s)

-- name: organizations_due
-- an organization's own sync interval, else the setting's
SELECT o.org_id FROM organizations o
WHERE NOT EXISTS (
    SELECT 1 FROM syncs s WHERE s.org_id = o.org_id
    AND s.started_at > now() - make_interval(secs => coalesce(o.sync_interval_seconds, %s)))
ORDER BY o.org_id

-- name: scheduler_lock
-- a session lock: a scheduler that dies releases it with its connection
SELECT pg_try_advisory_lock(%s) AS ok

-- name: demo_badge_changes
SELECT account_id, key, action, old_value, new_value FROM badge_history
WHERE sync_id = %s ORDER BY account_id, key

-- name: demo_syncs_started
-- the feed's standing sync (trigger 'events', one per organization) is not a sync started
SELECT count(*) AS n FROM syncs WHERE trigger <> 'events'

-- name: demo_badge
SELECT value FROM badges WHERE account_id = %s AND key = 'env' AND value = %s
