-- Bindings whose rule's default subfolders were made: they are made once, when the record's
-- folder is first created, and a folder people deleted on purpose is not made again.
CREATE TABLE binding_subfolders (
    binding_id  BIGINT PRIMARY KEY REFERENCES bindings(id) ON DELETE CASCADE,
    made_at     BIGINT NOT NULL
);
