-- Shared links Ferry made or found, by the item they point to: a file's Dropbox id (links
-- follow the id through renames and moves), or `binding:<id>` for a record's folder. A row
-- without a url is a failed attempt, tried again at next_at.
CREATE TABLE shared_links (
    connection  TEXT NOT NULL,
    item        TEXT NOT NULL,
    url         TEXT,
    audience    TEXT,
    expires_at  BIGINT,
    error       TEXT,
    attempts    BIGINT NOT NULL DEFAULT 0,
    next_at     BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (connection, item)
);
CREATE INDEX sync_files_rule ON sync_files(connection, rule_name);
