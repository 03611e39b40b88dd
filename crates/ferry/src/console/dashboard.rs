//! The dashboard: queue, files, content, the last hour's activity, dead letters, and the
//! connections that need an admin first.

use super::render;
use super::session::{self, Admin, Button, CheckedForm};
use crate::api::ApiState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{Value, context};

/// Minutes the chart covers.
const MINUTES: i64 = 60;
/// Dead letters listed (the button re-queues all of them).
const DEAD_SHOWN: usize = 50;

fn failed_page(admin: &Admin, e: &ferry_engine::EngineError) -> Response {
    tracing::error!(error = %e, "console page failed");
    render::message(
        StatusCode::SERVICE_UNAVAILABLE,
        Some(admin),
        "Ferry could not read its state",
        "The database did not answer; try again in a moment. The reason is in Ferry's log.",
        Some("/console"),
    )
}

/// The chart: one bar per minute, scaled to the busiest.
fn activity(buckets: &[ferry_store::ActivityBucket], since_ms: i64) -> Value {
    let mut per_minute = vec![(0u64, 0u64, 0u64); MINUTES as usize];
    for b in buckets {
        let i = ((b.start_ms - since_ms) / 60_000).clamp(0, MINUTES - 1) as usize;
        per_minute[i].0 += b.ok;
        per_minute[i].1 += b.failed;
        per_minute[i].2 += b.bytes;
    }
    let max = per_minute
        .iter()
        .map(|(ok, failed, _)| ok + failed)
        .max()
        .unwrap_or(0)
        .max(1);
    let bars: Vec<Value> = per_minute
        .iter()
        .enumerate()
        .map(|(i, (ok, failed, bytes))| {
            let files = ok + failed;
            let ago = MINUTES - i as i64;
            context! {
                x => i * 12,
                h => files * 90 / max,
                files => files,
                failed => failed,
                bytes => bytes,
                label => format!("{ago} min ago"),
            }
        })
        .collect();
    context! {
        width => MINUTES * 12,
        max => max,
        files => per_minute.iter().map(|b| b.0).sum::<u64>(),
        failed => per_minute.iter().map(|b| b.1).sum::<u64>(),
        bytes => per_minute.iter().map(|b| b.2).sum::<u64>(),
        buckets => bars,
    }
}

/// `GET /console`.
pub async fn show(State(state): State<ApiState>, admin: Admin) -> Response {
    let engine = &state.engine;
    let since = chrono::Utc::now().timestamp_millis() - MINUTES * 60_000;
    let (status, connections, dead, buckets) = match tokio::try_join!(
        engine.status(),
        engine.connections(),
        engine.dead_records(DEAD_SHOWN),
        engine.activity(since, 60_000),
    ) {
        Ok(all) => all,
        Err(e) => return failed_page(&admin, &e),
    };
    let attention: Vec<_> = connections
        .connections
        .iter()
        .filter(|c| c.needs_reconnect.is_some() || c.disconnecting)
        .collect();
    let (dead, dead_total) = dead;
    let dead: Vec<Value> = dead
        .iter()
        .map(|(entry, record)| {
            context! {
                record_id => entry.record_id,
                attempts => entry.attempts,
                last_error => entry.last_error,
                kind => record.as_ref().map(|r| r.kind.clone()),
                key => record.as_ref().map(|r| r.key.clone()),
            }
        })
        .collect();
    render::page(
        &admin,
        "dashboard",
        "dashboard.html",
        context! {
            title => "Dashboard",
            status => status,
            attention => attention,
            dead => dead,
            dead_total => dead_total,
            activity => activity(&buckets, since),
        },
    )
}

/// `POST /console/queue/requeue`: every dead letter back in the queue.
pub async fn requeue_all(
    State(state): State<ApiState>,
    CheckedForm(admin, _): CheckedForm<Button>,
) -> Response {
    match state.engine.requeue_dead().await {
        Ok(n) => session::done(
            "/console",
            &format!("Re-queued {n} records; Ferry tries them again now."),
            false,
        ),
        Err(e) => failed_page(&admin, &e),
    }
}
