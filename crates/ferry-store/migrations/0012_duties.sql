-- Jobs one process runs for the whole installation (a connection's change watcher, the
-- webhook sender, scheduled backups…), each held by one process until its lease ends; the
-- holder's heartbeat renews it.
CREATE TABLE duties (
    name      TEXT PRIMARY KEY,
    holder    TEXT NOT NULL,
    until_ms  BIGINT NOT NULL
);
