-- Accounts and access: people who sign in (instance admins and project members), their roles per project,
-- server-side sessions and the login throttle.

-- Not every account is an instance admin any more; the table is renamed to say what it holds.
ALTER TABLE admin_users RENAME TO accounts;
ALTER INDEX admin_users_email_key RENAME TO accounts_email_key;
ALTER TABLE accounts ADD COLUMN is_admin boolean NOT NULL DEFAULT false;
-- Every account created before this migration was made by `app user create` as an administrator.
UPDATE accounts SET is_admin = true;

-- A member's role on one project: owner (everything, members, keys, delete), editor (settings, goals, funnels),
-- viewer (read only). Instance admins need no row here.
CREATE TABLE memberships (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, account_id)
);
CREATE INDEX memberships_account_idx ON memberships (account_id);

-- API keys belong to one project and carry exactly one scope.
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scope_check
    CHECK (cardinality(scopes) = 1 AND scopes <@ ARRAY['read', 'admin']::text[]);

-- Sessions of signed-in accounts. The cookie carries a random id; only its SHA-256 is stored, so a read of this
-- table does not hand out live sessions. Idle and absolute expiry are checked against these two times.
CREATE TABLE sessions (
    id_hash      bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    account_id   uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- Sent back in X-CSRF-Token on every state-changing request made with the cookie.
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_account_idx ON sessions (account_id);

-- Login attempts per normalized e-mail, whether an account has it or not (so a lock says nothing about existence).
CREATE TABLE login_throttle (
    email             text PRIMARY KEY,
    attempts          integer NOT NULL,
    window_started_at timestamptz NOT NULL,
    locked_until      timestamptz
);
