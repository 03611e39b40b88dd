-- Processes that run engines on this database. A queue claim belongs to one of them: it is
-- renewed by that process's heartbeat while the pass runs, and released at once when a
-- process finds the claimer dead (same host, process gone).
CREATE TABLE processes (
    id            TEXT PRIMARY KEY,
    host          TEXT NOT NULL,
    pid           BIGINT NOT NULL,
    -- Unique per operating-system process, so a reused pid is told apart.
    boot_token    TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    heartbeat_at  BIGINT NOT NULL
);

ALTER TABLE sync_queue ADD COLUMN claimed_by TEXT;
-- When the current run of failed passes began (NULL: not failing); giving up is by time.
ALTER TABLE sync_queue ADD COLUMN failing_since BIGINT;

-- Who wrote an attachment's current content: 'app' or 'dropbox'. Replacing one side's
-- version by the other side's archives it first.
ALTER TABLE attachments ADD COLUMN source TEXT NOT NULL DEFAULT 'app';
UPDATE attachments SET source = 'dropbox' WHERE origin_path IS NOT NULL;

-- Enough to restore an archived version where it was.
ALTER TABLE archived_attachments ADD COLUMN origin_path TEXT;
ALTER TABLE archived_attachments ADD COLUMN source TEXT NOT NULL DEFAULT 'app';

-- The deletion brake counts deletions over a window; an admin's confirmation starts a new one.
ALTER TABLE bindings ADD COLUMN deletions_confirmed_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN deletions_confirmed_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX sync_log_deletions ON sync_log(connection, action, at);
