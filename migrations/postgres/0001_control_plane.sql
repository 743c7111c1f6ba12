-- Control plane: who administers Tidemark, which projects exist, how websites and API clients authenticate,
-- and the daily salts behind cookieless visitor ids.

CREATE TABLE admin_users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL CHECK (position('@' IN email) > 1),
    -- Argon2id PHC string; the password itself is never stored.
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX admin_users_email_key ON admin_users (lower(email));

CREATE TABLE projects (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- Hosts allowed to send browser events (an Origin not listed gets 403). Subdomains of a listed host count.
    domains    text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);

-- Ingest tokens are public (they ship in the tracker snippet); they identify a project, they do not grant reads.
CREATE TABLE ingest_tokens (
    token      text PRIMARY KEY,
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX ingest_tokens_project_idx ON ingest_tokens (project_id);

-- Secret API keys for the read API: `prefix` is looked up, `secret_hash` (SHA-256 of the secret part) compared
-- in constant time. The secret is shown once at creation and never stored.
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id   uuid REFERENCES projects (id) ON DELETE CASCADE,
    name         text NOT NULL,
    prefix       text NOT NULL UNIQUE,
    secret_hash  bytea NOT NULL CHECK (length(secret_hash) = 32),
    scopes       text[] NOT NULL DEFAULT '{read}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- One random salt per UTC day, shared by every hub replica. Salts older than yesterday are deleted so that
-- nobody, the operator included, can recompute an old visitor id from an IP address.
CREATE TABLE daily_salts (
    day        date PRIMARY KEY,
    salt       bytea NOT NULL CHECK (length(salt) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
