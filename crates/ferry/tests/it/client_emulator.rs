//! Dropbox client against the emulator (see support::Emu).

use crate::support::Emu;
use bytes::Bytes;
use ferry_core::content_hash::content_hash;
use ferry_core::secret::Secret;
use ferry_dropbox::{DropboxClient, DropboxError, Endpoints, Entry, FileInfo, WriteMode};

/// Uploads `data` to `path` with `mode`, failing the test on error.
async fn put(client: &DropboxClient, path: &str, data: &[u8], mode: &WriteMode) -> FileInfo {
    client
        .upload(path, Bytes::copy_from_slice(data), mode)
        .await
        .unwrap_or_else(|e| panic!("upload of {path} failed: {e}"))
}

/// The file behind an entry, failing the test if it is anything else.
fn file(entry: Entry) -> FileInfo {
    match entry {
        Entry::File(f) => f,
        other => panic!("expected a file, got {other:?}"),
    }
}

/// A compact, comparable view of a listing entry: kind and display path.
fn summary(entry: &Entry) -> (&'static str, String) {
    let kind = match entry {
        Entry::File(_) => "file",
        Entry::Folder(_) => "folder",
        Entry::Deleted { .. } => "deleted",
    };
    (kind, entry.path_display().to_owned())
}

fn summaries(entries: &[Entry]) -> Vec<(&'static str, String)> {
    entries.iter().map(summary).collect()
}

fn s(kind: &'static str, path: &str) -> (&'static str, String) {
    (kind, path.to_owned())
}

/// Content that is not a repetition of a short pattern (so offset mistakes show).
fn varied(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i / 7) ^ (i >> 9)) as u8)
        .collect()
}

/// A small upload returns complete metadata that download and get_metadata agree with.
#[tokio::test]
async fn upload_download_metadata_roundtrip() {
    let emu = Emu::start().await;
    let client = emu.client();
    let data = b"Hello, Ferry!\nsecond line\n";

    let info = put(&client, "/Docs/Report Q1.TXT", data, &WriteMode::Add).await;
    assert_eq!(info.name, "Report Q1.TXT");
    assert_eq!(info.path_display, "/Docs/Report Q1.TXT");
    assert_eq!(info.path_lower, "/docs/report q1.txt");
    assert_eq!(info.size, data.len() as u64);
    assert_eq!(
        info.content_hash.as_deref(),
        Some(content_hash(data).as_str())
    );
    assert!(
        info.id.starts_with("id:") && info.id.len() > 3,
        "id {:?}",
        info.id
    );
    assert!(
        info.rev.len() >= 9
            && info
                .rev
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "rev must be ≥ 9 lowercase hex digits, got {:?}",
        info.rev
    );
    assert_eq!(emu.emulator.route_calls("files/upload"), 1);
    assert_eq!(emu.emulator.route_calls("files/upload_session/start"), 0);

    let (down_info, body) = client
        .download("/Docs/Report Q1.TXT")
        .await
        .expect("download");
    assert_eq!(&body[..], &data[..]);
    assert_eq!(down_info, info);

    // Lookups are case-insensitive and return the stored casing.
    let meta = file(
        client
            .metadata("/docs/REPORT q1.txt")
            .await
            .expect("metadata"),
    );
    assert_eq!(meta.id, info.id);
    assert_eq!(meta.rev, info.rev);
    assert_eq!(meta.path_display, "/Docs/Report Q1.TXT");

    // The implicitly created parent is a folder with the casing it was first written with.
    match client.metadata("/docs").await.expect("parent metadata") {
        Entry::Folder(f) => {
            assert_eq!(f.path_display, "/Docs");
            assert_eq!(f.path_lower, "/docs");
        }
        other => panic!("expected the parent folder, got {other:?}"),
    }

    // An empty file: no blocks, so its content hash is SHA-256 of nothing.
    let empty = put(&client, "/Docs/empty", b"", &WriteMode::Add).await;
    assert_eq!(empty.size, 0);
    assert_eq!(
        empty.content_hash.as_deref(),
        Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    let (_, body) = client
        .download("/Docs/empty")
        .await
        .expect("download empty");
    assert!(body.is_empty());
}

/// A file over the chunk size goes through start + several append_v2 + finish, intact.
#[tokio::test]
async fn multi_chunk_upload_session() {
    let emu = Emu::start().await;
    let client = emu.client().with_chunk_size(1024);
    let data = varied(5000);

    let info = put(&client, "/Big/blob.bin", &data, &WriteMode::Add).await;
    assert_eq!(info.size, 5000);
    assert_eq!(
        info.content_hash.as_deref(),
        Some(content_hash(&data).as_str())
    );

    // 5000 bytes in 1024-byte chunks: 1024 with start, three appends, the last 904 with finish.
    assert_eq!(emu.emulator.route_calls("files/upload_session/start"), 1);
    let appends = emu.emulator.route_calls("files/upload_session/append_v2");
    assert!(appends >= 3, "expected ≥ 3 appends, got {appends}");
    assert_eq!(appends, 3, "exactly three middle chunks");
    assert_eq!(emu.emulator.route_calls("files/upload_session/finish"), 1);
    assert_eq!(emu.emulator.route_calls("files/upload"), 0);

    let (down_info, body) = client.download("/Big/blob.bin").await.expect("download");
    assert_eq!(body.len(), data.len());
    assert!(body[..] == data[..], "downloaded content differs");
    assert_eq!(down_info.rev, info.rev);
    assert_eq!(content_hash(&body), content_hash(&data));
}

/// Many small files: two requests stage them all (start_batch + append_batch), one commits
/// them; a file larger than a chunk goes through its own session, read chunk by chunk.
#[tokio::test]
async fn small_files_staged_together_large_ones_chunked() {
    let emu = Emu::start().await;
    let client = emu.client().with_chunk_size(1024);
    let contents: Vec<Bytes> = (0..5).map(|i| Bytes::from(varied(100 + i * 200))).collect();
    let staged: Vec<_> = client
        .stage_many(&contents)
        .await
        .into_iter()
        .map(|s| s.expect("staged"))
        .collect();
    assert_eq!(
        emu.emulator.route_calls("files/upload_session/start_batch"),
        1
    );
    assert_eq!(
        emu.emulator
            .route_calls("files/upload_session/append_batch"),
        1
    );
    let big = Bytes::from(varied(3000));
    let large = client.stage(big.clone()).await.expect("staged");
    assert_eq!(
        emu.emulator.route_calls("files/upload_session/append_v2"),
        2
    );

    let mut entries: Vec<_> = staged
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, format!("/many/f{i}.bin"), WriteMode::Add))
        .collect();
    entries.push((large, "/many/big.bin".to_owned(), WriteMode::Add));
    let committed = client.finish_batch(&entries).await.expect("one commit");
    for (result, (_, path, _)) in committed.iter().zip(&entries) {
        let info = result.as_ref().unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(&info.path_display, path);
    }
    for (i, content) in contents.iter().enumerate() {
        let (_, body) = client.download(&format!("/many/f{i}.bin")).await.unwrap();
        assert!(body == *content, "file {i} differs");
    }
    let (_, body) = client.download("/many/big.bin").await.unwrap();
    assert!(body == big, "the large file differs");
    // A content larger than a chunk is refused by stage_many, not sent.
    let refused = client.stage_many(&[big]).await;
    // The group's error reaches each entry as it is (typed, as retryable as it was).
    assert!(matches!(refused[0], Err(DropboxError::Config(_))));
    assert_eq!(
        emu.emulator.route_calls("files/upload_session/start_batch"),
        1
    );
}

/// A file exactly the chunk size still goes in one `files/upload`; one byte more uses a session.
#[tokio::test]
async fn chunk_size_threshold() {
    let emu = Emu::start().await;
    let client = emu.client().with_chunk_size(1024);

    put(&client, "/t/exact.bin", &varied(1024), &WriteMode::Add).await;
    assert_eq!(emu.emulator.route_calls("files/upload"), 1);
    assert_eq!(emu.emulator.route_calls("files/upload_session/start"), 0);

    let data = varied(1025);
    let info = put(&client, "/t/plus-one.bin", &data, &WriteMode::Add).await;
    assert_eq!(emu.emulator.route_calls("files/upload"), 1);
    assert_eq!(emu.emulator.route_calls("files/upload_session/start"), 1);
    assert_eq!(
        emu.emulator.route_calls("files/upload_session/append_v2"),
        0
    );
    assert_eq!(emu.emulator.route_calls("files/upload_session/finish"), 1);
    assert_eq!(info.size, 1025);
    let (_, body) = client.download("/t/plus-one.bin").await.expect("download");
    assert!(body[..] == data[..], "downloaded content differs");
}

/// continue reports exactly the additions, modifications, deletions and moves since list_all.
#[tokio::test]
async fn list_and_continue_report_exact_changes() {
    let emu = Emu::start().await;
    let client = emu.client();
    let a = put(&client, "/List/a.txt", b"a1", &WriteMode::Add).await;
    put(&client, "/List/b.txt", b"b1", &WriteMode::Add).await;
    let c = put(&client, "/List/c.txt", b"c1", &WriteMode::Add).await;
    put(&client, "/List/d.txt", b"d1", &WriteMode::Add).await;
    put(&client, "/Elsewhere/x.txt", b"x1", &WriteMode::Add).await;

    let (entries, cursor) = client.list_all("/List", true).await.expect("list_all");
    // A recursive listing of a non-root folder includes the folder itself, parents first.
    assert_eq!(
        summaries(&entries),
        vec![
            s("folder", "/List"),
            s("file", "/List/a.txt"),
            s("file", "/List/b.txt"),
            s("file", "/List/c.txt"),
            s("file", "/List/d.txt"),
        ]
    );
    let listed_a = file(entries[1].clone());
    assert_eq!(listed_a, a);

    // Nothing happened yet.
    let page = client
        .list_folder_continue(&cursor)
        .await
        .expect("continue");
    assert!(
        page.entries.is_empty(),
        "no changes yet: {:?}",
        page.entries
    );
    assert!(!page.has_more);

    let e = put(&client, "/List/e.txt", b"e1", &WriteMode::Add).await;
    let a2 = put(&client, "/List/a.txt", b"a2", &WriteMode::Overwrite).await;
    assert_ne!(a2.rev, a.rev, "new content, new rev");
    assert_eq!(a2.id, a.id, "overwrite keeps the id");
    client.delete("/List/b.txt", None).await.expect("delete b");
    let moved = file(
        client
            .move_entry("/List/c.txt", "/List/moved.txt")
            .await
            .expect("move c"),
    );
    // Outside the cursor's scope: must not show up.
    put(&client, "/Elsewhere/y.txt", b"y1", &WriteMode::Add).await;

    let page = client
        .list_folder_continue(&cursor)
        .await
        .expect("continue after changes");
    assert!(!page.has_more);
    assert_eq!(
        summaries(&page.entries),
        vec![
            s("file", "/List/e.txt"),
            s("file", "/List/a.txt"),
            s("deleted", "/List/b.txt"),
            s("deleted", "/List/c.txt"),
            s("file", "/List/moved.txt"),
        ]
    );
    assert_eq!(file(page.entries[0].clone()), e);
    assert_eq!(file(page.entries[1].clone()), a2);
    assert_eq!(file(page.entries[4].clone()), moved);
    assert_eq!(moved.id, c.id, "the moved-to entry carries the original id");

    // The returned cursor is up to date.
    let again = client
        .list_folder_continue(&page.cursor)
        .await
        .expect("continue with the new cursor");
    assert!(again.entries.is_empty(), "{:?}", again.entries);

    // A latest cursor sees nothing until the next change, then exactly that change.
    let latest = client
        .latest_cursor("/List", true)
        .await
        .expect("latest cursor");
    let page = client
        .list_folder_continue(&latest)
        .await
        .expect("continue latest");
    assert!(page.entries.is_empty(), "{:?}", page.entries);
    let f = put(&client, "/List/f.txt", b"f1", &WriteMode::Add).await;
    let page = client
        .list_folder_continue(&latest)
        .await
        .expect("continue latest after a change");
    assert_eq!(summaries(&page.entries), vec![s("file", "/List/f.txt")]);
    assert_eq!(file(page.entries[0].clone()), f);
}

/// Cursors respect their scope, and a folder delete reports every path below it.
#[tokio::test]
async fn continue_scope_and_recursive_folder_delete() {
    let emu = Emu::start().await;
    let client = emu.client();
    put(&client, "/Tree/top.txt", b"t", &WriteMode::Add).await;
    put(&client, "/Tree/Sub/deep.txt", b"d", &WriteMode::Add).await;

    let (flat, flat_cursor) = client.list_all("/Tree", false).await.expect("flat list");
    assert_eq!(
        summaries(&flat),
        vec![s("folder", "/Tree/Sub"), s("file", "/Tree/top.txt")]
    );
    let (_, deep_cursor) = client.list_all("/Tree", true).await.expect("deep list");

    put(&client, "/Tree/Sub/new.txt", b"n", &WriteMode::Add).await;
    let page = client
        .list_folder_continue(&flat_cursor)
        .await
        .expect("flat continue");
    assert!(
        page.entries.is_empty(),
        "a grandchild is outside a non-recursive scope: {:?}",
        page.entries
    );

    client
        .delete("/Tree/Sub", None)
        .await
        .expect("delete folder");
    let page = client
        .list_folder_continue(&deep_cursor)
        .await
        .expect("deep continue");
    let mut got = summaries(&page.entries);
    got.sort();
    assert_eq!(
        got,
        vec![
            s("deleted", "/Tree/Sub"),
            s("deleted", "/Tree/Sub/deep.txt"),
            s("deleted", "/Tree/Sub/new.txt"),
        ]
    );
    let page = client
        .list_folder_continue(&flat_cursor)
        .await
        .expect("flat continue after delete");
    assert_eq!(summaries(&page.entries), vec![s("deleted", "/Tree/Sub")]);
}

/// A folder move reaches a cursor as deletes (children first) then adds, ids kept.
#[tokio::test]
async fn folder_move_is_delete_then_add_with_same_ids() {
    let emu = Emu::start().await;
    let client = emu.client();
    let x = put(&client, "/A/x.txt", b"x", &WriteMode::Add).await;
    let y = put(&client, "/A/S/y.txt", b"y", &WriteMode::Add).await;
    let (before, cursor) = client.list_all("", true).await.expect("list");
    let id_of = |entries: &[Entry], path: &str| -> String {
        match entries.iter().find(|e| e.path_display() == path) {
            Some(Entry::Folder(f)) => f.id.clone(),
            Some(Entry::File(f)) => f.id.clone(),
            other => panic!("no live entry at {path}: {other:?}"),
        }
    };

    client.move_entry("/A", "/B").await.expect("move folder");
    let page = client
        .list_folder_continue(&cursor)
        .await
        .expect("continue");
    assert_eq!(
        summaries(&page.entries),
        vec![
            s("deleted", "/A/x.txt"),
            s("deleted", "/A/S/y.txt"),
            s("deleted", "/A/S"),
            s("deleted", "/A"),
            s("folder", "/B"),
            s("folder", "/B/S"),
            s("file", "/B/S/y.txt"),
            s("file", "/B/x.txt"),
        ]
    );
    assert_eq!(id_of(&page.entries, "/B"), id_of(&before, "/A"));
    assert_eq!(id_of(&page.entries, "/B/S"), id_of(&before, "/A/S"));
    assert_eq!(id_of(&page.entries, "/B/x.txt"), x.id);
    assert_eq!(id_of(&page.entries, "/B/S/y.txt"), y.id);
}

/// A cursor that is garbage or belongs to another emulator's data is `Reset` (list again).
#[tokio::test]
async fn foreign_or_garbage_cursor_is_reset() {
    let emu = Emu::start().await;
    let other = Emu::start().await;
    put(&other.client(), "/o.txt", b"o", &WriteMode::Add).await;
    let (_, foreign) = other.client().list_all("", true).await.expect("list other");
    let (_, own) = emu.client().list_all("", true).await.expect("list own");

    let client = emu.client();
    for cursor in ["garbage", foreign.as_str()] {
        let err = client
            .list_folder_continue(cursor)
            .await
            .expect_err("cursor must be refused");
        assert!(
            matches!(err, DropboxError::Reset),
            "cursor {cursor:?}: {err:?}"
        );
    }
    // An empty cursor violates the Stone type (min_length 1): a plain 400.
    let err = client
        .list_folder_continue("")
        .await
        .expect_err("empty cursor");
    assert!(matches!(err, DropboxError::BadRequest(_)), "{err:?}");
    let page = client.list_folder_continue(&own).await.expect("own cursor");
    assert!(page.entries.is_empty());
}

/// Deleting a file or a folder (recursively) makes it and its contents unreachable.
#[tokio::test]
async fn delete_file_and_folder_recursively() {
    let emu = Emu::start().await;
    let client = emu.client();
    let lone = put(&client, "/Del/lone.txt", b"lone", &WriteMode::Add).await;
    put(&client, "/Del/Dir/one.txt", b"1", &WriteMode::Add).await;
    put(&client, "/Del/Dir/Inner/two.txt", b"2", &WriteMode::Add).await;
    put(&client, "/Del/keep.txt", b"keep", &WriteMode::Add).await;

    let deleted = client
        .delete("/Del/lone.txt", None)
        .await
        .expect("delete file");
    // The result is the metadata as it was before deletion.
    assert_eq!(file(deleted), lone);
    assert!(matches!(
        client.download("/Del/lone.txt").await,
        Err(DropboxError::NotFound(_))
    ));

    match client
        .delete("/Del/Dir", None)
        .await
        .expect("delete folder")
    {
        Entry::Folder(f) => assert_eq!(f.path_display, "/Del/Dir"),
        other => panic!("expected folder metadata, got {other:?}"),
    }
    for gone in [
        "/Del/Dir",
        "/Del/Dir/one.txt",
        "/Del/Dir/Inner",
        "/Del/Dir/Inner/two.txt",
    ] {
        assert!(
            matches!(client.metadata(gone).await, Err(DropboxError::NotFound(_))),
            "{gone} should be gone"
        );
    }
    let (entries, _) = client.list_all("/Del", true).await.expect("list");
    assert_eq!(
        summaries(&entries),
        vec![s("folder", "/Del"), s("file", "/Del/keep.txt")]
    );
    // Deleting again: nothing there.
    assert!(matches!(
        client.delete("/Del/Dir", None).await,
        Err(DropboxError::NotFound(_))
    ));
}

/// Moves keep the id (and the rev); a case-only rename changes the displayed casing.
#[tokio::test]
async fn move_keeps_id_and_case_only_rename() {
    let emu = Emu::start().await;
    let client = emu.client();
    let original = put(&client, "/Mv/old name.txt", b"moving", &WriteMode::Add).await;

    let moved = file(
        client
            .move_entry("/Mv/old name.txt", "/Mv/Target/new name.txt")
            .await
            .expect("move"),
    );
    assert_eq!(moved.id, original.id);
    assert_eq!(
        moved.rev, original.rev,
        "the emulator keeps the rev on moves"
    );
    assert_eq!(moved.path_display, "/Mv/Target/new name.txt");
    assert!(matches!(
        client.metadata("/Mv/old name.txt").await,
        Err(DropboxError::NotFound(_))
    ));
    let (info, body) = client
        .download("/Mv/Target/new name.txt")
        .await
        .expect("download moved");
    assert_eq!(&body[..], b"moving");
    assert_eq!(info.id, original.id);

    // Case-only rename of the file.
    let renamed = file(
        client
            .move_entry("/Mv/Target/new name.txt", "/Mv/Target/New Name.TXT")
            .await
            .expect("case-only rename"),
    );
    assert_eq!(renamed.id, original.id);
    assert_eq!(renamed.name, "New Name.TXT");
    assert_eq!(renamed.path_display, "/Mv/Target/New Name.TXT");
    assert_eq!(renamed.path_lower, "/mv/target/new name.txt");
    let meta = file(
        client
            .metadata("/mv/target/new name.txt")
            .await
            .expect("metadata after rename"),
    );
    assert_eq!(meta.path_display, "/Mv/Target/New Name.TXT");
    assert_eq!(meta.id, original.id);

    // Case-only rename of a folder changes the casing of everything below it.
    let (_, cursor) = client.list_all("/Mv", true).await.expect("list");
    client
        .move_entry("/Mv/Target", "/Mv/TARGET")
        .await
        .expect("folder case-only rename");
    let meta = file(
        client
            .metadata("/Mv/target/new name.txt")
            .await
            .expect("metadata after folder rename"),
    );
    assert_eq!(meta.path_display, "/Mv/TARGET/New Name.TXT");
    assert_eq!(meta.id, original.id);
    // The emulator reports case-only renames in the change feed (Dropbox does not).
    let page = client
        .list_folder_continue(&cursor)
        .await
        .expect("continue");
    assert_eq!(
        summaries(&page.entries),
        vec![
            s("folder", "/Mv/TARGET"),
            s("file", "/Mv/TARGET/New Name.TXT")
        ]
    );

    // Moving onto an existing file is a conflict; the source stays.
    put(&client, "/Mv/other.txt", b"other", &WriteMode::Add).await;
    assert!(matches!(
        client
            .move_entry("/Mv/other.txt", "/Mv/TARGET/new name.txt")
            .await,
        Err(DropboxError::Conflict(_))
    ));
    let (_, body) = client.download("/Mv/other.txt").await.expect("source kept");
    assert_eq!(&body[..], b"other");
}

/// Reads of a missing path are NotFound.
#[tokio::test]
async fn missing_path_is_not_found() {
    let emu = Emu::start().await;
    let client = emu.client();
    put(&client, "/Here/file.txt", b"x", &WriteMode::Add).await;

    let err = client
        .download("/Here/nope.txt")
        .await
        .expect_err("download");
    assert!(matches!(err, DropboxError::NotFound(_)), "{err:?}");
    let err = client
        .metadata("/Here/nope.txt")
        .await
        .expect_err("metadata");
    assert!(matches!(err, DropboxError::NotFound(_)), "{err:?}");
    let err = client.metadata("/Nowhere").await.expect_err("metadata");
    assert!(matches!(err, DropboxError::NotFound(_)), "{err:?}");
    let err = client
        .list_folder("/Nowhere", false)
        .await
        .expect_err("list");
    assert!(matches!(err, DropboxError::NotFound(_)), "{err:?}");
    let err = client
        .move_entry("/Here/nope.txt", "/Here/else.txt")
        .await
        .expect_err("move");
    assert!(matches!(err, DropboxError::NotFound(_)), "{err:?}");
}

/// `Add` conflicts on different content only; identical content returns the same rev.
#[tokio::test]
async fn add_conflicts_only_on_different_content() {
    let emu = Emu::start().await;
    let client = emu.client();
    let first = put(&client, "/Add/f.txt", b"original", &WriteMode::Add).await;

    let err = client
        .upload(
            "/Add/f.txt",
            Bytes::from_static(b"different"),
            &WriteMode::Add,
        )
        .await
        .expect_err("different content must conflict");
    assert!(matches!(err, DropboxError::Conflict(_)), "{err:?}");
    // Also through an upload session.
    let err = emu
        .client()
        .with_chunk_size(4)
        .upload(
            "/Add/f.txt",
            Bytes::from_static(b"different"),
            &WriteMode::Add,
        )
        .await
        .expect_err("different content must conflict (session)");
    assert!(matches!(err, DropboxError::Conflict(_)), "{err:?}");
    // Case-insensitive: the same file under another casing.
    let err = client
        .upload(
            "/ADD/F.TXT",
            Bytes::from_static(b"different"),
            &WriteMode::Add,
        )
        .await
        .expect_err("different content must conflict (other casing)");
    assert!(matches!(err, DropboxError::Conflict(_)), "{err:?}");

    let same = put(&client, "/Add/f.txt", b"original", &WriteMode::Add).await;
    assert_eq!(same.rev, first.rev, "identical content writes nothing");
    assert_eq!(same.id, first.id);

    let (info, body) = client.download("/Add/f.txt").await.expect("download");
    assert_eq!(&body[..], b"original");
    assert_eq!(info.rev, first.rev);

    // A folder in the way is a conflict for any mode.
    client.create_folder("/Add/dir").await.expect("folder");
    let err = client
        .upload("/Add/dir", Bytes::from_static(b"x"), &WriteMode::Overwrite)
        .await
        .expect_err("folder in the way");
    assert!(matches!(err, DropboxError::Conflict(_)), "{err:?}");
}

/// `Update(rev)` replaces only that revision: after someone else changed the file it conflicts.
#[tokio::test]
async fn update_with_stale_rev_conflicts() {
    let emu = Emu::start().await;
    let ours = emu.client();
    let theirs = emu.client();
    let v1 = put(&ours, "/Upd/f.txt", b"v1", &WriteMode::Add).await;

    let v2 = put(
        &ours,
        "/Upd/f.txt",
        b"v2",
        &WriteMode::Update(v1.rev.clone()),
    )
    .await;
    assert_ne!(v2.rev, v1.rev);
    assert_eq!(v2.id, v1.id);

    let v3 = put(
        &theirs,
        "/Upd/f.txt",
        b"v3 by someone else",
        &WriteMode::Overwrite,
    )
    .await;
    let err = ours
        .upload(
            "/Upd/f.txt",
            Bytes::from_static(b"v3 by us"),
            &WriteMode::Update(v2.rev.clone()),
        )
        .await
        .expect_err("stale rev must conflict");
    assert!(matches!(err, DropboxError::Conflict(_)), "{err:?}");

    let (info, body) = ours.download("/Upd/f.txt").await.expect("download");
    assert_eq!(&body[..], b"v3 by someone else");
    assert_eq!(info.rev, v3.rev);

    // Identical content with a stale rev is not a conflict and writes nothing.
    let same = put(
        &ours,
        "/Upd/f.txt",
        b"v3 by someone else",
        &WriteMode::Update(v1.rev),
    )
    .await;
    assert_eq!(same.rev, v3.rev);

    // A rev that is not one (pattern `[0-9a-f]{9,}`) is a bad request.
    let err = ours
        .upload(
            "/Upd/f.txt",
            Bytes::from_static(b"x"),
            &WriteMode::Update("zz".into()),
        )
        .await
        .expect_err("malformed rev");
    assert!(matches!(err, DropboxError::BadRequest(_)), "{err:?}");
}

/// Other things in the way: a file as a parent, an existing folder, a folder into itself.
#[tokio::test]
async fn structural_conflicts() {
    let emu = Emu::start().await;
    let client = emu.client();
    put(&client, "/S/file.txt", b"f", &WriteMode::Add).await;
    let folder = client.create_folder("/S/Dir").await.expect("create folder");
    assert_eq!(folder.path_display, "/S/Dir");
    assert!(folder.id.starts_with("id:"));

    let err = client
        .upload(
            "/S/file.txt/child.txt",
            Bytes::from_static(b"c"),
            &WriteMode::Add,
        )
        .await
        .expect_err("file as a parent");
    assert!(matches!(err, DropboxError::Conflict(_)), "{err:?}");
    let err = client
        .create_folder("/s/dir")
        .await
        .expect_err("existing folder");
    assert!(matches!(err, DropboxError::Conflict(_)), "{err:?}");
    let err = client
        .create_folder("/S/file.txt")
        .await
        .expect_err("file there");
    assert!(matches!(err, DropboxError::Conflict(_)), "{err:?}");
    let err = client
        .move_entry("/S/Dir", "/S/Dir/Inner/Dir")
        .await
        .expect_err("folder into itself");
    assert!(matches!(err, DropboxError::Conflict(_)), "{err:?}");

    let (entries, _) = client.list_all("/S", true).await.expect("list");
    assert_eq!(
        summaries(&entries),
        vec![
            s("folder", "/S"),
            s("folder", "/S/Dir"),
            s("file", "/S/file.txt")
        ],
        "nothing was written by the failed calls"
    );
}

/// Malformed paths are the route's `malformed_path` (`BadPath`); bad syntax is `BadRequest`.
#[tokio::test]
async fn malformed_paths_are_bad_path() {
    let emu = Emu::start().await;
    let client = emu.client();
    put(&client, "/a/b.txt", b"b", &WriteMode::Add).await;

    for bad in ["/a//b.txt", "/a/b.txt ", "/a/b.txt/", "/a/./b.txt"] {
        let err = client
            .upload(bad, Bytes::from_static(b"x"), &WriteMode::Add)
            .await
            .expect_err("upload to a malformed path");
        assert!(
            matches!(err, DropboxError::BadPath(_)),
            "upload {bad:?}: {err:?}"
        );
        let err = client.download(bad).await.expect_err("download");
        assert!(
            matches!(err, DropboxError::BadPath(_)),
            "download {bad:?}: {err:?}"
        );
        let err = client.metadata(bad).await.expect_err("metadata");
        assert!(
            matches!(err, DropboxError::BadPath(_)),
            "metadata {bad:?}: {err:?}"
        );
    }
    let err = client
        .create_folder("/a/new folder ")
        .await
        .expect_err("create_folder with trailing space");
    assert!(matches!(err, DropboxError::BadPath(_)), "{err:?}");

    // Bad syntax (not a malformed path) is a plain 400.
    let err = client.list_folder("/", false).await.expect_err("root as /");
    assert!(matches!(err, DropboxError::BadRequest(_)), "{err:?}");
    let err = client.metadata("").await.expect_err("metadata of root");
    assert!(matches!(err, DropboxError::BadRequest(_)), "{err:?}");

    // Nothing was written.
    let (entries, _) = client.list_all("", true).await.expect("list root");
    assert_eq!(
        summaries(&entries),
        vec![s("folder", "/a"), s("file", "/a/b.txt")]
    );
}

/// A wrong token is an authentication error, and nothing is written.
#[tokio::test]
async fn wrong_token_is_auth_error() {
    let emu = Emu::start().await;
    let bad = DropboxClient::new(
        Endpoints::single(&emu.emulator.base_url()).expect("endpoints"),
        &Secret::new("wrong"),
    )
    .expect("client");

    let err = bad.current_account().await.expect_err("account");
    assert!(matches!(err, DropboxError::Auth(_)), "{err:?}");
    let err = bad
        .upload("/x.txt", Bytes::from_static(b"x"), &WriteMode::Add)
        .await
        .expect_err("upload");
    assert!(matches!(err, DropboxError::Auth(_)), "{err:?}");
    let err = bad.download("/x.txt").await.expect_err("download");
    assert!(matches!(err, DropboxError::Auth(_)), "{err:?}");
    let err = bad.list_folder("", true).await.expect_err("list");
    assert!(matches!(err, DropboxError::Auth(_)), "{err:?}");

    let good = emu.client();
    let account = good.current_account().await.expect("good token");
    assert!(account.account_id.starts_with("dbid:"), "{account:?}");
    assert!(matches!(
        good.metadata("/x.txt").await,
        Err(DropboxError::NotFound(_))
    ));
}

/// `delete` with a stale `parent_rev` does not delete; with the current rev it does.
#[tokio::test]
async fn delete_with_stale_parent_rev_keeps_file() {
    let emu = Emu::start().await;
    let client = emu.client();
    let v1 = put(&client, "/Pr/f.txt", b"v1", &WriteMode::Add).await;
    let v2 = put(&client, "/Pr/f.txt", b"v2", &WriteMode::Overwrite).await;
    assert_ne!(v1.rev, v2.rev);

    // The emulator answers a parent_rev mismatch with path_lookup/not_found.
    let err = client
        .delete("/Pr/f.txt", Some(&v1.rev))
        .await
        .expect_err("stale parent_rev");
    assert!(matches!(err, DropboxError::NotFound(_)), "{err:?}");
    let (info, body) = client.download("/Pr/f.txt").await.expect("still there");
    assert_eq!(&body[..], b"v2");
    assert_eq!(info.rev, v2.rev);

    let deleted = file(
        client
            .delete("/Pr/f.txt", Some(&v2.rev))
            .await
            .expect("delete at current rev"),
    );
    assert_eq!(deleted.rev, v2.rev);
    assert!(matches!(
        client.download("/Pr/f.txt").await,
        Err(DropboxError::NotFound(_))
    ));
}

/// Non-ASCII names round-trip (SDK header escaping + ASCII-escaped `Dropbox-API-Result`).
#[tokio::test]
async fn unicode_names_round_trip() {
    let emu = Emu::start().await;
    let client = emu.client();
    // NFC spelling, written with escapes so the source file's normalisation does not matter.
    let folder = "/\u{dc}n\u{ef}c\u{f6}d\u{e9}";
    let path = format!("{folder}/日本語 ファイル.txt");
    let data = "Grüße, 世界\n".as_bytes();

    let info = put(&client, &path, data, &WriteMode::Add).await;
    assert_eq!(info.path_display, path);
    assert_eq!(info.name, "日本語 ファイル.txt");
    assert_eq!(
        info.path_lower,
        "/\u{fc}n\u{ef}c\u{f6}d\u{e9}/日本語 ファイル.txt"
    );

    let (entries, _) = client.list_all("", true).await.expect("list");
    assert_eq!(
        summaries(&entries),
        vec![s("folder", folder), s("file", &path)]
    );
    assert_eq!(file(entries[1].clone()), info);

    let (down, body) = client.download(&path).await.expect("download");
    assert_eq!(&body[..], data);
    assert_eq!(down, info);
    let meta = file(
        client
            .metadata(&info.path_lower)
            .await
            .expect("metadata by lower-case path"),
    );
    assert_eq!(meta, info);
    // The emulator matches paths after NFC normalisation: a decomposed spelling finds it.
    let nfd = "/U\u{308}ni\u{308}co\u{308}de\u{301}/日本語 ファイル.txt";
    assert_ne!(nfd, path);
    let meta = file(client.metadata(nfd).await.expect("metadata by NFD path"));
    assert_eq!(meta.id, info.id);

    // Through a session too (the name travels in finish's Dropbox-API-Arg).
    let chunked = emu.client().with_chunk_size(8);
    let other = format!("{folder}/Ελληνικά ΣΊΣΥΦΟΣ.bin");
    let big = varied(50);
    let info = put(&chunked, &other, &big, &WriteMode::Add).await;
    assert_eq!(info.name, "Ελληνικά ΣΊΣΥΦΟΣ.bin");
    // Per-character lowercasing: a final capital sigma becomes σ, not ς.
    assert_eq!(
        info.path_lower,
        "/\u{fc}n\u{ef}c\u{f6}d\u{e9}/ελληνικά σίσυφοσ.bin"
    );
    let (down, body) = client.download(&other).await.expect("download chunked");
    assert!(body[..] == big[..]);
    assert_eq!(down.path_display, other);
}

/// A `parent_rev` that is not a rev (`[0-9a-f]{9,}`) is a 400, as for `WriteMode::Update`.
#[tokio::test]
async fn delete_with_malformed_parent_rev_is_bad_request() {
    let emu = Emu::start().await;
    let client = emu.client();
    put(&client, "/Pr/f.txt", b"v1", &WriteMode::Add).await;

    // `parent_rev` must match the Stone `Rev` pattern, like the rev in `WriteMode::Update`:
    // a malformed one is a 400, not `path_lookup/not_found` (which reads as "already gone").
    let err = client
        .delete("/Pr/f.txt", Some("zzz"))
        .await
        .expect_err("malformed parent_rev");
    let (_, body) = client
        .download("/Pr/f.txt")
        .await
        .expect("file still there");
    assert_eq!(&body[..], b"v1");
    assert!(matches!(err, DropboxError::BadRequest(_)), "{err:?}");
}

/// A non-BMP path is refused by every call, never written to or read from another path.
#[tokio::test]
async fn non_bmp_path_is_refused_not_rewritten() {
    let emu = Emu::start().await;
    let client = emu.client();
    let path = "/emoji \u{1F600}.txt";

    // The client refuses it before any call: dropbox-sdk 0.21 would escape U+1F600 in
    // `Dropbox-API-Arg` as `\u1f600` (five hex digits; reference §1.4), which a JSON parser
    // reads as another path ("ὠ0"), so header-argument routes would silently hit a different file.
    let err = client.metadata(path).await.expect_err("metadata");
    assert!(matches!(err, DropboxError::BadPath(_)), "{err:?}");
    let uploaded = client
        .upload(path, Bytes::from_static(b"e"), &WriteMode::Add)
        .await;
    let downloaded = client.download(path).await.map(|(info, _)| info);
    let (entries, _) = client.list_all("", true).await.expect("list");
    assert!(
        entries.is_empty(),
        "nothing may be written for a refused path, found {:?}",
        summaries(&entries)
    );
    assert!(
        matches!(
            uploaded,
            Err(DropboxError::BadPath(_) | DropboxError::BadRequest(_))
        ),
        "upload: {uploaded:?}"
    );
    assert!(
        matches!(
            downloaded,
            Err(DropboxError::BadPath(_) | DropboxError::BadRequest(_))
        ),
        "download: {downloaded:?}"
    );
}
