//! One sync pass over one record: place its files with every rule, then sync each binding.

use crate::placement::{RulePlacement, place};
use crate::{Engine, EngineError};
use ferry_core::model::RecordId;
use ferry_core::retry::Retry;
use ferry_core::rules::{CompiledRule, RuleContext};
use ferry_dropbox::DropboxError;
use ferry_store::{SyncRow, SyncState};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// What every pass of one claim reads alike, read once right after the claim: the rules and
/// the connections. As safe as each pass reading them at its start: a rule or connection
/// changed after the claim re-queues the records it places (their generation moves on), so
/// a claimed pass that planned with the old one runs again.
pub(crate) struct ClaimSnapshot {
    rules: Vec<ferry_core::rules::RuleSpec>,
    connections: Vec<ferry_store::StoredConnection>,
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PassOutcome {
    /// Files written to Dropbox.
    pub uploaded: u32,
    /// Files brought in from Dropbox.
    pub imported: u32,
    /// Files removed from Dropbox.
    pub deleted: u32,
    /// Attachments archived because their file was deleted in Dropbox.
    pub archived: u32,
    /// Dropbox versions kept under a conflicted-copy name.
    pub preserved: u32,
    /// Attachments renamed to follow a rename in Dropbox.
    pub renamed: u32,
    /// Bindings paused by the mass-deletion brake.
    pub paused: u32,
    /// Files or steps that failed (see the sync rows and the log).
    pub failed: u32,
    /// Of the failures, how many may succeed on a later try.
    pub retryable: u32,
    /// Of those, how many only asked to wait (rate limits, network down): they never count
    /// toward giving up.
    pub waiting: u32,
    /// Longest delay Dropbox asked for.
    #[serde(skip)]
    pub retry_after: Option<Duration>,
    /// In a dry run: what a pass would do, one line per step.
    pub pending: Vec<String>,
    /// Dropbox refused a token during this pass.
    #[serde(skip)]
    pub auth_error: Option<String>,
}

impl PassOutcome {
    /// Whether the pass changed a file on either side.
    pub fn changed_anything(&self) -> bool {
        self.uploaded + self.imported + self.deleted + self.archived + self.preserved + self.renamed
            > 0
    }

    pub(crate) fn failure(&mut self, e: &DropboxError) {
        self.failed += 1;
        if let DropboxError::Auth(m) = e {
            self.auth_error = Some(m.clone());
        }
        let retry = e.retry();
        if retry.is_retryable()
            || matches!(e, DropboxError::Conflict(_) | DropboxError::NotFound(_))
        {
            // A conflict or a vanished file means Dropbox changed under us: re-plan later.
            self.retryable += 1;
            if retry.is_wait() {
                self.waiting += 1;
            }
            self.retry_after = self.retry_after.max(retry.after());
        }
    }

    /// How the queue should retry this pass: a wait when every retryable failure only asked
    /// to wait, a backoff otherwise (never sooner than [`PassOutcome::retry_after`]).
    pub fn retry(&self) -> Retry {
        if self.retryable > 0 && self.waiting == self.retryable {
            Retry::Wait(self.retry_after)
        } else {
            Retry::Backoff
        }
    }
}

impl Engine {
    /// What a record's rules see besides the record: its parent, its children and its
    /// siblings (the parent's children, itself included).
    pub(crate) async fn relatives(
        &self,
        record: &ferry_core::model::Record,
    ) -> Result<
        (
            Option<ferry_core::model::Record>,
            Vec<ferry_core::model::Record>,
            Vec<ferry_core::model::Record>,
        ),
        EngineError,
    > {
        let parent = match record.parent_id {
            Some(pid) => self.store.record_by_id(pid).await?,
            None => None,
        };
        let siblings = match &parent {
            Some(p) => self.store.children(p.id).await?,
            None => Vec::new(),
        };
        let children = self.store.children(record.id).await?;
        Ok((parent, children, siblings))
    }

    /// Runs one sync pass for a record. Per-file failures are recorded in the record's sync
    /// rows and the log, and counted in the outcome; an `Err` means the pass could not run.
    pub async fn sync_record(&self, id: RecordId) -> Result<PassOutcome, EngineError> {
        self.pass(id, false, None, false, None).await
    }

    /// A queued pass: a retry reads every folder from Dropbox (the failure it follows may
    /// have come from planning on a mirror that lagged), a first try may plan from the mirror.
    /// `claim` is what the passes claimed with it read alike.
    pub(crate) async fn sync_queued_record(
        &self,
        id: RecordId,
        retry: bool,
        claim: &ClaimSnapshot,
    ) -> Result<PassOutcome, EngineError> {
        self.pass(id, false, None, retry, Some(claim)).await
    }

    /// The rules and connections, read once for all the passes of one claim.
    pub(crate) async fn claim_snapshot(&self) -> Result<ClaimSnapshot, EngineError> {
        Ok(ClaimSnapshot {
            rules: self.store.rules().await?,
            connections: self.store.connections().await?,
        })
    }

    /// What a pass over the record would do now, without doing it (changes nothing).
    /// Empty when both sides agree.
    pub async fn pending_actions(&self, id: RecordId) -> Result<Vec<String>, EngineError> {
        Ok(self.pass(id, true, None, true, None).await?.pending)
    }

    /// What a pass over the record would do if `rule` were stored in place of its namesake
    /// (changes nothing; Dropbox is only read).
    pub(crate) async fn pending_actions_with(
        &self,
        id: RecordId,
        rule: &ferry_core::rules::RuleSpec,
    ) -> Result<Vec<String>, EngineError> {
        Ok(self.pass(id, true, Some(rule), true, None).await?.pending)
    }

    /// One pass; `dry_run` only plans, `rule_override` replaces the stored rule of its
    /// name (a preview), `listing` reads every folder from Dropbox, never the mirror, and
    /// `claim` holds the rules and connections read for the claim (`None`: they are read now).
    async fn pass(
        &self,
        id: RecordId,
        dry_run: bool,
        rule_override: Option<&ferry_core::rules::RuleSpec>,
        listing: bool,
        claim: Option<&ClaimSnapshot>,
    ) -> Result<PassOutcome, EngineError> {
        let mut outcome = PassOutcome::default();
        let Some(record) = self.store.record_by_id(id).await? else {
            return Ok(outcome);
        };
        let (parent, children, siblings) = self.relatives(&record).await?;
        let attachments = self.store.attachments(id).await?;
        let mut rules = Vec::new();
        // A record deleted with its files is placed by no rule: its bindings remove what
        // they synced (under the brake), and the record goes once they are gone.
        if record.deletion == Some(ferry_core::model::Deletion::Archive) {
            if !dry_run {
                self.archive_record(&record, &mut outcome).await?;
            }
            return Ok(outcome);
        }
        let fresh;
        let claim = match claim {
            Some(claim) => claim,
            None => {
                fresh = self.claim_snapshot().await?;
                &fresh
            }
        };
        let specs: Vec<&ferry_core::rules::RuleSpec> = if record.deletion.is_some() {
            Vec::new()
        } else {
            claim
                .rules
                .iter()
                .filter(|r| rule_override.is_none_or(|o| o.name != r.name))
                .chain(rule_override)
                .collect()
        };
        for spec in specs {
            if spec.record_kind != record.kind {
                continue;
            }
            match CompiledRule::compile(spec.clone()) {
                Ok(rule) => rules.push(rule),
                // Rules are validated when saved; one that no longer compiles is skipped loudly.
                Err(e) => tracing::warn!(error = %e, "stored rule does not compile"),
            }
        }
        let disconnecting: BTreeSet<String> = claim
            .connections
            .iter()
            .filter(|c| c.disconnecting)
            .map(|c| c.name.clone())
            .collect();
        // Rules on a connection being disconnected place nothing any more.
        let connections: HashMap<String, String> = claim
            .connections
            .iter()
            .filter(|c| !c.disconnecting)
            .map(|c| (c.name.clone(), c.root.clone()))
            .collect();
        let ctx = RuleContext::new(&record, parent.as_ref(), &children, &siblings);
        let mut placement = place(&ctx, &attachments, &rules, &connections);
        let mut bindings = self.store.bindings_for_record(id).await?;
        // Folders mapped by hand: found by id, so a rename is followed (a dry run too sees
        // the path a pass stores).
        self.place_mapped_folders(
            &record,
            &ctx,
            &attachments,
            &connections,
            &mut placement,
            &mut bindings,
            dry_run,
        )
        .await?;
        let moved = |binding: &ferry_store::Binding| {
            placement
                .rules
                .iter()
                .any(|p| p.rule == binding.rule_name && p.connection != binding.connection)
        };
        // Offloaded content comes back before anything could leave Dropbox's copy the last
        // one (a binding going away included).
        if !dry_run && attachments.iter().any(|a| a.offloaded.is_some()) {
            let specs: Vec<ferry_core::rules::RuleSpec> =
                rules.iter().map(|r| r.spec().clone()).collect();
            let rows = self.store.sync_rows(id).await?;
            self.bring_back_unless_in_step(
                &attachments,
                &placement,
                &specs,
                &bindings,
                &rows,
                &|b| moved(b) || disconnecting.contains(&b.connection),
            )
            .await?;
        }
        // Reverse sync first: a binding whose connection goes away, or whose rule now points
        // at another connection, gives back every file only Dropbox holds before anything else.
        let mut reversed = Vec::new();
        for binding in &bindings {
            let moved = moved(binding);
            if !dry_run && (moved || disconnecting.contains(&binding.connection)) {
                self.reverse_binding(&record, binding, &mut outcome).await?;
                reversed.push(binding.id);
            }
        }
        bindings.retain(|b| !reversed.contains(&b.id));
        let mut names: BTreeSet<&str> = placement.rules.iter().map(|p| p.rule.as_str()).collect();
        names.extend(bindings.iter().map(|b| b.rule_name.as_str()));
        for name in names {
            let placed: Option<&RulePlacement> = placement.rules.iter().find(|p| p.rule == name);
            let binding = bindings.iter().find(|b| b.rule_name == name).cloned();
            if let (Some(p), None) = (placed, &binding)
                && let Some(first) = &p.claimed_by
            {
                // An earlier rule claims this folder for the record: no second binding.
                tracing::debug!(rule = name, claimed_by = %first, "folder claimed by an earlier rule");
                continue;
            }
            // Log lines of this binding's work name it (inside the worker's `pass` span).
            let span = tracing::info_span!(
                "binding",
                rule = name,
                id = binding.as_ref().map_or(0, |b| b.id)
            );
            tracing::Instrument::instrument(
                self.sync_binding(&record, placed, binding, dry_run, listing, &mut outcome),
                span,
            )
            .await?;
        }

        if record.deletion.is_some()
            && !dry_run
            && self.store.bindings_for_record(id).await?.is_empty()
        {
            tracing::info!(kind = %record.kind, key = %record.key, "deleted record forgotten: its files are gone");
            self.store.forget_record(id).await?;
            return Ok(outcome);
        }

        for name in &disconnecting {
            if self.store.bindings_of_connection(name).await?.is_empty() {
                tracing::info!(connection = %name, "disconnected after reverse sync");
                self.store.delete_connection(name).await?;
                self.finish_switch(name).await;
            }
        }

        let unplaced: Vec<SyncRow> = placement
            .unplaced
            .iter()
            .map(|u| SyncRow {
                id: 0,
                record_id: id,
                binding_id: None,
                rule_name: u.rule.clone(),
                connection: u.connection.clone(),
                attachment_id: u.attachment_id,
                rel_display: None,
                rel_lower: None,
                dropbox_id: None,
                rev: None,
                content_hash: None,
                state: SyncState::Failed,
                last_error: Some(u.error.clone()),
                updated_at: 0,
            })
            .collect();
        outcome.failed += u32::try_from(unplaced.len()).unwrap_or(u32::MAX);
        if dry_run {
            return Ok(outcome);
        }
        self.store.replace_unplaced_rows(id, &unplaced).await?;
        if outcome.imported + outcome.preserved + outcome.renamed + outcome.archived > 0 {
            // New attachments may belong in this record's other bindings too; a conflicted
            // copy just made is a new file for a binding that pulls (the change feed skips it
            // as Ferry's own write); a renamed or archived attachment may free a name another
            // one could not take: one more pass.
            self.store
                .enqueue(&[id], ferry_store::Priority::Blocking)
                .await?;
        }
        Ok(outcome)
    }
}
