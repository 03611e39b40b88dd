-- Each connection's Dropbox tree (its files), kept current from the change cursor: a pass
-- plans from it instead of listing its folder. Rows of one `epoch` form one mirror; a full
-- listing builds the next epoch beside the one in use, and the cursor it ends with puts it in
-- use (`connections.mirror_epoch`, 0: none).
CREATE TABLE mirror_files (
    connection    TEXT COLLATE "C" NOT NULL,
    epoch         BIGINT NOT NULL,
    path_lower    TEXT COLLATE "C" NOT NULL,
    path_display  TEXT COLLATE "C" NOT NULL,
    dropbox_id    TEXT COLLATE "C" NOT NULL,
    rev           TEXT COLLATE "C" NOT NULL,
    size          BIGINT NOT NULL,
    content_hash  TEXT COLLATE "C",
    PRIMARY KEY (connection, epoch, path_lower)
);

ALTER TABLE connections ADD COLUMN mirror_epoch BIGINT NOT NULL DEFAULT 0;
-- Until when (ms) a watcher is known to follow the feed: a mirror nobody follows is not used.
ALTER TABLE connections ADD COLUMN mirror_live_until BIGINT NOT NULL DEFAULT 0;

-- A cursor taken before mirrors existed has none: the next watcher round starts the feed
-- again with a full listing (and a reconciliation), as after a reset.
UPDATE connections SET cursor = NULL;
