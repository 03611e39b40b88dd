//! Backups of Ferry's database: where they go and when, the ones in Dropbox (download), the
//! last runs from the sync log, and "Back up now".

use super::records::engine_failed;
use super::render;
use super::session::{self, Admin, Button, CheckedForm};
use crate::api::ApiState;
use axum::extract::{Path, State};
use axum::response::Response;
use ferry_engine::LogQuery;
use ferry_engine::backup::BackupSettings;
use minijinja::context;

/// Runs listed from the sync log.
const RUNS_SHOWN: u32 = 10;

fn not_configured(admin: &Admin) -> Response {
    render::page(
        admin,
        "backups",
        "backups.html",
        context! { title => "Backups", configured => false },
    )
}

/// The schedule in words.
fn schedule(settings: &BackupSettings) -> String {
    match (&settings.cron, settings.every) {
        (Some(cron), _) => format!("on the cron schedule {cron} (UTC)"),
        (None, Some(every)) => format!("every {}", duration_words(every.as_secs())),
        (None, None) => "only when asked (no schedule)".to_owned(),
    }
}

/// `90000` → `1 d 1 h`: the two largest units.
fn duration_words(secs: u64) -> String {
    let parts = [(86_400, "d"), (3_600, "h"), (60, "min"), (1, "s")];
    let mut rest = secs;
    let words: Vec<String> = parts
        .iter()
        .filter_map(|(unit, name)| {
            let n = rest / unit;
            rest %= unit;
            (n > 0).then(|| format!("{n} {name}"))
        })
        .take(2)
        .collect();
    if words.is_empty() {
        "0 s".to_owned()
    } else {
        words.join(" ")
    }
}

/// What a failure says to an admin (the API's words: never a secret or a host's text).
fn said(e: ferry_engine::EngineError) -> String {
    crate::api::ApiError::from(e).message().to_owned()
}

/// `GET /console/backups`.
pub async fn show(State(state): State<ApiState>, admin: Admin) -> Response {
    let Some(settings) = state.backup.as_ref() else {
        return not_configured(&admin);
    };
    let runs = state
        .engine
        .log(LogQuery {
            connection: None,
            record: None,
            action: Some("backup".into()),
            outcome: None,
            since_ms: None,
            until_ms: None,
            cursor: None,
            limit: RUNS_SHOWN,
        })
        .await;
    let runs = match runs {
        Ok(page) => page
            .entries
            .into_iter()
            .map(|l| l.entry)
            .collect::<Vec<_>>(),
        Err(e) => return engine_failed(&admin, &e, "/console"),
    };
    // Dropbox may be unreachable or the connection refused: the page still shows the rest.
    let (backups, list_error) = match state.engine.backups(settings).await {
        Ok(list) => (list.backups, None),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list backups");
            (Vec::new(), Some(said(e)))
        }
    };
    render::page(
        &admin,
        "backups",
        "backups.html",
        context! {
            title => "Backups",
            configured => true,
            connection => settings.connection,
            folder => settings.folder,
            keep => settings.keep,
            max_age_days => settings.max_age.map(|d| d.as_secs() / 86_400),
            schedule => schedule(settings),
            backups => backups,
            list_error => list_error,
            runs => runs,
        },
    )
}

/// `POST /console/backups`: a verified backup now; answers when it is done.
pub async fn now(
    State(state): State<ApiState>,
    CheckedForm(admin, _): CheckedForm<Button>,
) -> Response {
    let Some(settings) = state.backup.as_ref() else {
        return not_configured(&admin);
    };
    match state.engine.backup_now(settings, &state.scratch).await {
        Ok(report) => session::done(
            "/console/backups",
            &format!(
                "Backed up and verified: {} ({} compressed from {}), checked by restoring it; {} older backups removed.",
                report.backup.name,
                render::bytes(report.backup.size.into()),
                render::bytes(report.database_bytes.into()),
                report.pruned.len()
            ),
            false,
        ),
        Err(e) => session::done(
            "/console/backups",
            &format!(
                "The backup failed, and older backups were kept: {}",
                said(e)
            ),
            true,
        ),
    }
}

/// `GET /console/backups/{name}`: one backup's file, streamed from Dropbox.
pub async fn download(
    State(state): State<ApiState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Response {
    match crate::api::backups::stream_backup(&state, &name).await {
        Ok(response) => response,
        Err(e) => render::message(
            e.status(),
            Some(&admin),
            "Not downloaded",
            e.message(),
            Some("/console/backups"),
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_in_words() {
        assert_eq!(super::duration_words(90_000), "1 d 1 h");
        assert_eq!(super::duration_words(3_600), "1 h");
        assert_eq!(super::duration_words(61), "1 min 1 s");
        assert_eq!(super::duration_words(0), "0 s");
    }
}
