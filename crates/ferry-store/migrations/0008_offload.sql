-- Offloaded attachments: Ferry dropped its copy of the content once Dropbox confirmed it;
-- it is read back from that connection's revision (`rev:` addressing survives renames,
-- moves and deletions). `offload_dropped_at` is set once the blob is gone from the blob store.
ALTER TABLE attachments ADD COLUMN offload_connection TEXT;
ALTER TABLE attachments ADD COLUMN offload_rev TEXT;
ALTER TABLE attachments ADD COLUMN offloaded_at BIGINT;
ALTER TABLE attachments ADD COLUMN offload_dropped_at BIGINT;
CREATE INDEX attachments_content ON attachments(content_hash);
CREATE INDEX archived_content ON archived_attachments(content_hash);
