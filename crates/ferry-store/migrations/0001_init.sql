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
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (record_id, name)
);

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
    updated_at        BIGINT NOT NULL
);

-- One row per file Ferry manages in Dropbox (path set), or per file it could not place (path NULL).
CREATE TABLE sync_files (
    id             INTEGER PRIMARY KEY,
    record_id      BIGINT NOT NULL,
    rule_name      TEXT NOT NULL,
    connection     TEXT NOT NULL,
    attachment_id  BIGINT,
    path_display   TEXT,
    path_lower     TEXT,
    content_hash   TEXT,
    rev            TEXT,
    dropbox_id     TEXT,
    state          TEXT NOT NULL,
    last_error     TEXT,
    updated_at     BIGINT NOT NULL,
    UNIQUE (connection, path_lower)
);
CREATE INDEX sync_files_record ON sync_files(record_id);

-- Why a record needs a sync pass; the plan itself is recomputed from state.
CREATE TABLE sync_queue (
    record_id      BIGINT PRIMARY KEY,
    generation     BIGINT NOT NULL,
    attempts       BIGINT NOT NULL,
    next_at        BIGINT NOT NULL,
    claimed_until  BIGINT,
    enqueued_at    BIGINT NOT NULL,
    last_error     TEXT
);
CREATE INDEX sync_queue_due ON sync_queue(next_at, enqueued_at);
