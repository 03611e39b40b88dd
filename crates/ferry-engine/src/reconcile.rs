//! Full reconciliation, the safety net behind change detection: one recursive listing of each
//! connection's root, written into a mirror of its own, then compared with the synced tree
//! the store holds as a sorted merge of two streams (plus the binding folders, a third), and
//! the records whose app side changed since their last pass. Only records that differ are
//! queued.
//!
//! This costs one request per 2,000 files (a listing page) instead of one per record. Memory
//! does not grow with the tree: the listing goes to the store page by page, and the database
//! sorts both sides; the merge holds one path of each stream and the binding folders above
//! it. Anything it flags gets a normal pass, which re-reads its folder, so a false alarm costs
//! a pass and never a wrong action.

use crate::{Engine, EngineError};
use ferry_dropbox::{DropboxClient, DropboxError};
use ferry_store::{Binding, MirrorCorrection, MirrorFile, Priority, SyncedFileScan};
use futures::TryStreamExt;
use std::collections::{BTreeSet, HashSet};

/// Corrections of the mirror in use are written in groups of this many.
const FIXES_PER_WRITE: usize = 1000;

/// What one connection's reconciliation found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Synced files compared with the listing.
    pub compared: u64,
    /// Files in Dropbox that Ferry does not track, inside some binding's folder.
    pub untracked: u64,
    /// Listing pages read.
    pub pages: u64,
    /// Synced files a pass wrote after the listing began, left out of the comparison (the
    /// pass saw more of Dropbox than the listing did).
    pub newer: u64,
    /// Records queued for a pass.
    pub queued: Vec<i64>,
}

/// A binding folder holding the paths the merge is at: its key (the folder plus `/`) and
/// the records bound there, with whether their rule pulls (only then is a file Ferry does not
/// track there work to do).
struct OpenFolder {
    key: String,
    bound: Vec<(i64, bool)>,
}

/// The merge of the listing with the synced tree, fed in path order (byte order): binding
/// folders as they open, then each path with what the listing and the store hold there.
#[derive(Default)]
struct Merge {
    /// The binding folders holding the current path, outermost first.
    open: Vec<OpenFolder>,
    flagged: BTreeSet<i64>,
    /// Corrections of the mirror in use (collected only when `corrects`): files that changed
    /// or vanished where the mirror may still hold what the record synced, and files nobody
    /// tracks in a binding's folder.
    fixes: Vec<MirrorCorrection>,
    corrects: bool,
    /// When the listing began (ms): synced files written since are left to their pass.
    listed_from_ms: i64,
    compared: u64,
    newer: u64,
    untracked: u64,
}

impl Merge {
    /// A binding folder (`key`: the folder plus `/`) comes before every path inside it.
    fn folder(&mut self, key: String, bound: Vec<(i64, bool)>) {
        self.close_above(&key);
        self.open.push(OpenFolder { key, bound });
    }

    /// Closes the folders that do not hold `path`.
    fn close_above(&mut self, path: &str) {
        while self.open.last().is_some_and(|f| !path.starts_with(&f.key)) {
            self.open.pop();
        }
    }

    /// One path: the file the listing holds there, and every synced file at it (several
    /// bindings may share a folder).
    fn path(&mut self, path: &str, listed: Option<&MirrorFile>, synced: &[SyncedFileScan]) {
        self.close_above(path);
        for s in synced {
            // A file that failed. (Attachments changed, added or removed since the pass
            // date the record: `records_changed_since_pass` has those.)
            if !s.synced {
                self.flagged.insert(s.record_id);
            }
            if s.updated_at >= self.listed_from_ms {
                self.newer += 1;
                continue;
            }
            match listed {
                Some(l) => {
                    self.compared += 1;
                    let hash = l.content_hash.as_deref().unwrap_or("");
                    if l.rev != s.rev || hash != s.content_hash {
                        self.flagged.insert(s.record_id);
                        self.fix(path, Some(&s.rev), Some(l));
                    }
                }
                // Synced, and Dropbox no longer has it.
                None => {
                    self.flagged.insert(s.record_id);
                    self.fix(path, Some(&s.rev), None);
                }
            }
        }
        let Some(l) = listed.filter(|_| synced.is_empty()) else {
            return;
        };
        // A folder several bindings share pulls no new files (none of them owns them), so
        // an untracked file there is nobody's work.
        let Some(deepest) = self.open.last().filter(|f| f.bound.len() == 1) else {
            return;
        };
        self.untracked += 1;
        let pulling: Vec<i64> = deepest
            .bound
            .iter()
            .filter(|(_, pulls)| *pulls)
            .map(|(r, _)| *r)
            .collect();
        self.flagged.extend(pulling);
        // Kept for the mirror even where no rule pulls now: a rule that starts pulling
        // later plans from the mirror.
        self.fix(path, None, Some(l));
    }

    fn fix(&mut self, path: &str, was_rev: Option<&str>, now: Option<&MirrorFile>) {
        if self.corrects {
            self.fixes.push(MirrorCorrection {
                path_lower: path.to_owned(),
                was_rev: was_rev.map(str::to_owned),
                now: now.cloned(),
            });
        }
    }
}

/// The connection's mapped folders, checked against the listing. A mapped folder is found
/// by its id, and its binding's folder is where it was last seen: one the listing does not
/// show there was moved or deleted while notifications were lost, and nothing else in the
/// merge would tell (its files are listed under a path no binding has). Its record gets a
/// pass, which follows the folder by id or reports it gone.
struct MappedFolders {
    /// Folder id → (where it was last seen, lower-cased; its record).
    by_id: std::collections::HashMap<String, (String, i64)>,
    /// Ids the listing showed where they were last seen.
    in_place: HashSet<String>,
}

impl MappedFolders {
    fn new(maps: Vec<ferry_store::FolderMap>) -> MappedFolders {
        let by_id = maps
            .into_iter()
            .map(|m| {
                let path = ferry_core::names::dropbox_lower(&m.path);
                (m.folder_id, (path, m.record_id))
            })
            .collect();
        MappedFolders {
            by_id,
            in_place: HashSet::new(),
        }
    }

    /// One entry of the listing.
    fn see(&mut self, entry: &ferry_dropbox::Entry) {
        if let ferry_dropbox::Entry::Folder(f) = entry
            && self
                .by_id
                .get(&f.id)
                .is_some_and(|(path, _)| *path == f.path_lower)
        {
            self.in_place.insert(f.id.clone());
        }
    }

    /// The records of mapped folders the listing did not show where they were last seen.
    fn displaced(&self) -> impl Iterator<Item = i64> + '_ {
        self.by_id
            .iter()
            .filter(|(id, _)| !self.in_place.contains(*id))
            .map(|(_, (_, record))| *record)
    }
}

/// Whether the synced file is at `path` (without building its path).
fn synced_at(s: &SyncedFileScan, path: &str) -> bool {
    path.strip_prefix(s.folder_lower.as_str())
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|rel| rel == s.rel_lower)
}

fn synced_path(s: &SyncedFileScan) -> String {
    format!("{}/{}", s.folder_lower, s.rel_lower)
}

/// A negative epoch: a mirror that is never put in use.
fn scratch_epoch() -> i64 {
    -rand::random::<i64>().checked_abs().unwrap_or(1).max(1)
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

    /// [`Engine::reconcile_connection`]; with `seed`, the listing builds mirror `seed` (not
    /// in use yet) and its last cursor is returned (`None`: no root). Without, the listing
    /// goes into a scratch mirror, dropped at the end, and what it found different corrects
    /// the mirror in use, where that mirror still holds what the store recorded (a mirror
    /// that agreed with the store while Dropbox did not would otherwise keep the flagged
    /// passes from seeing the difference).
    pub(crate) async fn reconcile_connection_with(
        &self,
        connection: &str,
        seed: Option<i64>,
    ) -> Result<(ReconcileReport, Option<String>), EngineError> {
        let _one_at_a_time = self.reconciling.lock().await;
        let disconnecting = self
            .store
            .connection(connection)
            .await?
            .is_some_and(|c| c.disconnecting);
        if disconnecting {
            // Bringing files back is the pass's job: every bound record gets one.
            let bindings = self.store.bindings_of_connection(connection).await?;
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
        let mut merge = Merge {
            corrects: seed.is_none(),
            listed_from_ms: ferry_core::clock::now_ms(),
            ..Merge::default()
        };
        merge
            .flagged
            .extend(self.store.records_changed_since_pass(connection).await?);
        let epoch = match seed {
            Some(epoch) => epoch,
            None => {
                // A crashed reconciliation's scratch mirror, if any, goes first.
                self.store.drop_scratch_mirrors(connection).await?;
                scratch_epoch()
            }
        };
        let mut mapped =
            MappedFolders::new(self.store.folder_maps_of_connection(connection).await?);
        let outcome = async {
            let started = std::time::Instant::now();
            let listed = self
                .list_into(&client, connection, &root, epoch, &mut mapped)
                .await?;
            let listing_ms = started.elapsed().as_millis();
            self.merge_trees(connection, epoch, &pulling, &mut merge)
                .await?;
            tracing::info!(%connection, listing_ms, merge_ms = started.elapsed().as_millis() - listing_ms, "listed and merged");
            Ok::<_, EngineError>(listed)
        }
        .await;
        if seed.is_none()
            && let Err(e) = self.store.drop_scratch_mirrors(connection).await
        {
            tracing::warn!(%connection, error = %e, "cannot drop the reconciliation's scratch mirror; the next one does");
        }
        let (pages, cursor) = outcome?;
        merge.flagged.extend(mapped.displaced());
        self.write_fixes(connection, &mut merge.fixes).await?;
        let report = ReconcileReport {
            compared: merge.compared,
            untracked: merge.untracked,
            newer: merge.newer,
            pages,
            queued: self.queue(merge.flagged.into_iter().collect()).await?,
        };
        tracing::info!(
            %connection,
            compared = report.compared,
            untracked = report.untracked,
            pages = report.pages,
            newer = report.newer,
            queued = report.queued.len(),
            "reconciled"
        );
        Ok((report, cursor))
    }

    /// Lists the whole tree under `root` into mirror `epoch`, page by page (the next page is
    /// read while the last one is written), showing `mapped` every entry; the pages read and
    /// the last cursor (`None`: no root, an empty tree).
    async fn list_into(
        &self,
        client: &DropboxClient,
        connection: &str,
        root: &str,
        epoch: i64,
        mapped: &mut MappedFolders,
    ) -> Result<(u64, Option<String>), EngineError> {
        let mut page = match client.list_folder(root, true).await {
            Ok(page) => page,
            Err(DropboxError::NotFound(_)) => return Ok((0, None)),
            Err(e) => return Err(e.into()),
        };
        let mut pages = 0;
        loop {
            pages += 1;
            page.entries.iter().for_each(|e| mapped.see(e));
            let changes: Vec<_> = page
                .entries
                .iter()
                .map(crate::mirror::mirror_change)
                .collect();
            if !page.has_more {
                self.store.seed_mirror(connection, epoch, &changes).await?;
                return Ok((pages, Some(page.cursor)));
            }
            let (next, written) = tokio::join!(
                client.list_folder_continue(&page.cursor),
                self.store.seed_mirror(connection, epoch, &changes)
            );
            written?;
            page = next?;
        }
    }

    /// Merges mirror `epoch` with the synced tree and the binding folders, all three streamed
    /// in path order.
    async fn merge_trees(
        &self,
        connection: &str,
        epoch: i64,
        pulling: &HashSet<String>,
        merge: &mut Merge,
    ) -> Result<(), EngineError> {
        let mut listed = self.store.mirror_files_by_path(connection, epoch);
        let mut synced = self.store.synced_files_by_path(connection);
        let mut folders = self.store.bindings_by_folder(connection);
        let mut next_listed = listed.try_next().await?;
        let mut next_synced = synced.try_next().await?;
        let mut next_folder = folders.try_next().await?;
        loop {
            let synced_key = next_synced.as_ref().map(synced_path);
            let path = match (
                next_listed.as_ref().map(|f| f.path_lower.as_str()),
                synced_key.as_deref(),
            ) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(folder) = next_folder.take() {
                let key = format!("{}/", folder.folder_lower);
                if path.is_none_or(|p| key.as_str() <= p) {
                    let mut bound = vec![(folder.record_id, self.pulls(&folder, pulling).await?)];
                    loop {
                        next_folder = folders.try_next().await?;
                        match &next_folder {
                            Some(b) if b.folder_lower == folder.folder_lower => {
                                bound.push((b.record_id, self.pulls(b, pulling).await?));
                            }
                            _ => break,
                        }
                    }
                    merge.folder(key, bound);
                    continue;
                }
                next_folder = Some(folder);
            }
            let Some(path) = path.map(str::to_owned) else {
                break;
            };
            let mut here = Vec::new();
            while let Some(s) = next_synced.take_if(|s| synced_at(s, &path)) {
                here.push(s);
                next_synced = synced.try_next().await?;
            }
            let file = next_listed.take_if(|f| f.path_lower == path);
            if file.is_some() {
                next_listed = listed.try_next().await?;
            }
            merge.path(&path, file.as_ref(), &here);
            if merge.fixes.len() >= FIXES_PER_WRITE {
                self.write_fixes(connection, &mut merge.fixes).await?;
            }
        }
        Ok(())
    }

    /// Whether `binding`'s files come back from Dropbox: its rule pulls, or (a folder mapped
    /// by hand, which has no rule) its mapping does.
    async fn pulls(
        &self,
        binding: &Binding,
        pulling: &HashSet<String>,
    ) -> Result<bool, EngineError> {
        if pulling.contains(&binding.rule_name) {
            return Ok(true);
        }
        if !binding.rule_name.starts_with("map:") {
            return Ok(false);
        }
        Ok(self
            .store
            .folder_maps(binding.record_id)
            .await?
            .iter()
            .any(|m| {
                crate::folder_map::binding_name(m.id) == binding.rule_name && m.direction.pulls()
            }))
    }

    /// Corrects the mirror in use with `fixes` (then empty).
    async fn write_fixes(
        &self,
        connection: &str,
        fixes: &mut Vec<MirrorCorrection>,
    ) -> Result<(), EngineError> {
        if fixes.is_empty() {
            return Ok(());
        }
        tracing::info!(%connection, corrections = fixes.len(), "the reconciliation corrects the remote mirror");
        self.store.correct_mirror(connection, fixes).await?;
        fixes.clear();
        Ok(())
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

    fn listed(path: &str, rev: &str) -> MirrorFile {
        MirrorFile {
            path_lower: path.into(),
            path_display: path.into(),
            id: format!("id:{path}"),
            rev: rev.into(),
            size: 1,
            content_hash: Some("h".into()),
        }
    }

    fn synced(record: i64, folder: &str, rel: &str, rev: &str) -> SyncedFileScan {
        SyncedFileScan {
            record_id: record,
            folder_lower: folder.into(),
            rel_lower: rel.into(),
            rev: rev.into(),
            content_hash: "h".into(),
            synced: true,
            updated_at: 0,
        }
    }

    fn merge() -> Merge {
        Merge {
            corrects: true,
            listed_from_ms: 1_000,
            ..Merge::default()
        }
    }

    #[test]
    fn a_synced_file_is_flagged_only_when_the_listing_differs_or_lacks_it() {
        let mut m = merge();
        m.folder("/a/".into(), vec![(1, false)]);
        m.path(
            "/a/same",
            Some(&listed("/a/same", "1")),
            &[synced(1, "/a", "same", "1")],
        );
        assert!(m.flagged.is_empty() && m.fixes.is_empty());
        m.path(
            "/a/new-rev",
            Some(&listed("/a/new-rev", "2")),
            &[synced(2, "/a", "new-rev", "1")],
        );
        m.path("/a/gone", None, &[synced(3, "/a", "gone", "1")]);
        assert_eq!(m.flagged, BTreeSet::from([2, 3]));
        assert_eq!(m.compared, 2);
        let fixes: Vec<_> = m
            .fixes
            .iter()
            .map(|f| {
                (
                    f.path_lower.as_str(),
                    f.was_rev.as_deref(),
                    f.now.as_ref().map(|n| n.rev.as_str()),
                )
            })
            .collect();
        assert_eq!(
            fixes,
            [
                ("/a/new-rev", Some("1"), Some("2")),
                ("/a/gone", Some("1"), None)
            ]
        );
        // A file a pass wrote after the listing began is the pass's business.
        let mut written_since = synced(4, "/a", "late", "1");
        written_since.updated_at = 1_000;
        m.path("/a/late", None, &[written_since]);
        assert_eq!(m.flagged, BTreeSet::from([2, 3]));
        assert_eq!((m.compared, m.newer), (2, 1));
    }

    #[test]
    fn an_untracked_file_is_work_only_in_a_pulling_folder_of_one_binding() {
        let mut m = merge();
        m.folder("/a/".into(), vec![(1, true)]);
        m.folder("/a/b/".into(), vec![(2, false)]);
        // The deepest folder holding it decides: /a/b does not pull.
        m.path("/a/b/x", Some(&listed("/a/b/x", "1")), &[]);
        assert!(m.flagged.is_empty());
        // /a/b is closed by a path outside it; /a pulls.
        m.path("/a/c", Some(&listed("/a/c", "1")), &[]);
        assert_eq!(m.flagged, BTreeSet::from([1]));
        // A folder two bindings share pulls nothing, and outside every folder nothing counts.
        m.folder("/s/".into(), vec![(3, true), (4, true)]);
        m.path("/s/y", Some(&listed("/s/y", "1")), &[]);
        m.path("/t/z", Some(&listed("/t/z", "1")), &[]);
        assert_eq!(m.flagged, BTreeSet::from([1]));
        assert_eq!(m.untracked, 2);
        // A folder's key ends in `/`: "/a b/…" is not inside "/a".
        m.folder("/a/".into(), vec![(5, true)]);
        m.path("/a b/w", Some(&listed("/a b/w", "1")), &[]);
        assert_eq!(m.flagged, BTreeSet::from([1]));
    }

    #[test]
    fn a_synced_file_is_matched_by_its_path_without_building_it() {
        let s = synced(1, "/a", "b/c", "1");
        assert!(synced_at(&s, "/a/b/c"));
        assert!(!synced_at(&s, "/a/b/cd"));
        assert!(!synced_at(&s, "/ab/c"));
        assert_eq!(synced_path(&s), "/a/b/c");
    }
}
