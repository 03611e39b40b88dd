//! The namespace's file tree and the write semantics of Dropbox (modes, conflicts,
//! autorename, implicit parents, recursive delete, move). Every mutation is expressed as
//! journal entries, written to disk first and then applied, so replaying the journal rebuilds
//! exactly this state.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use crate::journal::{FileInfo, JournalEntry, JournalFile, NodeState};
use crate::metadata;
use crate::paths::{self, PathArg};
use crate::wire::{WriteMode, now_timestamp, random_token};

/// An existing file or folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Display path, casing as first written.
    pub display: String,
    /// `id:…`.
    pub id: String,
    /// Present for files.
    pub file: Option<FileInfo>,
}

impl Node {
    /// `Metadata` with `.tag`.
    pub fn tagged_metadata(&self) -> Value {
        metadata::tagged_node(&self.display, &self.id, self.file.as_ref())
    }
}

/// `LookupError` members we produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupErr {
    /// `malformed_path`.
    Malformed,
    /// `not_found`.
    NotFound,
    /// `not_file`.
    NotFile,
    /// `not_folder`.
    NotFolder,
}

/// `WriteConflictError` members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// A file is in the way.
    File,
    /// A folder is in the way.
    Folder,
    /// A file sits where a parent folder is needed.
    FileAncestor,
}

/// `WriteError` members we produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteErr {
    /// `malformed_path`.
    Malformed,
    /// `conflict`.
    Conflict(Conflict),
    /// `insufficient_space`: the write would exceed the account's quota.
    InsufficientSpace,
}

/// Why a tree operation failed.
#[derive(Debug)]
pub enum OpError {
    /// Looking up the (source) path failed.
    Lookup(LookupErr),
    /// Writing the (target) path failed.
    Write(WriteErr),
    /// Moving a folder into itself.
    MoveIntoItself,
    /// The journal could not be written; nothing changed.
    Io(std::io::Error),
}

impl From<WriteErr> for OpError {
    fn from(err: WriteErr) -> Self {
        OpError::Write(err)
    }
}

impl From<LookupErr> for OpError {
    fn from(err: LookupErr) -> Self {
        OpError::Lookup(err)
    }
}

/// What a read path resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// The root folder.
    Root,
    /// A lowercased path (which may or may not exist).
    Path(String),
    /// A file revision.
    Rev(String),
}

/// The parameters of a file commit (upload or session finish).
#[derive(Debug, Clone)]
pub struct Commit {
    /// Requested display path.
    pub target: String,
    /// add / overwrite / update(rev).
    pub mode: WriteMode,
    /// Pick a free name instead of failing on a conflict.
    pub autorename: bool,
    /// See `CommitInfo.strict_conflict`.
    pub strict_conflict: bool,
    /// Client-supplied timestamp, already validated.
    pub client_modified: Option<String>,
    /// Content hash of the new content (its blob must already exist).
    pub content_hash: String,
    /// Size of the new content.
    pub size: u64,
}

/// The whole namespace: the tree, its indexes and the journal.
pub struct Tree {
    namespace_id: String,
    nodes: BTreeMap<String, Node>,
    ids: HashMap<String, String>,
    revs: HashMap<String, Node>,
    tombstones: BTreeMap<String, String>,
    journal: Vec<JournalEntry>,
    file: JournalFile,
    used: u64,
    quota: u64,
    notify: tokio::sync::watch::Sender<u64>,
}

impl Tree {
    /// Rebuilds the tree from replayed journal entries.
    /// `quota` bounds the bytes of current files; `notify` receives the journal head after
    /// every commit.
    pub fn replay(
        namespace_id: String,
        file: JournalFile,
        entries: Vec<JournalEntry>,
        quota: u64,
        notify: tokio::sync::watch::Sender<u64>,
    ) -> Self {
        let mut tree = Tree {
            namespace_id,
            nodes: BTreeMap::new(),
            ids: HashMap::new(),
            revs: HashMap::new(),
            tombstones: BTreeMap::new(),
            journal: Vec::with_capacity(entries.len()),
            file,
            used: 0,
            quota,
            notify,
        };
        for entry in entries {
            tree.apply(entry);
        }
        tree.notify.send_replace(tree.head());
        tree
    }

    /// Bytes held by current files.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Whether replacing `old` bytes by `new` bytes stays within the quota.
    fn fits(&self, old: u64, new: u64) -> bool {
        self.used.saturating_sub(old).saturating_add(new) <= self.quota
    }

    /// The journal entries after position `since` (empty if `since` is at or past the head).
    pub fn entries_since(&self, since: u64) -> &[JournalEntry] {
        let start = usize::try_from(since)
            .unwrap_or(usize::MAX)
            .min(self.journal.len());
        &self.journal[start..]
    }

    /// All current nodes with their lowercased keys, in key order.
    pub fn nodes(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.iter()
    }

    /// All tombstones (lowercased key, display path).
    pub fn tombstones(&self) -> impl Iterator<Item = (&String, &String)> {
        self.tombstones.iter()
    }

    /// The node with this id.
    pub fn by_id(&self, id: &str) -> Option<&Node> {
        self.ids.get(id).and_then(|lower| self.nodes.get(lower))
    }

    /// The sequence number of the latest change (0 when empty).
    pub fn head(&self) -> u64 {
        self.journal.len() as u64
    }

    fn apply(&mut self, entry: JournalEntry) {
        if let Some(info) = self.nodes.get(&entry.lower).and_then(|n| n.file.as_ref()) {
            self.used = self.used.saturating_sub(info.size);
        }
        if let Some(info) = entry.node.as_ref().and_then(|n| n.file.as_ref()) {
            self.used = self.used.saturating_add(info.size);
        }
        match &entry.node {
            Some(state) => {
                if let Some(old) = self.nodes.get(&entry.lower)
                    && old.id != state.id
                    && self.ids.get(&old.id) == Some(&entry.lower)
                {
                    self.ids.remove(&old.id);
                }
                let node = Node {
                    display: entry.display.clone(),
                    id: state.id.clone(),
                    file: state.file.clone(),
                };
                self.ids.insert(node.id.clone(), entry.lower.clone());
                if let Some(info) = &node.file {
                    self.revs.insert(info.rev.clone(), node.clone());
                }
                self.tombstones.remove(&entry.lower);
                self.nodes.insert(entry.lower.clone(), node);
            }
            None => {
                if let Some(old) = self.nodes.remove(&entry.lower)
                    && self.ids.get(&old.id) == Some(&entry.lower)
                {
                    self.ids.remove(&old.id);
                }
                self.tombstones
                    .insert(entry.lower.clone(), entry.display.clone());
            }
        }
        self.journal.push(entry);
    }

    /// Writes `changes` to the journal, then applies them. Sequence numbers are assigned here.
    fn commit(&mut self, mut changes: Vec<JournalEntry>) -> Result<(), OpError> {
        let head = self.head();
        for (i, change) in changes.iter_mut().enumerate() {
            change.seq = head + i as u64 + 1;
        }
        self.file.append(&changes).map_err(OpError::Io)?;
        for change in changes {
            self.apply(change);
        }
        self.notify.send_replace(self.head());
        Ok(())
    }

    /// The node at a lowercased path.
    pub fn get(&self, lower: &str) -> Option<&Node> {
        self.nodes.get(lower)
    }

    /// The display path of a deleted (and not re-created) path.
    pub fn tombstone(&self, lower: &str) -> Option<&str> {
        self.tombstones.get(lower).map(String::as_str)
    }

    /// The file revision `rev` (current or historical) as it was written.
    pub fn rev(&self, rev: &str) -> Option<&Node> {
        self.revs.get(rev)
    }

    /// Resolves a read path to a key. Unknown ids and foreign namespaces are `not_found`.
    pub fn resolve(&self, arg: &PathArg) -> Result<Key, LookupErr> {
        match arg {
            PathArg::Root => Ok(Key::Root),
            PathArg::Path(components) => Ok(Key::Path(paths::lower(&paths::join(components)))),
            PathArg::Rev(rev) => Ok(Key::Rev(rev.clone())),
            PathArg::Ns { ns, rest } => {
                if *ns != self.namespace_id {
                    return Err(LookupErr::NotFound);
                }
                if rest.is_empty() {
                    Ok(Key::Root)
                } else {
                    Ok(Key::Path(paths::lower(&paths::join(rest))))
                }
            }
            PathArg::Id { id, rest } => {
                let base = self.ids.get(id).ok_or(LookupErr::NotFound)?;
                Ok(Key::Path(format!(
                    "{base}{}",
                    paths::lower(&paths::join(rest))
                )))
            }
        }
    }

    /// The display path a write should go to (`id:` bases keep their stored casing).
    pub fn write_target(&self, arg: &PathArg) -> Result<String, WriteErr> {
        let target = match arg {
            PathArg::Path(components) => paths::join(components),
            PathArg::Ns { ns, rest } if *ns == self.namespace_id => paths::join(rest),
            PathArg::Id { id, rest } => {
                let base = self
                    .ids
                    .get(id)
                    .and_then(|lower| self.nodes.get(lower))
                    .ok_or(WriteErr::Malformed)?;
                format!("{}{}", base.display, paths::join(rest))
            }
            PathArg::Root | PathArg::Rev(_) | PathArg::Ns { .. } => String::new(),
        };
        if target.is_empty() {
            return Err(WriteErr::Malformed);
        }
        Ok(target)
    }

    /// Finds or plans the folders above a target. Returns the entries creating missing ones
    /// and the display path of the parent (existing components keep their casing).
    fn ensure_parents(&self, components: &[&str]) -> Result<(Vec<JournalEntry>, String), WriteErr> {
        let mut changes = Vec::new();
        let mut display = String::new();
        let mut missing = false;
        for component in components {
            let candidate = format!("{display}/{component}");
            if !missing {
                if let Some(node) = self.nodes.get(&paths::lower(&candidate)) {
                    if node.file.is_some() {
                        return Err(WriteErr::Conflict(Conflict::FileAncestor));
                    }
                    display = node.display.clone();
                    continue;
                }
                missing = true;
            }
            changes.push(folder_entry(&candidate, new_id()));
            display = candidate;
        }
        Ok((changes, display))
    }

    /// Where a new or moved item goes: creates missing parents (their journal entries are
    /// returned), then answers the target's display path — or, when something is already
    /// there, a conflict, or with `autorename` the first free name.
    fn place(
        &self,
        target: &str,
        autorename: bool,
        is_file: bool,
    ) -> Result<(Vec<JournalEntry>, String), OpError> {
        let components: Vec<&str> = target.split('/').skip(1).collect();
        let Some((name, parents)) = components.split_last() else {
            return Err(WriteErr::Malformed.into());
        };
        let (changes, parent) = self.ensure_parents(parents)?;
        let display = format!("{parent}/{name}");
        let Some(existing) = self.nodes.get(&paths::lower(&display)) else {
            return Ok((changes, display));
        };
        if !autorename {
            let kind = if existing.file.is_some() {
                Conflict::File
            } else {
                Conflict::Folder
            };
            return Err(WriteErr::Conflict(kind).into());
        }
        let taken = paths::file_name(&existing.display);
        let free = self.free_name(&parent, taken, is_file, false);
        Ok((changes, format!("{parent}/{free}")))
    }

    /// A name under `parent` that nothing occupies, derived from the name in the way (so
    /// its casing wins): `stem (1).ext`, `stem (2).ext`, … or, for
    /// update conflicts, `stem (conflicted copy).ext`, `stem (conflicted copy 2).ext`, ….
    fn free_name(&self, parent: &str, name: &str, is_file: bool, conflicted_copy: bool) -> String {
        let (stem, ext) = match name.rfind('.') {
            Some(dot) if is_file && dot > 0 => (&name[..dot], &name[dot..]),
            _ => (name, ""),
        };
        let mut n = 1u64;
        loop {
            let candidate = match (conflicted_copy, n) {
                (true, 1) => format!("{stem} (conflicted copy){ext}"),
                (true, n) => format!("{stem} (conflicted copy {n}){ext}"),
                (false, n) => format!("{stem} ({n}){ext}"),
            };
            if !self
                .nodes
                .contains_key(&paths::lower(&format!("{parent}/{candidate}")))
            {
                return candidate;
            }
            n += 1;
        }
    }

    /// Commits file content at a path following `WriteMode` rules. Identical content is
    /// never a conflict (unless `strict_conflict`) and writes nothing.
    pub fn commit_file(&mut self, commit: &Commit) -> Result<Node, OpError> {
        let components: Vec<&str> = commit.target.split('/').skip(1).collect();
        let Some((name, parents)) = components.split_last() else {
            return Err(WriteErr::Malformed.into());
        };
        let (mut changes, parent) = self.ensure_parents(parents)?;
        let lower = paths::lower(&format!("{parent}/{name}"));
        let now = now_timestamp();
        let new_info = |rev: String| FileInfo {
            rev,
            size: commit.size,
            content_hash: commit.content_hash.clone(),
            client_modified: commit
                .client_modified
                .clone()
                .unwrap_or_else(|| now.clone()),
            server_modified: now.clone(),
        };
        let mut display = format!("{parent}/{name}");
        let mut id = new_id();
        match self.nodes.get(&lower) {
            None => {
                if commit.strict_conflict && matches!(commit.mode, WriteMode::Update(_)) {
                    return Err(WriteErr::Conflict(Conflict::File).into());
                }
            }
            Some(existing) if existing.file.is_none() => {
                if !commit.autorename {
                    return Err(WriteErr::Conflict(Conflict::Folder).into());
                }
                let taken = paths::file_name(&existing.display);
                display = format!("{parent}/{}", self.free_name(&parent, taken, true, false));
            }
            Some(existing) => {
                let current = existing
                    .file
                    .as_ref()
                    .map(|f| (f.rev.as_str(), f.content_hash.as_str()));
                let (rev, hash) = current.unwrap_or_default();
                let identical = hash == commit.content_hash;
                let overwrite = match &commit.mode {
                    WriteMode::Overwrite => true,
                    WriteMode::Update(wanted) => wanted == rev,
                    WriteMode::Add => false,
                };
                if identical && (overwrite || !commit.strict_conflict) {
                    return Ok(existing.clone());
                }
                if overwrite {
                    display = existing.display.clone();
                    id = existing.id.clone();
                } else if commit.autorename {
                    let conflicted = matches!(commit.mode, WriteMode::Update(_));
                    let taken = paths::file_name(&existing.display);
                    display = format!(
                        "{parent}/{}",
                        self.free_name(&parent, taken, true, conflicted)
                    );
                } else {
                    return Err(WriteErr::Conflict(Conflict::File).into());
                }
            }
        }
        let replaced = self
            .nodes
            .get(&paths::lower(&display))
            .and_then(|n| n.file.as_ref())
            .map_or(0, |f| f.size);
        if !self.fits(replaced, commit.size) {
            return Err(WriteErr::InsufficientSpace.into());
        }
        let node = Node {
            id,
            file: Some(new_info(self.new_rev())),
            display,
        };
        changes.push(entry_for(&node));
        self.commit(changes)?;
        Ok(node)
    }

    /// Creates a folder (and missing parents).
    pub fn create_folder(&mut self, target: &str, autorename: bool) -> Result<Node, OpError> {
        let (mut changes, display) = self.place(target, autorename, false)?;
        let node = Node {
            display,
            id: new_id(),
            file: None,
        };
        changes.push(entry_for(&node));
        self.commit(changes)?;
        Ok(node)
    }

    /// The lowercased keys strictly below `lower`, parents before children.
    fn descendants(&self, lower: &str) -> Vec<String> {
        let prefix = format!("{lower}/");
        let mut keys: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort_by(|a, b| paths::listing_order(a, b));
        keys
    }

    /// Deletes a file or a folder with everything below it. `parent_rev` (files only): delete
    /// only if the file still has this rev, else `not_found`.
    pub fn delete(&mut self, lower: &str, parent_rev: Option<&str>) -> Result<Node, OpError> {
        let node = self.nodes.get(lower).ok_or(LookupErr::NotFound)?.clone();
        if let Some(wanted) = parent_rev {
            match &node.file {
                None => return Err(LookupErr::NotFile.into()),
                Some(info) if info.rev != wanted => return Err(LookupErr::NotFound.into()),
                Some(_) => {}
            }
        }
        let mut changes: Vec<JournalEntry> = self
            .descendants(lower)
            .iter()
            .rev()
            .filter_map(|key| self.nodes.get(key).map(|n| deletion_entry(key, &n.display)))
            .collect();
        changes.push(deletion_entry(lower, &node.display));
        self.commit(changes)?;
        Ok(node)
    }

    /// Moves a node (and its subtree) to a new display path, keeping ids and revs. A move
    /// that only changes casing renames in place.
    pub fn relocate(
        &mut self,
        from: &str,
        target: &str,
        autorename: bool,
    ) -> Result<Node, OpError> {
        let source = self.nodes.get(from).ok_or(LookupErr::NotFound)?.clone();
        let target_lower = paths::lower(target);
        if source.file.is_none() && target_lower.starts_with(&format!("{from}/")) {
            return Err(OpError::MoveIntoItself);
        }
        let components: Vec<&str> = target.split('/').skip(1).collect();
        let Some((name, parents)) = components.split_last() else {
            return Err(WriteErr::Malformed.into());
        };
        let (mut changes, parent) = self.ensure_parents(parents)?;
        let mut display = format!("{parent}/{name}");
        let subtree: Vec<String> = std::iter::once(from.to_string())
            .chain(self.descendants(from))
            .collect();
        let depth = source.display.matches('/').count();
        let renamed = |new_root: &str, node: &Node| {
            let rest: Vec<&str> = node.display.split('/').skip(depth + 1).collect();
            let mut out = new_root.to_string();
            for component in rest {
                out.push('/');
                out.push_str(component);
            }
            out
        };
        if paths::lower(&display) == from {
            // Case-only rename (or a move onto itself): same keys, new display casing.
            if display == source.display {
                return Ok(source);
            }
            for key in &subtree {
                if let Some(node) = self.nodes.get(key) {
                    let moved = Node {
                        display: renamed(&display, node),
                        ..node.clone()
                    };
                    changes.push(entry_for(&moved));
                }
            }
            self.commit(changes)?;
            return Ok(Node { display, ..source });
        }
        if let Some(existing) = self.nodes.get(&paths::lower(&display)) {
            if !autorename {
                let kind = if existing.file.is_some() {
                    Conflict::File
                } else {
                    Conflict::Folder
                };
                return Err(WriteErr::Conflict(kind).into());
            }
            let taken = paths::file_name(&existing.display);
            let free = self.free_name(&parent, taken, source.file.is_some(), false);
            display = format!("{parent}/{free}");
        }
        for key in subtree.iter().rev() {
            if let Some(node) = self.nodes.get(key) {
                changes.push(deletion_entry(key, &node.display));
            }
        }
        for key in &subtree {
            if let Some(node) = self.nodes.get(key) {
                let moved = Node {
                    display: renamed(&display, node),
                    ..node.clone()
                };
                changes.push(entry_for(&moved));
            }
        }
        self.commit(changes)?;
        Ok(Node { display, ..source })
    }

    /// Copies a node (and its subtree) to a new display path: new ids, new revs, same
    /// content. Copying a folder into itself is refused like a move.
    pub fn copy(&mut self, from: &str, target: &str, autorename: bool) -> Result<Node, OpError> {
        let source = self.nodes.get(from).ok_or(LookupErr::NotFound)?.clone();
        let target_lower = paths::lower(target);
        if target_lower == from
            || (source.file.is_none() && target_lower.starts_with(&format!("{from}/")))
        {
            return Err(OpError::MoveIntoItself);
        }
        let (mut changes, display) = self.place(target, autorename, source.file.is_some())?;
        let subtree: Vec<Node> = std::iter::once(from.to_string())
            .chain(self.descendants(from))
            .filter_map(|key| self.nodes.get(&key).cloned())
            .collect();
        let bytes: u64 = subtree
            .iter()
            .filter_map(|n| n.file.as_ref())
            .map(|f| f.size)
            .sum();
        if !self.fits(0, bytes) {
            return Err(WriteErr::InsufficientSpace.into());
        }
        let depth = source.display.matches('/').count();
        let now = now_timestamp();
        let mut first = None;
        for (i, node) in subtree.iter().enumerate() {
            let rest: Vec<&str> = node.display.split('/').skip(depth + 1).collect();
            let mut new_display = display.clone();
            for component in rest {
                new_display.push('/');
                new_display.push_str(component);
            }
            let rev = format!(
                "{:010x}{:08x}",
                self.head() + 1 + changes.len() as u64,
                crate::wire::random::<u32>()
            );
            let copied = Node {
                display: new_display,
                id: new_id(),
                file: node.file.as_ref().map(|f| FileInfo {
                    rev,
                    server_modified: now.clone(),
                    ..f.clone()
                }),
            };
            changes.push(entry_for(&copied));
            if i == 0 {
                first = Some(copied);
            }
        }
        self.commit(changes)?;
        first.ok_or_else(|| LookupErr::NotFound.into())
    }

    /// Whether `lower` is inside the scope of a listing.
    fn in_scope(scope: &str, recursive: bool, lower: &str) -> bool {
        if recursive {
            (!scope.is_empty() && lower == scope) || lower.starts_with(&format!("{scope}/"))
        } else {
            paths::parent(lower) == scope && !lower.is_empty()
        }
    }

    /// One page of the initial listing of `scope` (current state, parents before children):
    /// entries after `after`, at most `limit`. Returns the entries, the last key returned
    /// and whether more remain.
    ///
    /// Pages walk the key-ordered maps from `after` onwards (byte order of the lowercased
    /// path, in which a folder precedes everything below it), so a page costs its own size,
    /// not the size of the listed scope.
    pub fn list(
        &self,
        scope: &str,
        recursive: bool,
        include_deleted: bool,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<Value>, Option<String>, bool) {
        use std::ops::Bound;
        let prefix = format!("{scope}/");
        let mut taken: Vec<(&String, Option<&Node>, Option<&String>)> = Vec::new();
        // A recursive listing of a folder starts with the folder itself.
        if recursive
            && after.is_none()
            && !scope.is_empty()
            && let Some((key, node)) = self.nodes.get_key_value(scope)
        {
            taken.push((key, Some(node), None));
        }
        let from = match after {
            Some(after) if after != scope => Bound::Excluded(after.to_owned()),
            _ => Bound::Included(prefix.clone()),
        };
        // Everything below the scope shares its prefix; a flat listing keeps direct children.
        let wanted = |key: &String| recursive || paths::parent(key) == scope;
        let mut nodes = self
            .nodes
            .range((from.clone(), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| wanted(k))
            .map(|(k, n)| (k, Some(n), None))
            .peekable();
        let mut tombstones = self
            .tombstones
            .range((from, Bound::Unbounded))
            .take_while(|(k, _)| include_deleted && k.starts_with(&prefix))
            .filter(|(k, _)| wanted(k))
            .map(|(k, d)| (k, None, Some(d)))
            .peekable();
        // Merge the two ordered streams, one more than a page to learn whether more remain.
        while taken.len() <= limit {
            let next = match (nodes.peek(), tombstones.peek()) {
                (Some(n), Some(t)) if t.0 < n.0 => tombstones.next(),
                (Some(_), _) => nodes.next(),
                (None, Some(_)) => tombstones.next(),
                (None, None) => None,
            };
            match next {
                Some(item) => taken.push(item),
                None => break,
            }
        }
        let has_more = taken.len() > limit;
        taken.truncate(limit);
        let entries = taken
            .iter()
            .map(|(_, node, deleted)| match (node, deleted) {
                (Some(node), _) => node.tagged_metadata(),
                (None, Some(display)) => metadata::deleted(display),
                (None, None) => Value::Null,
            })
            .collect();
        (entries, taken.last().map(|k| k.0.clone()), has_more)
    }

    /// Whether anything in scope changed after journal position `since`.
    pub fn has_changes(&self, scope: &str, recursive: bool, since: u64) -> bool {
        self.entries_since(since)
            .iter()
            .any(|e| Self::in_scope(scope, recursive, &e.lower))
    }

    /// Changes in scope after journal position `since`: the latest state of each changed path,
    /// in the order of each path's last change, at most `limit`. Returns the entries, the
    /// journal position they bring the client to, and whether more remain.
    pub fn changes_since(
        &self,
        scope: &str,
        recursive: bool,
        since: u64,
        limit: usize,
    ) -> (Vec<Value>, u64, bool) {
        let start = usize::try_from(since)
            .unwrap_or(usize::MAX)
            .min(self.journal.len());
        let mut seen = HashSet::new();
        // Walk backwards so the first sighting of a path is its last change.
        let mut latest: Vec<&JournalEntry> = self.journal[start..]
            .iter()
            .rev()
            .filter(|e| Self::in_scope(scope, recursive, &e.lower))
            .filter(|e| seen.insert(e.lower.as_str()))
            .collect();
        latest.reverse();
        let has_more = latest.len() > limit;
        latest.truncate(limit);
        let position = match (has_more, latest.last()) {
            (true, Some(last)) => last.seq,
            _ => self.head(),
        };
        let entries = latest
            .iter()
            .map(|e| match &e.node {
                Some(state) => metadata::tagged_node(&e.display, &state.id, state.file.as_ref()),
                None => metadata::deleted(&e.display),
            })
            .collect();
        (entries, position, has_more)
    }

    /// A new rev: the next journal position in hex (so revs sort by age) plus randomness.
    fn new_rev(&self) -> String {
        format!(
            "{:010x}{:08x}",
            self.head() + 1,
            crate::wire::random::<u32>()
        )
    }
}

/// `id:` + 22 URL-safe characters.
fn new_id() -> String {
    format!("id:{}", random_token(22))
}

fn folder_entry(display: &str, id: String) -> JournalEntry {
    JournalEntry {
        seq: 0,
        lower: paths::lower(display),
        display: display.to_string(),
        node: Some(NodeState { id, file: None }),
    }
}

fn entry_for(node: &Node) -> JournalEntry {
    JournalEntry {
        seq: 0,
        lower: paths::lower(&node.display),
        display: node.display.clone(),
        node: Some(NodeState {
            id: node.id.clone(),
            file: node.file.clone(),
        }),
    }
}

fn deletion_entry(lower: &str, display: &str) -> JournalEntry {
    JournalEntry {
        seq: 0,
        lower: lower.to_string(),
        display: display.to_string(),
        node: None,
    }
}
