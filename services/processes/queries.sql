-- The processes' own statements, each run by name (`SQL["..."]`) from services/processes/
-- (the exporter's included). The stages' statements live with the stages, in pipelines/.

-- name: reject_message
INSERT INTO rejected_messages (queue_name, message_id, reason, body) VALUES (%s, %s, %s, %s)

-- name: organizations_due
-- an organization's own sync interval, else the setting's; and whether its change-event feed is
-- configured and answered lately (its sync can then be incremental: pipelines/resync.py)
SELECT o.org_id,
       o.events_queue_url IS NOT NULL AND EXISTS (
           SELECT 1 FROM feeds f WHERE f.org_id = o.org_id AND f.error IS NULL
           AND f.polled_at > now() - make_interval(secs => %(healthy)s)) AS feed_healthy
FROM organizations o
WHERE NOT EXISTS (
    SELECT 1 FROM syncs s WHERE s.org_id = o.org_id
    AND s.started_at > now() - make_interval(secs => coalesce(o.sync_interval_seconds,
                                                               %(interval)s)))
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

-- name: exporter_accounts
SELECT coalesce(c.org_id, '') AS org_id, coalesce(o.nickname, '') AS org, c.status, c.n
FROM (SELECT org_id, status, count(*) AS n FROM accounts GROUP BY org_id, status) c
LEFT JOIN organizations o USING (org_id)

-- name: exporter_waiting
-- accounts.stage is the last stage an account passed in its sync: it waits for the next one
-- (STAGES' waits_at); requests without a verdict wait for registration, unwalked syncs for
-- discovery
SELECT 'registration' AS waits_at, count(*) AS n,
       coalesce(extract(epoch FROM now() - min(received_at)), 0) AS oldest
FROM registrations WHERE decided_at IS NULL
UNION ALL
SELECT 'discovery', count(*), coalesce(extract(epoch FROM now() - min(started_at)), 0)
FROM (SELECT DISTINCT ON (org_id) started_at, walked_at FROM syncs
      ORDER BY org_id, started_at DESC) last
WHERE walked_at IS NULL
UNION ALL
SELECT stage, count(*), extract(epoch FROM now() - min(stage_at))
FROM accounts WHERE stage <> 'reconciled'
GROUP BY stage

-- name: exporter_last_syncs
-- pending: one pass over the partial index accounts_stage (only accounts on their way);
-- last_at: the index accounts_sync_stage_at
SELECT o.org_id, o.nickname AS org, extract(epoch FROM s.started_at) AS started,
       s.complete, s.counts, coalesce(p.pending, 0) AS pending,
       extract(epoch FROM CASE WHEN s.walked_at IS NULL OR p.pending > 0 THEN now()
                               ELSE greatest(s.walked_at, l.last_at) END - s.started_at)
           AS duration,
       (SELECT count(*) FROM syncs x WHERE x.org_id = o.org_id) AS syncs
FROM organizations o
JOIN LATERAL (SELECT * FROM syncs s WHERE s.org_id = o.org_id
              ORDER BY started_at DESC LIMIT 1) s ON true
LEFT JOIN (SELECT sync_id, count(*) AS pending FROM accounts WHERE stage <> 'reconciled'
           GROUP BY sync_id) p ON p.sync_id = s.sync_id
JOIN LATERAL (SELECT max(a.stage_at) AS last_at FROM accounts a
              WHERE a.sync_id = s.sync_id) l ON true

-- name: exporter_failed_accounts
SELECT coalesce(f.org_id, '') AS org_id, coalesce(o.nickname, '') AS org, f.code, count(*) AS n
FROM failures f JOIN accounts a USING (account_id) LEFT JOIN organizations o ON o.org_id = f.org_id
WHERE a.status = 'assume_role_failed'
GROUP BY 1, 2, 3

-- name: exporter_rejected_messages
SELECT queue_name AS queue, count(*) AS n FROM rejected_messages GROUP BY 1

-- name: exporter_budgets
SELECT b.scope AS org_id, coalesce(o.nickname, '') AS org, b.api, b.calls, b.throttled, b.rate
FROM aws_budgets b LEFT JOIN organizations o ON o.org_id = b.scope

-- name: exporter_webhooks
SELECT w.webhook_id, d.state, count(d.*) AS n,
       coalesce(extract(epoch FROM now() - min(d.since) FILTER (WHERE d.state = 'pending')), 0)
           AS oldest
FROM webhooks w LEFT JOIN webhook_deliveries d USING (webhook_id)
WHERE w.removed_at IS NULL GROUP BY 1, 2

-- name: exporter_events_unpublished
SELECT count(*) AS n FROM outbound_events WHERE published_at IS NULL

-- name: exporter_ping
-- /healthz: a round trip on the kept connection
SELECT 1
