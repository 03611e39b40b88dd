//! The `files/*` routes: argument types (with Stone defaults), route logic, and the mapping
//! of tree errors to each route's error union.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_core::content_hash::content_hash;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::faults::{self, FaultModel};
use crate::journal::Cursor;
use crate::metadata;
use crate::paths::{self, PathArg, PathError, PathKind};
use crate::server::{App, Ctx, TempLink};
use crate::sessions::{SessionErr, SessionFailure};
use crate::state::{Commit, Conflict, Key, LookupErr, Node, OpError, Tree, WriteErr};
use crate::wire::{
    self, ApiError, VoidUnion, WriteMode, check_timestamp, from_arg, nested, tag, tagged,
};

/// Default and maximum `list_folder` page size.
const MAX_LIST_LIMIT: u32 = 2000;

/// Runs one `files/*` route.
pub async fn call(
    app: &Ctx<'_>,
    route: &str,
    arg: Value,
    body: Bytes,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    match route {
        "files/upload" => upload(app, arg, body).await,
        "files/upload_session/start" => session_start(app, arg, body).await,
        "files/upload_session/append_v2" => session_append(app, arg, body).await,
        "files/upload_session/append_batch" => session_append_batch(app, arg, body).await,
        "files/upload_session/finish" => session_finish(app, arg, body).await,
        "files/download" => download(app, arg, headers).await,
        "files/get_metadata" => get_metadata(app, arg),
        "files/list_folder" => list_folder(app, arg, false),
        "files/list_folder/get_latest_cursor" => list_folder(app, arg, true),
        "files/list_folder/continue" => list_folder_continue(app, arg),
        "files/create_folder_v2" => create_folder(app, arg).await,
        "files/delete_v2" => delete(app, arg).await,
        "files/move_v2" => relocate(app, arg, false).await,
        "files/copy_v2" => relocate(app, arg, true).await,
        "files/get_temporary_link" => temporary_link(app, arg),
        _ => Err(ApiError::UnknownRoute(route.to_string())),
    }
}

fn ok(value: &Value) -> Result<Response, ApiError> {
    Ok(wire::json(StatusCode::OK, value))
}

// ---------------------------------------------------------------------------------------
// Error values

pub(crate) fn lookup_error(err: LookupErr) -> Value {
    tag(match err {
        LookupErr::Malformed => "malformed_path",
        LookupErr::NotFound => "not_found",
        LookupErr::NotFile => "not_file",
        LookupErr::NotFolder => "not_folder",
    })
}

pub(crate) fn write_error(err: WriteErr) -> Value {
    match err {
        WriteErr::Malformed => tag("malformed_path"),
        WriteErr::InsufficientSpace => tag("insufficient_space"),
        WriteErr::Conflict(kind) => nested(
            "conflict",
            tag(match kind {
                Conflict::File => "file",
                Conflict::Folder => "folder",
                Conflict::FileAncestor => "file_ancestor",
            }),
        ),
    }
}

pub(crate) fn session_error(err: SessionErr) -> Value {
    match err {
        SessionErr::NotFound => tag("not_found"),
        SessionErr::IncorrectOffset(correct) => {
            let mut fields = Map::new();
            fields.insert("correct_offset".into(), correct.into());
            tagged("incorrect_offset", fields)
        }
        SessionErr::Closed => tag("closed"),
        SessionErr::TooLarge => tag("too_large"),
        SessionErr::NotClosed => tag("not_closed"),
        SessionErr::ConcurrentInvalidOffset => tag("concurrent_session_invalid_offset"),
        SessionErr::ConcurrentInvalidDataSize => tag("concurrent_session_invalid_data_size"),
        SessionErr::ConcurrentDataNotAllowed => tag("concurrent_session_data_not_allowed"),
        SessionErr::ConcurrentCloseNotAllowed => tag("concurrent_session_close_not_allowed"),
        SessionErr::ConcurrentNotClosed => tag("concurrent_session_not_closed"),
        SessionErr::ConcurrentMissingData => tag("concurrent_session_missing_data"),
    }
}

/// `UploadSessionFinishError` for a session problem: lookup errors nested under
/// `lookup_failed`, concurrent-session errors at the top level.
pub(crate) fn finish_session_error(err: SessionErr) -> Value {
    if err.is_top_level() {
        session_error(err)
    } else {
        nested("lookup_failed", session_error(err))
    }
}

/// A 409 for a lookup failure, nested under `member` (e.g. `path`, `path_lookup`).
pub(crate) fn lookup_failed(member: &str, err: LookupErr) -> ApiError {
    ApiError::route(nested(member, lookup_error(err)))
}

/// Parses a path field: bad syntax is a 400, a malformed path becomes the route error built
/// by `malformed`.
pub(crate) fn parse_path(
    field: &str,
    raw: &str,
    kind: PathKind,
    allow_root: bool,
    malformed: impl FnOnce() -> ApiError,
) -> Result<PathArg, ApiError> {
    match paths::parse(raw, kind, allow_root) {
        Ok(arg) => Ok(arg),
        Err(err @ PathError::Malformed(_)) => {
            tracing::debug!(field, ?err, "malformed path");
            Err(malformed())
        }
        Err(err) => Err(ApiError::BadArg(
            err.bad_request_detail(field).unwrap_or_default(),
        )),
    }
}

fn session_failure(err: SessionFailure, wrap: impl FnOnce(Value) -> Value) -> ApiError {
    match err {
        SessionFailure::Refused(err) => ApiError::route(wrap(session_error(err))),
        SessionFailure::Io(err) => err.into(),
    }
}

pub(crate) fn content_hash_checked(
    expected: Option<&str>,
    data: &[u8],
) -> Result<String, ApiError> {
    let actual = content_hash(data);
    match expected {
        Some(expected) if expected != actual => Err(ApiError::route(tag("content_hash_mismatch"))),
        _ => Ok(actual),
    }
}

/// Checks `data` against an optional content hash; without one nothing is hashed (session
/// chunks are checked as a whole when the session is committed).
fn content_hash_if_given(expected: Option<&str>, data: &[u8]) -> Result<(), ApiError> {
    if expected.is_some() {
        content_hash_checked(expected, data)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Uploads

/// `CommitInfo`, plus `UploadArg.content_hash`. Absent fields take Stone defaults.
#[derive(Debug, Deserialize)]
pub(crate) struct CommitArg {
    path: String,
    #[serde(default)]
    mode: WriteMode,
    #[serde(default)]
    autorename: bool,
    #[serde(default)]
    client_modified: Option<String>,
    #[serde(default)]
    #[allow(dead_code)] // Notifications do not exist here.
    mute: bool,
    #[serde(default)]
    strict_conflict: bool,
    #[serde(default)]
    content_hash: Option<String>,
}

impl CommitArg {
    /// Validates the path and timestamp; `field` prefixes 400 messages (`path`,
    /// `commit.path`).
    pub(crate) fn parse(
        &self,
        prefix: &str,
        malformed: impl FnOnce() -> ApiError,
    ) -> Result<PathArg, ApiError> {
        if let Some(ts) = &self.client_modified {
            check_timestamp(&format!("{prefix}client_modified"), ts)?;
        }
        parse_path(
            &format!("{prefix}path"),
            &self.path,
            PathKind::WriteOrId,
            false,
            malformed,
        )
    }

    fn commit(&self, target: String, content_hash: String, size: u64) -> Commit {
        Commit {
            target,
            mode: self.mode.clone(),
            autorename: self.autorename,
            strict_conflict: self.strict_conflict,
            client_modified: self.client_modified.clone(),
            content_hash,
            size,
        }
    }
}

/// Commits stored content at the commit's path; returns the file's metadata.
pub(crate) fn commit_content(
    app: &Ctx<'_>,
    path: &PathArg,
    commit: &CommitArg,
    hash: String,
    size: u64,
) -> Result<Node, OpError> {
    let mut tree = app.tree();
    commit_in(&mut tree, path, commit, hash, size)
}

/// Commits stored content on an already locked tree.
pub(crate) fn commit_in(
    tree: &mut Tree,
    path: &PathArg,
    commit: &CommitArg,
    hash: String,
    size: u64,
) -> Result<Node, OpError> {
    let target = tree.write_target(path)?;
    tree.commit_file(&commit.commit(target, hash, size))
}

pub(crate) fn file_metadata(node: &Node) -> Value {
    match &node.file {
        Some(info) => metadata::file(&node.display, &node.id, info),
        None => metadata::folder(&node.display, &node.id),
    }
}

async fn upload(app: &Ctx<'_>, arg: Value, body: Bytes) -> Result<Response, ApiError> {
    let arg: CommitArg = from_arg(arg)?;
    // UploadError.path is the struct UploadWriteFailed, flattened next to `.tag`.
    let upload_failed = |reason: Value, session: &str| {
        let mut fields = Map::new();
        fields.insert("reason".into(), reason);
        fields.insert("upload_session_id".into(), session.into());
        ApiError::route(tagged("path", fields))
    };
    let path = arg.parse("", || upload_failed(write_error(WriteErr::Malformed), ""))?;
    let hash = content_hash_checked(arg.content_hash.as_deref(), &body)?;
    app.blobs.put(&hash, &body).await?;
    let lock = app.lock_writes(&app.model, 1).await?;
    let committed = commit_content(app, &path, &arg, hash, body.len() as u64);
    lock.release().await;
    match committed {
        Ok(node) => ok(&file_metadata(&node)),
        Err(OpError::Io(err)) => Err(err.into()),
        Err(err) => {
            // Like Dropbox, keep the data in a closed session so the commit can be retried
            // with upload_session/finish.
            let session = { app.sessions.start(&body, true).await? };
            let reason = match err {
                OpError::Write(err) => write_error(err),
                _ => write_error(WriteErr::Malformed),
            };
            Err(upload_failed(reason, &session))
        }
    }
}

#[derive(Debug, Deserialize)]
struct SessionStartArg {
    #[serde(default)]
    close: bool,
    #[serde(default)]
    session_type: Option<VoidUnion>,
    #[serde(default)]
    content_hash: Option<String>,
}

async fn session_start(app: &Ctx<'_>, arg: Value, body: Bytes) -> Result<Response, ApiError> {
    let arg: SessionStartArg = from_arg(arg)?;
    if let Some(VoidUnion(kind)) = &arg.session_type
        && kind != "sequential"
        && kind != "concurrent"
    {
        return Err(ApiError::BadArg(format!(
            "session_type: unknown tag '{kind}'"
        )));
    }
    let concurrent = arg
        .session_type
        .as_ref()
        .is_some_and(|VoidUnion(kind)| kind == "concurrent");
    content_hash_if_given(arg.content_hash.as_deref(), &body)?;
    let session_id = app
        .sessions
        .start_typed(&body, arg.close, concurrent)
        .await
        .map_err(|err| session_failure(err, |e| e))?;
    if !arg.close {
        app.app
            .open_sessions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    ok(&json!({ "session_id": session_id }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct SessionCursor {
    pub(crate) session_id: String,
    pub(crate) offset: u64,
}

#[derive(Debug, Deserialize)]
struct SessionAppendArg {
    cursor: SessionCursor,
    #[serde(default)]
    close: bool,
    #[serde(default)]
    content_hash: Option<String>,
}

async fn session_append(app: &Ctx<'_>, arg: Value, body: Bytes) -> Result<Response, ApiError> {
    let arg: SessionAppendArg = from_arg(arg)?;
    content_hash_if_given(arg.content_hash.as_deref(), &body)?;
    app.sessions
        .append(&arg.cursor.session_id, arg.cursor.offset, &body, arg.close)
        .await
        .map_err(|err| session_failure(err, |e| e))?;
    ok(&Value::Null)
}

/// Sessions one `append_batch` call may append to.
const MAX_APPEND_BATCH: usize = 1000;

#[derive(Debug, Deserialize)]
struct AppendBatchEntry {
    cursor: SessionCursor,
    length: u64,
    #[serde(default)]
    close: bool,
}

#[derive(Debug, Deserialize)]
struct AppendBatchArg {
    entries: Vec<AppendBatchEntry>,
    #[serde(default)]
    content_hash: Option<String>,
}

/// `upload_session/append_batch`: the body is the entries' pieces, concatenated in order.
/// Entries succeed or fail one by one (`UploadSessionAppendBatchEntryError`); a body that does
/// not add up to the declared lengths fails the whole call (`length_mismatch`).
async fn session_append_batch(
    app: &Ctx<'_>,
    arg: Value,
    body: Bytes,
) -> Result<Response, ApiError> {
    let arg: AppendBatchArg = from_arg(arg)?;
    if arg.entries.len() > MAX_APPEND_BATCH {
        return Err(ApiError::BadArg(format!(
            "entries: list has {} items, more than the maximum of {MAX_APPEND_BATCH}",
            arg.entries.len()
        )));
    }
    let declared = arg
        .entries
        .iter()
        .try_fold(0u64, |sum, e| sum.checked_add(e.length));
    if declared != Some(body.len() as u64) {
        return Err(ApiError::route(tag("length_mismatch")));
    }
    content_hash_if_given(arg.content_hash.as_deref(), &body)?;
    let mut results = Vec::with_capacity(arg.entries.len());
    let mut at = 0usize;
    for entry in &arg.entries {
        // Lengths add up to the body's length, so each fits in usize.
        let end = at + usize::try_from(entry.length).unwrap_or(0);
        let piece = &body[at..end];
        at = end;
        let appended = app
            .sessions
            .append(
                &entry.cursor.session_id,
                entry.cursor.offset,
                piece,
                entry.close,
            )
            .await;
        results.push(match appended {
            Ok(_) => tag("success"),
            Err(SessionFailure::Refused(err)) => nested("failure", session_error(err)),
            Err(SessionFailure::Io(err)) => return Err(err.into()),
        });
    }
    ok(&json!({ "entries": results }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct SessionFinishArg {
    pub(crate) cursor: SessionCursor,
    pub(crate) commit: CommitArg,
    #[serde(default)]
    content_hash: Option<String>,
}

async fn session_finish(app: &Ctx<'_>, arg: Value, body: Bytes) -> Result<Response, ApiError> {
    let arg: SessionFinishArg = from_arg(arg)?;
    // UploadSessionFinishError.path is a plain WriteError, nested.
    let path = arg.commit.parse("commit.", || {
        ApiError::route(nested("path", write_error(WriteErr::Malformed)))
    })?;
    content_hash_if_given(arg.content_hash.as_deref(), &body)?;
    let id = &arg.cursor.session_id;
    app.sessions
        .prepare_finish(id, arg.cursor.offset, &body, false)
        .await
        .map_err(finish_failure)?;
    let data = app.sessions.data_path(id);
    let (hash, size) = crate::blobs::hash_file(&data).await?;
    if app.sessions.is_sealed(id).await {
        app.blobs.link_file(&hash, &data).await?;
    } else {
        app.blobs.put_file(&hash, &data).await?;
    }
    let lock = app.lock_writes(&app.model, 1).await?;
    let committed = commit_content(app, &path, &arg.commit, hash, size);
    lock.release().await;
    match committed {
        Ok(node) => {
            app.sessions.remove(id).await;
            ok(&file_metadata(&node))
        }
        Err(err) => Err(err_to_finish(err)),
    }
}

/// A session failure in `finish` as `UploadSessionFinishError`.
pub(crate) fn finish_failure(err: SessionFailure) -> ApiError {
    match err {
        SessionFailure::Refused(err) => ApiError::route(finish_session_error(err)),
        SessionFailure::Io(err) => err.into(),
    }
}

/// A failed session commit as `UploadSessionFinishError` (`path` holds a plain WriteError).
pub(crate) fn err_to_finish(err: OpError) -> ApiError {
    match err {
        OpError::Write(err) => ApiError::route(nested("path", write_error(err))),
        OpError::Io(err) => err.into(),
        _ => ApiError::route(nested("path", write_error(WriteErr::Malformed))),
    }
}

// ---------------------------------------------------------------------------------------
// Reads

#[derive(Debug, Deserialize)]
struct PathOnlyArg {
    path: String,
    #[serde(default)]
    include_deleted: bool,
}

/// Resolves a read path to an existing node (or, with `include_deleted`, a tombstone).
enum Found {
    Node(Node),
    Deleted(String),
}

fn find(app: &Ctx<'_>, path: &PathArg, include_deleted: bool) -> Result<Found, LookupErr> {
    let tree = app.tree();
    match tree.resolve(path)? {
        Key::Root => Err(LookupErr::NotFile),
        Key::Rev(rev) => tree
            .rev(&rev)
            .cloned()
            .map(Found::Node)
            .ok_or(LookupErr::NotFound),
        Key::Path(lower) => match tree.get(&lower) {
            Some(node) => Ok(Found::Node(node.clone())),
            None => match tree.tombstone(&lower) {
                Some(display) if include_deleted => Ok(Found::Deleted(display.to_string())),
                _ => Err(LookupErr::NotFound),
            },
        },
    }
}

async fn download(app: &Ctx<'_>, arg: Value, headers: &HeaderMap) -> Result<Response, ApiError> {
    let arg: PathOnlyArg = from_arg(arg)?;
    let path = parse_path("path", &arg.path, PathKind::Read, false, || {
        lookup_failed("path", LookupErr::Malformed)
    })?;
    let node = match find(app, &path, false) {
        Ok(Found::Node(node)) => node,
        Ok(Found::Deleted(_)) => return Err(lookup_failed("path", LookupErr::NotFound)),
        Err(err) => return Err(lookup_failed("path", err)),
    };
    let Some(info) = &node.file else {
        return Err(lookup_failed("path", LookupErr::NotFile));
    };
    let content = app.blobs.read(&info.content_hash).await?;
    let result = wire::ascii_json(&file_metadata(&node));
    let size = content.len() as u64;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, size));
    let (status, body, content_range) = match range {
        None => (StatusCode::OK, content, None),
        Some(None) => return Err(ApiError::RangeNotSatisfiable(size)),
        Some(Some((start, end))) => {
            let slice = content
                .get(start as usize..=end as usize)
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            (
                StatusCode::PARTIAL_CONTENT,
                slice,
                Some(format!("bytes {start}-{end}/{size}")),
            )
        }
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let result = HeaderValue::from_str(&result)
        .map_err(|e| ApiError::Internal(format!("Dropbox-API-Result: {e}")))?;
    headers.insert("dropbox-api-result", result);
    if let Some(range) = content_range.and_then(|r| HeaderValue::from_str(&r).ok()) {
        headers.insert(header::CONTENT_RANGE, range);
    }
    Ok(response)
}

/// `bytes=S-E`, `bytes=S-` or `bytes=-N` → inclusive byte positions; `None` if unsatisfiable.
fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let (start, end) = spec.split_once('-')?;
    let (start, end) = (start.trim(), end.trim());
    if size == 0 {
        return None;
    }
    let last = size - 1;
    match (start.is_empty(), end.is_empty()) {
        (true, false) => {
            let n: u64 = end.parse().ok()?;
            (n > 0).then(|| (size.saturating_sub(n), last))
        }
        (false, _) => {
            let start: u64 = start.parse().ok()?;
            let end: u64 = if end.is_empty() {
                last
            } else {
                end.parse().ok()?
            };
            (start <= end && start <= last).then(|| (start, end.min(last)))
        }
        (true, true) => None,
    }
}

fn get_metadata(app: &Ctx<'_>, arg: Value) -> Result<Response, ApiError> {
    let arg: PathOnlyArg = from_arg(arg)?;
    let path = parse_path("path", &arg.path, PathKind::Read, false, || {
        lookup_failed("path", LookupErr::Malformed)
    })?;
    match find(app, &path, arg.include_deleted) {
        Ok(Found::Node(node)) => ok(&node.tagged_metadata()),
        Ok(Found::Deleted(display)) => ok(&metadata::deleted(&display)),
        // `ns:<id>` alone names the root, which get_metadata does not support.
        Err(LookupErr::NotFile) => Err(ApiError::BadArg(
            PathError::RootUnsupported
                .bad_request_detail("path")
                .unwrap_or_default(),
        )),
        Err(err) => Err(lookup_failed("path", err)),
    }
}

// ---------------------------------------------------------------------------------------
// Listing

#[derive(Debug, Deserialize)]
struct ListFolderArg {
    path: String,
    #[serde(default)]
    recursive: bool,
    #[serde(default)]
    include_deleted: bool,
    #[serde(default)]
    limit: Option<u32>,
}

fn list_folder(app: &Ctx<'_>, arg: Value, latest_only: bool) -> Result<Response, ApiError> {
    let arg: ListFolderArg = from_arg(arg)?;
    if let Some(limit) = arg.limit
        && !(1..=MAX_LIST_LIMIT).contains(&limit)
    {
        return Err(ApiError::BadArg(format!(
            "limit: {limit} is not within the range 1 to {MAX_LIST_LIMIT}"
        )));
    }
    let path = parse_path("path", &arg.path, PathKind::ReadOrId, true, || {
        lookup_failed("path", LookupErr::Malformed)
    })?;
    let tree = app.tree();
    let scope = match tree.resolve(&path).map_err(|e| lookup_failed("path", e))? {
        Key::Root => String::new(),
        Key::Rev(_) => return Err(lookup_failed("path", LookupErr::NotFolder)),
        Key::Path(lower) => match tree.get(&lower) {
            None => return Err(lookup_failed("path", LookupErr::NotFound)),
            Some(node) if node.file.is_some() => {
                return Err(lookup_failed("path", LookupErr::NotFolder));
            }
            Some(_) => lower,
        },
    };
    let mut cursor = Cursor {
        journal_id: app.account.journal_id.clone(),
        scope,
        recursive: arg.recursive,
        include_deleted: arg.include_deleted,
        seq: tree.head(),
        after: None,
        limit: arg.limit,
        issued: Some(wire::unix_now()),
    };
    if latest_only {
        return ok(&json!({ "cursor": cursor.encode() }));
    }
    let limit = arg.limit.unwrap_or(MAX_LIST_LIMIT) as usize;
    let (entries, last, has_more) = tree.list(
        &cursor.scope,
        cursor.recursive,
        cursor.include_deleted,
        None,
        limit,
    );
    if has_more {
        cursor.after = last;
    }
    ok(&json!({ "entries": entries, "cursor": cursor.encode(), "has_more": has_more }))
}

#[derive(Debug, Deserialize)]
struct ListFolderContinueArg {
    cursor: String,
}

fn list_folder_continue(app: &Ctx<'_>, arg: Value) -> Result<Response, ApiError> {
    let arg: ListFolderContinueArg = from_arg(arg)?;
    if arg.cursor.is_empty() {
        return Err(ApiError::BadArg("cursor: '' is shorter than 1".into()));
    }
    let reset = || ApiError::route(tag("reset"));
    let mut cursor = Cursor::decode(&arg.cursor).ok_or_else(reset)?;
    let tree = app.tree();
    if cursor.journal_id != app.account.journal_id {
        return Err(reset());
    }
    check_cursor(&cursor, tree.head(), &app.model)?;
    cursor.issued = Some(wire::unix_now());
    let limit = cursor
        .limit
        .unwrap_or(MAX_LIST_LIMIT)
        .clamp(1, MAX_LIST_LIMIT) as usize;
    let (entries, has_more) = match cursor.after.take() {
        // Still paging through the initial listing.
        Some(after) => {
            let (entries, last, has_more) = tree.list(
                &cursor.scope,
                cursor.recursive,
                cursor.include_deleted,
                Some(&after),
                limit,
            );
            if has_more {
                cursor.after = last;
            }
            (entries, has_more)
        }
        None => {
            let (entries, position, has_more) =
                tree.changes_since(&cursor.scope, cursor.recursive, cursor.seq, limit);
            cursor.seq = position;
            (entries, has_more)
        }
    };
    ok(&json!({ "entries": entries, "cursor": cursor.encode(), "has_more": has_more }))
}

// ---------------------------------------------------------------------------------------
// Writes without content. Each `*_op` runs one operation on a locked tree and returns the
// route's own error value as `ApiError::Route`, so batches can reuse it per entry.

#[derive(Debug, Deserialize)]
pub(crate) struct CreateFolderArg {
    pub(crate) path: String,
    #[serde(default)]
    pub(crate) autorename: bool,
}

fn write_failed(err: WriteErr) -> ApiError {
    ApiError::route(nested("path", write_error(err)))
}

/// Parses a `create_folder` path (400 on bad syntax; malformed = `path/malformed_path`).
pub(crate) fn create_folder_path(raw: &str) -> Result<Result<PathArg, ApiError>, ApiError> {
    split_route_error(parse_path("path", raw, PathKind::Write, false, || {
        write_failed(WriteErr::Malformed)
    }))
}

/// Separates route errors (per entry) from 400s (whole request).
fn split_route_error<T>(r: Result<T, ApiError>) -> Result<Result<T, ApiError>, ApiError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(err @ ApiError::Route(_)) => Ok(Err(err)),
        Err(err) => Err(err),
    }
}

/// Creates one folder; `CreateFolderError` on failure.
pub(crate) fn create_folder_op(
    tree: &mut Tree,
    path: &PathArg,
    autorename: bool,
) -> Result<Node, ApiError> {
    let target = tree.write_target(path).map_err(write_failed)?;
    match tree.create_folder(&target, autorename) {
        Ok(node) => Ok(node),
        Err(OpError::Write(err)) => Err(write_failed(err)),
        Err(OpError::Io(err)) => Err(err.into()),
        Err(_) => Err(write_failed(WriteErr::Malformed)),
    }
}

async fn create_folder(app: &Ctx<'_>, arg: Value) -> Result<Response, ApiError> {
    let arg: CreateFolderArg = from_arg(arg)?;
    let path = create_folder_path(&arg.path)??;
    let lock = app.lock_writes(&app.model, 1).await?;
    let result = create_folder_op(&mut app.tree(), &path, arg.autorename);
    lock.release().await;
    let node = result?;
    ok(&json!({ "metadata": file_metadata(&node) }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct DeleteArg {
    pub(crate) path: String,
    #[serde(default)]
    pub(crate) parent_rev: Option<String>,
}

impl DeleteArg {
    /// `parent_rev` must match Stone's `Rev` pattern (a 400 otherwise, as Dropbox).
    pub(crate) fn check_rev(&self, field: &str) -> Result<(), ApiError> {
        match &self.parent_rev {
            Some(rev)
                if rev.len() < 9
                    || !rev.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
            {
                Err(ApiError::BadArg(format!(
                    "{field}: '{rev}' did not match pattern '[0-9a-f]+'"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// Parses a `delete` path.
pub(crate) fn delete_path(raw: &str) -> Result<Result<PathArg, ApiError>, ApiError> {
    split_route_error(parse_path("path", raw, PathKind::WriteOrId, false, || {
        lookup_failed("path_lookup", LookupErr::Malformed)
    }))
}

/// Deletes one item; `DeleteError` on failure. Returns the metadata before deletion.
pub(crate) fn delete_op(
    tree: &mut Tree,
    path: &PathArg,
    parent_rev: Option<&str>,
) -> Result<Node, ApiError> {
    let lower = match tree
        .resolve(path)
        .map_err(|e| lookup_failed("path_lookup", e))?
    {
        Key::Path(lower) => lower,
        Key::Root | Key::Rev(_) => return Err(lookup_failed("path_lookup", LookupErr::Malformed)),
    };
    match tree.delete(&lower, parent_rev) {
        Ok(node) => Ok(node),
        Err(OpError::Lookup(err)) => Err(lookup_failed("path_lookup", err)),
        Err(OpError::Write(err)) => Err(ApiError::route(nested("path_write", write_error(err)))),
        Err(OpError::Io(err)) => Err(err.into()),
        Err(OpError::MoveIntoItself) => Err(lookup_failed("path_lookup", LookupErr::Malformed)),
    }
}

async fn delete(app: &Ctx<'_>, arg: Value) -> Result<Response, ApiError> {
    let arg: DeleteArg = from_arg(arg)?;
    arg.check_rev("parent_rev")?;
    let path = delete_path(&arg.path)??;
    let lock = app.lock_writes(&app.model, 1).await?;
    let result = delete_op(&mut app.tree(), &path, arg.parent_rev.as_deref());
    lock.release().await;
    let node = result?;
    ok(&json!({ "metadata": node.tagged_metadata() }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct RelocationArg {
    pub(crate) from_path: String,
    pub(crate) to_path: String,
    #[serde(default)]
    pub(crate) autorename: bool,
}

fn to_failed(err: WriteErr) -> ApiError {
    ApiError::route(nested("to", write_error(err)))
}

/// Parses both paths of a move or copy.
pub(crate) fn relocation_paths(
    from_path: &str,
    to_path: &str,
) -> Result<Result<(PathArg, PathArg), ApiError>, ApiError> {
    let from = split_route_error(parse_path(
        "from_path",
        from_path,
        PathKind::WriteOrId,
        false,
        || lookup_failed("from_lookup", LookupErr::Malformed),
    ))?;
    let to = split_route_error(parse_path(
        "to_path",
        to_path,
        PathKind::WriteOrId,
        false,
        || to_failed(WriteErr::Malformed),
    ))?;
    Ok(match (from, to) {
        (Ok(from), Ok(to)) => Ok((from, to)),
        (Err(e), _) | (_, Err(e)) => Err(e),
    })
}

/// Moves or copies one item; `RelocationError` on failure.
pub(crate) fn relocate_op(
    tree: &mut Tree,
    from: &PathArg,
    to: &PathArg,
    autorename: bool,
    copy: bool,
) -> Result<Node, ApiError> {
    let from = match tree
        .resolve(from)
        .map_err(|e| lookup_failed("from_lookup", e))?
    {
        Key::Path(lower) => lower,
        Key::Root | Key::Rev(_) => return Err(lookup_failed("from_lookup", LookupErr::Malformed)),
    };
    let target = tree.write_target(to).map_err(to_failed)?;
    let result = if copy {
        tree.copy(&from, &target, autorename)
    } else {
        tree.relocate(&from, &target, autorename)
    };
    match result {
        Ok(node) => Ok(node),
        Err(OpError::Lookup(err)) => Err(lookup_failed("from_lookup", err)),
        Err(OpError::Write(WriteErr::InsufficientSpace)) => {
            Err(ApiError::route(tag("insufficient_quota")))
        }
        Err(OpError::Write(err)) => Err(to_failed(err)),
        Err(OpError::MoveIntoItself) => Err(ApiError::route(tag("cant_move_folder_into_itself"))),
        Err(OpError::Io(err)) => Err(err.into()),
    }
}

async fn relocate(app: &Ctx<'_>, arg: Value, copy: bool) -> Result<Response, ApiError> {
    let arg: RelocationArg = from_arg(arg)?;
    let (from, to) = relocation_paths(&arg.from_path, &arg.to_path)??;
    let lock = app.lock_writes(&app.model, 1).await?;
    let result = relocate_op(&mut app.tree(), &from, &to, arg.autorename, copy);
    lock.release().await;
    let node = result?;
    ok(&json!({ "metadata": node.tagged_metadata() }))
}

// ---------------------------------------------------------------------------------------
// Temporary links and long-poll

/// How long a temporary link works (Dropbox: four hours).
const TEMP_LINK_LIFETIME: std::time::Duration = std::time::Duration::from_secs(4 * 3600);

fn temporary_link(app: &Ctx<'_>, arg: Value) -> Result<Response, ApiError> {
    let arg: PathOnlyArg = from_arg(arg)?;
    let path = parse_path("path", &arg.path, PathKind::Read, false, || {
        lookup_failed("path", LookupErr::Malformed)
    })?;
    let node = match find(app, &path, false) {
        Ok(Found::Node(node)) => node,
        Ok(Found::Deleted(_)) => return Err(lookup_failed("path", LookupErr::NotFound)),
        Err(err) => return Err(lookup_failed("path", err)),
    };
    let Some(info) = &node.file else {
        return Err(lookup_failed("path", LookupErr::NotFile));
    };
    let key = wire::random_token(43);
    app.app
        .temp_links
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            key.clone(),
            TempLink {
                space: std::sync::Arc::clone(app.space),
                content_hash: info.content_hash.clone(),
                expires: std::time::Instant::now() + TEMP_LINK_LIFETIME,
            },
        );
    let link = format!(
        "{}/temp/{key}/{}",
        app.origin,
        percent_encode(paths::file_name(&node.display))
    );
    ok(&json!({ "metadata": file_metadata(&node), "link": link }))
}

/// Percent-encodes everything but unreserved characters (for a name in a URL path).
fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Debug, Deserialize)]
struct LongpollArg {
    cursor: String,
    #[serde(default = "default_longpoll_timeout")]
    timeout: u64,
}

fn default_longpoll_timeout() -> u64 {
    30
}

/// `files/list_folder/longpoll` (no auth): blocks until something in the cursor's scope
/// changes (woken by every commit, so well within 100 ms) or the timeout passes.
pub async fn longpoll(app: &App, arg: Value, model: &FaultModel) -> Result<Response, ApiError> {
    let arg: LongpollArg = from_arg(arg)?;
    if !(30..=480).contains(&arg.timeout) {
        return Err(ApiError::BadArg(format!(
            "timeout: {} is not within the range 30 to 480",
            arg.timeout
        )));
    }
    if arg.cursor.is_empty() {
        return Err(ApiError::BadArg("cursor: '' is shorter than 1".into()));
    }
    let reset = || ApiError::route(tag("reset"));
    let cursor = Cursor::decode(&arg.cursor).ok_or_else(reset)?;
    let space = app.space_by_journal(&cursor.journal_id).ok_or_else(reset)?;
    check_cursor(&cursor, space.tree().head(), model)?;
    let mut wait = std::time::Duration::from_secs(arg.timeout);
    if let Some(cap) = model.longpoll_cap_ms {
        wait = wait.min(std::time::Duration::from_millis(cap));
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = space.changes.clone();
    let changed = loop {
        // Mark the current value seen before checking, so no commit slips between.
        changes.borrow_and_update();
        if space
            .tree()
            .has_changes(&cursor.scope, cursor.recursive, cursor.seq)
        {
            break true;
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) | Err(_) => break false,
        }
    };
    let mut result = Map::new();
    result.insert("changes".into(), changed.into());
    if let Some(backoff) = model.longpoll_backoff_secs {
        result.insert("backoff".into(), backoff.into());
    }
    ok(&Value::Object(result))
}

/// `reset` for cursors past the journal head, too old, or by injected fault.
fn check_cursor(cursor: &Cursor, head: u64, model: &FaultModel) -> Result<(), ApiError> {
    let reset = || ApiError::route(tag("reset"));
    if cursor.seq > head {
        return Err(reset());
    }
    if let (Some(max_age), Some(issued)) = (model.cursor_max_age_secs, cursor.issued)
        && wire::unix_now().saturating_sub(issued) > max_age
    {
        return Err(reset());
    }
    if faults::roll(model.p_cursor_reset) {
        return Err(reset());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-4", 10), Some((0, 4)));
        assert_eq!(parse_range("bytes=5-", 10), Some((5, 9)));
        assert_eq!(parse_range("bytes=-3", 10), Some((7, 9)));
        assert_eq!(parse_range("bytes=-30", 10), Some((0, 9)));
        assert_eq!(parse_range("bytes=8-100", 10), Some((8, 9)));
        assert_eq!(parse_range("bytes=10-", 10), None);
        assert_eq!(parse_range("bytes=4-2", 10), None);
        assert_eq!(parse_range("items=0-1", 10), None);
        assert_eq!(parse_range("bytes=0-0", 0), None);
    }
}
