-- keygate schema, SQLite flavour. Keep in step with ../postgres/0001_init.sql: the queries in
-- src/sql/ are shared by both backends, so both schemas store the same representation.
--
-- Representation (chosen so sqlx's Any driver needs only integers and text):
--   * times are INTEGER Unix milliseconds, UTC;
--   * booleans are INTEGER 0/1;
--   * JSON values (scopes, permissions, metadata, ...) are TEXT;
--   * digests are lower-case hex TEXT; ids are TEXT that sort by creation (BINARY collation).
-- STRICT tables make SQLite refuse a value of the wrong type instead of storing it anyway.
-- No triggers, no stored logic: every rule lives in the shared queries.

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    email         TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,   -- argon2id PHC string, never the password
    created_at    INTEGER NOT NULL
) STRICT;
-- Emails are unique case-insensitively. Callers pass them lower-cased already; the index on
-- lower(email) makes that a guarantee and serves `WHERE lower(email) = lower($1)`.
-- The name is what the store maps to Conflict("email").
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE accounts (
    id            TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    url           TEXT,
    domain        TEXT,
    plan          TEXT    NOT NULL,
    trial_ends_at INTEGER,
    created_at    INTEGER NOT NULL,
    -- Soft delete: a deleted account disappears from every lookup, but its rows (and, above
    -- all, its audit log) stay.
    deleted_at    INTEGER
) STRICT;
-- One live account per company domain. Deleted accounts release their domain, hence the
-- partial index. Maps to Conflict("domain").
CREATE UNIQUE INDEX accounts_domain_key ON accounts (lower(domain))
    WHERE domain IS NOT NULL AND deleted_at IS NULL;

CREATE TABLE memberships (
    account_id TEXT    NOT NULL REFERENCES accounts (id),
    user_id    TEXT    NOT NULL REFERENCES users (id),
    authority  TEXT    NOT NULL CHECK (authority IN ('user', 'administrator', 'owner')),
    created_at INTEGER NOT NULL,
    -- One membership per user and account. Maps to Conflict("member").
    CONSTRAINT memberships_pkey PRIMARY KEY (account_id, user_id)
) STRICT;
-- A user's accounts, oldest first.
CREATE INDEX memberships_user_idx ON memberships (user_id, created_at);

CREATE TABLE sessions (
    id           TEXT    NOT NULL PRIMARY KEY,
    user_id      TEXT    NOT NULL REFERENCES users (id),
    digest       TEXT    NOT NULL,   -- SHA-256 of the token; the token itself is never stored
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER
) STRICT;
CREATE UNIQUE INDEX sessions_digest_key ON sessions (digest);
-- A password change revokes the user's live sessions.
CREATE INDEX sessions_user_live_idx ON sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE roles (
    id          TEXT    NOT NULL PRIMARY KEY,
    account_id  TEXT    NOT NULL REFERENCES accounts (id),
    name        TEXT    NOT NULL,
    permissions TEXT    NOT NULL,    -- JSON array of scope strings
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
-- Role names are unique within an account. Maps to Conflict("role_name").
CREATE UNIQUE INDEX roles_name_key ON roles (account_id, name);

CREATE TABLE api_keys (
    id            TEXT    NOT NULL PRIMARY KEY,
    digest        TEXT    NOT NULL,  -- SHA-256 of the full key; the secret is never stored
    key_part      TEXT    NOT NULL,  -- the public handle (prefix + first random characters)
    class         TEXT    NOT NULL CHECK (class IN ('user', 'org')),
    name          TEXT    NOT NULL,
    account_id    TEXT    NOT NULL REFERENCES accounts (id),
    user_id       TEXT             REFERENCES users (id),
    authority     TEXT    NOT NULL CHECK (authority IN ('user', 'administrator', 'owner')),
    scopes        TEXT    NOT NULL,  -- JSON array
    -- No foreign key on purpose: deleting a role leaves its keys pointing at nothing, and the
    -- authenticator then grants them no permissions (fails closed).
    role_id       TEXT,
    created_at    INTEGER NOT NULL,
    created_by    TEXT    NOT NULL,
    expires_at    INTEGER,
    starts_at     INTEGER,
    staged        INTEGER NOT NULL DEFAULT 0 CHECK (staged IN (0, 1)),
    revoked_at    INTEGER,
    last_used_at  INTEGER,
    last_used_ip  TEXT,
    -- Counters are only ever incremented in place (`x = x + $n`), so several nodes flushing
    -- at once never overwrite each other.
    request_count INTEGER NOT NULL DEFAULT 0,
    usage_limit   INTEGER,
    usage_used    INTEGER NOT NULL DEFAULT 0,
    rate_limit    TEXT,              -- JSON object or NULL
    ip_allowlist  TEXT    NOT NULL,  -- JSON array of CIDRs
    metadata      TEXT    NOT NULL   -- JSON object
) STRICT;
-- The authenticator's one lookup on a cache miss.
CREATE UNIQUE INDEX api_keys_digest_key ON api_keys (digest);
-- key_part is a handle for `/v1/keys/{key}`, so it must name one key. Maps to Conflict("key_part").
CREATE UNIQUE INDEX api_keys_key_part_key ON api_keys (key_part);
-- Listing an account's keys newest first (ids sort by creation) and counting its live keys.
CREATE INDEX api_keys_account_idx ON api_keys (account_id, id);

CREATE TABLE key_usage_daily (
    key_id   TEXT    NOT NULL REFERENCES api_keys (id),
    day      TEXT    NOT NULL,       -- YYYY-MM-DD (UTC); sorts as a date
    requests INTEGER NOT NULL,
    PRIMARY KEY (key_id, day)
) STRICT;

-- Append-only and hash-chained per account: hash = SHA-256(prev_hash || canonical(entry)),
-- see keygate_core::audit. Rows are never updated or deleted.
CREATE TABLE audit_log (
    id            TEXT    NOT NULL PRIMARY KEY,
    -- No foreign key: the log outlives its account and nothing may cascade onto it.
    account_id    TEXT    NOT NULL,
    seq           INTEGER NOT NULL,  -- 1, 2, 3, ... per account, no gaps
    at            INTEGER NOT NULL,
    actor         TEXT    NOT NULL,  -- JSON {type, user_id?, key_id?}, exactly as chained
    -- Copies of the actor's ids, so `?actor=` filters by a column instead of parsing JSON.
    actor_user_id TEXT,
    actor_key_id  TEXT,
    action        TEXT    NOT NULL,
    target_type   TEXT    NOT NULL,
    target_id     TEXT    NOT NULL,
    ip            TEXT,
    details       TEXT    NOT NULL,  -- JSON, never a secret
    prev_hash     TEXT    NOT NULL,
    hash          TEXT    NOT NULL
) STRICT;
-- One entry per position of the chain: two appends racing for the same seq cannot both win.
CREATE UNIQUE INDEX audit_log_seq_key ON audit_log (account_id, seq);
