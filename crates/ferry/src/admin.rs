//! The admin commands (`ferry status`, `ferry records …`, `ferry rules …`, `ferry log`,
//! `ferry connections`, `ferry dead`): a running Ferry driven over its REST API, as an
//! operator would. Human output by default, the API's JSON with `--json`; long waits show a
//! progress bar on a terminal.

use crate::api_client::ApiClient;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// An admin session against one Ferry.
pub struct Admin {
    api: ApiClient,
    json: bool,
}

/// Percent-encodes one URL path segment or query value (everything but RFC 3986's
/// unreserved characters).
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A query string from the pairs that are set.
fn query(pairs: &[(&str, Option<String>)]) -> String {
    let set: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v))))
        .collect();
    if set.is_empty() {
        String::new()
    } else {
        format!("?{}", set.join("&"))
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Prints rows as aligned columns under a header.
fn table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  ", w = *w));
            }
        }
        s.trim_end().to_owned()
    };
    writeln!(
        out,
        "{}",
        line(header.iter().map(|h| h.to_string()).collect())
    )?;
    for row in rows {
        writeln!(out, "{}", line(row.clone()))?;
    }
    Ok(())
}

/// Rules from a file: TOML or JSON (by extension, else tried in that order), holding
/// `rules.<name>` tables (`[rules.tickets]`) whose bodies are what `PUT /v1/rules/{name}`
/// takes.
pub fn rules_from_file(path: &Path) -> anyhow::Result<Vec<(String, Value)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let is_json = path.extension().is_some_and(|e| e == "json");
    let doc: Value = if is_json {
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?
    } else {
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("{} is not TOML", path.display()))?;
        serde_json::to_value(table)?
    };
    let Some(rules) = doc.get("rules").and_then(Value::as_object) else {
        bail!(
            "{} must hold a `rules` table: [rules.<name>] sections in TOML, {{\"rules\": {{\"<name>\": {{…}}}}}} in JSON",
            path.display()
        );
    };
    if rules.is_empty() {
        bail!("{} holds no rules", path.display());
    }
    Ok(rules
        .iter()
        .map(|(name, body)| (name.clone(), body.clone()))
        .collect())
}

impl Admin {
    /// A session over `api`; `json` prints the API's answers as they are.
    pub fn new(api: ApiClient, json: bool) -> Self {
        Admin { api, json }
    }

    fn print_json(&self, value: &Value) -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(value)?);
        Ok(())
    }

    /// `ferry status`.
    pub async fn status(&self) -> anyhow::Result<()> {
        let status = self.api.get("/v1/status").await?;
        if self.json {
            return self.print_json(&status);
        }
        let q = &status["queue"];
        let f = &status["files"];
        println!(
            "queue   {} queued, {} retrying, {} dead",
            q["queued"], q["retrying"], q["dead"]
        );
        println!(
            "files   {} synced, {} pending, {} failed",
            f["synced"], f["pending"], f["failed"]
        );
        let c = &status["content"];
        println!(
            "content {} files ({} bytes) held here, {} ({} bytes) offloaded to Dropbox",
            c["stored_files"], c["stored_bytes"], c["offloaded_files"], c["offloaded_bytes"]
        );
        let connections = self.api.get("/v1/connections").await?;
        for c in connections["connections"].as_array().into_iter().flatten() {
            let state = if c["disconnecting"] == true {
                "disconnecting".to_owned()
            } else if let Some(reason) = c["needs_reconnect"].as_str() {
                format!("needs reconnect: {reason}")
            } else {
                "active".to_owned()
            };
            println!(
                "dropbox {} ({}) {state}",
                text(&c["name"]),
                text(&c["root"])
            );
        }
        Ok(())
    }

    /// `ferry records list`: one page, or every page with `all`.
    pub async fn records_list(
        &self,
        kind: Option<String>,
        q: Option<String>,
        state: Option<String>,
        all: bool,
    ) -> anyhow::Result<()> {
        let mut cursor: Option<String> = None;
        let mut records = Vec::new();
        loop {
            let page = self
                .api
                .get(&format!(
                    "/v1/records{}",
                    query(&[
                        ("kind", kind.clone()),
                        ("q", q.clone()),
                        ("state", state.clone()),
                        ("cursor", cursor.clone()),
                        ("limit", Some("1000".into())),
                    ])
                ))
                .await?;
            records.extend(page["records"].as_array().cloned().unwrap_or_default());
            cursor = page["next_cursor"].as_str().map(str::to_owned);
            if cursor.is_none() || !all {
                break;
            }
        }
        if self.json {
            return self.print_json(&json!({"records": records, "next_cursor": cursor}));
        }
        let rows: Vec<Vec<String>> = records
            .iter()
            .map(|r| {
                let state = if r["dead"] == true {
                    "dead"
                } else if r["files"]["failed"].as_u64().unwrap_or(0) > 0 {
                    "failed"
                } else if r["queued"] == true || r["files"]["pending"].as_u64().unwrap_or(0) > 0 {
                    "pending"
                } else {
                    "synced"
                };
                vec![
                    text(&r["kind"]),
                    text(&r["key"]),
                    text(&r["attachments"]),
                    text(&r["files"]["synced"]),
                    text(&r["files"]["pending"]),
                    text(&r["files"]["failed"]),
                    state.to_owned(),
                ]
            })
            .collect();
        table(
            &mut std::io::stdout(),
            &[
                "KIND",
                "KEY",
                "ATTACHMENTS",
                "SYNCED",
                "PENDING",
                "FAILED",
                "STATE",
            ],
            &rows,
        )?;
        if let Some(c) = cursor {
            println!("(more: add --all, or the API's cursor {c})");
        }
        Ok(())
    }

    /// `ferry records show KIND KEY`: the record and where its files are.
    pub async fn records_show(&self, kind: &str, key: &str) -> anyhow::Result<()> {
        let path = format!("/v1/records/{}/{}", enc(kind), enc(key));
        let record = self.api.get(&path).await?;
        let sync = self.api.get(&format!("{path}/sync")).await?;
        if self.json {
            return self.print_json(&json!({"record": record, "sync": sync}));
        }
        println!("{}/{}", text(&record["kind"]), text(&record["key"]));
        println!("fields  {}", record["fields"]);
        if let Some(p) = record["parent"].as_object() {
            println!("parent  {}/{}", text(&p["kind"]), text(&p["key"]));
        }
        for b in sync["bindings"].as_array().into_iter().flatten() {
            let paused = b["paused"]
                .as_str()
                .map(|r| format!("  (paused: {r})"))
                .unwrap_or_default();
            println!(
                "folder  {} via {}{paused}",
                text(&b["folder"]),
                text(&b["rule"])
            );
        }
        let rows: Vec<Vec<String>> = sync["files"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                vec![
                    text(&f["attachment"]),
                    text(&f["state"]),
                    text(&f["path"]),
                    text(&f["last_error"]),
                ]
            })
            .collect();
        table(
            &mut std::io::stdout(),
            &["ATTACHMENT", "STATE", "DROPBOX PATH", "ERROR"],
            &rows,
        )?;
        Ok(())
    }

    /// `ferry records sync KIND KEY`: a pass now; with `wait`, until the record settles.
    pub async fn records_sync(&self, kind: &str, key: &str, wait: bool) -> anyhow::Result<bool> {
        let path = format!("/v1/records/{}/{}", enc(kind), enc(key));
        self.api.post(&format!("{path}/sync")).await?;
        if !wait {
            if self.json {
                self.print_json(&json!({"queued": true}))?;
            } else {
                println!("queued {kind}/{key}");
            }
            return Ok(true);
        }
        let bar =
            indicatif::ProgressBar::new_spinner().with_message(format!("syncing {kind}/{key}"));
        bar.enable_steady_tick(Duration::from_millis(120));
        let sync = loop {
            let sync = self.api.get(&format!("{path}/sync")).await?;
            let settled = sync["queued"] == false
                || sync["queue"]["dead"] == true
                || sync["queue"]["attempts"].as_i64().unwrap_or(0) > 0;
            if settled {
                break sync;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        bar.finish_and_clear();
        let s = &sync["summary"];
        let ok = s["failed"] == 0 && s["pending"] == 0 && sync["queued"] == false;
        if self.json {
            self.print_json(&sync)?;
        } else {
            println!(
                "{kind}/{key}: {} synced, {} pending, {} failed",
                s["synced"], s["pending"], s["failed"]
            );
        }
        Ok(ok)
    }

    /// `ferry rules list`.
    pub async fn rules_list(&self) -> anyhow::Result<()> {
        let rules = self.api.get("/v1/rules").await?;
        if self.json {
            return self.print_json(&rules);
        }
        let rows: Vec<Vec<String>> = rules["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                vec![
                    text(&r["name"]),
                    text(&r["record_kind"]),
                    text(&r["connection"]),
                    text(&r["direction"]),
                    text(&r["folder"]),
                ]
            })
            .collect();
        table(
            &mut std::io::stdout(),
            &["NAME", "KIND", "CONNECTION", "DIRECTION", "FOLDER"],
            &rows,
        )?;
        Ok(())
    }

    /// `ferry rules apply -f FILE`: every rule in the file, checked then stored (or only
    /// checked with `dry_run`); with `wait`, until the back-fill is done.
    pub async fn rules_apply(&self, file: &Path, dry_run: bool, wait: bool) -> anyhow::Result<()> {
        let rules = rules_from_file(file)?;
        let mut answers = Vec::new();
        let mut queued = 0u64;
        for (name, body) in &rules {
            let path = format!(
                "/v1/rules/{}{}",
                enc(name),
                if dry_run { "?dry_run=true" } else { "" }
            );
            let answer = self
                .api
                .put_json(&path, body)
                .await
                .with_context(|| format!("rule {name:?}"))?;
            queued += answer["queued_records"].as_u64().unwrap_or(0);
            if !self.json {
                let verb = if dry_run { "checked" } else { "applied" };
                println!(
                    "{verb} {name}: {} record(s) queued",
                    answer["queued_records"]
                );
                for w in answer["warnings"].as_array().into_iter().flatten() {
                    println!("  warning: {}", text(w));
                }
            }
            answers.push(answer);
        }
        if wait && !dry_run {
            self.wait_for_queue(queued, "back-filling").await?;
        }
        if self.json {
            self.print_json(&json!({"applied": answers}))?;
        }
        Ok(())
    }

    /// `ferry rules preview -f FILE`.
    pub async fn rules_preview(&self, file: &Path) -> anyhow::Result<()> {
        let mut previews = Vec::new();
        for (name, body) in rules_from_file(file)? {
            let preview = self
                .api
                .post_json(&format!("/v1/rules/{}/preview", enc(&name)), &body)
                .await
                .with_context(|| format!("rule {name:?}"))?;
            if !self.json {
                println!(
                    "rule {name}: {} record(s) of kind {}",
                    preview["total_records"],
                    text(&preview["rule"]["record_kind"])
                );
                for r in preview["records"].as_array().into_iter().flatten() {
                    let who = format!(
                        "{}/{}",
                        text(&r["record"]["kind"]),
                        text(&r["record"]["key"])
                    );
                    if r["applies"] != true {
                        println!("  {who}: does not apply");
                        continue;
                    }
                    println!("  {who} -> {}", text(&r["folder"]));
                    for a in r["actions"].as_array().into_iter().flatten() {
                        println!("      {}", text(a));
                    }
                    for e in r["errors"].as_array().into_iter().flatten() {
                        println!("      error: {}", text(e));
                    }
                }
                for w in preview["warnings"].as_array().into_iter().flatten() {
                    println!("  warning: {}", text(w));
                }
            }
            previews.push(preview);
        }
        if self.json {
            self.print_json(&json!({"previews": previews}))?;
        }
        Ok(())
    }

    /// Waits until the queue drains (only retries and dead letters left), with a bar that
    /// counts down from `expected` records.
    async fn wait_for_queue(&self, expected: u64, what: &str) -> anyhow::Result<()> {
        let bar = indicatif::ProgressBar::new(expected.max(1)).with_message(what.to_owned());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} records")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        loop {
            let status = self.api.get("/v1/status").await?;
            let q = &status["queue"];
            let left = q["queued"].as_u64().unwrap_or(0);
            let waiting = q["retrying"].as_u64().unwrap_or(0) + q["dead"].as_u64().unwrap_or(0);
            bar.set_position(expected.saturating_sub(left));
            if left <= waiting {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bar.finish_and_clear();
        Ok(())
    }

    /// `ferry connections list`.
    pub async fn connections_list(&self) -> anyhow::Result<()> {
        let connections = self.api.get("/v1/connections").await?;
        if self.json {
            return self.print_json(&connections);
        }
        let rows: Vec<Vec<String>> = connections["connections"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let state = if c["disconnecting"] == true {
                    "disconnecting".to_owned()
                } else if let Some(r) = c["needs_reconnect"].as_str() {
                    format!("needs reconnect: {r}")
                } else {
                    "active".to_owned()
                };
                vec![
                    text(&c["name"]),
                    text(&c["root"]),
                    text(&c["api_url"]),
                    state,
                ]
            })
            .collect();
        table(
            &mut std::io::stdout(),
            &["NAME", "ROOT", "API", "STATE"],
            &rows,
        )?;
        Ok(())
    }

    /// `ferry connections connect NAME`: prints the link to Dropbox's authorize page; with
    /// `wait`, waits until the account is connected (false when the link expired first).
    pub async fn connections_connect(
        &self,
        name: &str,
        body: Value,
        wait: bool,
    ) -> anyhow::Result<bool> {
        let active = |list: &Value| {
            list["connections"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["name"] == name && c["needs_reconnect"].is_null())
        };
        let before = active(&self.api.get("/v1/connections").await?);
        // Absent fields are left out rather than sent as null.
        let body: serde_json::Map<String, Value> = body
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let link = self
            .api
            .post_json(
                &format!("/v1/connections/{}/authorize", enc(name)),
                &Value::Object(body),
            )
            .await?;
        if self.json {
            self.print_json(&link)?;
        } else {
            println!("Open this link in a browser and choose Allow:");
            println!("{}", text(&link["authorize_url"]));
        }
        if !wait {
            return Ok(true);
        }
        if before {
            eprintln!("{name} is connected already: the link replaces its credentials when used");
            return Ok(true);
        }
        let expires_at = link["expires_at"].as_i64().unwrap_or(0);
        while chrono::Utc::now().timestamp_millis() < expires_at {
            if active(&self.api.get("/v1/connections").await?) {
                if !self.json {
                    println!("{name} is connected.");
                }
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        eprintln!("the link expired before {name} was connected");
        Ok(false)
    }

    /// `ferry connections remove NAME`: reverse sync (every file only Dropbox holds comes
    /// back into Ferry), then the connection goes; with `wait`, until it is gone.
    pub async fn connections_remove(&self, name: &str, wait: bool) -> anyhow::Result<()> {
        let answer = self
            .api
            .delete(&format!("/v1/connections/{}", enc(name)))
            .await?;
        let records = answer["records_to_bring_back"].as_u64().unwrap_or(0);
        if wait {
            let bar = indicatif::ProgressBar::new(records.max(1))
                .with_message(format!("bringing {name}'s files back"));
            loop {
                let connections = self.api.get("/v1/connections").await?;
                let still = connections["connections"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["name"] == name);
                if !still {
                    break;
                }
                let status = self.api.get("/v1/status").await?;
                let left = status["queue"]["queued"].as_u64().unwrap_or(0);
                bar.set_position(records.saturating_sub(left));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            bar.finish_and_clear();
        }
        if self.json {
            return self.print_json(&answer);
        }
        if wait {
            println!("disconnected {name}: {records} record(s) brought back");
        } else {
            println!("disconnecting {name}: {records} record(s) to bring back first");
        }
        Ok(())
    }

    /// Creates the console admin `name` or sets a new password (`ferry admin set-password`).
    pub async fn set_admin_password(&self, name: &str, password: &str) -> anyhow::Result<()> {
        let (status, answer) = self
            .api
            .raw(
                reqwest::Method::PUT,
                &format!("/v1/admins/{}/password", enc(name)),
                Some((
                    serde_json::to_vec(&json!({ "password": password }))?,
                    "application/json",
                )),
            )
            .await?;
        if !status.is_success() {
            bail!("{}", text(&answer["error"]["message"]));
        }
        if self.json {
            return self.print_json(&answer);
        }
        if answer["created"] == json!(true) {
            println!("created console admin {name}");
        } else {
            println!("changed the password of {name} (their console sessions ended)");
        }
        Ok(())
    }

    /// Prints a link that signs `name` in to the console once (`ferry admin login-link`).
    pub async fn admin_login_link(&self, name: &str) -> anyhow::Result<String> {
        let (status, answer) = self
            .api
            .raw(
                reqwest::Method::POST,
                &format!("/v1/admins/{}/login-link", enc(name)),
                None,
            )
            .await?;
        if !status.is_success() {
            bail!("{}", text(&answer["error"]["message"]));
        }
        let url = format!(
            "{}{}",
            self.api.base().trim_end_matches('/'),
            text(&answer["path"])
        );
        Ok(url)
    }

    /// `ferry backup now`: a verified backup, made by the server.
    pub async fn backup_now(&self) -> anyhow::Result<()> {
        let report = self
            .api
            .raw(reqwest::Method::POST, "/v1/backups", None)
            .await?;
        let (status, report) = report;
        if !status.is_success() {
            bail!(
                "backup failed ({status}): {}",
                text(&report["error"]["message"])
            );
        }
        if self.json {
            return self.print_json(&report);
        }
        println!(
            "backed up to {} ({} bytes, {} uncompressed), verified",
            text(&report["backup"]["path"]),
            report["backup"]["size"],
            report["database_bytes"]
        );
        for name in report["pruned"].as_array().into_iter().flatten() {
            println!("  pruned {}", text(name));
        }
        Ok(())
    }

    /// `ferry backup list`.
    pub async fn backup_list(&self) -> anyhow::Result<()> {
        let list = self.api.get("/v1/backups").await?;
        if self.json {
            return self.print_json(&list);
        }
        let rows: Vec<Vec<String>> = list["backups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| vec![text(&b["name"]), text(&b["size"]), text(&b["path"])])
            .collect();
        table(
            &mut std::io::stdout(),
            &["NAME", "BYTES", "DROPBOX PATH"],
            &rows,
        )?;
        Ok(())
    }

    /// Downloads backup `name` through the server (for `ferry restore`).
    pub async fn backup_download(&self, name: &str) -> anyhow::Result<Vec<u8>> {
        let mut response = self
            .api
            .get_streaming(&format!("/v1/backups/{}", enc(name)))
            .await?;
        let mut data = Vec::new();
        while let Some(chunk) = response.chunk().await.context("downloading the backup")? {
            data.extend_from_slice(&chunk);
        }
        Ok(data)
    }

    /// `ferry dead`, and `--requeue` (with `wait`, until they ran).
    pub async fn dead(&self, requeue: bool, wait: bool) -> anyhow::Result<()> {
        if requeue {
            let answer = self.api.post("/v1/queue/dead/requeue").await?;
            let n = answer["requeued"].as_u64().unwrap_or(0);
            if wait {
                self.wait_for_queue(n, "re-running dead letters").await?;
            }
            if self.json {
                return self.print_json(&answer);
            }
            println!("requeued {n} record(s)");
            return Ok(());
        }
        let dead = self.api.get("/v1/queue/dead").await?;
        if self.json {
            return self.print_json(&dead);
        }
        let rows: Vec<Vec<String>> = dead["dead"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                vec![
                    text(&d["record_id"]),
                    text(&d["attempts"]),
                    text(&d["last_error"]),
                ]
            })
            .collect();
        table(
            &mut std::io::stdout(),
            &["RECORD", "ATTEMPTS", "LAST ERROR"],
            &rows,
        )?;
        Ok(())
    }

    /// `ferry log`: the newest entries (oldest of them first), then with `follow` new ones as
    /// they come; with `export`, the whole selection streamed as CSV or JSON lines.
    pub async fn log(
        &self,
        filters: LogFilters,
        follow: bool,
        export: Option<String>,
    ) -> anyhow::Result<()> {
        let base = [
            ("connection", filters.connection.clone()),
            ("record", filters.record.clone()),
            ("action", filters.action.clone()),
            ("outcome", filters.outcome.clone()),
            ("since", filters.since.clone()),
        ];
        if let Some(format) = export {
            let mut pairs = base.to_vec();
            pairs.push(("format", Some(format)));
            let mut response = self
                .api
                .get_streaming(&format!("/v1/log/export{}", query(&pairs)))
                .await?;
            let mut out = std::io::stdout().lock();
            while let Some(chunk) = response.chunk().await.context("reading the export")? {
                out.write_all(&chunk)?;
            }
            return Ok(());
        }
        let mut pairs = base.to_vec();
        pairs.push(("limit", Some(filters.limit.to_string())));
        let page = self.api.get(&format!("/v1/log{}", query(&pairs))).await?;
        let mut entries: Vec<Value> = page["entries"].as_array().cloned().unwrap_or_default();
        entries.reverse();
        let mut last = entries.last().and_then(|e| e["id"].as_i64()).unwrap_or(0);
        for e in &entries {
            self.print_log_entry(e)?;
        }
        if !follow {
            return Ok(());
        }
        // Until interrupted (Ctrl-C ends the process).
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut pairs = base.to_vec();
            pairs.push(("limit", Some("1000".into())));
            let page = self.api.get(&format!("/v1/log{}", query(&pairs))).await?;
            let mut new: Vec<Value> = page["entries"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["id"].as_i64().unwrap_or(0) > last)
                .cloned()
                .collect();
            new.reverse();
            for e in &new {
                self.print_log_entry(e)?;
            }
            if let Some(id) = new.last().and_then(|e| e["id"].as_i64()) {
                last = id;
            }
        }
    }

    fn print_log_entry(&self, e: &Value) -> anyhow::Result<()> {
        if self.json {
            println!("{e}");
            return Ok(());
        }
        let at = e["at"]
            .as_i64()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let record = match (e["kind"].as_str(), e["key"].as_str()) {
            (Some(kind), Some(key)) => format!("{kind}/{key}"),
            _ => format!("#{}", e["record_id"]),
        };
        let error = e["error"]
            .as_str()
            .map(|m| format!("  ({m})"))
            .unwrap_or_default();
        println!(
            "{at}  {:<7} {:<24} {record}  {}{error}",
            text(&e["outcome"]),
            text(&e["action"]),
            text(&e["path"])
        );
        Ok(())
    }
}

/// Filters of `ferry log`.
#[derive(Debug, Clone, Default)]
pub struct LogFilters {
    /// Only this connection.
    pub connection: Option<String>,
    /// Only this record, `kind/key`.
    pub record: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// Only entries at or after this RFC 3339 time.
    pub since: Option<String>,
    /// How many of the newest entries to show first.
    pub limit: u32,
}

/// Restores a backup (zstd-compressed SQLite) into `data_dir`, which must not hold a
/// database yet, and checks the result opens and is sound. Returns the database's path; a
/// damaged one is moved aside to `ferry.db.damaged`.
pub async fn restore(compressed: Vec<u8>, data_dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let db = data_dir.join("ferry.db");
    anyhow::ensure!(
        !db.exists(),
        "{} already exists: restore into a new data dir",
        db.display()
    );
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    // Checked where it will live, so the database and its WAL files keep one name.
    if let Err(e) = ferry_engine::backup::restore_database(compressed.into(), &db).await {
        if db.exists() {
            let _ = std::fs::rename(&db, data_dir.join("ferry.db.damaged"));
        }
        return Err(e.into());
    }
    Ok(db)
}
