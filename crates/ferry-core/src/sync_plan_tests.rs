use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn rel(p: &str) -> RelPath {
    RelPath::new(p)
}

fn local(id: i64, p: &str, h: &str) -> LocalFile {
    LocalFile {
        attachment_id: id,
        rel: rel(p),
        content_hash: h.into(),
    }
}

fn remote(id: &str, p: &str, rev: &str, h: &str) -> RemoteFile {
    RemoteFile {
        id: id.into(),
        rel: rel(p),
        rev: rev.into(),
        content_hash: h.into(),
    }
}

fn synced(row: i64, att: i64, p: &str, id: &str, rev: &str, h: &str) -> SyncedFile {
    SyncedFile {
        row_id: row,
        attachment_id: Some(att),
        rel: rel(p),
        dropbox_id: id.into(),
        rev: rev.into(),
        content_hash: h.into(),
    }
}

fn opts(direction: Direction) -> PlanOptions {
    PlanOptions {
        direction,
        ..PlanOptions::default()
    }
}

fn run(p: Plan) -> Vec<Action> {
    match p {
        Plan::Run(a) => a,
        Plan::Paused { reason } => panic!("unexpected pause: {reason}"),
    }
}

#[test]
fn unchanged_is_a_no_op() {
    let p = plan(
        &[local(1, "a.pdf", "h")],
        &[remote("id:1", "A.pdf", "r1", "h")],
        &[synced(9, 1, "a.pdf", "id:1", "r1", "h")],
        &opts(Direction::Both),
    );
    assert_eq!(run(p), vec![]);
}

#[test]
fn one_sided_changes() {
    let s = [synced(9, 1, "a.pdf", "id:1", "r1", "h")];
    let r = [remote("id:1", "a.pdf", "r1", "h")];
    // App edit → update by rev.
    let p = run(plan(
        &[local(1, "a.pdf", "h2")],
        &r,
        &s,
        &opts(Direction::Both),
    ));
    assert_eq!(
        p,
        vec![Action::Upload {
            attachment_id: 1,
            rel: rel("a.pdf"),
            content_hash: "h2".into(),
            mode: UploadMode::Update("r1".into())
        }]
    );
    // Same content in Dropbox under a newer revision: update that revision.
    let recreated = [remote("id:7", "a.pdf", "r9", "h")];
    let p = run(plan(
        &[local(1, "a.pdf", "h2")],
        &recreated,
        &s,
        &opts(Direction::Both),
    ));
    assert_eq!(
        p,
        vec![Action::Upload {
            attachment_id: 1,
            rel: rel("a.pdf"),
            content_hash: "h2".into(),
            mode: UploadMode::Update("r9".into())
        }]
    );
    // App delete → delete at rev.
    let p = run(plan(&[], &r, &s, &opts(Direction::Push)));
    assert_eq!(
        p,
        vec![Action::DeleteRemote {
            row_id: 9,
            rel: rel("a.pdf"),
            rev: "r1".into()
        }]
    );
    // Dropbox edit, two-way → import over the attachment.
    let edited = [remote("id:1", "a.pdf", "r2", "h3")];
    let p = run(plan(
        &[local(1, "a.pdf", "h")],
        &edited,
        &s,
        &opts(Direction::Both),
    ));
    assert_eq!(
        p,
        vec![Action::Import {
            remote: edited[0].clone(),
            attachment_id: Some(1)
        }]
    );
    // Dropbox delete, two-way → archive; push-only → bring it back.
    let p = run(plan(
        &[local(1, "a.pdf", "h")],
        &[],
        &s,
        &opts(Direction::Both),
    ));
    assert_eq!(
        p,
        vec![Action::Archive {
            row_id: 9,
            attachment_id: 1
        }]
    );
    let p = run(plan(
        &[local(1, "a.pdf", "h")],
        &[],
        &s,
        &opts(Direction::Push),
    ));
    assert!(matches!(
        &p[..],
        [Action::Upload {
            mode: UploadMode::Add,
            ..
        }]
    ));
    // New file in Dropbox: imported by pull, left alone by push.
    let new = [remote("id:2", "new.txt", "r", "hn")];
    assert!(matches!(
        &run(plan(&[], &new, &[], &opts(Direction::Pull)))[..],
        [Action::Import {
            attachment_id: None,
            ..
        }]
    ));
    assert_eq!(run(plan(&[], &new, &[], &opts(Direction::Push))), vec![]);
}

#[test]
fn conflicts_keep_both_versions() {
    let s = [synced(9, 1, "a.pdf", "id:1", "r1", "h")];
    let theirs = [remote("id:1", "a.pdf", "r2", "theirs")];
    let p = run(plan(
        &[local(1, "a.pdf", "ours")],
        &theirs,
        &s,
        &opts(Direction::Both),
    ));
    assert_eq!(
        p,
        vec![
            Action::PreserveRemote {
                from: rel("a.pdf"),
                to: rel("a (conflicted copy).pdf"),
                rev: "r2".into()
            },
            Action::Upload {
                attachment_id: 1,
                rel: rel("a.pdf"),
                content_hash: "ours".into(),
                mode: UploadMode::Add
            },
        ]
    );
    // Identical edits on both sides are not a conflict.
    let same = [remote("id:1", "a.pdf", "r2", "ours")];
    let p = run(plan(
        &[local(1, "a.pdf", "ours")],
        &same,
        &s,
        &opts(Direction::Both),
    ));
    assert_eq!(
        p,
        vec![Action::RecordSynced {
            attachment_id: 1,
            remote: same[0].clone()
        }]
    );
    // Two new files at one path, different content: keep theirs under a free name.
    let taken = [
        remote("id:2", "b.txt", "r", "x"),
        remote("id:3", "b (conflicted copy).txt", "r", "y"),
    ];
    let p = run(plan(
        &[local(5, "b.txt", "z")],
        &taken,
        &[],
        &opts(Direction::Both),
    ));
    assert!(
        matches!(&p[0], Action::PreserveRemote { to, .. } if to.display == "b (conflicted copy 2).txt"),
        "{p:?}"
    );
    // Names the binding does not track are avoided too.
    let mut o = opts(Direction::Push);
    o.occupied.insert("a (conflicted copy).pdf".into());
    let p = run(plan(&[local(1, "a.pdf", "ours")], &theirs, &s, &o));
    assert!(
        matches!(&p[0], Action::PreserveRemote { to, .. } if to.display == "a (conflicted copy 2).pdf"),
        "{p:?}"
    );
    // Pull-only conflict: Dropbox wins, the app's version is archived by the import.
    let p = run(plan(
        &[local(1, "a.pdf", "ours")],
        &theirs,
        &s,
        &opts(Direction::Pull),
    ));
    assert_eq!(
        p,
        vec![Action::Import {
            remote: theirs[0].clone(),
            attachment_id: Some(1)
        }]
    );
}

#[test]
fn delete_versus_edit_keeps_the_edit() {
    let s = [synced(9, 1, "a.pdf", "id:1", "r1", "h")];
    // Deleted in the app, edited in Dropbox: imported back (two-way) or left in Dropbox (push).
    let edited = [remote("id:1", "a.pdf", "r2", "h2")];
    assert!(matches!(
        &run(plan(&[], &edited, &s, &opts(Direction::Both)))[..],
        [Action::Import {
            attachment_id: None,
            ..
        }]
    ));
    assert_eq!(
        run(plan(&[], &edited, &s, &opts(Direction::Push))),
        vec![Action::Forget { row_id: 9 }]
    );
    // Edited in the app, deleted in Dropbox: the app's version is uploaded again.
    assert!(matches!(
        &run(plan(
            &[local(1, "a.pdf", "h2")],
            &[],
            &s,
            &opts(Direction::Both)
        ))[..],
        [Action::Upload {
            mode: UploadMode::Add,
            ..
        }]
    ));
}

#[test]
fn renames_in_dropbox_are_followed_or_undone() {
    let s = [synced(9, 1, "a.pdf", "id:1", "r1", "h")];
    let moved = [remote("id:1", "sub/b.pdf", "r1", "h")];
    // Two-way: the attachment follows, nothing is archived or imported.
    let p = run(plan(
        &[local(1, "a.pdf", "h")],
        &moved,
        &s,
        &opts(Direction::Both),
    ));
    assert_eq!(
        p,
        vec![Action::RenameLocal {
            attachment_id: 1,
            row_id: 9,
            to: rel("sub/b.pdf")
        }]
    );
    // Push-only: the file is moved back, no re-upload.
    let p = run(plan(
        &[local(1, "a.pdf", "h")],
        &moved,
        &s,
        &opts(Direction::Push),
    ));
    assert_eq!(
        p,
        vec![Action::MoveRemote {
            from: rel("sub/b.pdf"),
            to: rel("a.pdf")
        }]
    );
    // Renamed and edited in Dropbox: not a plain rename (delete + new file, nothing lost).
    let edited = [remote("id:1", "b.pdf", "r2", "h2")];
    let p = run(plan(
        &[local(1, "a.pdf", "h")],
        &edited,
        &s,
        &opts(Direction::Both),
    ));
    assert!(
        p.iter().any(|a| matches!(a, Action::Import { .. })),
        "{p:?}"
    );
    // Many renames are not deletions: the brake does not fire.
    let s: Vec<SyncedFile> = (0..6)
        .map(|i| synced(i, i, &format!("f{i}"), &format!("id:{i}"), "r", "h"))
        .collect();
    let l: Vec<LocalFile> = (0..6).map(|i| local(i, &format!("f{i}"), "h")).collect();
    let r: Vec<RemoteFile> = (0..6)
        .map(|i| remote(&format!("id:{i}"), &format!("renamed {i}"), "r", "h"))
        .collect();
    let p = run(plan(&l, &r, &s, &opts(Direction::Both)));
    assert_eq!(p.len(), 6);
    assert!(p.iter().all(|a| matches!(a, Action::RenameLocal { .. })));
}

#[test]
fn mass_deletion_brake() {
    let s: Vec<SyncedFile> = (0..10)
        .map(|i| synced(i, i, &format!("f{i}"), &format!("id:{i}"), "r", "h"))
        .collect();
    let r: Vec<RemoteFile> = (0..10)
        .map(|i| remote(&format!("id:{i}"), &format!("f{i}"), "r", "h"))
        .collect();
    let l: Vec<LocalFile> = (0..4).map(|i| local(i, &format!("f{i}"), "h")).collect();
    let p = plan(&l, &r, &s, &opts(Direction::Push));
    assert!(
        matches!(p, Plan::Paused { ref reason } if reason.contains("6 of 10")),
        "{p:?}"
    );
    let confirmed = PlanOptions {
        deletions_confirmed: true,
        ..opts(Direction::Push)
    };
    assert_eq!(run(plan(&l, &r, &s, &confirmed)).len(), 6);
    // Half or less goes through; so does removing one file of two (below the minimum).
    let l: Vec<LocalFile> = (0..5).map(|i| local(i, &format!("f{i}"), "h")).collect();
    assert_eq!(run(plan(&l, &r, &s, &opts(Direction::Push))).len(), 5);
    let p = plan(
        &[local(0, "f0", "h")],
        &r[..2],
        &s[..2],
        &opts(Direction::Push),
    );
    assert_eq!(run(p).len(), 1);
    // Deletions in Dropbox count too (archives).
    let all: Vec<LocalFile> = (0..10).map(|i| local(i, &format!("f{i}"), "h")).collect();
    let p = plan(&all, &r[..1], &s, &opts(Direction::Both));
    assert!(matches!(p, Plan::Paused { .. }));
}

/// Deleting a folder file by file is braked like deleting it at once: each pass sees one
/// deletion, but the window remembers the earlier ones.
#[test]
fn brake_counts_deletions_over_the_window() {
    // Six files were synced; three went in earlier passes, one more goes now.
    let s: Vec<SyncedFile> = (0..3)
        .map(|i| synced(i, i, &format!("f{i}"), &format!("id:{i}"), "r", "h"))
        .collect();
    let l: Vec<LocalFile> = (0..3).map(|i| local(i, &format!("f{i}"), "h")).collect();
    let r: Vec<RemoteFile> = (1..3)
        .map(|i| remote(&format!("id:{i}"), &format!("f{i}"), "r", "h"))
        .collect();
    let with_recent = |recent| PlanOptions {
        recent_deletions: recent,
        ..opts(Direction::Both)
    };
    // Alone, one archive of three files is fine.
    assert_eq!(run(plan(&l, &r, &s, &with_recent(0))).len(), 1);
    // With three deletions earlier in the window it is the fourth of six: paused.
    let p = plan(&l, &r, &s, &with_recent(3));
    assert!(
        matches!(p, Plan::Paused { ref reason } if reason.contains("4 of 6")),
        "{p:?}"
    );
    // The connection-wide brake: many bindings each losing one file add up.
    let one: Vec<SyncedFile> = vec![synced(0, 0, "f0", "id:0", "r", "h")];
    let connection = |recent| PlanOptions {
        connection_brake: Some(ConnectionBrake {
            recent,
            files: 10,
            share: 0.5,
            min: 20,
        }),
        ..opts(Direction::Both)
    };
    let local_one = [local(0, "f0", "h")];
    assert_eq!(run(plan(&local_one, &[], &one, &connection(5))).len(), 1);
    let p = plan(&local_one, &[], &one, &connection(25));
    assert!(
        matches!(p, Plan::Paused { ref reason } if reason.contains("connection")),
        "{p:?}"
    );
    // An admin's confirmation lets it through.
    let confirmed = PlanOptions {
        deletions_confirmed: true,
        ..connection(25)
    };
    assert_eq!(run(plan(&local_one, &[], &one, &confirmed)).len(), 1);
}

#[test]
fn conflicted_copy_names() {
    let none = BTreeSet::new();
    assert_eq!(
        conflicted_copy(&rel("dir/Report.PDF"), "x", &none).display,
        "dir/Report (x).PDF"
    );
    assert_eq!(
        conflicted_copy(&rel("noext"), "x", &none).display,
        "noext (x)"
    );
    assert_eq!(
        conflicted_copy(&rel(".hidden"), "x", &none).display,
        ".hidden (x)"
    );
}

// ---- Model-based property test: apply plans to a simulated world until quiet. ----

#[derive(Debug, Clone, Default)]
struct World {
    local: BTreeMap<String, (i64, String)>, // rel lower -> (attachment, hash)
    remote: BTreeMap<String, (String, String, String)>, // rel lower -> (id, rev, hash)
    synced: BTreeMap<String, SyncedFile>,
    archive: Vec<String>,
    next: i64,
}

impl World {
    fn trees(&self) -> (Vec<LocalFile>, Vec<RemoteFile>, Vec<SyncedFile>) {
        (
            self.local
                .iter()
                .map(|(k, (a, h))| local(*a, k, h))
                .collect(),
            self.remote
                .iter()
                .map(|(k, (id, rev, h))| remote(id, k, rev, h))
                .collect(),
            self.synced.values().cloned().collect(),
        )
    }

    fn fresh(&mut self) -> i64 {
        self.next += 1;
        self.next
    }

    fn apply(&mut self, action: &Action) {
        match action {
            Action::PreserveRemote { from, to, rev } => {
                let f = self
                    .remote
                    .remove(&from.lower)
                    .expect("preserve: source exists");
                assert_eq!(&f.1, rev, "preserve at the planned rev");
                assert!(!self.remote.contains_key(&to.lower), "preserve target free");
                self.remote.insert(to.lower.clone(), f);
            }
            Action::Upload {
                attachment_id,
                rel,
                content_hash,
                mode,
            } => {
                match (mode, self.remote.get(&rel.lower)) {
                    (UploadMode::Add, Some((_, _, h))) => {
                        assert_eq!(h, content_hash, "add onto different content")
                    }
                    (UploadMode::Update(rev), Some((_, r, _))) => {
                        assert_eq!(r, rev, "update at a stale rev")
                    }
                    _ => {}
                }
                let n = self.fresh();
                let id = self
                    .remote
                    .get(&rel.lower)
                    .map(|f| f.0.clone())
                    .unwrap_or(format!("id:{n}"));
                let rev = format!("rev{n}");
                self.remote.insert(
                    rel.lower.clone(),
                    (id.clone(), rev.clone(), content_hash.clone()),
                );
                self.synced.insert(
                    rel.lower.clone(),
                    SyncedFile {
                        row_id: n,
                        attachment_id: Some(*attachment_id),
                        rel: rel.clone(),
                        dropbox_id: id,
                        rev,
                        content_hash: content_hash.clone(),
                    },
                );
            }
            Action::DeleteRemote { rel, rev, .. } => {
                let f = self.remote.remove(&rel.lower).expect("delete: exists");
                assert_eq!(&f.1, rev, "delete at a stale rev");
                self.synced.remove(&rel.lower);
            }
            Action::Import {
                remote: rf,
                attachment_id,
            } => {
                let att = match attachment_id {
                    Some(a) => {
                        let old = self
                            .local
                            .iter()
                            .find(|(_, v)| v.0 == *a)
                            .map(|(k, v)| (k.clone(), v.1.clone()));
                        if let Some((k, h)) = old {
                            self.archive.push(h);
                            self.local.remove(&k);
                        }
                        *a
                    }
                    None => self.fresh(),
                };
                self.local
                    .insert(rf.rel.lower.clone(), (att, rf.content_hash.clone()));
                let n = self.fresh();
                self.synced.insert(
                    rf.rel.lower.clone(),
                    SyncedFile {
                        row_id: n,
                        attachment_id: Some(att),
                        rel: rf.rel.clone(),
                        dropbox_id: rf.id.clone(),
                        rev: rf.rev.clone(),
                        content_hash: rf.content_hash.clone(),
                    },
                );
            }
            Action::Archive { attachment_id, .. } => {
                let k = self
                    .local
                    .iter()
                    .find(|(_, v)| v.0 == *attachment_id)
                    .map(|(k, _)| k.clone())
                    .expect("archive: exists");
                let (_, h) = self.local.remove(&k).unwrap();
                self.archive.push(h);
                self.synced.remove(&k);
            }
            Action::RecordSynced {
                attachment_id,
                remote: rf,
            } => {
                let n = self.fresh();
                self.synced.insert(
                    rf.rel.lower.clone(),
                    SyncedFile {
                        row_id: n,
                        attachment_id: Some(*attachment_id),
                        rel: rf.rel.clone(),
                        dropbox_id: rf.id.clone(),
                        rev: rf.rev.clone(),
                        content_hash: rf.content_hash.clone(),
                    },
                );
            }
            Action::Forget { row_id } => self.synced.retain(|_, s| s.row_id != *row_id),
            Action::RenameLocal {
                attachment_id,
                row_id,
                to,
            } => {
                let k = self
                    .local
                    .iter()
                    .find(|(_, v)| v.0 == *attachment_id)
                    .map(|(k, _)| k.clone())
                    .expect("rename: exists");
                let v = self.local.remove(&k).unwrap();
                self.local.insert(to.lower.clone(), v);
                let old = self
                    .synced
                    .iter()
                    .find(|(_, s)| s.row_id == *row_id)
                    .map(|(k, _)| k.clone())
                    .expect("rename: synced");
                let mut s = self.synced.remove(&old).unwrap();
                s.rel = to.clone();
                self.synced.insert(to.lower.clone(), s);
            }
            Action::MoveRemote { from, to } => {
                let f = self
                    .remote
                    .remove(&from.lower)
                    .expect("move: source exists");
                assert!(!self.remote.contains_key(&to.lower), "move target free");
                self.remote.insert(to.lower.clone(), f);
            }
        }
    }

    fn versions(&self) -> BTreeSet<String> {
        let mut all: BTreeSet<String> = self.local.values().map(|v| v.1.clone()).collect();
        all.extend(self.remote.values().map(|v| v.2.clone()));
        all.extend(self.archive.iter().cloned());
        all
    }
}

/// Per file: 0 = unchanged, 1 = edited, 2 = deleted (for files that existed) / created.
fn world_strategy() -> impl Strategy<Value = (World, Direction)> {
    (
        proptest::collection::vec((0u8..3, 0u8..3, 0u8..4), 0..8),
        prop_oneof![
            Just(Direction::Push),
            Just(Direction::Pull),
            Just(Direction::Both)
        ],
    )
        .prop_map(|(files, dir)| {
            let mut w = World::default();
            for (i, (local_op, remote_op, kind)) in files.into_iter().enumerate() {
                let key = format!("f{i}");
                let base = format!("base{i}");
                let n = w.fresh();
                if kind > 0 {
                    // Existed and was synced.
                    w.synced.insert(
                        key.clone(),
                        synced(n, n, &key, &format!("id:{n}"), "r0", &base),
                    );
                    match local_op {
                        0 => {
                            w.local.insert(key.clone(), (n, base.clone()));
                        }
                        1 => {
                            w.local.insert(key.clone(), (n, format!("app{i}")));
                        }
                        _ => {}
                    }
                    match remote_op {
                        0 => {
                            w.remote.insert(
                                key.clone(),
                                (format!("id:{n}"), "r0".into(), base.clone()),
                            );
                        }
                        1 => {
                            w.remote.insert(
                                key.clone(),
                                (
                                    format!("id:{n}"),
                                    "r1".into(),
                                    if kind == 3 {
                                        format!("app{i}")
                                    } else {
                                        format!("dbx{i}")
                                    },
                                ),
                            );
                        }
                        _ => {}
                    }
                } else {
                    // New on one or both sides.
                    if local_op > 0 {
                        w.local.insert(key.clone(), (n, format!("app{i}")));
                    }
                    if remote_op > 0 {
                        w.remote.insert(
                            key.clone(),
                            (
                                format!("id:{n}"),
                                "r0".into(),
                                if local_op == 2 {
                                    format!("app{i}")
                                } else {
                                    format!("dbx{i}")
                                },
                            ),
                        );
                    }
                }
            }
            (w, dir)
        })
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=50000 for a long run.
    /// Whatever both sides did, repeated passes reach a state with nothing to do; no version
    /// anyone wrote is lost; two-way bindings end identical; push bindings hold every app file.
    #[test]
    fn converges_without_losing_versions((mut world, dir) in world_strategy()) {
        let before = world.versions();
        let options = PlanOptions { direction: dir, deletions_confirmed: true, ..PlanOptions::default() };
        let mut quiet = false;
        for _ in 0..4 {
            let (l, r, s) = world.trees();
            let actions = run(plan(&l, &r, &s, &options));
            if actions.is_empty() { quiet = true; break; }
            for a in &actions { world.apply(a); }
        }
        prop_assert!(quiet, "no quiescence: {:?}", world);
        let after = world.versions();
        // Versions deleted on purpose by the app (DeleteRemote of unchanged content) were
        // synced copies, never unique; everything else must survive.
        for v in before.iter().filter(|v| v.starts_with("app") || v.starts_with("dbx")) {
            let deleted_on_purpose = dir == Direction::Push && !world.local.values().any(|x| &x.1 == v);
            prop_assert!(after.contains(v) || deleted_on_purpose, "version {v} lost: {world:?}");
        }
        match dir {
            Direction::Both => {
                let l: BTreeMap<_, _> = world.local.iter().map(|(k, v)| (k.clone(), v.1.clone())).collect();
                let r: BTreeMap<_, _> = world.remote.iter().map(|(k, v)| (k.clone(), v.2.clone())).collect();
                prop_assert_eq!(l, r);
            }
            Direction::Push => {
                for (k, (_, h)) in &world.local {
                    prop_assert_eq!(world.remote.get(k).map(|f| &f.2), Some(h));
                }
            }
            Direction::Pull => {
                // Every Dropbox file is tracked; app-side edits stay in the app.
                for k in world.remote.keys() {
                    prop_assert!(world.synced.contains_key(k), "untracked {k}: {world:?}");
                }
            }
        }
        // The synced tree matches both sides wherever it has an entry.
        for (k, s) in &world.synced {
            if dir == Direction::Both {
                prop_assert_eq!(world.remote.get(k).map(|f| &f.2), Some(&s.content_hash));
                prop_assert_eq!(world.local.get(k).map(|f| &f.1), Some(&s.content_hash));
            }
        }
    }
}
