-- Issue 29: team access. Who may do what (grants for the identity provider's groups, named API
-- tokens), which console sessions still hold (a version per signed-in user), and how many
-- sign-ins were tried lately (the limiter). Every web process reads the same rows, so a
-- sign-out, a revoked token or grant, or a limit reached holds in all of them at once.

-- A role on one organization (or on all, org_id NULL) for the members of an identity
-- provider's group (the ID token's groups claim). `orgsync grants add/list/remove`.
CREATE TABLE access_grants (
    group_name  text NOT NULL CHECK (length(group_name) BETWEEN 1 AND 256),
    role        text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    org_id      text REFERENCES organizations ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX access_grants_one ON access_grants (group_name, coalesce(org_id, ''));

-- A named API token: only the SHA-256 of the token is kept (services/web/tokens.py says why a
-- fast hash is right for a random token). Revoking deletes the row.
CREATE TABLE api_tokens (
    name          text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    digest        bytea NOT NULL UNIQUE CHECK (length(digest) = 32),
    role          text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    org_id        text REFERENCES organizations ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    last_used_at  timestamptz
);

-- A console user: `password` (the break-glass password) or `oidc:<sub>`. A session cookie
-- names its user and the version it was signed with: signing out (or a revoked access) moves
-- the version on, and every older cookie of that user stops working in every process.
CREATE TABLE web_users (
    subject       text PRIMARY KEY CHECK (length(subject) BETWEEN 1 AND 300),
    name          text NOT NULL DEFAULT '',
    groups        text[] NOT NULL DEFAULT '{}',
    version       bigint NOT NULL DEFAULT 1,
    signed_in_at  timestamptz
);

-- Sign-in attempts per key (`account:<name>`, `address:<ip>`, `global`) in a fixed window; an
-- attempt is counted before its password is checked, so guesses sent at once are counted too.
CREATE TABLE sign_in_limits (
    key             text PRIMARY KEY,
    attempts        integer NOT NULL,
    window_start    timestamptz NOT NULL,
    window_seconds  double precision NOT NULL
);
