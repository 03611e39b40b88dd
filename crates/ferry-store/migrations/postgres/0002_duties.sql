-- Jobs one process runs for the whole installation (a connection's change watcher, the
-- webhook sender, scheduled backups…), each held by one process until its lease ends; the
-- holder's heartbeat renews it.
CREATE TABLE duties (
    name      TEXT COLLATE "C" PRIMARY KEY,
    holder    TEXT COLLATE "C" NOT NULL,
    until_ms  BIGINT NOT NULL
);
