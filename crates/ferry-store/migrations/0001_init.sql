-- Portable SQL: runs on SQLite today, PostgreSQL later (BIGINT ids, TEXT JSON, no SQLite-only syntax).
CREATE TABLE records (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    fields      TEXT NOT NULL,
    parent_id   BIGINT REFERENCES records(id),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (kind, key)
);
CREATE INDEX records_parent ON records(parent_id);

CREATE TABLE attachments (
    id            INTEGER PRIMARY KEY,
    record_id     BIGINT NOT NULL REFERENCES records(id),
    name          TEXT NOT NULL,
    tags          TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    -- For files imported from Dropbox: where they are, relative to their binding's folder.
    origin_path   TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (record_id, name)
);

-- Versions that left a record (deleted in Dropbox, replaced by an import): content kept.
CREATE TABLE archived_attachments (
    id            INTEGER PRIMARY KEY,
    record_id     BIGINT NOT NULL,
    name          TEXT NOT NULL,
    tags          TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    reason        TEXT NOT NULL,
    archived_at   BIGINT NOT NULL
);
CREATE INDEX archived_record ON archived_attachments(record_id);

CREATE TABLE rules (
    name        TEXT PRIMARY KEY,
    record_kind TEXT NOT NULL,
    definition  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE connections (
    name              TEXT PRIMARY KEY,
    api_url           TEXT NOT NULL,
    content_url       TEXT NOT NULL,
    notify_url        TEXT NOT NULL,
    root              TEXT NOT NULL,
    token_ciphertext  BLOB NOT NULL,
    -- OAuth connections: refresh token and app secret (encrypted), app key.
    refresh_ciphertext     BLOB,
    app_key                TEXT,
    app_secret_ciphertext  BLOB,
    cursor            TEXT,
    -- Set when Dropbox refused the token: work on this connection waits for a reconnect.
    needs_reconnect   TEXT,
    -- Being disconnected: files only Dropbox holds are brought back, then the row goes.
    disconnecting     BIGINT NOT NULL DEFAULT 0,
    updated_at        BIGINT NOT NULL
);

-- A record's folder in Dropbox, through one rule.
CREATE TABLE bindings (
    id                 INTEGER PRIMARY KEY,
    record_id          BIGINT NOT NULL,
    rule_name          TEXT NOT NULL,
    connection         TEXT NOT NULL,
    folder_display     TEXT NOT NULL,
    folder_lower       TEXT NOT NULL,
    paused_reason      TEXT,
    confirm_deletions  BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    UNIQUE (record_id, rule_name)
);
CREATE INDEX bindings_folder ON bindings(connection, folder_lower);

-- The synced tree (rows with a rev) plus per-file status; rows without a binding are files
-- that could not be placed at all.
CREATE TABLE sync_files (
    id             INTEGER PRIMARY KEY,
    record_id      BIGINT NOT NULL,
    binding_id     BIGINT,
    rule_name      TEXT NOT NULL,
    connection     TEXT NOT NULL,
    attachment_id  BIGINT,
    rel_display    TEXT,
    rel_lower      TEXT,
    dropbox_id     TEXT,
    rev            TEXT,
    content_hash   TEXT,
    state          TEXT NOT NULL,
    last_error     TEXT,
    updated_at     BIGINT NOT NULL,
    UNIQUE (binding_id, rel_lower)
);
CREATE INDEX sync_files_record ON sync_files(record_id);
CREATE INDEX sync_files_dropbox_id ON sync_files(dropbox_id);

-- Why a record needs a pass; the plan itself is recomputed from state.
CREATE TABLE sync_queue (
    record_id      BIGINT PRIMARY KEY,
    priority       BIGINT NOT NULL,
    generation     BIGINT NOT NULL,
    attempts       BIGINT NOT NULL,
    next_at        BIGINT NOT NULL,
    claimed_until  BIGINT,
    enqueued_at    BIGINT NOT NULL,
    dead           BIGINT NOT NULL,
    last_error     TEXT
);
CREATE INDEX sync_queue_due ON sync_queue(dead, priority, next_at, enqueued_at, record_id);

-- Every executed action.
CREATE TABLE sync_log (
    id           INTEGER PRIMARY KEY,
    at           BIGINT NOT NULL,
    connection   TEXT NOT NULL,
    binding_id   BIGINT,
    record_id    BIGINT NOT NULL,
    path         TEXT NOT NULL,
    action       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    bytes        BIGINT NOT NULL,
    duration_ms  BIGINT NOT NULL,
    error        TEXT
);
CREATE INDEX sync_log_record ON sync_log(record_id, id);

-- Large uploads in progress, so a restart resumes at the offset Dropbox has.
CREATE TABLE upload_sessions (
    connection    TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    session_id    TEXT NOT NULL,
    upload_offset BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (connection, content_hash)
);
