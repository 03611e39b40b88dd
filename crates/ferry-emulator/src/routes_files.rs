//! The `files/*` routes: argument types (with Stone defaults), route logic, and the mapping
//! of tree errors to each route's error union.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_core::content_hash::content_hash;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::journal::Cursor;
use crate::metadata;
use crate::paths::{self, PathArg, PathError, PathKind};
use crate::server::App;
use crate::sessions::{SessionErr, SessionFailure};
use crate::state::{Commit, Conflict, Key, LookupErr, Node, OpError, WriteErr};
use crate::wire::{
    self, ApiError, VoidUnion, WriteMode, check_timestamp, from_arg, nested, tag, tagged,
};

/// Default and maximum `list_folder` page size.
const MAX_LIST_LIMIT: u32 = 2000;

/// Runs one `files/*` route.
pub async fn call(
    app: &App,
    route: &str,
    arg: Value,
    body: Bytes,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    match route {
        "files/upload" => upload(app, arg, body).await,
        "files/upload_session/start" => session_start(app, arg, body).await,
        "files/upload_session/append_v2" => session_append(app, arg, body).await,
        "files/upload_session/finish" => session_finish(app, arg, body).await,
        "files/download" => download(app, arg, headers).await,
        "files/get_metadata" => get_metadata(app, arg),
        "files/list_folder" => list_folder(app, arg, false),
        "files/list_folder/get_latest_cursor" => list_folder(app, arg, true),
        "files/list_folder/continue" => list_folder_continue(app, arg),
        "files/create_folder_v2" => create_folder(app, arg),
        "files/delete_v2" => delete(app, arg),
        "files/move_v2" => relocate(app, arg),
        _ => Err(ApiError::UnknownRoute(route.to_string())),
    }
}

fn ok(value: &Value) -> Result<Response, ApiError> {
    Ok(wire::json(StatusCode::OK, value))
}

// ---------------------------------------------------------------------------------------
// Error values

fn lookup_error(err: LookupErr) -> Value {
    tag(match err {
        LookupErr::Malformed => "malformed_path",
        LookupErr::NotFound => "not_found",
        LookupErr::NotFile => "not_file",
        LookupErr::NotFolder => "not_folder",
    })
}

fn write_error(err: WriteErr) -> Value {
    match err {
        WriteErr::Malformed => tag("malformed_path"),
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

fn session_error(err: SessionErr) -> Value {
    match err {
        SessionErr::NotFound => tag("not_found"),
        SessionErr::IncorrectOffset(correct) => {
            let mut fields = Map::new();
            fields.insert("correct_offset".into(), correct.into());
            tagged("incorrect_offset", fields)
        }
        SessionErr::Closed => tag("closed"),
        SessionErr::TooLarge => tag("too_large"),
    }
}

/// A 409 for a lookup failure, nested under `member` (e.g. `path`, `path_lookup`).
fn lookup_failed(member: &str, err: LookupErr) -> ApiError {
    ApiError::route(nested(member, lookup_error(err)))
}

/// Parses a path field: bad syntax is a 400, a malformed path becomes the route error built
/// by `malformed`.
fn parse_path(
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

fn content_hash_checked(expected: Option<&str>, data: &[u8]) -> Result<String, ApiError> {
    let actual = content_hash(data);
    match expected {
        Some(expected) if expected != actual => Err(ApiError::route(tag("content_hash_mismatch"))),
        _ => Ok(actual),
    }
}

// ---------------------------------------------------------------------------------------
// Uploads

/// `CommitInfo`, plus `UploadArg.content_hash`. Absent fields take Stone defaults.
#[derive(Debug, Deserialize)]
struct CommitArg {
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
    fn parse(
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
fn commit_content(
    app: &App,
    path: &PathArg,
    commit: &CommitArg,
    hash: String,
    size: u64,
) -> Result<Node, OpError> {
    let mut tree = app.tree();
    let target = tree.write_target(path)?;
    tree.commit_file(&commit.commit(target, hash, size))
}

fn file_metadata(node: &Node) -> Value {
    match &node.file {
        Some(info) => metadata::file(&node.display, &node.id, info),
        None => metadata::folder(&node.display, &node.id),
    }
}

async fn upload(app: &App, arg: Value, body: Bytes) -> Result<Response, ApiError> {
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
    match commit_content(app, &path, &arg, hash, body.len() as u64) {
        Ok(node) => ok(&file_metadata(&node)),
        Err(OpError::Io(err)) => Err(err.into()),
        Err(err) => {
            // Like Dropbox, keep the data in a closed session so the commit can be retried
            // with upload_session/finish.
            let session = {
                let _guard = app.sessions.lock().await;
                app.sessions.start(&body, true).await?
            };
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

async fn session_start(app: &App, arg: Value, body: Bytes) -> Result<Response, ApiError> {
    let arg: SessionStartArg = from_arg(arg)?;
    if let Some(VoidUnion(kind)) = &arg.session_type
        && kind != "sequential"
        && kind != "concurrent"
    {
        return Err(ApiError::BadArg(format!(
            "session_type: unknown tag '{kind}'"
        )));
    }
    content_hash_checked(arg.content_hash.as_deref(), &body)?;
    let _guard = app.sessions.lock().await;
    let session_id = app.sessions.start(&body, arg.close).await?;
    ok(&json!({ "session_id": session_id }))
}

#[derive(Debug, Deserialize)]
struct SessionCursor {
    session_id: String,
    offset: u64,
}

#[derive(Debug, Deserialize)]
struct SessionAppendArg {
    cursor: SessionCursor,
    #[serde(default)]
    close: bool,
    #[serde(default)]
    content_hash: Option<String>,
}

async fn session_append(app: &App, arg: Value, body: Bytes) -> Result<Response, ApiError> {
    let arg: SessionAppendArg = from_arg(arg)?;
    content_hash_checked(arg.content_hash.as_deref(), &body)?;
    let _guard = app.sessions.lock().await;
    app.sessions
        .append(&arg.cursor.session_id, arg.cursor.offset, &body, arg.close)
        .await
        .map_err(|err| session_failure(err, |e| e))?;
    ok(&Value::Null)
}

#[derive(Debug, Deserialize)]
struct SessionFinishArg {
    cursor: SessionCursor,
    commit: CommitArg,
    #[serde(default)]
    content_hash: Option<String>,
}

async fn session_finish(app: &App, arg: Value, body: Bytes) -> Result<Response, ApiError> {
    let arg: SessionFinishArg = from_arg(arg)?;
    // UploadSessionFinishError.path is a plain WriteError, nested.
    let path = arg.commit.parse("commit.", || {
        ApiError::route(nested("path", write_error(WriteErr::Malformed)))
    })?;
    content_hash_checked(arg.content_hash.as_deref(), &body)?;
    let id = &arg.cursor.session_id;
    let _guard = app.sessions.lock().await;
    app.sessions
        .append_final(id, arg.cursor.offset, &body)
        .await
        .map_err(|err| session_failure(err, |e| nested("lookup_failed", e)))?;
    let (hash, size) = crate::blobs::hash_file(&app.sessions.data_path(id)).await?;
    app.blobs
        .put_file(&hash, &app.sessions.data_path(id))
        .await?;
    match commit_content(app, &path, &arg.commit, hash, size) {
        Ok(node) => {
            app.sessions.remove(id).await;
            ok(&file_metadata(&node))
        }
        Err(OpError::Write(err)) => Err(ApiError::route(nested("path", write_error(err)))),
        Err(OpError::Io(err)) => Err(err.into()),
        Err(_) => Err(ApiError::route(nested(
            "path",
            write_error(WriteErr::Malformed),
        ))),
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

fn find(app: &App, path: &PathArg, include_deleted: bool) -> Result<Found, LookupErr> {
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

async fn download(app: &App, arg: Value, headers: &HeaderMap) -> Result<Response, ApiError> {
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

fn get_metadata(app: &App, arg: Value) -> Result<Response, ApiError> {
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

fn list_folder(app: &App, arg: Value, latest_only: bool) -> Result<Response, ApiError> {
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

fn list_folder_continue(app: &App, arg: Value) -> Result<Response, ApiError> {
    let arg: ListFolderContinueArg = from_arg(arg)?;
    if arg.cursor.is_empty() {
        return Err(ApiError::BadArg("cursor: '' is shorter than 1".into()));
    }
    let reset = || ApiError::route(tag("reset"));
    let mut cursor = Cursor::decode(&arg.cursor).ok_or_else(reset)?;
    let tree = app.tree();
    if cursor.journal_id != app.account.journal_id || cursor.seq > tree.head() {
        return Err(reset());
    }
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
// Writes without content

#[derive(Debug, Deserialize)]
struct CreateFolderArg {
    path: String,
    #[serde(default)]
    autorename: bool,
}

fn create_folder(app: &App, arg: Value) -> Result<Response, ApiError> {
    let arg: CreateFolderArg = from_arg(arg)?;
    let write_failed = |err: WriteErr| ApiError::route(nested("path", write_error(err)));
    let path = parse_path("path", &arg.path, PathKind::Write, false, || {
        write_failed(WriteErr::Malformed)
    })?;
    let mut tree = app.tree();
    let target = tree.write_target(&path).map_err(write_failed)?;
    match tree.create_folder(&target, arg.autorename) {
        Ok(node) => ok(&json!({ "metadata": file_metadata(&node) })),
        Err(OpError::Write(err)) => Err(write_failed(err)),
        Err(OpError::Io(err)) => Err(err.into()),
        Err(_) => Err(write_failed(WriteErr::Malformed)),
    }
}

#[derive(Debug, Deserialize)]
struct DeleteArg {
    path: String,
    #[serde(default)]
    parent_rev: Option<String>,
}

fn delete(app: &App, arg: Value) -> Result<Response, ApiError> {
    let arg: DeleteArg = from_arg(arg)?;
    let path = parse_path("path", &arg.path, PathKind::WriteOrId, false, || {
        lookup_failed("path_lookup", LookupErr::Malformed)
    })?;
    let mut tree = app.tree();
    let lower = match tree
        .resolve(&path)
        .map_err(|e| lookup_failed("path_lookup", e))?
    {
        Key::Path(lower) => lower,
        Key::Root | Key::Rev(_) => return Err(lookup_failed("path_lookup", LookupErr::Malformed)),
    };
    match tree.delete(&lower, arg.parent_rev.as_deref()) {
        Ok(node) => ok(&json!({ "metadata": node.tagged_metadata() })),
        Err(OpError::Lookup(err)) => Err(lookup_failed("path_lookup", err)),
        Err(OpError::Write(err)) => Err(ApiError::route(nested("path_write", write_error(err)))),
        Err(OpError::Io(err)) => Err(err.into()),
        Err(OpError::MoveIntoItself) => Err(lookup_failed("path_lookup", LookupErr::Malformed)),
    }
}

#[derive(Debug, Deserialize)]
struct RelocationArg {
    from_path: String,
    to_path: String,
    #[serde(default)]
    autorename: bool,
}

fn relocate(app: &App, arg: Value) -> Result<Response, ApiError> {
    let arg: RelocationArg = from_arg(arg)?;
    let to_failed = |err: WriteErr| ApiError::route(nested("to", write_error(err)));
    let from = parse_path(
        "from_path",
        &arg.from_path,
        PathKind::WriteOrId,
        false,
        || lookup_failed("from_lookup", LookupErr::Malformed),
    )?;
    let to = parse_path("to_path", &arg.to_path, PathKind::WriteOrId, false, || {
        to_failed(WriteErr::Malformed)
    })?;
    let mut tree = app.tree();
    let from = match tree
        .resolve(&from)
        .map_err(|e| lookup_failed("from_lookup", e))?
    {
        Key::Path(lower) => lower,
        Key::Root | Key::Rev(_) => return Err(lookup_failed("from_lookup", LookupErr::Malformed)),
    };
    let target = tree.write_target(&to).map_err(to_failed)?;
    match tree.relocate(&from, &target, arg.autorename) {
        Ok(node) => ok(&json!({ "metadata": node.tagged_metadata() })),
        Err(OpError::Lookup(err)) => Err(lookup_failed("from_lookup", err)),
        Err(OpError::Write(err)) => Err(to_failed(err)),
        Err(OpError::MoveIntoItself) => Err(ApiError::route(tag("cant_move_folder_into_itself"))),
        Err(OpError::Io(err)) => Err(err.into()),
    }
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
