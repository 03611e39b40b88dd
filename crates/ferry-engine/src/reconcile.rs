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

/// The store's side, read before the listing.
#[derive(Default)]
struct Expected {
    /// Synced file (by path) → (fingerprint of rev and hash, its record).
    files: HashMap<u128, (u128, i64)>,
    /// Binding folder (by path) → the records bound there, and whether their rule pulls
    /// (only then is a file Ferry does not track there work to do).
    folders: HashMap<u128, Vec<(i64, bool)>>,
    flagged: BTreeSet<i64>,
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
        let disconnecting = self
            .store
            .connection(connection)
            .await?
            .is_some_and(|c| c.disconnecting);
        let bindings = self.store.bindings_of_connection(connection).await?;
        if disconnecting {
            // Bringing files back is the pass's job: every bound record gets one.
            let ids: BTreeSet<i64> = bindings.iter().map(|b| b.record_id).collect();
            return Ok(ReconcileReport {
                queued: self.queue(ids.into_iter().collect()).await?,
                ..ReconcileReport::default()
            });
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
        self.read_tree(&client, &root, &mut expected, &mut report)
            .await?;
        // Synced files Dropbox no longer has.
        let missing: Vec<i64> = expected.files.values().map(|(_, r)| *r).collect();
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
        Ok(report)
    }

    /// Reads the whole tree under `root` into `expected`. A missing root is an empty tree.
    async fn read_tree(
        &self,
        client: &DropboxClient,
        root: &str,
        expected: &mut Expected,
        report: &mut ReconcileReport,
    ) -> Result<(), EngineError> {
        let mut page = match client.list_folder(root, true).await {
            Ok(page) => page,
            Err(DropboxError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        loop {
            report.pages += 1;
            for entry in &page.entries {
                expected.see(entry, report);
            }
            if !page.has_more {
                return Ok(());
            }
            page = client.list_folder_continue(&page.cursor).await?;
        }
    }

    /// Queues `ids` for a normal pass; returns them.
    async fn queue(&self, ids: Vec<i64>) -> Result<Vec<i64>, EngineError> {
        if !ids.is_empty() {
            self.store.enqueue(&ids, Priority::Normal).await?;
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
