-- Each connection's Dropbox tree (its files), kept current from the change cursor: a pass
-- plans from it instead of listing its folder. Rows of one `epoch` form one mirror; a full
-- listing builds the next epoch beside the one in use, and the cursor it ends with puts it in
-- use (`connections.mirror_epoch`, 0: none).
CREATE TABLE mirror_files (
    connection    TEXT NOT NULL,
    epoch         INTEGER NOT NULL,
    path_lower    TEXT NOT NULL,
    path_display  TEXT NOT NULL,
    dropbox_id    TEXT NOT NULL,
    rev           TEXT NOT NULL,
    size          INTEGER NOT NULL,
    content_hash  TEXT,
    PRIMARY KEY (connection, epoch, path_lower)
) WITHOUT ROWID;

ALTER TABLE connections ADD COLUMN mirror_epoch INTEGER NOT NULL DEFAULT 0;
-- Until when (ms) a watcher is known to follow the feed: a mirror nobody follows is not used.
ALTER TABLE connections ADD COLUMN mirror_live_until INTEGER NOT NULL DEFAULT 0;

-- A cursor taken before mirrors existed has none: the next watcher round starts the feed
-- again with a full listing (and a reconciliation), as after a reset.
UPDATE connections SET cursor = NULL;
