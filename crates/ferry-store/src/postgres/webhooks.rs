//! Webhook events on PostgreSQL: written inside the transaction of the change they report
//! (see the SQLite side, `crate::webhooks`, for the shapes).

use crate::StoreResult;
use serde_json::{Value, json};

/// Whether any webhook subscription exists (else no event is worth building).
pub(crate) async fn any_subscription(conn: &mut sqlx::PgConnection) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM webhook_subscriptions LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.is_some())
}

/// Writes an event and its deliveries inside `conn`'s transaction (nothing without a
/// subscription that wants `event_type`).
pub(crate) async fn emit(
    conn: &mut sqlx::PgConnection,
    event_type: &str,
    data: Value,
) -> StoreResult<()> {
    let now = chrono::Utc::now();
    let wanted = format!("%,{event_type},%");
    let subscribers: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhook_subscriptions WHERE events = '*' OR events LIKE $1",
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
    sqlx::query(
        "INSERT INTO webhook_events (id, type, payload, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(event_type)
    .bind(&payload)
    .bind(ms)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO webhook_deliveries (subscription_id, event_id, state, attempts, next_at, created_at) \
         SELECT id, $1, 'pending', 0, $2, $3 FROM webhook_subscriptions WHERE events = '*' OR events LIKE $4",
    )
    .bind(&id)
    .bind(ms)
    .bind(ms)
    .bind(&wanted)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
