-- Every statement the stages of pipelines/ run, by name (pipelines/sql.py reads this file; each
-- module holds `SQL = load("orgsync.pipelines")` and runs `SQL["<name>"]`). In the order of a
-- sync: the organization and the event's references, discovery, validation, harvesting, the
-- reconciler and hand edits of badges, the change-event feed, the stuck-sync sweeper, the outbox.
-- Values are always parameters; the literals below are accounts.status and accounts.stage
-- values (pipelines/account_state.py), which migrations 0001 and 0010 CHECK.

-- name: decided_verdict
SELECT request_id, org_id, accepted, reasons, warnings FROM registrations
WHERE request_id = %s AND decided_at IS NOT NULL

-- name: record_verdict
-- a redelivered request finds the first verdict; the second is not stored
INSERT INTO registrations
    (request_id, org_id, kind, request, decided_at, accepted, reasons, warnings, request_digest)
VALUES (%s, %s, %s, %s, now(), %s, %s, %s, %s)
ON CONFLICT (request_id) DO NOTHING

-- name: lock_registration
-- one decision per organization at a time: two requests for it never interleave their writes
SELECT pg_advisory_xact_lock(hashtext('registration:' || %s))

-- name: store_organization
INSERT INTO organizations (org_id, nickname, management_account_id, partition,
                           credentials_key_id, credentials, exclude_prefixes,
                           auto_remove_suspended, auto_badge, limit_ou_ids,
                           sync_interval_seconds, events_queue_url, aws_rates)
VALUES (%(org_id)s, %(nickname)s, %(management_account_id)s, %(partition)s, %(key_id)s,
        %(credentials)s, %(exclude_prefixes)s, %(auto_remove_suspended)s, %(auto_badge)s,
        %(limit_ou_ids)s, %(sync_interval_seconds)s, %(events_queue_url)s, %(aws_rates)s)
ON CONFLICT (org_id) DO UPDATE SET
    nickname = EXCLUDED.nickname, management_account_id = EXCLUDED.management_account_id,
    partition = EXCLUDED.partition, credentials_key_id = EXCLUDED.credentials_key_id,
    credentials = EXCLUDED.credentials, exclude_prefixes = EXCLUDED.exclude_prefixes,
    auto_remove_suspended = EXCLUDED.auto_remove_suspended, auto_badge = EXCLUDED.auto_badge,
    limit_ou_ids = EXCLUDED.limit_ou_ids, sync_interval_seconds = EXCLUDED.sync_interval_seconds,
    events_queue_url = EXCLUDED.events_queue_url, aws_rates = EXCLUDED.aws_rates,
    updated_at = now()

-- name: start_sync
INSERT INTO syncs (sync_id, org_id, trigger, confirm_removals, mode) VALUES (%s, %s, %s, %s, %s)

-- name: sync_mode
SELECT mode FROM syncs WHERE sync_id = %s

-- name: load_organization
SELECT org_id, nickname, partition, management_account_id, credentials_key_id, credentials,
       exclude_prefixes, auto_remove_suspended, auto_badge, limit_ou_ids, sync_interval_seconds,
       events_queue_url, aws_rates
FROM organizations WHERE org_id = %s

-- name: resolve_org_id
-- an id wins over a nickname that happens to spell another organization's id
SELECT org_id FROM organizations WHERE org_id = %s OR lower(nickname) = lower(%s)
ORDER BY org_id = %s DESC LIMIT 1

-- name: other_nicknames
SELECT org_id, nickname FROM organizations WHERE org_id IS DISTINCT FROM %s

-- name: stored_request_digest
SELECT request_digest FROM registrations WHERE request_id = %s

-- name: look_up_references
-- one round trip: whether the event's organization, sync and accounts exist, and which of its
-- accounts still wait at the stage (with their stored tags)
SELECT EXISTS (SELECT 1 FROM organizations WHERE org_id = %(org)s) AS org,
       (SELECT org_id FROM syncs WHERE sync_id = %(sync)s::uuid) AS sync_org,
       ARRAY(SELECT account_id FROM accounts
             WHERE account_id = ANY(%(ids)s) AND org_id = %(org)s) AS known,
       (SELECT coalesce(jsonb_object_agg(account_id, tags), '{}') FROM accounts
        WHERE account_id = ANY(%(ids)s) AND org_id = %(org)s
          AND sync_id = %(sync)s::uuid AND stage = %(stage)s) AS due

-- name: stored_accounts
-- a walk's page of accounts as stored (pipelines/resync.py decides from it what the sync sends),
-- locked in one order until the page is stored; the ages are judged by the database's clock
SELECT account_id, org_id, name, email, aws_state, org_path, parent_id, status, stage,
       sync_id::text AS sync_id,
       coalesce(validated_at < now() - make_interval(secs => %(revalidate)s), true)
           AS validation_old,
       coalesce(tags_read_at < now() - make_interval(secs => %(reharvest)s), true) AS tags_old
FROM accounts WHERE account_id = ANY(%(ids)s) ORDER BY account_id FOR UPDATE

-- name: lock_sync_sent
SELECT sent FROM syncs WHERE sync_id = %s FOR UPDATE

-- name: set_sync_sent
UPDATE syncs SET sent = %s WHERE sync_id = %s

-- name: upsert_accounts
INSERT INTO accounts AS a (account_id, org_id, name, email, aws_state, org_path, parent_id,
                           status, status_reason, managed_by_org, sync_id, stage, stage_at)
SELECT v.account_id, %(org_id)s, v.name, v.email, v.aws_state, v.org_path, v.parent_id,
       v.status, v.status_reason, true, %(sync_id)s::uuid, v.stage, now()
FROM unnest(%(account_id)s::text[], %(name)s::text[], %(email)s::text[], %(aws_state)s::text[],
            %(org_path)s::text[], %(parent_id)s::text[], %(status)s::text[],
            %(status_reason)s::text[], %(stage)s::text[])
     AS v(account_id, name, email, aws_state, org_path, parent_id, status, status_reason, stage)
ON CONFLICT (account_id) DO UPDATE SET
    org_id = EXCLUDED.org_id, name = EXCLUDED.name, email = EXCLUDED.email,
    aws_state = EXCLUDED.aws_state, org_path = EXCLUDED.org_path, parent_id = EXCLUDED.parent_id,
    -- an account the organization finds is managed by it: its own credentials give way
    managed_by_org = true, credentials = NULL, credentials_key_id = NULL,
    status = CASE WHEN EXCLUDED.status = 'suspended' THEN 'suspended'
                  WHEN a.status IN ('removed', 'suspended') THEN 'pending'
                  ELSE a.status END,
    status_reason = CASE WHEN EXCLUDED.status = 'suspended' THEN EXCLUDED.status_reason
                         WHEN a.status IN ('removed', 'suspended') THEN NULL
                         ELSE a.status_reason END,
    sync_id = EXCLUDED.sync_id, stage = EXCLUDED.stage, stage_at = now(), updated_at = now()
-- a repeated walk of the same sync must not send accounts back to the start
WHERE a.sync_id IS DISTINCT FROM EXCLUDED.sync_id

-- name: forget_exclusions
-- accounts a page imports are no longer excluded (a filter changed since the last walk)
DELETE FROM excluded_accounts WHERE org_id = %s AND account_id = ANY(%s)

-- name: upsert_excluded_accounts
INSERT INTO excluded_accounts (org_id, account_id, name, org_path, aws_state, reason, sync_id)
SELECT %s, v.account_id, v.name, v.org_path, v.aws_state, v.reason, %s::uuid
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
     AS v(account_id, name, org_path, aws_state, reason)
ON CONFLICT (org_id, account_id) DO UPDATE SET
    name = EXCLUDED.name, org_path = EXCLUDED.org_path, aws_state = EXCLUDED.aws_state,
    reason = EXCLUDED.reason, sync_id = EXCLUDED.sync_id, seen_at = now()

-- name: removal_guard_counts
-- what the guard counts, in the walk's own transaction: every account the walk did not import
-- (gone from AWS, or excluded by the filters) is one it would remove
SELECT
  (SELECT count(*) FROM accounts WHERE org_id = %(org_id)s AND managed_by_org
      AND status <> 'removed') AS accounts,
  (SELECT count(*) FROM accounts WHERE org_id = %(org_id)s AND managed_by_org
      AND status <> 'removed' AND sync_id IS DISTINCT FROM %(sync_id)s::uuid) AS removing,
  (SELECT confirm_removals FROM syncs WHERE sync_id = %(sync_id)s::uuid) AS confirmed

-- name: remove_excluded_accounts
-- at the end of a complete walk (or of a feed event's re-read), accounts it excluded, with
-- their reason, before those it did not see at all (remove_unseen_accounts)
UPDATE accounts a SET status = 'removed', status_reason = e.reason, sync_id = e.sync_id,
                      stage = 'reconciled', stage_at = now(), updated_at = now()
FROM excluded_accounts e
WHERE e.org_id = %(org_id)s AND e.sync_id = %(sync_id)s::uuid
  AND a.account_id = e.account_id AND a.org_id = e.org_id AND a.status <> 'removed'
RETURNING a.account_id, e.reason

-- name: remove_unseen_accounts
UPDATE accounts SET status = 'removed', status_reason = 'left_organization', sync_id = %(sync_id)s,
                    stage = 'reconciled', stage_at = now(), updated_at = now()
WHERE org_id = %(org_id)s AND managed_by_org AND status <> 'removed'
  AND sync_id IS DISTINCT FROM %(sync_id)s
  -- a change event read it from AWS while this walk ran: seen, under the feed's sync
  AND (feed_at IS NULL OR feed_at < (SELECT started_at FROM syncs WHERE sync_id = %(sync_id)s))
  -- nor one a newer sync took while this walk closed (pipelines/discovery.py gives way to it)
  AND NOT EXISTS (SELECT 1 FROM syncs n WHERE n.sync_id = accounts.sync_id
                  AND n.started_at > (SELECT started_at FROM syncs WHERE sync_id = %(sync_id)s))
RETURNING account_id

-- name: forget_stale_exclusions
-- what earlier walks excluded and this complete one did not see any more
DELETE FROM excluded_accounts e WHERE e.org_id = %(org_id)s AND e.sync_id <> %(sync_id)s
  AND NOT EXISTS (SELECT 1 FROM syncs n WHERE n.sync_id = e.sync_id
                  AND n.started_at > (SELECT started_at FROM syncs WHERE sync_id = %(sync_id)s))

-- name: close_walk
UPDATE syncs SET walked_at = now(), complete = %s, error = %s, counts = %s, held = %s
WHERE sync_id = %s

-- name: newer_sync
-- the organization's latest sync when it started after this one (a change event's feed sync is
-- dated in the past, so it is never newer)
SELECT n.sync_id::text AS sync_id FROM syncs s
JOIN syncs n ON n.org_id = s.org_id AND n.started_at > s.started_at
WHERE s.sync_id = %s ORDER BY n.started_at DESC LIMIT 1

-- name: close_superseded_walk
-- a walk that gave way before it was closed; one closed already keeps its counts
UPDATE syncs SET walked_at = now(), complete = false, error = %s, counts = %s
WHERE sync_id = %s AND walked_at IS NULL

-- name: record_validations
-- only accounts still waiting for validation: a duplicate delivery finds them moved on
UPDATE accounts a SET status = v.status, status_reason = v.reason, stage = 'validated',
                      stage_at = now(), validated_at = now(), updated_at = now()
FROM unnest(%s::text[], %s::text[], %s::text[]) AS v(account_id, status, reason)
WHERE a.account_id = v.account_id AND a.sync_id = %s AND a.stage = 'discovered'
RETURNING a.account_id

-- name: record_validation_failures
INSERT INTO failures (account_id, org_id, stage, code, message, attempts)
SELECT v.account_id, %s, 'validation', v.code, v.message, v.attempts
FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[]) AS v(account_id, code, message, attempts)
ON CONFLICT (account_id) DO UPDATE SET
    code = EXCLUDED.code, message = EXCLUDED.message, stage = EXCLUDED.stage,
    attempts = failures.attempts + EXCLUDED.attempts, last_failed_at = now()

-- name: forget_failures
DELETE FROM failures WHERE account_id = ANY(%s)

-- name: redrive_failed_validations
-- An account still 'discovered' has a validation message on its way (or dead-lettered, which
-- accounts_awaiting_validation finds): a second message would only duplicate the AssumeRole call.
UPDATE accounts a SET stage = 'discovered', stage_at = now(), updated_at = now()
FROM failures f
WHERE f.account_id = a.account_id AND a.status = 'assume_role_failed'
  AND a.sync_id IS NOT NULL AND a.stage IS DISTINCT FROM 'discovered'
  AND (%(org)s::text IS NULL OR a.org_id = %(org)s)
  AND (%(acct)s::text IS NULL OR a.account_id = %(acct)s)
  AND (%(code)s::text IS NULL OR f.code = %(code)s)
RETURNING a.account_id, a.org_id, a.sync_id::text AS sync_id

-- name: accounts_awaiting_validation
SELECT account_id FROM accounts
WHERE account_id = ANY(%s) AND sync_id = %s AND stage = 'discovered' ORDER BY account_id

-- name: store_tags
-- updated_at moves only when the tags did: an unchanged account is not "updated" by a sync
UPDATE accounts a SET tags = CASE WHEN v.changed THEN v.tags ELSE a.tags END,
                      stage = 'harvested', stage_at = now(), tags_read_at = now(),
                      updated_at = CASE WHEN v.changed THEN now() ELSE a.updated_at END
FROM unnest(%s::text[], %s::jsonb[], %s::boolean[]) AS v(account_id, tags, changed)
WHERE a.account_id = v.account_id AND a.sync_id = %s AND a.stage = 'validated'
RETURNING a.account_id

-- name: badges_of_accounts
SELECT account_id, key, value, autogenerated FROM badges WHERE account_id = ANY(%s)

-- name: delete_badges
DELETE FROM badges b USING unnest(%s::text[], %s::text[]) AS d(account_id, key)
WHERE b.account_id = d.account_id AND b.key = d.key

-- name: upsert_badges
INSERT INTO badges (account_id, key, value, autogenerated)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::boolean[])
ON CONFLICT (account_id, key) DO UPDATE SET
    value = EXCLUDED.value, autogenerated = EXCLUDED.autogenerated, updated_at = now()

-- name: record_badge_history
INSERT INTO badge_history (account_id, key, action, old_value, new_value, sync_id)
SELECT *, %s::uuid FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[])

-- name: lock_account_for_edit
-- the account row's lock makes a reconciler of the same account wait for the hand edit
SELECT a.tags, a.org_id, o.nickname FROM accounts a LEFT JOIN organizations o USING (org_id)
WHERE a.account_id = %s FOR UPDATE OF a

-- name: lock_harvested_accounts
-- locked in id order: a duplicate page or a hand edit waits, then finds the work done
SELECT a.account_id, a.org_id, a.org_path, a.tags, o.nickname, o.auto_badge
FROM accounts a JOIN organizations o USING (org_id)
WHERE a.account_id = ANY(%s) AND a.sync_id = %s AND a.stage = 'harvested'
ORDER BY a.account_id
FOR UPDATE OF a

-- name: mark_reconciled
UPDATE accounts SET stage = 'reconciled', stage_at = now()
WHERE account_id = ANY(%s) AND sync_id = %s AND stage = 'harvested'

-- name: feed_sync_id
SELECT sync_id::text AS id FROM feeds WHERE org_id = %s

-- name: lock_feed_creation
-- two workers starting an organization's feed together make one feeds row
SELECT pg_advisory_xact_lock(hashtext(%s))

-- name: create_feed_sync
-- dated in the past (FEED_EPOCH), so it is never the organization's latest sync
INSERT INTO syncs (sync_id, org_id, trigger, started_at, walked_at, complete)
VALUES (gen_random_uuid(), %s, 'events', %s, %s, true) RETURNING sync_id::text AS id

-- name: create_feed
INSERT INTO feeds (org_id, sync_id) VALUES (%s, %s)

-- name: feed_queues
SELECT org_id, events_queue_url FROM organizations WHERE events_queue_url IS NOT NULL

-- name: forget_old_change_events
-- longer than SQS keeps a message (14 days at most), so a late redelivery still finds its eventID
DELETE FROM change_events WHERE handled_at < now() - interval '15 days'

-- name: feed_polled
-- written at most every 5 s while the queue answers: a busy queue answers many receives a second
UPDATE feeds SET polled_at = now(), error = NULL, error_since = NULL, retry_at = NULL
WHERE org_id = %s AND (error IS NOT NULL OR polled_at IS NULL OR polled_at < now() - interval '5 s')

-- name: feed_failed
UPDATE feeds SET error = %s, error_since = coalesce(error_since, now()),
                 retry_at = now() + make_interval(secs => %s)
WHERE org_id = %s

-- name: feed_event_counted
UPDATE feeds SET handled = handled + 1, last_handled_at = now(),
       -- never later than now: a forged eventTime must not be the feed's last event for ever
       last_event_at = greatest(last_event_at, least(%(time)s, now())),
       lag_seconds = CASE WHEN %(time)s::timestamptz IS NULL THEN lag_seconds
                          ELSE extract(epoch FROM now() - %(time)s) END
WHERE org_id = %(org)s

-- name: change_event_seen
SELECT 1 FROM change_events WHERE org_id = %s AND event_id = %s

-- name: record_change_event
-- the eventID is recorded first, in the transaction of the event's work: a redelivery that
-- races this one finds no row returned and does nothing
INSERT INTO change_events (org_id, event_id, event_name, event_time, outcome, reason, target)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (org_id, event_id) DO NOTHING
RETURNING event_id

-- name: set_change_event_outcome
UPDATE change_events SET outcome = %s, reason = %s WHERE org_id = %s AND event_id = %s

-- name: lock_account_state
-- when the account was last read from AWS: by a change event (feed_at) or its sync's walk
SELECT a.account_id, a.status, a.stage, greatest(a.feed_at, s.started_at) AS read_at
FROM accounts a LEFT JOIN syncs s ON s.sync_id = a.sync_id
WHERE a.account_id = %s AND a.org_id = %s AND a.managed_by_org
FOR UPDATE OF a

-- name: claim_account_for_feed
UPDATE accounts SET sync_id = %s, stage = %s, stage_at = now(), feed_at = now()
WHERE account_id = %s

-- name: remove_left_account
UPDATE accounts SET status = 'removed', status_reason = 'left_organization', sync_id = %s,
                    stage = 'reconciled', stage_at = now(), feed_at = now(), updated_at = now()
WHERE account_id = %s AND status <> 'removed'

-- name: repath_accounts
-- an event older than the account's last read from AWS changes nothing
UPDATE accounts a SET org_path = v.org_path, parent_id = v.parent_id, sync_id = %(sync)s,
                      stage = 'harvested', stage_at = now(), feed_at = now(), updated_at = now()
FROM unnest(%(ids)s::text[], %(paths)s::text[], %(parents)s::text[])
     AS v(account_id, org_path, parent_id)
WHERE a.account_id = v.account_id AND a.org_id = %(org)s AND a.managed_by_org
  AND a.status <> 'removed' AND a.org_path IS DISTINCT FROM v.org_path
  AND %(time)s > coalesce(greatest(a.feed_at, (SELECT s.started_at FROM syncs s
                                                WHERE s.sync_id = a.sync_id)), '-infinity')
RETURNING a.account_id

-- name: release_account_from_sync
-- upsert_accounts skips an account already in the sync it loads: the feed frees it first
UPDATE accounts SET sync_id = NULL WHERE account_id = %s AND sync_id = %s

-- name: mark_read_by_feed
UPDATE accounts SET feed_at = now() WHERE account_id = %s

-- name: try_sweeper_lock
-- the one process holding it sweeps, the others skip the round
SELECT pg_try_advisory_xact_lock(%s) AS ok

-- name: stalled_syncs
WITH current AS (
    SELECT DISTINCT ON (s.org_id) s.sync_id, s.org_id, s.started_at, s.walked_at, s.redriven_at
    FROM syncs s JOIN organizations o USING (org_id)
    ORDER BY s.org_id, s.started_at DESC
)
SELECT c.sync_id::text AS sync_id, c.org_id, c.walked_at IS NOT NULL AS walked
FROM current c
WHERE greatest(c.started_at, c.walked_at, c.redriven_at,
               (SELECT max(a.stage_at) FROM accounts a WHERE a.sync_id = c.sync_id))
      < now() - make_interval(secs => %(bound)s)
  AND (c.walked_at IS NULL OR EXISTS (
        SELECT 1 FROM accounts a WHERE a.sync_id = c.sync_id AND a.stage = ANY(%(stages)s)))
  -- a page in flight is RabbitMQ's to deliver; one waiting in the outbox will be published
  AND NOT EXISTS (SELECT 1 FROM outbox
                  WHERE payload->>'sync_id' = c.sync_id::text AND sent_at IS NULL)
ORDER BY c.org_id

-- name: waiting_accounts
SELECT stage, array_agg(account_id ORDER BY account_id) AS account_ids FROM accounts
WHERE sync_id = %s AND stage = ANY(%s)
GROUP BY stage ORDER BY stage

-- name: mark_redriven
UPDATE syncs SET redriven_at = now(), redrives = redrives + 1 WHERE sync_id = %s

-- name: insert_outbox_event
-- deliver_at is kept with the row, so a delayed event relayed late still waits no longer. A page
-- waits (held) for its organization's share (services/adapters/relay.py). The same event again
-- while its row is in flight (a stalled sync re-driven) is sent again; while it waits, nothing.
INSERT INTO outbox (message_id, queue_name, actor_name, payload, deliver_at, org_id, lane, held)
VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s), %s, %s, true)
ON CONFLICT (message_id) DO UPDATE SET held = true, sent_at = NULL, deliver_at = EXCLUDED.deliver_at
WHERE outbox.sent_at IS NOT NULL

-- name: record_audit
-- pipelines/audit.py is this table's one writer, inside the transaction of the change
INSERT INTO audit_log (actor, via, broker_user, action, org_id, subject, changes)
VALUES (%(actor)s, %(via)s, %(broker_user)s, %(action)s, %(org_id)s, %(subject)s, %(changes)s)

-- name: audit_trail
-- newest first; `before` pages back from a row id (the listing's next page)
SELECT audit_id, at, actor, via, broker_user, action, org_id, subject, changes
FROM audit_log
WHERE (%(org_id)s::text IS NULL OR org_id = %(org_id)s)
  AND (%(org_ids)s::text[] IS NULL OR org_id = ANY(%(org_ids)s))
  AND (%(before)s::bigint IS NULL OR audit_id < %(before)s)
ORDER BY audit_id DESC
LIMIT %(limit)s
