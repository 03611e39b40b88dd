//! Syncing one binding: keep its folder where the rule says, read the three trees, plan,
//! execute each action, log it, and record what both sides now agree on. Folder moves,
//! imports and reverse sync have their own files (`folder_moves.rs`, `import.rs`,
//! `reverse_sync.rs`); batched uploads are in `batch_upload.rs`.

use crate::batch_upload::planned_uploads;
use crate::mirror::TreeSource;
use crate::placement::RulePlacement;
use crate::sync_pass::PassOutcome;
use crate::{Engine, EngineError};
use ferry_core::model::Record;
use ferry_core::names::{dropbox_lower, join_path};
use ferry_core::sync_plan::{
    Action, Direction, LocalFile, Plan, PlanOptions, RelPath, RemoteFile, SyncedFile, plan,
};
use ferry_dropbox::{DropboxClient, DropboxError, Entry};
use ferry_store::{Binding, LogEntry, SyncRow, SyncState};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

/// The absolute Dropbox path of `rel` inside `folder`.
pub(crate) fn abs(folder: &str, rel: &RelPath) -> String {
    format!("{folder}/{}", rel.display)
}

/// What Dropbox holds in a binding's folder that the binding is concerned with.
pub(crate) struct RemoteTree {
    /// The files the binding tracks or would take up.
    pub(crate) files: Vec<RemoteFile>,
    /// Every path in the folder, the binding's or not (comparison keys).
    pub(crate) occupied: BTreeSet<String>,
    /// Where the tree was read from.
    pub(crate) source: TreeSource,
}

/// Whether the plan takes up as synced a file that `synced` does not track yet.
fn adopts_untracked(planned: &Plan, synced: &[SyncedFile]) -> bool {
    let Plan::Run(actions) = planned else {
        return false;
    };
    actions.iter().any(|a| {
        matches!(a, Action::RecordSynced { remote, .. }
            if !synced.iter().any(|s| s.rel.lower == remote.rel.lower || s.dropbox_id == remote.id))
    })
}

/// Everything one binding's actions need.
pub(crate) struct Ctx<'a> {
    pub(crate) client: &'a DropboxClient,
    pub(crate) binding: &'a Binding,
    pub(crate) record: &'a Record,
}

impl Ctx<'_> {
    /// A fresh sync row for `rel` in this binding.
    pub(crate) fn new_row(&self, rel: &RelPath) -> SyncRow {
        Ctx::row_for(self.record, self.binding, rel)
    }

    /// A fresh sync row for `rel` in `binding`.
    pub(crate) fn row_for(record: &Record, binding: &Binding, rel: &RelPath) -> SyncRow {
        SyncRow {
            id: 0,
            record_id: record.id,
            binding_id: Some(binding.id),
            rule_name: binding.rule_name.clone(),
            connection: binding.connection.clone(),
            attachment_id: None,
            rel_display: Some(rel.display.clone()),
            rel_lower: Some(rel.lower.clone()),
            dropbox_id: None,
            rev: None,
            content_hash: None,
            state: SyncState::Pending,
            last_error: None,
            updated_at: 0,
        }
    }
}

impl Engine {
    pub(crate) async fn sync_binding(
        &self,
        record: &Record,
        placed: Option<&RulePlacement>,
        existing: Option<Binding>,
        dry_run: bool,
        listing: bool,
        outcome: &mut PassOutcome,
    ) -> Result<(), EngineError> {
        let connection = match (placed, &existing) {
            (Some(p), _) => p.connection.clone(),
            (None, Some(b)) => b.connection.clone(),
            (None, None) => return Ok(()),
        };
        let (client, root) = match self.client(&connection).await {
            Ok(c) => c,
            Err(EngineError::NeedsReconnect(name, reason)) => {
                outcome.auth_error = Some(reason.clone());
                return Err(EngineError::NeedsReconnect(name, reason));
            }
            Err(e) => return Err(e),
        };
        let result = self
            .sync_binding_with(
                record,
                placed,
                existing,
                (dry_run, listing),
                outcome,
                &connection,
                client,
                root,
            )
            .await;
        if let Some(reason) = outcome.auth_error.clone() {
            self.mark_needs_reconnect(&connection, &reason).await?;
            return Err(EngineError::NeedsReconnect(connection, reason));
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn sync_binding_with(
        &self,
        record: &Record,
        placed: Option<&RulePlacement>,
        existing: Option<Binding>,
        (dry_run, listing): (bool, bool),
        outcome: &mut PassOutcome,
        connection: &str,
        client: DropboxClient,
        root: String,
    ) -> Result<(), EngineError> {
        let connection = connection.to_owned();
        let mut binding = match existing {
            Some(b) => b,
            None => {
                let Some(p) = placed else { return Ok(()) };
                let folder = join_path(&root, &p.folder);
                Binding {
                    id: 0,
                    record_id: record.id,
                    rule_name: p.rule.clone(),
                    connection: connection.clone(),
                    folder_lower: dropbox_lower(&folder),
                    folder_display: folder,
                    paused_reason: None,
                    confirm_deletions: false,
                    deletions_confirmed_at: 0,
                }
            }
        };
        // A folder this pass moves is where the mirror does not show it yet.
        let mut moved_here = false;
        if let Some(p) = placed {
            let folder = join_path(&root, &p.folder);
            if dry_run && binding.id != 0 && folder != binding.folder_display {
                outcome.pending.push(format!(
                    "move folder {} -> {folder}",
                    binding.folder_display
                ));
                return Ok(());
            }
            if binding.id != 0 && folder != binding.folder_display {
                // A renamed record folder is one move in Dropbox, never a re-upload.
                if let Err(e) = self.move_folder(&client, record, &binding, &folder).await {
                    outcome.failure(&e);
                    return Ok(());
                }
                moved_here = true;
            }
            binding.folder_lower = dropbox_lower(&folder);
            binding.folder_display = folder;
        }
        if !dry_run {
            binding.id = self.store.save_binding(&binding).await?;
        }
        if let Some(p) = placed.filter(|p| !p.subfolders.is_empty()) {
            self.default_subfolders(&client, &binding, p, dry_run, outcome)
                .await?;
        }

        let rows: Vec<SyncRow> = self
            .store
            .sync_rows(record.id)
            .await?
            .into_iter()
            .filter(|r| r.binding_id == Some(binding.id))
            .collect();
        let synced: Vec<SyncedFile> = rows.iter().filter_map(synced_file).collect();
        let mut local: Vec<LocalFile> = placed.map(|p| p.local.clone()).unwrap_or_default();
        let direction = placed.map_or(Direction::Push, |p| p.direction);
        // A file another binding already syncs in this same folder is that binding's: this
        // one neither writes it nor tracks it (no Dropbox file is tracked twice).
        // Bindings at or inside this folder: read once, for ownership and the remote tree.
        let others = self
            .store
            .bindings_within(&binding.connection, &binding.folder_lower)
            .await?;
        let (owned, sharers) = self.owned_elsewhere(&binding, &others).await?;
        // Paths this binding leaves to another binding of the same folder: those the other
        // one tracks and this one does not, and — when both track one (an overlap from
        // before the check) — those of the binding with the lower id, the older one.
        let mut synced = synced;
        let yielded: HashSet<String> = owned
            .iter()
            .filter(|(rel, (_, owner_id))| {
                !synced.iter().any(|s| &s.rel.lower == *rel) || *owner_id < binding.id
            })
            .map(|(rel, _)| rel.clone())
            .collect();
        if !yielded.is_empty() {
            if !dry_run {
                for s in synced.iter().filter(|s| yielded.contains(&s.rel.lower)) {
                    // Forgotten here, not deleted: the file stays, tracked by the other.
                    self.store.delete_sync_row(s.row_id).await?;
                }
            }
            synced.retain(|s| !yielded.contains(&s.rel.lower));
            let (refused, kept): (Vec<LocalFile>, Vec<LocalFile>) = local
                .into_iter()
                .partition(|l| yielded.contains(&l.rel.lower));
            local = kept;
            if !dry_run {
                for l in refused {
                    let mut row = Ctx::row_for(record, &binding, &l.rel);
                    row.attachment_id = Some(l.attachment_id);
                    row.state = SyncState::Failed;
                    row.last_error = Some(format!(
                        "{} is already synced by {}; two rules place files in the same folder (change one rule's folder or file filter)",
                        abs(&binding.folder_display, &l.rel),
                        owned[&l.rel.lower].0
                    ));
                    self.store.save_sync_row(&row).await?;
                    outcome.failed += 1;
                }
            }
        }
        // The mirror may stand in for a listing when the binding only pushes: whatever the
        // mirror does not show yet can then only make a write fail on its precondition
        // (re-planned from a listing), never keep a change from the app. A binding that
        // pulls lists, since a Dropbox file the mirror lacks (a notification lost before
        // the binding existed or pulled) would otherwise not be brought in until the next
        // reconciliation. And not in a preview or a retry, after this pass moved the
        // folder, or while a file of this binding is failed or pending (its last step may
        // have met a change the mirror does not show yet).
        let may_use_mirror = !dry_run
            && !listing
            && !moved_here
            && !direction.pulls()
            && rows.iter().all(|r| r.state == SyncState::Synced);
        let mut options = PlanOptions {
            direction,
            brake_share: self.config.brake_share,
            brake_min: self.config.brake_min,
            deletions_confirmed: binding.confirm_deletions,
            occupied: BTreeSet::new(),
            conflict_label: format!(
                "Ferry conflicted copy {}",
                chrono::DateTime::from_timestamp_millis(ferry_core::clock::now_ms())
                    .unwrap_or_default()
                    .format("%Y-%m-%d")
            ),
            recent_deletions: 0,
            connection_brake: None,
        };
        let mut from_mirror = may_use_mirror;
        let (remote, mut planned) = loop {
            let tree = match self
                .remote_tree(
                    &client,
                    &binding,
                    &others,
                    placed,
                    (&local, &synced),
                    from_mirror,
                )
                .await
            {
                Ok(tree) => tree,
                Err(e) => {
                    outcome.failure(&e);
                    return Ok(());
                }
            };
            let mut remote = tree.files;
            remote.retain(|r| !yielded.contains(&r.rel.lower));
            options.occupied = tree.occupied;
            let planned = plan(&local, &remote, &synced, &options);
            // Taking up a file as synced writes nothing to Dropbox, so no precondition
            // checks it: a file the binding did not track is taken up only on a listing's
            // word (the mirror may still show a file deleted while no binding was there to
            // be told, or whose deletion a lost notification skipped).
            if tree.source == TreeSource::Mirror && adopts_untracked(&planned, &synced) {
                from_mirror = false;
                continue;
            }
            break (remote, planned);
        };
        // The brake's memory matters only to a plan that deletes: only then is it read.
        if let Plan::Run(actions) = &planned
            && actions
                .iter()
                .any(|a| matches!(a, Action::DeleteRemote { .. } | Action::Archive { .. }))
        {
            (options.recent_deletions, options.connection_brake) =
                self.brake_window(&binding).await?;
            planned = plan(&local, &remote, &synced, &options);
        }
        let actions = match planned {
            Plan::Paused { reason } if dry_run => {
                outcome.pending.push(format!("paused: {reason}"));
                return Ok(());
            }
            Plan::Run(actions) if dry_run => {
                outcome.pending.extend(
                    actions
                        .iter()
                        .map(|a| format!("{}: {}", binding.folder_display, a.describe())),
                );
                return Ok(());
            }
            Plan::Paused { reason } => {
                if binding.paused_reason.as_deref() != Some(reason.as_str()) {
                    tracing::warn!(binding = binding.id, %reason, "binding paused");
                    self.store
                        .log(&LogEntry {
                            id: 0,
                            at: 0,
                            connection: binding.connection.clone(),
                            binding_id: Some(binding.id),
                            record_id: record.id,
                            path: binding.folder_display.clone(),
                            action: "pause".into(),
                            outcome: "skipped".into(),
                            bytes: 0,
                            duration_ms: 0,
                            error: Some(reason.clone()),
                        })
                        .await?;
                }
                binding.paused_reason = Some(reason);
                self.store.save_binding(&binding).await?;
                outcome.paused += 1;
                return Ok(());
            }
            Plan::Run(actions) => actions,
        };
        if binding.paused_reason.is_some() || binding.confirm_deletions {
            if binding.confirm_deletions {
                // What the admin confirmed no longer counts toward the brake.
                binding.deletions_confirmed_at = ferry_core::clock::now_ms() + 1;
            }
            binding.paused_reason = None;
            binding.confirm_deletions = false;
            self.store.save_binding(&binding).await?;
        }
        let cx = Ctx {
            client: &client,
            binding: &binding,
            record,
        };
        // Conflicted copies first (they clear the paths), then the uploads — batched when
        // there are several — then everything else in plan order.
        let (uploads, rest): (Vec<Action>, Vec<Action>) = actions
            .into_iter()
            .partition(|a| matches!(a, Action::Upload { .. }));
        let (preserve, rest): (Vec<Action>, Vec<Action>) = rest
            .into_iter()
            .partition(|a| matches!(a, Action::PreserveRemote { .. }));
        let preserved = !preserve.is_empty();
        for action in preserve {
            self.execute(&cx, &rows, action, outcome).await?;
        }
        // A preserved file's row changed (it tracks nothing now): the steps below see that.
        let rows: Vec<SyncRow> = if preserved {
            self.store
                .sync_rows(record.id)
                .await?
                .into_iter()
                .filter(|r| r.binding_id == Some(binding.id))
                .collect()
        } else {
            rows
        };
        let attachments = self.store.attachments(record.id).await?;
        // Content only Dropbox holds comes back before it is uploaded anywhere.
        for a in attachments.iter().filter(|a| {
            a.offloaded.is_some()
                && uploads.iter().any(
                    |u| matches!(u, Action::Upload { attachment_id, .. } if *attachment_id == a.id),
                )
        }) {
            self.bring_back(a).await?;
        }
        // Every upload goes through the batch path: small files through the connection's
        // upload group (one alone as one `files/upload`), large ones through resumable
        // sessions.
        if !uploads.is_empty() {
            let planned = planned_uploads(uploads, &attachments);
            self.upload_batch(&cx, &rows, planned, outcome).await?;
        }
        for action in rest {
            self.execute(&cx, &rows, action, outcome).await?;
        }
        if sharers.is_empty() && placed.is_some() {
            return Ok(());
        }
        let left = self.store.sync_rows(record.id).await?;
        if !sharers.is_empty() {
            // What this binding tracks in a shared folder changed: a file it let go of may now
            // be another binding's to sync, and one it took up may be tracked by another too
            // (which then yields). Those bindings' records get a pass.
            let tracked = |rows: &[SyncRow]| -> BTreeSet<(String, String, String)> {
                rows.iter()
                    .filter(|r| r.binding_id == Some(binding.id))
                    .filter_map(|r| {
                        Some((r.rel_lower.clone()?, r.dropbox_id.clone()?, r.rev.clone()?))
                    })
                    .collect()
            };
            if tracked(&rows) != tracked(&left) {
                self.store
                    .enqueue(&sharers, ferry_store::Priority::Blocking)
                    .await?;
            }
        }
        if placed.is_none() && !left.iter().any(|r| r.binding_id == Some(binding.id)) {
            self.store.delete_binding(binding.id).await?;
        }
        Ok(())
    }

    /// Paths (comparison keys) that other bindings with this very folder track, with who
    /// tracks each (a description and the binding id); and the records of those bindings.
    async fn owned_elsewhere(
        &self,
        binding: &Binding,
        others: &[Binding],
    ) -> Result<(HashMap<String, (String, i64)>, Vec<i64>), EngineError> {
        let mut owned = HashMap::new();
        let mut sharers = Vec::new();
        for other in others
            .iter()
            .filter(|b| b.id != binding.id && b.folder_lower == binding.folder_lower)
        {
            sharers.push(other.record_id);
            let owner = match self.store.record_by_id(other.record_id).await? {
                Some(r) => format!("rule {:?} for {}/{}", other.rule_name, r.kind, r.key),
                None => format!("rule {:?}", other.rule_name),
            };
            for row in self.store.sync_rows(other.record_id).await? {
                if row.binding_id == Some(other.id)
                    && row.rev.is_some()
                    && let Some(rel) = row.rel_lower
                {
                    // Of several others tracking one path, the oldest binding is the owner.
                    let entry = owned.entry(rel).or_insert((owner.clone(), other.id));
                    if other.id < entry.1 {
                        *entry = (owner.clone(), other.id);
                    }
                }
            }
        }
        sharers.sort_unstable();
        sharers.dedup();
        Ok((owned, sharers))
    }

    /// The brake's memory: deletions this binding made within the window (since the last
    /// confirmation), and the connection-wide counts.
    async fn brake_window(
        &self,
        binding: &Binding,
    ) -> Result<(usize, Option<ferry_core::sync_plan::ConnectionBrake>), EngineError> {
        let window = i64::try_from(self.config.brake_window.as_millis()).unwrap_or(i64::MAX);
        let from = ferry_core::clock::now_ms().saturating_sub(window);
        let recent = if binding.id == 0 {
            0
        } else {
            self.store
                .deletions_since(
                    &binding.connection,
                    Some(binding.id),
                    from.max(binding.deletions_confirmed_at),
                )
                .await?
        };
        let confirmed = self
            .store
            .connection_deletions_confirmed_at(&binding.connection)
            .await?
            .max(binding.deletions_confirmed_at);
        let connection_recent = self
            .store
            .deletions_since(&binding.connection, None, from.max(confirmed))
            .await?;
        let files = self.store.synced_count(&binding.connection).await?;
        let as_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Ok((
            as_usize(recent),
            Some(ferry_core::sync_plan::ConnectionBrake {
                recent: as_usize(connection_recent),
                files: as_usize(files),
                share: self.config.connection_brake_share,
                min: self.config.connection_brake_min,
            }),
        ))
    }

    /// What Dropbox holds under the binding's folder that this binding is concerned with:
    /// files it placed or synced, plus — when it pulls — new files at the top (or in any
    /// subfolder with `pull_subfolders`), minus folders that belong to other bindings
    /// (`others`: the connection's bindings at or inside this folder). Read from the remote
    /// mirror when `may_use_mirror` and the mirror agrees with `synced` (`mirror.rs`).
    pub(crate) async fn remote_tree(
        &self,
        client: &DropboxClient,
        binding: &Binding,
        others: &[Binding],
        placed: Option<&RulePlacement>,
        (local, synced): (&[LocalFile], &[SyncedFile]),
        may_use_mirror: bool,
    ) -> Result<RemoteTree, DropboxError> {
        let (entries, source) = self
            .folder_entries(client, binding, synced, may_use_mirror)
            .await?;
        let mut occupied = BTreeSet::new();
        let shared = others
            .iter()
            .any(|b| b.id != binding.id && b.folder_lower == binding.folder_lower);
        let nested: Vec<String> = others
            .iter()
            .filter(|b| b.id != binding.id && b.folder_lower != binding.folder_lower)
            .map(|b| format!("{}/", b.folder_lower))
            .collect();
        let known: HashSet<&str> = local
            .iter()
            .map(|l| l.rel.lower.as_str())
            .chain(synced.iter().map(|s| s.rel.lower.as_str()))
            .collect();
        // Files the binding tracks, wherever they went (a rename in Dropbox keeps the id).
        let tracked_ids: HashSet<&str> = synced.iter().map(|s| s.dropbox_id.as_str()).collect();
        let pulls = placed.is_some_and(|p| p.direction.pulls());
        let subfolders = placed.is_some_and(|p| p.pull_subfolders);
        let depth = binding.folder_display.split('/').count();
        let mut out = Vec::new();
        for entry in entries {
            let Entry::File(f) = entry else { continue };
            if nested.iter().any(|n| f.path_lower.starts_with(n.as_str())) {
                continue;
            }
            // Relative path from the display path's last components (their casing is right,
            // and byte offsets of the lower-cased folder need not match).
            let parts: Vec<&str> = f.path_display.split('/').collect();
            if parts.len() <= depth {
                continue;
            }
            let rel = RelPath::new(parts[depth..].join("/"));
            occupied.insert(rel.lower.clone());
            let is_known =
                known.contains(rel.lower.as_str()) || tracked_ids.contains(f.id.as_str());
            let wanted = is_known || (pulls && !shared && (subfolders || !rel.lower.contains('/')));
            if wanted {
                out.push(RemoteFile {
                    id: f.id,
                    rel,
                    rev: f.rev,
                    content_hash: f.content_hash.unwrap_or_default(),
                });
            }
        }
        Ok(RemoteTree {
            files: out,
            occupied,
            source,
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn log_action(
        &self,
        binding: &Binding,
        record: &Record,
        path: &str,
        action: &str,
        bytes: u64,
        started: Instant,
        error: Option<&DropboxError>,
    ) {
        let entry = log_entry(binding, record, path, action, bytes, started, error);
        // The log is a record of what happened; failing to write it must not undo the work.
        if let Err(e) = self.store.log(&entry).await {
            tracing::error!(error = %e, "cannot write the sync log");
        }
    }

    async fn execute(
        &self,
        cx: &Ctx<'_>,
        rows: &[SyncRow],
        action: Action,
        outcome: &mut PassOutcome,
    ) -> Result<(), EngineError> {
        let folder = cx.binding.folder_display.as_str();
        let started = Instant::now();
        let row_for = |rel: &RelPath| {
            rows.iter()
                .find(|r| r.rel_lower.as_deref() == Some(rel.lower.as_str()))
                .cloned()
        };
        match action {
            Action::PreserveRemote { from, to, .. } => {
                let path = abs(folder, &from);
                let result = cx.client.move_entry(&path, &abs(folder, &to)).await;
                self.log_action(
                    cx.binding,
                    cx.record,
                    &path,
                    "preserve_conflicted_copy",
                    0,
                    started,
                    result.as_ref().err(),
                )
                .await;
                match result {
                    Ok(_) => {
                        outcome.preserved += 1;
                        // The file moved away with its id: the row of its old path tracks
                        // nothing until the app's version is uploaded there (else a pass
                        // that stops here leaves one Dropbox file tracked twice, once the
                        // copy is tracked too).
                        if let Some(mut row) = row_for(&from) {
                            row.dropbox_id = None;
                            row.rev = None;
                            row.content_hash = None;
                            row.state = SyncState::Pending;
                            self.store.save_sync_row(&row).await?;
                        }
                    }
                    Err(e) => outcome.failure(&e),
                }
            }
            upload @ Action::Upload { .. } => {
                // The caller sends uploads to the batch path; one met here goes there too.
                let attachments = self.store.attachments(cx.record.id).await?;
                let planned = planned_uploads(vec![upload], &attachments);
                self.upload_batch(cx, rows, planned, outcome).await?;
            }
            Action::DeleteRemote { row_id, rel, rev } => {
                let path = abs(folder, &rel);
                let result = cx.client.delete(&path, Some(&rev)).await;
                let gone = matches!(result, Ok(_) | Err(DropboxError::NotFound(_)));
                self.log_action(
                    cx.binding,
                    cx.record,
                    &path,
                    "delete",
                    0,
                    started,
                    if gone { None } else { result.as_ref().err() },
                )
                .await;
                match result {
                    // Gone, or changed by someone since (then the delete did nothing and the
                    // file shows up as a new Dropbox file on the next pass).
                    Ok(_) | Err(DropboxError::NotFound(_)) => {
                        outcome.deleted += 1;
                        self.store.delete_sync_row(row_id).await?;
                    }
                    Err(e) => {
                        outcome.failure(&e);
                        if let Some(mut row) = rows.iter().find(|r| r.id == row_id).cloned() {
                            row.state = SyncState::Failed;
                            row.last_error = Some(format!("could not remove from Dropbox: {e}"));
                            self.store.save_sync_row(&row).await?;
                        }
                    }
                }
            }
            Action::Import {
                remote,
                attachment_id,
            } => {
                let path = abs(folder, &remote.rel);
                let result = self.import(cx, &remote, attachment_id).await;
                self.log_action(
                    cx.binding,
                    cx.record,
                    &path,
                    "import",
                    result.as_ref().map(|(_, n)| *n).unwrap_or(0),
                    started,
                    result.as_ref().err(),
                )
                .await;
                match result {
                    Ok((new_id, _)) => {
                        outcome.imported += 1;
                        let mut row =
                            row_for(&remote.rel).unwrap_or_else(|| cx.new_row(&remote.rel));
                        row.attachment_id = Some(new_id);
                        row.rel_display = Some(remote.rel.display.clone());
                        row.dropbox_id = Some(remote.id.clone());
                        row.rev = Some(remote.rev.clone());
                        row.content_hash = Some(remote.content_hash.clone());
                        row.state = SyncState::Synced;
                        row.last_error = None;
                        self.store.save_sync_row(&row).await?;
                    }
                    Err(e) => outcome.failure(&e),
                }
            }
            Action::Archive {
                row_id,
                attachment_id,
            } => {
                // Deleted in Dropbox: an offloaded version comes back (from its revision)
                // before it is archived.
                if let Some(a) = self
                    .store
                    .attachments(cx.record.id)
                    .await?
                    .iter()
                    .find(|a| a.id == attachment_id && a.offloaded.is_some())
                {
                    self.bring_back(a).await?;
                }
                self.store
                    .archive_attachment(attachment_id, "deleted in Dropbox")
                    .await?;
                self.store.delete_sync_row(row_id).await?;
                let path = rows
                    .iter()
                    .find(|r| r.id == row_id)
                    .and_then(|r| r.rel_display.clone())
                    .unwrap_or_default();
                self.log_action(
                    cx.binding,
                    cx.record,
                    &format!("{folder}/{path}"),
                    "archive",
                    0,
                    started,
                    None,
                )
                .await;
                outcome.archived += 1;
            }
            Action::RecordSynced {
                attachment_id,
                remote,
            } => {
                let mut row = row_for(&remote.rel).unwrap_or_else(|| cx.new_row(&remote.rel));
                row.attachment_id = Some(attachment_id);
                row.dropbox_id = Some(remote.id);
                row.rev = Some(remote.rev);
                row.content_hash = Some(remote.content_hash);
                row.state = SyncState::Synced;
                row.last_error = None;
                self.store.save_sync_row(&row).await?;
            }
            Action::Forget { row_id } => self.store.delete_sync_row(row_id).await?,
            Action::RenameLocal {
                attachment_id,
                row_id,
                to,
            } => {
                let taken: HashSet<String> = self
                    .store
                    .attachments(cx.record.id)
                    .await?
                    .into_iter()
                    .filter(|a| a.id != attachment_id)
                    .map(|a| dropbox_lower(&a.name))
                    .collect();
                let file_name = to.display.rsplit('/').next().unwrap_or(&to.display);
                let name = unique_name(file_name, &taken);
                self.store
                    .rename_attachment(attachment_id, &name, &to.display)
                    .await?;
                if let Some(mut row) = rows.iter().find(|r| r.id == row_id).cloned() {
                    row.rel_display = Some(to.display.clone());
                    row.rel_lower = Some(to.lower.clone());
                    self.store.save_sync_row(&row).await?;
                }
                self.log_action(
                    cx.binding,
                    cx.record,
                    &abs(folder, &to),
                    "rename_local",
                    0,
                    started,
                    None,
                )
                .await;
                outcome.renamed += 1;
            }
            Action::MoveRemote { from, to } => {
                let path = abs(folder, &from);
                let result = cx.client.move_entry(&path, &abs(folder, &to)).await;
                self.log_action(
                    cx.binding,
                    cx.record,
                    &path,
                    "move_back",
                    0,
                    started,
                    result.as_ref().err(),
                )
                .await;
                if let Err(e) = result {
                    outcome.failure(&e);
                }
            }
        }
        Ok(())
    }
}

/// `name`, or `name (2).ext`, `name (3).ext`... whichever is free (compared like Dropbox).
pub(crate) fn unique_name(name: &str, taken: &HashSet<String>) -> String {
    if !taken.contains(&dropbox_lower(name)) {
        return name.to_owned();
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    (2..)
        .map(|n| format!("{stem} ({n}){ext}"))
        .find(|candidate| !taken.contains(&dropbox_lower(candidate)))
        .unwrap_or_else(|| name.to_owned())
}

pub(crate) fn synced_file(r: &SyncRow) -> Option<SyncedFile> {
    Some(SyncedFile {
        row_id: r.id,
        attachment_id: r.attachment_id,
        rel: RelPath {
            lower: r.rel_lower.clone()?,
            display: r.rel_display.clone()?,
        },
        dropbox_id: r.dropbox_id.clone()?,
        rev: r.rev.clone()?,
        content_hash: r.content_hash.clone()?,
    })
}

pub(crate) fn describe(e: &DropboxError) -> String {
    match e {
        DropboxError::Conflict(_) => format!(
            "{e}; the file changed in Dropbox since it was listed, so Ferry left it as it is and will look again"
        ),
        other => other.to_string(),
    }
}

/// An attachment's content could not be read from the blob store: the upload fails, retried
/// by a later pass when the cause may heal (an I/O error, not missing content).
pub(crate) fn content_unavailable(e: ferry_store::StoreError) -> DropboxError {
    crate::error::store_step("attachment content unavailable", e)
}

/// The sync-log entry for one executed action.
pub(crate) fn log_entry(
    binding: &Binding,
    record: &Record,
    path: &str,
    action: &str,
    bytes: u64,
    started: Instant,
    error: Option<&DropboxError>,
) -> LogEntry {
    LogEntry {
        id: 0,
        at: 0,
        connection: binding.connection.clone(),
        binding_id: Some(binding.id),
        record_id: record.id,
        path: path.to_owned(),
        action: action.to_owned(),
        outcome: if error.is_some() { "failed" } else { "ok" }.to_owned(),
        bytes,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        error: error.map(ToString::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::unique_name;
    use std::collections::HashSet;

    #[test]
    fn unique_names() {
        let taken: HashSet<String> = ["a.pdf", "a (2).pdf", "b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(unique_name("c.pdf", &taken), "c.pdf");
        assert_eq!(unique_name("A.PDF", &taken), "A (3).PDF");
        assert_eq!(unique_name("a.pdf", &taken), "a (3).pdf");
        assert_eq!(unique_name("b", &taken), "b (2)");
    }
}
