-- A record deleted with its Dropbox files: it stays (with its content) until its passes have
-- removed every file it synced, under the deletion brake, and is then forgotten.
ALTER TABLE records ADD COLUMN deleting INTEGER NOT NULL DEFAULT 0;
