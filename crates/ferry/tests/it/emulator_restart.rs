//! Emulator restarts keep data.

use crate::support::client_for;
use bytes::Bytes;
use ferry_core::content_hash::content_hash;
use ferry_core::secret::Secret;
use ferry_dropbox::{DropboxClient, Endpoints, Entry, FileInfo, WriteMode};
use ferry_emulator::{EmulatorConfig, RunningEmulator};

async fn start(dir: &std::path::Path) -> RunningEmulator {
    RunningEmulator::start(EmulatorConfig::new(dir))
        .await
        .expect("emulator starts")
}

fn file(entry: Entry) -> FileInfo {
    match entry {
        Entry::File(f) => f,
        other => panic!("expected a file, got {other:?}"),
    }
}

/// A restart keeps token, account, files (ids, revs, hashes, content) and valid cursors.
#[tokio::test]
async fn restart_keeps_token_files_ids_and_cursors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("emu");

    let first = start(&data_dir).await;
    let token = first.token().to_owned();
    let client = client_for(&first);
    let small: &[u8] = b"small file before the restart";
    let big: Vec<u8> = (0..6000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    let unicode_path = "/Keep/Ünïcödé ファイル.txt";

    let mut uploaded = vec![
        (
            "/Keep/small.txt",
            small.to_vec(),
            client
                .upload(
                    "/Keep/small.txt",
                    Bytes::from_static(small),
                    &WriteMode::Add,
                )
                .await
                .expect("small upload"),
        ),
        (
            "/Keep/Deep/big.bin",
            big.clone(),
            client
                .clone()
                .with_chunk_size(1024)
                .upload(
                    "/Keep/Deep/big.bin",
                    Bytes::from(big.clone()),
                    &WriteMode::Add,
                )
                .await
                .expect("chunked upload"),
        ),
        (
            unicode_path,
            b"unicode".to_vec(),
            client
                .upload(
                    unicode_path,
                    Bytes::from_static(b"unicode"),
                    &WriteMode::Add,
                )
                .await
                .expect("unicode upload"),
        ),
    ];
    assert!(first.route_calls("files/upload_session/append_v2") >= 3);
    assert_eq!(first.route_calls("files/upload_session/finish"), 1);
    // A file that is moved and one that is deleted before the restart.
    let to_move = client
        .upload(
            "/Keep/to-move.txt",
            Bytes::from_static(b"mv"),
            &WriteMode::Add,
        )
        .await
        .expect("upload to-move");
    let moved = file(
        client
            .move_entry("/Keep/to-move.txt", "/Keep/Moved.txt")
            .await
            .expect("move"),
    );
    assert_eq!(moved.id, to_move.id);
    uploaded.push(("/Keep/Moved.txt", b"mv".to_vec(), moved));
    client
        .upload(
            "/Keep/gone.txt",
            Bytes::from_static(b"gone"),
            &WriteMode::Add,
        )
        .await
        .expect("upload gone");
    client.delete("/Keep/gone.txt", None).await.expect("delete");

    let account_before = client.current_account().await.expect("account");
    let (entries_before, cursor) = client.list_all("", true).await.expect("list before");
    assert_eq!(entries_before.len(), 6, "{entries_before:#?}"); // 2 folders + 4 files
    first.shutdown().await;

    let second = start(&data_dir).await;
    assert_eq!(
        second.token(),
        token,
        "the generated token is stored and reused"
    );
    // A client holding the old token (not asking the new emulator) is accepted.
    let old_token_client = DropboxClient::new(
        Endpoints::single(&second.base_url()).expect("endpoints"),
        &Secret::new(token.clone()),
    )
    .expect("client");
    let account_after = old_token_client
        .current_account()
        .await
        .expect("old token accepted after restart");
    assert_eq!(
        account_after, account_before,
        "account is stable across restarts"
    );

    let client = client_for(&second);
    let (entries_after, _) = client.list_all("", true).await.expect("list after");
    assert_eq!(entries_after, entries_before, "same tree, ids and revs");

    for (path, content, before) in &uploaded {
        let meta = file(client.metadata(path).await.expect("metadata after restart"));
        assert_eq!(&meta, before, "{path}");
        let (info, body) = client.download(path).await.expect("download after restart");
        assert_eq!(&info, before, "{path}");
        assert!(body[..] == content[..], "{path}: content differs");
        assert_eq!(
            info.content_hash.as_deref(),
            Some(content_hash(content).as_str())
        );
    }
    assert!(
        client.metadata("/Keep/gone.txt").await.is_err(),
        "a deleted file stays deleted"
    );
    assert!(
        client.metadata("/Keep/to-move.txt").await.is_err(),
        "a moved file stays moved"
    );

    // The old cursor is still valid and sees nothing new.
    let page = old_token_client
        .list_folder_continue(&cursor)
        .await
        .expect("old cursor valid after restart");
    assert!(page.entries.is_empty(), "{:?}", page.entries);
    assert!(!page.has_more);

    // Writes after the restart: the old cursor sees exactly the new one, with a new rev that
    // differs from every rev handed out before.
    let after = client
        .upload(
            "/Keep/after.txt",
            Bytes::from_static(b"after"),
            &WriteMode::Add,
        )
        .await
        .expect("upload after restart");
    assert!(
        uploaded
            .iter()
            .all(|(_, _, f)| f.rev != after.rev && f.id != after.id),
        "new rev and id must be fresh"
    );
    let page = client
        .list_folder_continue(&cursor)
        .await
        .expect("continue after a change");
    assert_eq!(page.entries, vec![Entry::File(after.clone())]);

    // Overwriting a file from before the restart gives a new rev, same id.
    let (_, _, small_before) = &uploaded[0];
    let small_v2 = client
        .upload(
            "/Keep/small.txt",
            Bytes::from_static(b"v2"),
            &WriteMode::Update(small_before.rev.clone()),
        )
        .await
        .expect("update with the pre-restart rev");
    assert_eq!(small_v2.id, small_before.id);
    assert_ne!(small_v2.rev, small_before.rev);

    // A third start sees all of it.
    second.shutdown().await;
    let third = start(&data_dir).await;
    let client = client_for(&third);
    let meta = file(client.metadata("/Keep/small.txt").await.expect("metadata"));
    assert_eq!(meta, small_v2);
    let page = client
        .list_folder_continue(&cursor)
        .await
        .expect("old cursor after second restart");
    assert_eq!(
        page.entries,
        vec![Entry::File(after), Entry::File(small_v2)],
        "the old cursor still sees exactly the post-restart changes, in order"
    );
    third.shutdown().await;
}

/// A configured token replaces the stored one (which then fails); the data stays.
#[tokio::test]
async fn configured_token_overrides_stored_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("emu");
    let first = start(&data_dir).await;
    let generated = first.token().to_owned();
    let stored = client_for(&first)
        .upload("/t.txt", Bytes::from_static(b"t"), &WriteMode::Add)
        .await
        .expect("upload");
    first.shutdown().await;

    let mut config = EmulatorConfig::new(&data_dir);
    config.token = Some("explicit-token".into());
    let second = RunningEmulator::start(config).await.expect("restart");
    assert_eq!(second.token(), "explicit-token");
    let old = DropboxClient::new(
        Endpoints::single(&second.base_url()).expect("endpoints"),
        &Secret::new(generated),
    )
    .expect("client");
    assert!(matches!(
        old.metadata("/t.txt").await,
        Err(ferry_dropbox::DropboxError::Auth(_))
    ));
    let meta = file(
        client_for(&second)
            .metadata("/t.txt")
            .await
            .expect("metadata with the configured token"),
    );
    assert_eq!(meta, stored);
    second.shutdown().await;
}
