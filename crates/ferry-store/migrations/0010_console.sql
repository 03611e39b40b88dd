-- The admin console: admin accounts (argon2 password hashes), their sessions and one-time
-- login links (both stored as SHA-256 of the token the browser holds, so a copy of the
-- database opens no session), and the console session a connect flow was started from.
CREATE TABLE admins (
    name           TEXT PRIMARY KEY,
    password_hash  TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE admin_sessions (
    id_hash     TEXT PRIMARY KEY,
    admin       TEXT NOT NULL REFERENCES admins(name) ON DELETE CASCADE,
    csrf        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX admin_sessions_by_admin ON admin_sessions(admin);

CREATE TABLE admin_login_links (
    token_hash  TEXT PRIMARY KEY,
    admin       TEXT NOT NULL REFERENCES admins(name) ON DELETE CASCADE,
    expires_at  BIGINT NOT NULL
);

ALTER TABLE oauth_states ADD COLUMN session_hash TEXT;

-- The Dropbox account a connection was last connected to, so the console shows it and a
-- connect for another account is recognised as an account switch.
ALTER TABLE connections ADD COLUMN account_id TEXT;
ALTER TABLE connections ADD COLUMN account_name TEXT;
ALTER TABLE connections ADD COLUMN account_email TEXT;

-- The dashboard's activity chart reads the last hour of the log.
CREATE INDEX sync_log_at ON sync_log(at);

-- Credentials waiting for the admin in the console: a team token (pasted, or from Dropbox's
-- page) for its member to be picked, or another account's for an account switch to be
-- confirmed. Encrypted, usable only by the console session they came to.
CREATE TABLE pending_connections (
    id                      TEXT PRIMARY KEY,
    session_hash            TEXT NOT NULL,
    connection              TEXT NOT NULL,
    root                    TEXT NOT NULL,
    api_url                 TEXT NOT NULL,
    content_url             TEXT NOT NULL,
    notify_url              TEXT NOT NULL,
    credentials_ciphertext  BLOB NOT NULL,
    expires_at              BIGINT NOT NULL,
    -- An account switch the admin confirmed: connect these credentials once the old
    -- account's reverse sync is done and the connection is gone.
    after_disconnect        BIGINT NOT NULL DEFAULT 0
);

-- Existing Dropbox folders an admin mapped to a record by hand: found by id, so a rename in
-- Dropbox is followed; each syncs like a rule's folder (its binding is named `map:<id>`).
CREATE TABLE folder_maps (
    id               INTEGER PRIMARY KEY,
    record_id        BIGINT NOT NULL,
    connection       TEXT NOT NULL,
    folder_id        TEXT NOT NULL,
    folder_display   TEXT NOT NULL,
    direction        TEXT NOT NULL,
    pull_subfolders  BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    UNIQUE (record_id, connection, folder_id)
);
CREATE INDEX folder_maps_record ON folder_maps(record_id);
