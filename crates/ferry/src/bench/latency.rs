//! Scenario 3: latency, one change at a time.
//! - Push: an attachment added through the REST API; from the call returning until the file
//!   shows up in the emulator's `list_folder` (watched with `list_folder/longpoll`, which is
//!   not rate-limited, then `list_folder/continue`). Baseline: a client writing the same
//!   kind of file itself (`files/upload`), timed from the call's start to the same sighting.
//! - Pull: a file added in Dropbox; from the upload returning until the REST API lists it as
//!   an attachment. Baseline: a client watching Dropbox itself (long-poll, continue,
//!   download) — the least any integration needs to notice and fetch a new file.

use super::{Ctx, Figure, Goal, Progress, check_deadline, heading, percentile, show};
use anyhow::{Context, bail};
use bytes::Bytes;
use ferry_dropbox::{DropboxClient, Entry, WriteMode};
use serde_json::json;
use std::time::{Duration, Instant};

pub(super) async fn run(ctx: &mut Ctx) -> anyhow::Result<Vec<Figure>> {
    let n = if ctx.options.quick { 10 } else { 200 };
    heading(&format!(
        "3. Latency: {n} record changes pushed, {n} Dropbox additions pulled, one at a time"
    ));
    let stack = ctx.stack().await?;
    for (name, kind, folder, direction) in [
        ("pushlat", "pjob", "Push/{{ record.key }}", "push"),
        ("pulllat", "qjob", "Pull/{{ record.key }}", "pull"),
    ] {
        stack
            .api
            .put_json(
                &format!("/v1/rules/{name}"),
                &json!({"record_kind": kind, "connection": "dropbox", "folder": folder, "direction": direction}),
            )
            .await?;
    }
    for path in ["/v1/records/pjob/P1", "/v1/records/qjob/Q1"] {
        stack.api.put_json(path, &json!({"fields": {}})).await?;
    }
    stack
        .app
        .engine()
        .wait_idle(Duration::from_secs(30))
        .await?;
    let human = &stack.human;
    let mut watch = Watch::new(human).await?;

    // Push through Ferry.
    let mut push = Vec::with_capacity(n);
    let mut progress = Progress::new("push: API call → visible in list_folder", n as u64);
    for i in 0..n {
        let name = format!("change-{i:04}.txt");
        stack
            .api
            .put_bytes(
                &format!("/v1/records/pjob/P1/attachments/{name}"),
                format!("change {i}").into_bytes(),
            )
            .await?;
        let returned = Instant::now();
        watch
            .until_file(&format!("/bench/push/p1/{name}"), None)
            .await?;
        push.push(returned.elapsed().as_secs_f64() * 1000.0);
        progress.set(i as u64 + 1);
    }
    progress.finish();

    // Push baseline: the client writes the file itself.
    let mut push_direct = Vec::with_capacity(n);
    let mut progress = Progress::new("push baseline: files/upload → visible", n as u64);
    for i in 0..n {
        let path = format!("/Bench/Direct/change-{i:04}.txt");
        let started = Instant::now();
        human
            .upload(&path, Bytes::from(format!("direct {i}")), &WriteMode::Add)
            .await?;
        watch.until_file(&path.to_lowercase(), None).await?;
        push_direct.push(started.elapsed().as_secs_f64() * 1000.0);
        progress.set(i as u64 + 1);
    }
    progress.finish();

    // Pull through Ferry.
    let mut pull = Vec::with_capacity(n);
    let mut progress = Progress::new("pull: added in Dropbox → attachment in Ferry", n as u64);
    for i in 0..n {
        let name = format!("drop-{i:04}.txt");
        human
            .upload(
                &format!("/Bench/Pull/Q1/{name}"),
                Bytes::from(format!("dropped {i}")),
                &WriteMode::Add,
            )
            .await?;
        let added = Instant::now();
        let deadline = added + Duration::from_secs(60);
        loop {
            let record = stack.api.get("/v1/records/qjob/Q1").await?;
            let found = record["attachments"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["name"] == name.as_str()));
            if found {
                break;
            }
            check_deadline(deadline, &format!("{name} to reach Ferry"))?;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        pull.push(added.elapsed().as_secs_f64() * 1000.0);
        progress.set(i as u64 + 1);
    }
    progress.finish();

    // Pull baseline: a client notices the file itself and downloads it.
    let mut pull_direct = Vec::with_capacity(n);
    let mut progress = Progress::new("pull baseline: long-poll → download", n as u64);
    for i in 0..n {
        let path = format!("/Bench/Direct/drop-{i:04}.txt");
        human
            .upload(
                &path,
                Bytes::from(format!("direct drop {i}")),
                &WriteMode::Add,
            )
            .await?;
        let added = Instant::now();
        watch.until_file(&path.to_lowercase(), Some(&path)).await?;
        pull_direct.push(added.elapsed().as_secs_f64() * 1000.0);
        progress.set(i as u64 + 1);
    }
    progress.finish();
    stack.shutdown().await;

    let mut figures = Vec::new();
    for (what, samples, baseline, goals) in [
        (
            "push",
            &push,
            &push_direct,
            [Some(Goal::Below(100.0)), None, Some(Goal::Below(1000.0))],
        ),
        (
            "pull",
            &pull,
            &pull_direct,
            [Some(Goal::Below(1000.0)), None, None],
        ),
    ] {
        for (p, goal) in [50.0, 95.0, 99.0].into_iter().zip(goals) {
            let base_name = format!("latency.{what}_direct.p{p}");
            figures.push(Figure::new(
                format!("latency.{what}.p{p}"),
                percentile(samples, p),
                "ms",
                Some((base_name.as_str(), percentile(baseline, p))),
                goal,
            ));
        }
    }
    show(&figures);
    Ok(figures)
}

/// Watches the whole `/Bench` tree through a recursive cursor.
struct Watch<'a> {
    client: &'a DropboxClient,
    cursor: String,
}

impl<'a> Watch<'a> {
    async fn new(client: &'a DropboxClient) -> anyhow::Result<Watch<'a>> {
        let cursor = client.latest_cursor("/Bench", true).await?;
        Ok(Watch { client, cursor })
    }

    /// Waits until a file at `path_lower` shows up in the change feed (then downloads it
    /// from `download`, if given).
    async fn until_file(&mut self, path_lower: &str, download: Option<&str>) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (changed, _) = self
                .client
                .longpoll(&self.cursor, 30)
                .await
                .context("long-poll")?;
            let mut found = false;
            if changed {
                loop {
                    let page = self.client.list_folder_continue(&self.cursor).await?;
                    found |= page
                        .entries
                        .iter()
                        .any(|e| matches!(e, Entry::File(f) if f.path_lower == path_lower));
                    self.cursor = page.cursor;
                    if !page.has_more {
                        break;
                    }
                }
            }
            if found {
                if let Some(path) = download {
                    let (_, data) = self.client.download(path).await?;
                    if data.is_empty() {
                        bail!("downloaded {path} empty");
                    }
                }
                return Ok(());
            }
            check_deadline(deadline, &format!("{path_lower} to appear in Dropbox"))?;
        }
    }
}
