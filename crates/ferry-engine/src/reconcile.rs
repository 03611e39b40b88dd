//! Full reconciliation, the safety net behind change detection: one recursive listing of each
//! connection's root, compared file by file with the synced tree the store holds, plus the
//! records whose app side changed since their last pass. Only records that differ are queued.
//!
//! This costs about one request per 2,000 files (a listing page) instead of one per record,
//! and memory for two 128-bit fingerprints per synced file. Anything it flags gets a normal
//! pass, which re-reads its folder, so a false alarm costs a pass and never a wrong action.

use crate::{Engine, EngineError};
use ferry_dropbox::{DropboxClient, DropboxError, Entry};
use ferry_store::{Priority, SyncedFileScan};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap, HashSet};

/// What one connection's reconciliation found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Synced files compared with the listing.
    pub compared: u64,
    /// Files in Dropbox that Ferry does not track, inside some binding's folder.
    pub untracked: u64,
    /// Listing pages read.
    pub pages: u64,
    /// Records queued for a pass.
    pub queued: Vec<i64>,
}

/// A collision-resistant 128-bit fingerprint of `parts` joined by NUL (which no path, rev or
/// hash contains), so a million of them fit in a few tens of MiB.
fn fingerprint(parts: &[&str]) -> u128 {
    let mut h = Sha256::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update([0u8]);
        }
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

fn file_key(folder_lower: &str, rel_lower: &str) -> u128 {
    fingerprint(&[&format!("{folder_lower}/{rel_lower}")])
}

/// The tree a reconciliation lists.
struct Tree<'a> {
    client: &'a DropboxClient,
    connection: &'a str,
    root: &'a str,
    /// The mirror this listing builds, if it builds one.
    seed: Option<i64>,
}

/// The store's side, read before the listing.
#[derive(Default)]
struct Expected {
    /// Synced file (by path) → (fingerprint of rev and hash, its record).
    files: HashMap<u128, (u128, i64)>,
    /// Binding folder (by path) → the records bound there, and whether their rule pulls
    /// (only then is a file Ferry does not track there work to do).
    folders: HashMap<u128, Vec<(i64, bool)>>,
    flagged: BTreeSet<i64>,
    /// Files whose listing differs from what their record synced, as listed (few: each one
    /// is work), to correct the remote mirror with.
    differing: Vec<ferry_dropbox::FileInfo>,
    /// Files nobody tracks in a binding's folder, as listed.
    untracked: Vec<ferry_dropbox::FileInfo>,
}

impl Expected {
    fn see(&mut self, entry: &Entry, report: &mut ReconcileReport) {
        match entry {
            Entry::File(f) => {
                let key = fingerprint(&[&f.path_lower]);
                let hash = f.content_hash.as_deref().unwrap_or("");
                match self.files.remove(&key) {
                    Some((state, record)) => {
                        report.compared += 1;
                        if state != fingerprint(&[&f.rev, hash]) {
                            self.flagged.insert(record);
                            self.differing.push(f.clone());
                        }
                    }
                    None => {
                        // A folder several bindings share pulls no new files (none of them
                        // owns them), so an untracked file there is nobody's work.
                        if let Some(bound) = self.deepest_binding(&f.path_lower)
                            && bound.len() == 1
                        {
                            report.untracked += 1;
                            let pulling: Vec<i64> = bound
                                .iter()
                                .filter(|(_, pulls)| *pulls)
                                .map(|(r, _)| *r)
                                .collect();
                            // Kept for the mirror even where no rule pulls now: a rule
                            // that starts pulling later plans from the mirror.
                            self.untracked.push(f.clone());
                            self.flagged.extend(pulling);
                        }
                    }
                }
            }
            // A binding folder that is gone matters only through the files it held.
            Entry::Folder(_) | Entry::Deleted { .. } => {}
        }
    }

    /// The records bound to the deepest binding folder holding `path_lower`.
    fn deepest_binding(&self, path_lower: &str) -> Option<&Vec<(i64, bool)>> {
        let mut p = path_lower;
        while let Some(i) = p.rfind('/') {
            p = &p[..i];
            if let Some(bound) = self.folders.get(&fingerprint(&[p])) {
                return Some(bound);
            }
        }
        None
    }
}

impl Engine {
    /// Reconciles every connection; returns how many records were queued. A connection that
    /// cannot be listed (it needs a reconnect, or Dropbox fails) is skipped with a warning
    /// and retried at the next reconciliation.
    pub async fn reconcile_all(&self) -> Result<usize, EngineError> {
        let mut queued = 0;
        for connection in self.store.connections().await? {
            match self.reconcile_connection(&connection.name).await {
                Ok(report) => queued += report.queued.len(),
                Err(e @ (EngineError::Dropbox(_) | EngineError::NeedsReconnect(..))) => {
                    tracing::warn!(connection = %connection.name, error = %e, "reconciliation skipped");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(queued)
    }

    /// Compares one connection's Dropbox tree with the synced tree and queues the records
    /// that differ (see the module documentation).
    pub async fn reconcile_connection(
        &self,
        connection: &str,
    ) -> Result<ReconcileReport, EngineError> {
        Ok(self.reconcile_connection_with(connection, None).await?.0)
    }

    /// [`Engine::reconcile_connection`]; with `seed`, the listing also builds mirror `seed`
    /// (not in use yet) and its last cursor is returned (`None`: no root). Without, what the
    /// listing found different corrects the mirror in use, where the mirror still holds what
    /// the store recorded (a mirror that agreed with the store while Dropbox did not would
    /// otherwise keep the flagged passes from seeing the difference).
    pub(crate) async fn reconcile_connection_with(
        &self,
        connection: &str,
        seed: Option<i64>,
    ) -> Result<(ReconcileReport, Option<String>), EngineError> {
        let disconnecting = self
            .store
            .connection(connection)
            .await?
            .is_some_and(|c| c.disconnecting);
        let bindings = self.store.bindings_of_connection(connection).await?;
        if disconnecting {
            // Bringing files back is the pass's job: every bound record gets one.
            let ids: BTreeSet<i64> = bindings.iter().map(|b| b.record_id).collect();
            let report = ReconcileReport {
                queued: self.queue(ids.into_iter().collect()).await?,
                ..ReconcileReport::default()
            };
            return Ok((report, None));
        }
        let (client, root) = self.client(connection).await?;
        let pulling: HashSet<String> = self
            .store
            .rules()
            .await?
            .into_iter()
            .filter(|r| r.direction.pulls())
            .map(|r| r.name)
            .collect();
        let mut pulling = pulling;
        // Folders mapped by hand pull as their mapping says (they have no rule).
        for b in bindings.iter().filter(|b| b.rule_name.starts_with("map:")) {
            for m in self.store.folder_maps(b.record_id).await? {
                if crate::folder_map::binding_name(m.id) == b.rule_name && m.direction.pulls() {
                    pulling.insert(b.rule_name.clone());
                }
            }
        }
        let mut expected = Expected::default();
        for b in &bindings {
            let key = fingerprint(&[&b.folder_lower]);
            let pulls = pulling.contains(&b.rule_name);
            expected
                .folders
                .entry(key)
                .or_default()
                .push((b.record_id, pulls));
        }
        expected
            .flagged
            .extend(self.store.records_changed_since_pass(connection).await?);
        let mut failed = Vec::new();
        self.store
            .scan_synced_files(connection, &mut |s: SyncedFileScan| {
                // A file that failed. (Attachments changed, added or removed since the pass
                // date the record: `records_changed_since_pass` has those.)
                if !s.synced {
                    failed.push(s.record_id);
                }
                expected.files.insert(
                    file_key(&s.folder_lower, &s.rel_lower),
                    (fingerprint(&[&s.rev, &s.content_hash]), s.record_id),
                );
            })
            .await?;
        expected.flagged.extend(failed);
        let mut report = ReconcileReport::default();
        let tree = Tree {
            client: &client,
            connection,
            root: &root,
            seed,
        };
        let cursor = self.read_tree(&tree, &mut expected, &mut report).await?;
        // Synced files Dropbox no longer has.
        let missing: BTreeSet<i64> = expected.files.values().map(|(_, r)| *r).collect();
        if seed.is_none() {
            self.correct_mirror_after(connection, &expected, &missing)
                .await?;
        }
        expected.flagged.extend(missing);
        report.queued = self.queue(expected.flagged.into_iter().collect()).await?;
        tracing::info!(
            %connection,
            compared = report.compared,
            untracked = report.untracked,
            pages = report.pages,
            queued = report.queued.len(),
            "reconciled"
        );
        Ok((report, cursor))
    }

    /// Corrects the mirror in use with what the listing found different: a file that
    /// changed or vanished where the mirror still holds the revision its record synced, and
    /// a file nobody tracks in a binding's folder where the mirror holds none.
    async fn correct_mirror_after(
        &self,
        connection: &str,
        expected: &Expected,
        missing: &BTreeSet<i64>,
    ) -> Result<(), EngineError> {
        use crate::mirror::mirror_file;
        let mut records: BTreeSet<i64> = missing.clone();
        let mut synced_rev: HashMap<String, String> = HashMap::new();
        let differing: HashSet<&str> = expected
            .differing
            .iter()
            .map(|f| f.path_lower.as_str())
            .collect();
        let mut fixes = Vec::new();
        // The records holding the differing files: found by their folders.
        for f in &expected.differing {
            for b in self
                .store
                .bindings_containing(connection, &f.path_lower)
                .await?
            {
                records.insert(b.record_id);
            }
        }
        for record in records {
            let bindings = self.store.bindings_for_record(record).await?;
            for row in self.store.sync_rows(record).await? {
                let (Some(rel), Some(rev)) = (&row.rel_lower, &row.rev) else {
                    continue;
                };
                let Some(b) = bindings.iter().find(|b| Some(b.id) == row.binding_id) else {
                    continue;
                };
                if b.connection != connection {
                    continue;
                }
                let path = format!("{}/{rel}", b.folder_lower);
                if expected.files.contains_key(&file_key(&b.folder_lower, rel)) {
                    // Synced, and not in the listing.
                    fixes.push(ferry_store::MirrorCorrection {
                        path_lower: path.clone(),
                        was_rev: Some(rev.clone()),
                        now: None,
                    });
                } else if differing.contains(path.as_str()) {
                    synced_rev.insert(path, rev.clone());
                }
            }
        }
        for f in &expected.differing {
            if let Some(rev) = synced_rev.get(&f.path_lower) {
                fixes.push(ferry_store::MirrorCorrection {
                    path_lower: f.path_lower.clone(),
                    was_rev: Some(rev.clone()),
                    now: Some(mirror_file(f)),
                });
            }
        }
        fixes.extend(
            expected
                .untracked
                .iter()
                .map(|f| ferry_store::MirrorCorrection {
                    path_lower: f.path_lower.clone(),
                    was_rev: None,
                    now: Some(mirror_file(f)),
                }),
        );
        if !fixes.is_empty() {
            tracing::info!(%connection, corrections = fixes.len(), "the reconciliation corrects the remote mirror");
            self.store.correct_mirror(connection, &fixes).await?;
        }
        Ok(())
    }

    /// Reads the whole tree under `tree.root` into `expected` (and, when seeding, into the
    /// new mirror); the listing's last cursor (`None`: no root, an empty tree).
    async fn read_tree(
        &self,
        tree: &Tree<'_>,
        expected: &mut Expected,
        report: &mut ReconcileReport,
    ) -> Result<Option<String>, EngineError> {
        let mut page = match tree.client.list_folder(tree.root, true).await {
            Ok(page) => page,
            Err(DropboxError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        loop {
            report.pages += 1;
            for entry in &page.entries {
                expected.see(entry, report);
            }
            if let Some(epoch) = tree.seed {
                let changes: Vec<_> = page
                    .entries
                    .iter()
                    .map(crate::mirror::mirror_change)
                    .collect();
                self.store
                    .seed_mirror(tree.connection, epoch, &changes)
                    .await?;
            }
            if !page.has_more {
                return Ok(Some(page.cursor));
            }
            page = tree.client.list_folder_continue(&page.cursor).await?;
        }
    }

    /// Queues `ids` behind the records' own changes (a reconciliation may find many);
    /// returns them.
    async fn queue(&self, ids: Vec<i64>) -> Result<Vec<i64>, EngineError> {
        if !ids.is_empty() {
            self.store.enqueue(&ids, Priority::Bulk).await?;
            self.wake();
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_separate_their_parts() {
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
        assert_eq!(fingerprint(&["/a/b"]), file_key("/a", "b"));
        assert_ne!(fingerprint(&["/a/b"]), fingerprint(&["/a/c"]));
    }
}
