//! Webhook events, written inside the transaction of the change they report: one
//! `webhook_events` row and one pending delivery per subscription that wants its type. With
//! no subscription nothing is written. Payloads follow the Standard Webhooks shape
//! (`{"type", "timestamp", "data"}`).

use crate::{LogEntry, StoreResult};
use serde_json::{Value, json};

/// Every event type Ferry sends.
pub const EVENT_TYPES: &[&str] = &[
    "file.synced",
    "file.imported",
    "file.deleted",
    "file.archived",
    "file.failed",
    "folder.moved",
    "brake.paused",
    "record.synced",
    "record.dead_lettered",
    "connection.needs_reconnect",
    "connection.reconnected",
    "backup.completed",
    "backup.failed",
    "link.created",
    "link.failed",
];

/// The event a sync log entry is, if any.
pub(crate) fn event_for_log(action: &str, outcome: &str) -> Option<&'static str> {
    Some(match (action, outcome) {
        ("backup", "ok") => "backup.completed",
        ("backup", _) => "backup.failed",
        ("needs_reconnect", _) => "connection.needs_reconnect",
        ("pause", _) => "brake.paused",
        ("record_synced", _) => "record.synced",
        // Written by `save_link` itself, with the link.
        ("link", _) => return None,
        (_, "failed") => "file.failed",
        ("upload", "ok") => "file.synced",
        ("import" | "reverse_import", "ok") => "file.imported",
        ("delete", "ok") => "file.deleted",
        ("archive", "ok") => "file.archived",
        ("move_folder", "ok") => "folder.moved",
        _ => return None,
    })
}

/// The `data` of a log entry's event.
pub(crate) fn log_data(e: &LogEntry, record: Option<(String, String)>) -> Value {
    json!({
        "connection": e.connection,
        "record": record.map(|(kind, key)| json!({"kind": kind, "key": key})),
        "path": e.path,
        "action": e.action,
        "outcome": e.outcome,
        "bytes": e.bytes,
        "error": e.error,
    })
}

/// Whether any webhook subscription exists (else no event is worth building).
pub(crate) async fn any_subscription(conn: &mut sqlx::SqliteConnection) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM webhook_subscriptions LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.is_some())
}

/// Writes an event and its deliveries inside `conn`'s transaction (nothing without a
/// subscription that wants `event_type`).
pub(crate) async fn emit(
    conn: &mut sqlx::SqliteConnection,
    event_type: &str,
    data: Value,
) -> StoreResult<()> {
    let now = chrono::Utc::now();
    let wanted = format!("%,{event_type},%");
    let subscribers: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhook_subscriptions WHERE events = '*' OR events LIKE ?",
    )
    .bind(&wanted)
    .fetch_one(&mut *conn)
    .await?;
    if subscribers == 0 {
        return Ok(());
    }
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let payload = json!({
        "type": event_type,
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string();
    let ms = now.timestamp_millis();
    sqlx::query("INSERT INTO webhook_events (id, type, payload, created_at) VALUES (?, ?, ?, ?)")
        .bind(&id)
        .bind(event_type)
        .bind(&payload)
        .bind(ms)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO webhook_deliveries (subscription_id, event_id, state, attempts, next_at, created_at) \
         SELECT id, ?, 'pending', 0, ?, ? FROM webhook_subscriptions WHERE events = '*' OR events LIKE ?",
    )
    .bind(&id)
    .bind(ms)
    .bind(ms)
    .bind(&wanted)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_entries_map_to_documented_events() {
        for (action, outcome) in [
            ("upload", "ok"),
            ("upload", "failed"),
            ("import", "ok"),
            ("pause", "skipped"),
            ("backup", "failed"),
        ] {
            let event = super::event_for_log(action, outcome).unwrap();
            assert!(super::EVENT_TYPES.contains(&event), "{event}");
        }
        assert_eq!(super::event_for_log("preserve_conflicted_copy", "ok"), None);
    }
}
