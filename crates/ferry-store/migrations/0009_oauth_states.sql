-- Connect flows in progress: one row per authorize link handed out, taken (deleted) by the
-- callback that uses it, so a state works once and only until it expires.
CREATE TABLE oauth_states (
    state                TEXT PRIMARY KEY,
    connection           TEXT NOT NULL,
    root                 TEXT NOT NULL,
    api_url              TEXT NOT NULL,
    content_url          TEXT NOT NULL,
    notify_url           TEXT NOT NULL,
    select_user          TEXT,
    path_root            TEXT,
    verifier_ciphertext  BLOB NOT NULL,
    created_at           BIGINT NOT NULL,
    expires_at           BIGINT NOT NULL
);
