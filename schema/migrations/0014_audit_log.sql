-- Issue 29: who changed what, through which door (docs/security.md#audit-trail).
--
-- One row per change made on a person's request (console, API, CLI, or the org-registration
-- queue), written by pipelines/audit.py in the transaction of the change itself: a change that
-- rolls back leaves no row, and no row exists for a change that did not happen. `changes` holds
-- the fields changed (old -> new where that means something), never a secret's value. No foreign
-- key to organizations: the trail outlives what it describes.
CREATE TABLE audit_log (
    audit_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor        text NOT NULL CHECK (actor ~ '^(user|token|cli|amqp):.' AND length(actor) <= 300),
    via          text NOT NULL CHECK (via IN ('console', 'api', 'cli', 'amqp')),
    broker_user  text CHECK (length(broker_user) <= 300),  -- the AMQP user_id RabbitMQ vouched for
    action       text NOT NULL CHECK (action ~ '^[a-z][a-z.-]{0,63}$'),
    org_id       text,
    subject      text CHECK (length(subject) <= 300),      -- an account, webhook, delivery, sync
    changes      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_by_org ON audit_log (org_id, audit_id);
