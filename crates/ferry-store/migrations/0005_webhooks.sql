-- Webhook subscriptions, the events they receive, and each delivery's progress. An event's
-- deliveries are written in the same transaction as the change it reports (a sync log entry,
-- a dead letter, a reconnect), so no event is lost to a crash between the two.
CREATE TABLE webhook_subscriptions (
    id                 INTEGER PRIMARY KEY,
    url                TEXT NOT NULL,
    -- ",file.synced,file.failed," or "*".
    events             TEXT NOT NULL,
    secret_ciphertext  BLOB NOT NULL,
    created_at         BIGINT NOT NULL
);

CREATE TABLE webhook_events (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY,
    subscription_id  BIGINT NOT NULL REFERENCES webhook_subscriptions(id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL REFERENCES webhook_events(id),
    -- pending, delivered, failed (gave up)
    state            TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_at          BIGINT NOT NULL,
    last_status      BIGINT,
    last_error       TEXT,
    delivered_at     BIGINT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_at);
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries(subscription_id, id);
