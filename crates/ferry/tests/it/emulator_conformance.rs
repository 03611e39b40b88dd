//! Emulator conformance through `dropbox-sdk`'s own request and response types: a wire-shape
//! mistake (a missing required field, `.tag` not first, a wrongly nested union) fails to
//! (de)serialise here exactly as it would against Dropbox. Plus the official Python SDK from
//! PyPI driving the emulator over TLS (`crates/ferry-emulator/conformance/python_sdk.py`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dropbox_sdk::async_client_trait::{
    HttpClient, HttpRequest, HttpRequestResultRaw, NoauthClient, UserAuthClient,
};
use dropbox_sdk::{auth, dbx_async, files, sharing, users};
use ferry_emulator::{EmulatorConfig, FaultModel, RunningEmulator};

/// Content-hash vectors computed independently of our Rust code, with Python's `hashlib`
/// following Dropbox's published algorithm (the empty, 4 MiB and 4 MiB + 1 values also
/// appear in reference §3): (length, byte value repeated, hash). The Python conformance
/// script recomputes them with `hashlib` against the emulator as well.
const HASH_VECTORS: &[(usize, u8, &str)] = &[
    (
        0,
        0,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
    (
        1,
        b'a',
        "bf5d3affb73efd2ec6c36ad3112dd933efed63c4e1cbffcfa88e2759c144f2d8",
    ),
    (
        4 << 20,
        0,
        "c7e946d101855255d919ef0c70718633adf77d3dfb3adeeecf5d0cb4e951be58",
    ),
    (
        (4 << 20) + 1,
        0,
        "14a4d47f23a30177885d9820122f17d2d3a55fe63f7f5c27b95f689e0b2accd6",
    ),
    (
        10 << 20,
        0x5a,
        "3400bc3b02ce0a0b7045286c1f00b1232f7a8870c5e2e164790e692597fd1ce9",
    ),
];

/// A minimal `HttpClient`: reqwest, the real hosts rewritten to the emulator.
struct Sdk {
    http: reqwest::Client,
    base: String,
    token: Option<Arc<String>>,
    /// `Dropbox-API-Path-Root` to send (serialised `PathRoot`).
    path_root: Option<String>,
    /// `Dropbox-API-Select-User` to send.
    select: Option<dropbox_sdk::async_client_trait::TeamSelect>,
    /// The body of the last response (downloads read their content from here).
    last_body: Mutex<Vec<u8>>,
}

struct Req(reqwest::RequestBuilder);

impl HttpRequest for Req {
    fn set_header(self, name: &str, value: &str) -> Self {
        Req(self.0.header(name, value))
    }
}

impl Sdk {
    fn new(emulator: &RunningEmulator, token: Option<&str>) -> Sdk {
        Sdk {
            http: reqwest::Client::new(),
            base: emulator.base_url(),
            token: token.map(|t| Arc::new(t.to_owned())),
            path_root: None,
            select: None,
            last_body: Mutex::new(Vec::new()),
        }
    }

    fn user(emulator: &RunningEmulator) -> Sdk {
        Sdk::new(emulator, Some(emulator.token()))
    }

    fn last_body(&self) -> Vec<u8> {
        self.last_body.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

impl HttpClient for Sdk {
    type Request = Req;

    async fn execute(
        &self,
        request: Req,
        body: Bytes,
    ) -> Result<HttpRequestResultRaw, dropbox_sdk::Error> {
        let request = if body.is_empty() {
            request.0
        } else {
            request.0.body(body)
        };
        let response = request
            .send()
            .await
            .map_err(|e| dropbox_sdk::Error::HttpClient(Box::new(e)))?;
        let status = response.status().as_u16();
        let result_header = match response.headers().get("Dropbox-API-Result") {
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| {
                        dropbox_sdk::Error::UnexpectedResponse(
                            "non-ASCII Dropbox-API-Result".into(),
                        )
                    })?
                    .to_owned(),
            ),
            None => None,
        };
        let content_length = response.content_length();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| dropbox_sdk::Error::HttpClient(Box::new(e)))?;
        if let Ok(mut last) = self.last_body.lock() {
            *last = bytes.to_vec();
        }
        // The SDK wants a `futures::AsyncRead`; `&'static [u8]` is one, and this test binary
        // does not depend on `futures` to build another. The few bytes leaked are test-only.
        let leaked: &'static [u8] = Box::leak(bytes.to_vec().into_boxed_slice());
        Ok(HttpRequestResultRaw {
            status,
            result_header,
            content_length,
            body: Box::new(leaked),
        })
    }

    fn new_request(&self, url: &str) -> Req {
        let mut url = url.to_owned();
        for real in [
            "https://api.dropboxapi.com",
            "https://content.dropboxapi.com",
            "https://notify.dropboxapi.com",
        ] {
            if let Some(rest) = url.strip_prefix(real) {
                url = format!("{}{rest}", self.base);
                break;
            }
        }
        Req(self.http.post(url))
    }

    fn token(&self) -> Option<Arc<String>> {
        self.token.clone()
    }

    fn path_root(&self) -> Option<&str> {
        self.path_root.as_deref()
    }

    fn team_select(&self) -> Option<&dropbox_sdk::async_client_trait::TeamSelect> {
        self.select.as_ref()
    }
}

impl UserAuthClient for Sdk {}
impl NoauthClient for Sdk {}

async fn start(model: FaultModel) -> (tempfile::TempDir, RunningEmulator) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = EmulatorConfig::new(dir.path());
    config.model = model;
    let emulator = RunningEmulator::start(config).await.expect("emulator");
    (dir, emulator)
}

async fn upload(sdk: &Sdk, path: &str, data: &[u8]) -> files::FileMetadata {
    files::upload(
        sdk,
        &files::UploadArg::new(path.to_owned()),
        Bytes::copy_from_slice(data),
    )
    .await
    .unwrap_or_else(|e| panic!("upload {path}: {e:?}"))
}

fn poll(id: &str) -> dbx_async::PollArg {
    dbx_async::PollArg::new(id.to_owned())
}

#[tokio::test]
async fn sdk_uploads_modes_downloads_and_hashes() {
    let (_dir, emu) = start(FaultModel::default()).await;
    let sdk = Sdk::user(&emu);
    let v1 = upload(&sdk, "/Conf/Ünï.txt", b"version 1").await;
    assert_eq!(v1.path_display.as_deref(), Some("/Conf/Ünï.txt"));
    // add: different content conflicts, identical content is no conflict and no new rev.
    let same = upload(&sdk, "/conf/ünï.txt", b"version 1").await;
    assert_eq!(same.rev, v1.rev);
    let conflict = files::upload(
        &sdk,
        &files::UploadArg::new("/Conf/Ünï.txt".into()),
        Bytes::from_static(b"other"),
    )
    .await;
    match conflict {
        Err(dropbox_sdk::Error::Api(files::UploadError::Path(failed))) => assert!(matches!(
            failed.reason,
            files::WriteError::Conflict(files::WriteConflictError::File)
        )),
        other => panic!("expected path/conflict/file, got {other:?}"),
    }
    let renamed = files::upload(
        &sdk,
        &files::UploadArg::new("/Conf/Ünï.txt".into()).with_autorename(true),
        Bytes::from_static(b"other"),
    )
    .await
    .expect("autorename");
    assert_eq!(renamed.name, "Ünï (1).txt");
    // update(rev): a stale rev with autorename becomes a conflicted copy.
    let v2 = files::upload(
        &sdk,
        &files::UploadArg::new("/Conf/Ünï.txt".into())
            .with_mode(files::WriteMode::Update(v1.rev.clone())),
        Bytes::from_static(b"version 2"),
    )
    .await
    .expect("update with current rev");
    assert_ne!(v2.rev, v1.rev);
    let stale = files::upload(
        &sdk,
        &files::UploadArg::new("/Conf/Ünï.txt".into())
            .with_mode(files::WriteMode::Update(v1.rev.clone()))
            .with_autorename(true),
        Bytes::from_static(b"version 3"),
    )
    .await
    .expect("conflicted copy");
    assert_eq!(stale.name, "Ünï (conflicted copy).txt");
    let strict = files::upload(
        &sdk,
        &files::UploadArg::new("/Conf/Ünï.txt".into())
            .with_mode(files::WriteMode::Add)
            .with_strict_conflict(true),
        Bytes::from_static(b"version 2"),
    )
    .await;
    assert!(matches!(
        strict,
        Err(dropbox_sdk::Error::Api(files::UploadError::Path(_)))
    ));
    let mismatch = files::upload(
        &sdk,
        &files::UploadArg::new("/Conf/h.txt".into()).with_content_hash("0".repeat(64)),
        Bytes::from_static(b"x"),
    )
    .await;
    assert!(matches!(
        mismatch,
        Err(dropbox_sdk::Error::Api(
            files::UploadError::ContentHashMismatch
        ))
    ));

    // Download with a range: the result header parses as FileMetadata.
    let ranged = files::download(
        &sdk,
        &files::DownloadArg::new("/Conf/Ünï.txt".into()),
        Some(2),
        Some(4),
    )
    .await
    .expect("ranged download");
    assert_eq!(ranged.result.rev, v2.rev);
    assert_eq!(sdk.last_body(), b"rsi");
    let missing = files::download(&sdk, &files::DownloadArg::new("/nope".into()), None, None).await;
    assert!(matches!(
        missing,
        Err(dropbox_sdk::Error::Api(files::DownloadError::Path(
            files::LookupError::NotFound
        )))
    ));

    // Content-hash vectors (computed outside our Rust code).
    for (len, byte, expected) in HASH_VECTORS {
        let data = vec![*byte; *len];
        let path = format!("/hash/{len}.bin");
        let meta = upload(&sdk, &path, &data).await;
        assert_eq!(meta.content_hash.as_deref(), Some(*expected), "{len} bytes");
        assert_eq!(meta.size, *len as u64);
    }
}

#[tokio::test]
async fn sdk_sessions_and_batches() {
    let (_dir, emu) = start(FaultModel::default()).await;
    let sdk = Sdk::user(&emu);
    let start = files::upload_session_start(
        &sdk,
        &files::UploadSessionStartArg::default(),
        Bytes::from_static(b"hello "),
    )
    .await
    .expect("start");
    let cursor = files::UploadSessionCursor::new(start.session_id.clone(), 6);
    files::upload_session_append_v2(
        &sdk,
        &files::UploadSessionAppendArg::new(cursor.clone()),
        Bytes::from_static(b"world"),
    )
    .await
    .expect("append");
    let wrong = files::upload_session_append_v2(
        &sdk,
        &files::UploadSessionAppendArg::new(cursor),
        Bytes::from_static(b"again"),
    )
    .await;
    match wrong {
        Err(dropbox_sdk::Error::Api(files::UploadSessionAppendError::IncorrectOffset(o))) => {
            assert_eq!(o.correct_offset, 11)
        }
        other => panic!("expected incorrect_offset, got {other:?}"),
    }
    let finished = files::upload_session_finish(
        &sdk,
        &files::UploadSessionFinishArg::new(
            files::UploadSessionCursor::new(start.session_id, 11),
            files::CommitInfo::new("/s/one.txt".into()),
        ),
        Bytes::new(),
    )
    .await
    .expect("finish");
    assert_eq!(finished.size, 11);

    // finish_batch_v2 over sessions from start_batch (closed by their last append).
    let ids = files::upload_session_start_batch(&sdk, &files::UploadSessionStartBatchArg::new(3))
        .await
        .expect("start_batch")
        .session_ids;
    let mut entries = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let close = i < 2; // the third stays open
        files::upload_session_append_v2(
            &sdk,
            &files::UploadSessionAppendArg::new(files::UploadSessionCursor::new(id.clone(), 0))
                .with_close(close),
            Bytes::from(format!("file {i}")),
        )
        .await
        .expect("append");
        entries.push(files::UploadSessionFinishArg::new(
            files::UploadSessionCursor::new(id.clone(), 6),
            files::CommitInfo::new(format!("/batch/f{i}.txt")),
        ));
    }
    let result = files::upload_session_finish_batch_v2(
        &sdk,
        &files::UploadSessionFinishBatchArg::new(entries),
    )
    .await
    .expect("finish_batch_v2");
    assert_eq!(result.entries.len(), 3);
    assert!(
        matches!(&result.entries[0], files::UploadSessionFinishBatchResultEntry::Success(m) if m.name == "f0.txt")
    );
    assert!(matches!(
        &result.entries[2],
        files::UploadSessionFinishBatchResultEntry::Failure(
            files::UploadSessionFinishError::LookupFailed(
                files::UploadSessionLookupError::NotClosed
            )
        )
    ));

    // The deprecated async finish_batch and its check (still used by older clients).
    let id = files::upload_session_start(
        &sdk,
        &files::UploadSessionStartArg::default().with_close(true),
        Bytes::from_static(b"v1"),
    )
    .await
    .expect("start")
    .session_id;
    #[allow(deprecated)]
    let launch = files::upload_session_finish_batch(
        &sdk,
        &files::UploadSessionFinishBatchArg::new(vec![files::UploadSessionFinishArg::new(
            files::UploadSessionCursor::new(id, 2),
            files::CommitInfo::new("/batch/v1.txt".into()),
        )]),
    )
    .await
    .expect("finish_batch");
    let files::UploadSessionFinishBatchLaunch::AsyncJobId(job) = launch else {
        panic!("expected an async job, got {launch:?}")
    };
    let status = files::upload_session_finish_batch_check(&sdk, &poll(&job))
        .await
        .expect("check");
    match status {
        files::UploadSessionFinishBatchJobStatus::Complete(r) => {
            assert!(
                matches!(&r.entries[0], files::UploadSessionFinishBatchResultEntry::Success(m) if m.name == "v1.txt")
            )
        }
        other => panic!("expected complete, got {other:?}"),
    }

    // Per-entry lock contention parses as the SDK's typed per-entry errors.
    emu.faults().update(|m| m.p_batch_entry_contention = 1.0);
    let id = files::upload_session_start(
        &sdk,
        &files::UploadSessionStartArg::default().with_close(true),
        Bytes::from_static(b"c"),
    )
    .await
    .expect("start")
    .session_id;
    let contended = files::upload_session_finish_batch_v2(
        &sdk,
        &files::UploadSessionFinishBatchArg::new(vec![files::UploadSessionFinishArg::new(
            files::UploadSessionCursor::new(id, 1),
            files::CommitInfo::new("/batch/c.txt".into()),
        )]),
    )
    .await
    .expect("finish_batch_v2");
    assert!(matches!(
        &contended.entries[0],
        files::UploadSessionFinishBatchResultEntry::Failure(
            files::UploadSessionFinishError::TooManyWriteOperations
        )
    ));
    let launch = files::move_batch_v2(
        &sdk,
        &files::MoveBatchArg::new(vec![files::RelocationPath::new(
            "/batch/v1.txt".into(),
            "/batch/v1-moved.txt".into(),
        )]),
    )
    .await
    .expect("move_batch_v2");
    let files::RelocationBatchV2Launch::AsyncJobId(job) = launch else {
        panic!("expected async")
    };
    let files::RelocationBatchV2JobStatus::Complete(result) =
        files::move_batch_check_v2(&sdk, &poll(&job))
            .await
            .expect("check")
    else {
        panic!("expected complete")
    };
    assert!(matches!(
        &result.entries[0],
        files::RelocationBatchResultEntry::Failure(
            files::RelocationBatchErrorEntry::TooManyWriteOperations
        )
    ));
    emu.faults().update(|m| m.p_batch_entry_contention = 0.0);

    // Concurrent session: blocks in any order, then close.
    let id = files::upload_session_start(
        &sdk,
        &files::UploadSessionStartArg::default()
            .with_session_type(files::UploadSessionType::Concurrent),
        Bytes::new(),
    )
    .await
    .expect("concurrent start")
    .session_id;
    let block = 4 << 20;
    files::upload_session_append_v2(
        &sdk,
        &files::UploadSessionAppendArg::new(files::UploadSessionCursor::new(id.clone(), block))
            .with_close(true),
        Bytes::from_static(b"end"),
    )
    .await
    .expect("last block first");
    files::upload_session_append_v2(
        &sdk,
        &files::UploadSessionAppendArg::new(files::UploadSessionCursor::new(id.clone(), 0)),
        Bytes::from(vec![7u8; block as usize]),
    )
    .await
    .expect("first block");
    let done = files::upload_session_finish(
        &sdk,
        &files::UploadSessionFinishArg::new(
            files::UploadSessionCursor::new(id, block + 3),
            files::CommitInfo::new("/big.bin".into()),
        ),
        Bytes::new(),
    )
    .await
    .expect("concurrent finish");
    assert_eq!(done.size, block + 3);
}

#[tokio::test]
async fn sdk_folders_moves_copies_deletes() {
    let (_dir, emu) = start(FaultModel::default()).await;
    let sdk = Sdk::user(&emu);
    let folder = files::create_folder_v2(&sdk, &files::CreateFolderArg::new("/A".into()))
        .await
        .expect("create");
    assert_eq!(folder.metadata.name, "A");
    let exists = files::create_folder_v2(&sdk, &files::CreateFolderArg::new("/a".into())).await;
    assert!(matches!(
        exists,
        Err(dropbox_sdk::Error::Api(files::CreateFolderError::Path(
            files::WriteError::Conflict(files::WriteConflictError::Folder)
        )))
    ));
    let launch = files::create_folder_batch(
        &sdk,
        &files::CreateFolderBatchArg::new(vec!["/B".into(), "/A".into()]),
    )
    .await
    .expect("create_folder_batch");
    let files::CreateFolderBatchLaunch::Complete(result) = launch else {
        panic!("expected complete, got {launch:?}")
    };
    assert!(
        matches!(&result.entries[0], files::CreateFolderBatchResultEntry::Success(r) if r.metadata.name == "B")
    );
    assert!(matches!(
        &result.entries[1],
        files::CreateFolderBatchResultEntry::Failure(files::CreateFolderEntryError::Path(_))
    ));
    let launch = files::create_folder_batch(
        &sdk,
        &files::CreateFolderBatchArg::new(vec!["/C".into()]).with_force_async(true),
    )
    .await
    .expect("async create_folder_batch");
    let files::CreateFolderBatchLaunch::AsyncJobId(job) = launch else {
        panic!("expected async, got {launch:?}")
    };
    let status = files::create_folder_batch_check(&sdk, &poll(&job))
        .await
        .expect("check");
    assert!(matches!(
        status,
        files::CreateFolderBatchJobStatus::Complete(_)
    ));

    let file = upload(&sdk, "/A/f.txt", b"f").await;
    let copied = files::copy_v2(
        &sdk,
        &files::RelocationArg::new("/A".into(), "/A copy".into()),
    )
    .await
    .expect("copy");
    assert!(matches!(copied.metadata, files::Metadata::Folder(ref f) if f.name == "A copy"));
    let moved = files::move_v2(
        &sdk,
        &files::RelocationArg::new("/A/f.txt".into(), "/B/g.txt".into()),
    )
    .await
    .expect("move");
    match moved.metadata {
        files::Metadata::File(f) => assert_eq!((f.id, f.rev), (file.id.clone(), file.rev.clone())),
        other => panic!("expected a file, got {other:?}"),
    }
    let into_itself = files::move_v2(
        &sdk,
        &files::RelocationArg::new("/B".into(), "/B/inner".into()),
    )
    .await;
    assert!(matches!(
        into_itself,
        Err(dropbox_sdk::Error::Api(
            files::RelocationError::CantMoveFolderIntoItself
        ))
    ));
    let launch = files::move_batch_v2(
        &sdk,
        &files::MoveBatchArg::new(vec![
            files::RelocationPath::new("/B/g.txt".into(), "/C/g.txt".into()),
            files::RelocationPath::new("/missing".into(), "/C/x".into()),
        ]),
    )
    .await
    .expect("move_batch_v2");
    let files::RelocationBatchV2Launch::AsyncJobId(job) = launch else {
        panic!("expected async, got {launch:?}")
    };
    let files::RelocationBatchV2JobStatus::Complete(result) =
        files::move_batch_check_v2(&sdk, &poll(&job))
            .await
            .expect("check_v2")
    else {
        panic!("expected complete")
    };
    assert!(
        matches!(&result.entries[0], files::RelocationBatchResultEntry::Success(files::Metadata::File(f)) if f.name == "g.txt")
    );
    assert!(matches!(
        &result.entries[1],
        files::RelocationBatchResultEntry::Failure(
            files::RelocationBatchErrorEntry::RelocationError(files::RelocationError::FromLookup(
                files::LookupError::NotFound
            ))
        )
    ));

    let deleted = files::delete_v2(&sdk, &files::DeleteArg::new("/A copy".into()))
        .await
        .expect("delete");
    assert!(matches!(deleted.metadata, files::Metadata::Folder(_)));
    let launch = files::delete_batch(
        &sdk,
        &files::DeleteBatchArg::new(vec![
            files::DeleteArg::new("/C/g.txt".into()),
            files::DeleteArg::new("/nothing".into()),
        ]),
    )
    .await
    .expect("delete_batch");
    let files::DeleteBatchLaunch::AsyncJobId(job) = launch else {
        panic!("expected async, got {launch:?}")
    };
    let files::DeleteBatchJobStatus::Complete(result) =
        files::delete_batch_check(&sdk, &poll(&job))
            .await
            .expect("check")
    else {
        panic!("expected complete")
    };
    assert!(
        matches!(&result.entries[0], files::DeleteBatchResultEntry::Success(d) if matches!(d.metadata, files::Metadata::File(_)))
    );
    assert!(matches!(
        &result.entries[1],
        files::DeleteBatchResultEntry::Failure(files::DeleteError::PathLookup(
            files::LookupError::NotFound
        ))
    ));
    let gone = files::get_metadata(
        &sdk,
        &files::GetMetadataArg::new("/C/g.txt".into()).with_include_deleted(true),
    )
    .await
    .expect("include_deleted");
    assert!(matches!(gone, files::Metadata::Deleted(d) if d.name == "g.txt"));
}

#[tokio::test]
async fn sdk_listing_cursors_longpoll_search_links() {
    let (_dir, emu) = start(FaultModel::default()).await;
    let sdk = Sdk::user(&emu);
    upload(&sdk, "/L/one.txt", b"1").await;
    upload(&sdk, "/L/two.txt", b"2").await;
    let page = files::list_folder(&sdk, &files::ListFolderArg::new("/L".into()).with_limit(1))
        .await
        .expect("list_folder");
    assert_eq!(page.entries.len(), 1);
    assert!(page.has_more);
    let rest = files::list_folder_continue(&sdk, &files::ListFolderContinueArg::new(page.cursor))
        .await
        .expect("continue");
    assert!(!rest.has_more);
    let latest =
        files::list_folder_get_latest_cursor(&sdk, &files::ListFolderArg::new("/L".into()))
            .await
            .expect("latest")
            .cursor;

    // Long-poll with a token-less client; a change wakes it.
    let noauth = Sdk::new(&emu, None);
    let arg = files::ListFolderLongpollArg::new(latest.clone()).with_timeout(60);
    let waiting = files::list_folder_longpoll(&noauth, &arg);
    let writer = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        upload(&sdk, "/L/three.txt", b"3").await;
    };
    let (polled, ()) = tokio::join!(waiting, writer);
    assert!(polled.expect("longpoll").changes);
    let authed = files::list_folder_longpoll(&sdk, &arg).await;
    assert!(
        matches!(authed, Err(dropbox_sdk::Error::BadRequest(_))),
        "{authed:?}"
    );
    let delta = files::list_folder_continue(&sdk, &files::ListFolderContinueArg::new(latest))
        .await
        .expect("delta");
    assert!(matches!(&delta.entries[..], [files::Metadata::File(f)] if f.name == "three.txt"));
    let reset =
        files::list_folder_continue(&sdk, &files::ListFolderContinueArg::new("junk".into())).await;
    assert!(matches!(
        reset,
        Err(dropbox_sdk::Error::Api(
            files::ListFolderContinueError::Reset
        ))
    ));

    // Search.
    let found = files::search_v2(
        &sdk,
        &files::SearchV2Arg::new("t".into())
            .with_options(files::SearchOptions::default().with_max_results(1)),
    )
    .await
    .expect("search_v2");
    assert_eq!(found.matches.len(), 1);
    assert!(found.has_more);
    let files::MetadataV2::Metadata(files::Metadata::File(_)) = &found.matches[0].metadata else {
        panic!("expected file metadata")
    };
    let more = files::search_continue_v2(
        &sdk,
        &files::SearchV2ContinueArg::new(found.cursor.expect("cursor")),
    )
    .await
    .expect("continue_v2");
    assert_eq!(more.matches.len(), 1);

    // Temporary link, served by the emulator.
    let link =
        files::get_temporary_link(&sdk, &files::GetTemporaryLinkArg::new("/L/one.txt".into()))
            .await
            .expect("temporary link");
    assert_eq!(link.metadata.name, "one.txt");
    let body = reqwest::get(&link.link)
        .await
        .expect("GET link")
        .bytes()
        .await
        .expect("body");
    assert_eq!(&body[..], b"1");

    // Shared links.
    let settings =
        sharing::SharedLinkSettings::default().with_audience(sharing::LinkAudience::Public);
    let created = sharing::create_shared_link_with_settings(
        &sdk,
        &sharing::CreateSharedLinkWithSettingsArg::new("/L/one.txt".into()).with_settings(settings),
    )
    .await
    .expect("create link");
    let sharing::SharedLinkMetadata::File(file_link) = &created else {
        panic!("expected a file link")
    };
    let again = sharing::create_shared_link_with_settings(
        &sdk,
        &sharing::CreateSharedLinkWithSettingsArg::new("/L/one.txt".into()),
    )
    .await;
    match again {
        Err(dropbox_sdk::Error::Api(
            sharing::CreateSharedLinkWithSettingsError::SharedLinkAlreadyExists(Some(
                sharing::SharedLinkAlreadyExistsMetadata::Metadata(
                    sharing::SharedLinkMetadata::File(existing),
                ),
            )),
        )) => assert_eq!(existing.url, file_link.url),
        other => panic!("expected shared_link_already_exists, got {other:?}"),
    }
    let listed = sharing::list_shared_links(
        &sdk,
        &sharing::ListSharedLinksArg::default().with_path("/L/one.txt".into()),
    )
    .await
    .expect("list links");
    assert_eq!(listed.links.len(), 1);
    sharing::revoke_shared_link(
        &sdk,
        &sharing::RevokeSharedLinkArg::new(file_link.url.clone()),
    )
    .await
    .expect("revoke");
    let twice = sharing::revoke_shared_link(
        &sdk,
        &sharing::RevokeSharedLinkArg::new(file_link.url.clone()),
    )
    .await;
    assert!(matches!(
        twice,
        Err(dropbox_sdk::Error::Api(
            sharing::RevokeSharedLinkError::SharedLinkNotFound
        ))
    ));
}

#[tokio::test]
async fn sdk_users_auth_and_limits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = EmulatorConfig::new(dir.path());
    config.quota_bytes = 1000;
    let emu = RunningEmulator::start(config).await.expect("emulator");
    let sdk = Sdk::user(&emu);
    let account = users::get_current_account(&sdk).await.expect("account");
    assert_eq!(account.account_id.len(), 40);
    upload(&sdk, "/q.bin", &[1; 600]).await;
    let usage = users::get_space_usage(&sdk).await.expect("usage");
    assert_eq!(usage.used, 600);
    assert!(matches!(
        usage.allocation,
        users::SpaceAllocation::Individual(ref a) if a.allocated == 1000
    ));
    let full = files::upload(
        &sdk,
        &files::UploadArg::new("/r.bin".into()),
        Bytes::from(vec![2u8; 600]),
    )
    .await;
    match full {
        Err(dropbox_sdk::Error::Api(files::UploadError::Path(failed))) => {
            assert!(matches!(
                failed.reason,
                files::WriteError::InsufficientSpace
            ))
        }
        other => panic!("expected insufficient_space, got {other:?}"),
    }

    // Bad token: a typed 401.
    let stranger = Sdk::new(&emu, Some("not-the-token"));
    let denied = users::get_current_account(&stranger).await;
    assert!(matches!(
        denied,
        Err(dropbox_sdk::Error::Authentication(
            auth::AuthError::InvalidAccessToken
        ))
    ));
    // Bad input: a 400 with text.
    let root = files::get_metadata(&sdk, &files::GetMetadataArg::new("/".into())).await;
    assert!(
        matches!(root, Err(dropbox_sdk::Error::BadRequest(_))),
        "{root:?}"
    );

    // Rate limit and lock contention arrive as typed RateLimited errors.
    emu.faults().update(|m| {
        m.rate_per_sec = 0.5;
        m.rate_burst = 1;
    });
    let _ = users::get_space_usage(&sdk).await;
    let limited = users::get_space_usage(&sdk).await;
    match limited {
        Err(dropbox_sdk::Error::RateLimited {
            reason,
            retry_after_seconds,
        }) => {
            assert!(matches!(reason, auth::RateLimitReason::TooManyRequests));
            assert_eq!(retry_after_seconds, 2);
        }
        other => panic!("expected too_many_requests, got {other:?}"),
    }
    emu.faults().update(|m| {
        m.rate_limit = false;
        m.lock_hold_ms = 3000;
        m.lock_wait_ms = 20;
    });
    let slow_arg = files::CreateFolderArg::new("/slow".into());
    let slow = files::create_folder_v2(&sdk, &slow_arg);
    let contender = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        files::create_folder_v2(&sdk, &files::CreateFolderArg::new("/fast".into())).await
    };
    let (slow, fast) = tokio::join!(slow, contender);
    slow.expect("the lock holder succeeds");
    match fast {
        Err(dropbox_sdk::Error::RateLimited { reason, .. }) => {
            assert!(matches!(
                reason,
                auth::RateLimitReason::TooManyWriteOperations
            ))
        }
        other => panic!("expected too_many_write_operations, got {other:?}"),
    }
}

/// The Python SDK version the script is written against.
const PYTHON_DROPBOX: &str = "12.0.2";

/// The official Python SDK, unmodified, against the emulator over HTTPS.
#[tokio::test]
async fn python_sdk_over_tls() {
    let python = tokio::task::spawn_blocking(|| {
        crate::support::python_with("dropbox", PYTHON_DROPBOX)
            .join("bin")
            .join("python")
    })
    .await
    .expect("venv task");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = EmulatorConfig::new(dir.path());
    config.tls = true;
    config.accounts = vec![ferry_emulator::AccountSpec::new("bob")];
    config.team = Some(ferry_emulator::TeamSpec {
        name: "acme".into(),
        token: None,
        members: vec!["default".into(), "bob".into()],
    });
    let emu = RunningEmulator::start(config).await.expect("emulator");
    let team = emu.team().expect("team").clone();
    let host = format!("localhost:{}", emu.addr().port());
    let cert = emu.cert_path().expect("certificate").to_path_buf();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ferry-emulator/conformance/python_sdk.py");
    let mut command = std::process::Command::new(python);
    command
        .arg(&script)
        .env("DROPBOX_API_HOST", &host)
        .env("DROPBOX_API_CONTENT_HOST", &host)
        .env("DROPBOX_API_NOTIFY_HOST", &host)
        .env("DROPBOX_WEB_HOST", &host)
        .env("FERRY_EMU_TEAM_TOKEN", &team.token)
        .env("FERRY_EMU_TEAM_MEMBER", &team.members[1].1)
        .env("FERRY_EMU_TEAM_ROOT", &team.root_namespace_id)
        .env("FERRY_EMU_TOKEN", emu.token())
        // The SDK posts with `verify=True`, so requests takes the CA bundle from here; its own
        // `ca_certs` argument alone is not enough with current `requests`.
        .env("REQUESTS_CA_BUNDLE", &cert)
        .env("FERRY_EMU_CERT", &cert)
        .env("FERRY_EMU_ADMIN", format!("https://{host}/admin/model"));
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("script task")
        .expect("run the Python conformance script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "Python SDK conformance failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(" checks, 0 failed"), "{stdout}");
    let passed = stdout.lines().filter(|l| l.starts_with("ok   ")).count();
    assert!(passed >= 14, "only {passed} checks ran:\n{stdout}");
}

/// OAuth through the SDK's own `oauth2` module: the authorize URL it builds, the code
/// exchange with PKCE (it repeats `code_verifier`), expiry as a typed 401, and refresh.
#[tokio::test]
async fn sdk_oauth_pkce_expiry_and_refresh() {
    use dropbox_sdk::oauth2::{Authorization, AuthorizeUrlBuilder, Oauth2Type, PkceCode};
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = EmulatorConfig::new(dir.path());
    config.token_lifetime_secs = 1;
    let emu = RunningEmulator::start(config).await.expect("emulator");
    let redirect = "http://localhost:9/cb";
    let flow = Oauth2Type::PKCE(PkceCode::new());
    let url = AuthorizeUrlBuilder::new("ferry-app", &flow)
        .redirect_uri(redirect)
        .state("xyz")
        .build();
    let query = url.query().expect("query").to_owned();
    let page_url = format!("{}/oauth2/authorize", emu.base_url());
    let page = reqwest::get(format!("{page_url}?{query}"))
        .await
        .expect("consent page");
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    let decided = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(&page_url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("{query}&decision=allow"))
        .send()
        .await
        .expect("decision");
    let location = decided.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let code = location
        .split_once("code=")
        .and_then(|(_, rest)| rest.split('&').next())
        .expect("code in the redirect")
        .to_owned();
    assert!(location.ends_with("state=xyz"), "{location}");

    let mut auth =
        Authorization::from_auth_code("ferry-app".into(), flow, code, Some(redirect.into()));
    let token = auth
        .obtain_access_token_async(Sdk::new(&emu, None))
        .await
        .expect("code exchange");
    let user = Sdk::new(&emu, Some(&token));
    users::get_current_account(&user)
        .await
        .expect("the token works");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let expired = users::get_current_account(&user).await;
    assert!(
        matches!(
            expired,
            Err(dropbox_sdk::Error::Authentication(
                auth::AuthError::ExpiredAccessToken
            ))
        ),
        "{expired:?}"
    );
    let refreshed = auth
        .obtain_access_token_async(Sdk::new(&emu, None))
        .await
        .expect("refresh");
    assert_ne!(refreshed, token);
    let user = Sdk::new(&emu, Some(&refreshed));
    users::get_current_account(&user)
        .await
        .expect("the refreshed token works");
    auth::token_revoke(&user).await.expect("revoke");
    let revoked = users::get_current_account(&user).await;
    assert!(
        matches!(
            revoked,
            Err(dropbox_sdk::Error::Authentication(
                auth::AuthError::InvalidAccessToken
            ))
        ),
        "{revoked:?}"
    );
}

/// Teams through the SDK's own header support: `team_select()` (Select-User) and
/// `path_root()` (a serialised `PathRoot`).
#[tokio::test]
async fn sdk_team_select_user_and_path_root() {
    use dropbox_sdk::async_client_trait::TeamSelect;
    use dropbox_sdk::common::PathRoot;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = EmulatorConfig::new(dir.path());
    config.accounts = vec![ferry_emulator::AccountSpec::new("bob")];
    config.team = Some(ferry_emulator::TeamSpec {
        name: "acme".into(),
        token: None,
        members: vec!["default".into(), "bob".into()],
    });
    let emu = RunningEmulator::start(config).await.expect("emulator");
    let team = emu.team().expect("team").clone();
    let bob_id = team.members[1].1.clone();
    let mut as_bob = Sdk::new(&emu, Some(&team.token));
    as_bob.select = Some(TeamSelect::User(bob_id.clone()));
    let account = users::get_current_account(&as_bob)
        .await
        .expect("selected user");
    assert_eq!(account.team_member_id.as_deref(), Some(bob_id.as_str()));
    let dropbox_sdk::common::RootInfo::Team(root) = &account.root_info else {
        panic!("expected a team root, got {:?}", account.root_info)
    };
    assert_eq!(root.root_namespace_id, team.root_namespace_id);
    as_bob.path_root =
        Some(serde_json::to_string(&PathRoot::Root(team.root_namespace_id.clone())).expect("json"));
    files::create_folder_v2(&as_bob, &files::CreateFolderArg::new("/Team Folder".into()))
        .await
        .expect("write in the team root");
    let mut me = Sdk::user(&emu);
    me.path_root = Some(
        serde_json::to_string(&PathRoot::NamespaceId(team.root_namespace_id.clone()))
            .expect("json"),
    );
    let listed = files::list_folder(&me, &files::ListFolderArg::new(String::new()))
        .await
        .expect("other member sees it");
    assert!(matches!(&listed.entries[..], [files::Metadata::Folder(f)] if f.name == "Team Folder"));
    me.path_root = Some(serde_json::to_string(&PathRoot::Root("1".into())).expect("json"));
    let invalid = files::list_folder(&me, &files::ListFolderArg::new(String::new())).await;
    assert!(
        matches!(
            invalid,
            Err(dropbox_sdk::Error::UnexpectedHttpError { code: 422, .. })
        ),
        "{invalid:?}"
    );
}
