-- Issue 28: every committed change as a CloudEvent, for other systems (docs/events-for-other-systems.md).
--
-- Triggers write the events, so each one is part of the transaction of its change, whichever
-- statement made it: discovery's upsert, validation, the feed, a hand edit of badges, a
-- registration. One event per kind of change per account and transaction: a second change of the
-- same kind in the transaction merges into the first (`merge_key`), keeping the first `old_*`
-- values. `seq` numbers events in the order of their accounts' commits (an account's changes are
-- made under its row's lock), which receivers read as `data.sequence`.
-- A worker thread publishes each row to the exchange `orgsync.changes` (published_at) and fans it
-- out to the webhooks it matches (fanned_out_at); sync.completed is written by that thread too,
-- when it finds a sync finished.
CREATE TABLE outbound_events (
    seq            bigserial PRIMARY KEY,
    id             uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    type           text NOT NULL CHECK (type IN (
                       'orgsync.account.added', 'orgsync.account.removed',
                       'orgsync.account.moved', 'orgsync.account.status_changed',
                       'orgsync.account.badges_changed', 'orgsync.sync.completed',
                       'orgsync.organization.registered', 'orgsync.organization.updated')),
    org_id         text,                              -- NULL: a standalone account
    subject        text,                              -- the account id, where there is one
    data           jsonb NOT NULL,
    at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    merge_key      text UNIQUE,                       -- transaction/type/subject
    basis          jsonb,                             -- badges before the transaction's change
    published_at   timestamptz,
    fanned_out_at  timestamptz
);
CREATE INDEX outbound_events_unpublished ON outbound_events (seq) WHERE published_at IS NULL;
CREATE INDEX outbound_events_unfanned ON outbound_events (seq) WHERE fanned_out_at IS NULL;

-- A receiver of events. The secret (Standard Webhooks, `whsec_...`) is sealed like every
-- credential, bound to the row, and resealed by `orgsync keys rotate`.
CREATE TABLE webhooks (
    webhook_id          text PRIMARY KEY,
    url                 text NOT NULL,
    org_id              text REFERENCES organizations ON DELETE CASCADE,  -- NULL: every one
    types               text[],                                           -- NULL: every type
    credentials_key_id  text NOT NULL,
    credentials         bytea NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    removed_at          timestamptz
);

-- One event for one webhook. Retried with the same id and body until a 2xx, for `retry_for`
-- seconds from `since` (the first attempt, or a redelivery), then failed.
CREATE TABLE webhook_deliveries (
    delivery_id      bigserial PRIMARY KEY,
    webhook_id       text NOT NULL REFERENCES webhooks ON DELETE CASCADE,
    event_seq        bigint NOT NULL REFERENCES outbound_events ON DELETE CASCADE,
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    since            timestamptz NOT NULL DEFAULT now(),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    leased_until     timestamptz,
    last_status      integer,
    last_error       text,
    delivered_at     timestamptz,
    UNIQUE (webhook_id, event_seq)
);
-- which webhooks have a delivery due (the dispatcher's look), and a webhook's due deliveries in
-- the order of their events (a batch's claim)
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (webhook_id, next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, event_seq)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_seq);  -- forgetting old events
CREATE INDEX outbound_events_at ON outbound_events (at);

-- when the completion of a sync was announced; the syncs that ran before this migration count
-- as announced
ALTER TABLE syncs ADD COLUMN completed_at timestamptz;
UPDATE syncs SET completed_at = coalesce(walked_at, started_at);

-- One event, or a change merged into the transaction's event of the same type and subject:
-- `keep` names the fields whose first value stays (the `old_*` ones).
CREATE FUNCTION outbound_event(kind text, org text, subj text, body jsonb, keep text[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbound_events (type, org_id, subject, data, merge_key)
    VALUES (kind, org, subj, body,
            pg_current_xact_id()::text || '/' || kind || '/' || coalesce(subj, org, ''))
    ON CONFLICT (merge_key) DO UPDATE SET
        data = EXCLUDED.data || (SELECT coalesce(jsonb_object_agg(k, outbound_events.data -> k),
                                                 '{}')
                                 FROM unnest(keep) AS k WHERE outbound_events.data ? k),
        at = EXCLUDED.at;
END $$;

CREATE FUNCTION outbound_account_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status <> 'removed' THEN
            PERFORM outbound_event('orgsync.account.removed', OLD.org_id, OLD.account_id,
                jsonb_build_object('account_id', OLD.account_id, 'reason', 'deleted',
                                   'old_status', OLD.status), '{old_status}');
        END IF;
    ELSIF NEW.status = 'removed' THEN
        IF TG_OP = 'UPDATE' AND OLD.status <> 'removed' THEN
            PERFORM outbound_event('orgsync.account.removed', NEW.org_id, NEW.account_id,
                jsonb_build_object('account_id', NEW.account_id, 'reason', NEW.status_reason,
                                   'old_status', OLD.status), '{old_status}');
        END IF;
    ELSIF TG_OP = 'INSERT' OR OLD.status = 'removed' THEN
        PERFORM outbound_event('orgsync.account.added', NEW.org_id, NEW.account_id,
            jsonb_build_object('account_id', NEW.account_id, 'name', NEW.name,
                               'email', NEW.email, 'org_id', NEW.org_id,
                               'org_path', NEW.org_path, 'parent_id', NEW.parent_id,
                               'status', NEW.status, 'status_reason', NEW.status_reason,
                               'aws_state', NEW.aws_state, 'managed_by_org', NEW.managed_by_org,
                               'returned', TG_OP = 'UPDATE'), '{returned}');
    ELSE
        IF OLD.org_path IS DISTINCT FROM NEW.org_path THEN
            PERFORM outbound_event('orgsync.account.moved', NEW.org_id, NEW.account_id,
                jsonb_build_object('account_id', NEW.account_id,
                                   'old_path', OLD.org_path, 'new_path', NEW.org_path,
                                   'old_parent_id', OLD.parent_id, 'new_parent_id', NEW.parent_id),
                '{old_path,old_parent_id}');
        END IF;
        IF OLD.status IS DISTINCT FROM NEW.status THEN
            PERFORM outbound_event('orgsync.account.status_changed', NEW.org_id, NEW.account_id,
                jsonb_build_object('account_id', NEW.account_id, 'old_status', OLD.status,
                                   'new_status', NEW.status, 'reason', NEW.status_reason,
                                   'error_code', NULL), '{old_status}');
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER accounts_outbound_insert AFTER INSERT ON accounts
    FOR EACH ROW EXECUTE FUNCTION outbound_account_change();
CREATE TRIGGER accounts_outbound_update AFTER UPDATE ON accounts FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.org_path IS DISTINCT FROM NEW.org_path)
    EXECUTE FUNCTION outbound_account_change();
CREATE TRIGGER accounts_outbound_delete AFTER DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION outbound_account_change();

-- validation records the AWS error code of a failed AssumeRole after the account's new status,
-- in the same transaction: it joins that status change's event
CREATE FUNCTION outbound_failure_code() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE outbound_events SET data = jsonb_set(data, '{error_code}', to_jsonb(NEW.code))
    WHERE merge_key = pg_current_xact_id()::text || '/orgsync.account.status_changed/'
                      || NEW.account_id;
    RETURN NULL;
END $$;

CREATE TRIGGER failures_outbound AFTER INSERT OR UPDATE ON failures
    FOR EACH ROW EXECUTE FUNCTION outbound_failure_code();

-- A statement changed these badge rows (`before`: as they were, `after`: as they are now, as
-- JSON arrays of rows): each account's event says what its transaction changed in all, from the
-- badges before its first change (`basis`) to the badges now; none when that is nothing.
CREATE FUNCTION outbound_badges_changed(before jsonb, after jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    acct record;
    prefix text := pg_current_xact_id()::text || '/orgsync.account.badges_changed/';
    now_map jsonb;
    was jsonb;
    changes jsonb;
BEGIN
    FOR acct IN
        SELECT a.account_id, a.org_id, s.written, s.replaced
        FROM (SELECT r ->> 'account_id' AS account_id, array_agg(r ->> 'key') AS written,
                     coalesce(jsonb_object_agg(r ->> 'key', jsonb_build_object(
                         'value', r ->> 'value', 'autogenerated', (r -> 'autogenerated')::boolean))
                         FILTER (WHERE side = 'before'), '{}') AS replaced
              FROM (SELECT r, 'after' AS side FROM jsonb_array_elements(after) AS r
                    UNION ALL
                    SELECT r, 'before' FROM jsonb_array_elements(before) AS r) AS written_rows
              GROUP BY 1) AS s
        JOIN accounts a ON a.account_id = s.account_id
        ORDER BY a.account_id
    LOOP
        SELECT coalesce(jsonb_object_agg(b.key, jsonb_build_object(
                   'value', b.value, 'autogenerated', b.autogenerated)), '{}')
        INTO now_map FROM badges b WHERE b.account_id = acct.account_id;
        SELECT basis INTO was FROM outbound_events WHERE merge_key = prefix || acct.account_id;
        -- the first change of the transaction: now, less what the statement wrote, plus what it
        -- replaced or deleted
        was := coalesce(was, now_map - acct.written || acct.replaced);
        SELECT jsonb_build_object(
            'added', coalesce(jsonb_agg(jsonb_build_object('key', k, 'value', n ->> 'value',
                         'autogenerated', n -> 'autogenerated') ORDER BY k)
                         FILTER (WHERE o IS NULL), '[]'),
            'updated', coalesce(jsonb_agg(jsonb_build_object('key', k,
                         'old_value', o ->> 'value', 'value', n ->> 'value',
                         'autogenerated', n -> 'autogenerated') ORDER BY k)
                         FILTER (WHERE o IS NOT NULL AND n IS NOT NULL AND o <> n), '[]'),
            'deleted', coalesce(jsonb_agg(jsonb_build_object('key', k, 'old_value', o ->> 'value')
                         ORDER BY k) FILTER (WHERE n IS NULL), '[]'))
        INTO changes
        FROM (SELECT k, was -> k AS o, now_map -> k AS n
              FROM (SELECT jsonb_object_keys(was) UNION SELECT jsonb_object_keys(now_map)) AS ks(k)
             ) AS pairs;
        IF changes = '{"added": [], "updated": [], "deleted": []}' THEN
            DELETE FROM outbound_events WHERE merge_key = prefix || acct.account_id;
            CONTINUE;
        END IF;
        INSERT INTO outbound_events (type, org_id, subject, data, merge_key, basis)
        VALUES ('orgsync.account.badges_changed', acct.org_id, acct.account_id,
                jsonb_build_object('account_id', acct.account_id) || changes || jsonb_build_object(
                    'badges', (SELECT coalesce(jsonb_agg(jsonb_build_object('key', k,
                                   'value', now_map -> k ->> 'value',
                                   'autogenerated', now_map -> k -> 'autogenerated') ORDER BY k),
                                   '[]') FROM jsonb_object_keys(now_map) AS k)),
                prefix || acct.account_id, was)
        ON CONFLICT (merge_key) DO UPDATE SET data = EXCLUDED.data, at = EXCLUDED.at;
    END LOOP;
END $$;

CREATE FUNCTION outbound_badges_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM outbound_badges_changed('[]', (SELECT jsonb_agg(n) FROM new_rows n));
    RETURN NULL;
END $$;

CREATE FUNCTION outbound_badges_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM outbound_badges_changed((SELECT coalesce(jsonb_agg(o), '[]') FROM old_rows o),
                                    (SELECT coalesce(jsonb_agg(n), '[]') FROM new_rows n));
    RETURN NULL;
END $$;

CREATE FUNCTION outbound_badges_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM outbound_badges_changed((SELECT jsonb_agg(o) FROM old_rows o), '[]');
    RETURN NULL;
END $$;

CREATE TRIGGER badges_outbound_insert AFTER INSERT ON badges REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION outbound_badges_inserted();
CREATE TRIGGER badges_outbound_update AFTER UPDATE ON badges
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION outbound_badges_updated();
CREATE TRIGGER badges_outbound_delete AFTER DELETE ON badges REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION outbound_badges_deleted();

-- An organization registered, or changed in anything but its credentials (which never leave
-- the table, and whose ciphertext changes with every reseal).
CREATE FUNCTION outbound_organization_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    private text[] := '{credentials,credentials_key_id,created_at,updated_at}';
    now_row jsonb := to_jsonb(NEW) - private;
    was_row jsonb;
    changed text[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM outbound_event('orgsync.organization.registered', NEW.org_id, NULL,
                               now_row, '{}');
        RETURN NULL;
    END IF;
    was_row := to_jsonb(OLD) - private;
    SELECT array_agg(k ORDER BY k) INTO changed FROM jsonb_object_keys(now_row) AS k
    WHERE was_row -> k IS DISTINCT FROM now_row -> k;
    IF changed IS NOT NULL THEN
        PERFORM outbound_event('orgsync.organization.updated', NEW.org_id, NULL,
                               now_row || jsonb_build_object('changed', changed), '{}');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER organizations_outbound AFTER INSERT OR UPDATE ON organizations
    FOR EACH ROW EXECUTE FUNCTION outbound_organization_change();
