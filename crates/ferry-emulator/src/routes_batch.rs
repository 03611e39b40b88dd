//! The batch routes: `upload_session/start_batch`, `finish_batch_v2`, `finish_batch` (v1,
//! async) and the async `create_folder_batch`, `delete_batch` and `move_batch_v2`, with their
//! `check` routes. A batch commit takes the namespace write lock once for all its entries;
//! entries succeed or fail one by one, in input order.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::jobs::JobStatus;
use crate::paths::PathArg;
use crate::routes_files::{
    DeleteArg, SessionFinishArg, commit_in, create_folder_op, create_folder_path, delete_op,
    delete_path, err_to_finish, file_metadata, finish_failure, relocate_op, relocation_paths,
    write_error,
};
use crate::server::Ctx;
use crate::state::WriteErr;
use crate::wire::{self, ApiError, VoidUnion, from_arg, nested, tag, tagged};

/// Entries per upload-finish, delete and move batch.
const MAX_BATCH: usize = 1000;
/// Paths per `create_folder_batch`.
const MAX_FOLDER_BATCH: usize = 10_000;

/// Runs one batch route.
pub async fn call(cx: &Ctx<'_>, route: &str, arg: Value) -> Result<Response, ApiError> {
    match route {
        "files/upload_session/start_batch" => start_batch(cx, arg).await,
        "files/upload_session/finish_batch_v2" => {
            let entries = finish_batch(cx, arg).await?;
            ok(&json!({ "entries": entries }))
        }
        "files/upload_session/finish_batch" => {
            let entries = finish_batch(cx, arg).await?;
            launch(cx, "finish_batch", json!({ "entries": entries }))
        }
        "files/upload_session/finish_batch/check" => check(cx, "finish_batch", arg),
        "files/create_folder_batch" => create_folder_batch(cx, arg).await,
        "files/create_folder_batch/check" => check(cx, "create_folder_batch", arg),
        "files/delete_batch" => delete_batch(cx, arg).await,
        "files/delete_batch/check" => check(cx, "delete_batch", arg),
        "files/move_batch_v2" => move_batch(cx, arg).await,
        "files/move_batch/check_v2" => check(cx, "move_batch", arg),
        _ => Err(ApiError::UnknownRoute(route.to_string())),
    }
}

fn ok(value: &Value) -> Result<Response, ApiError> {
    Ok(wire::json(StatusCode::OK, value))
}

/// A union member holding a struct: the struct's fields flattened next to `.tag`.
fn flattened(tag_name: &str, value: Value) -> Value {
    match value {
        Value::Object(fields) => tagged(tag_name, fields),
        other => nested(tag_name, other),
    }
}

fn failure(error: Value) -> Value {
    nested("failure", error)
}

/// Whether this entry loses the (simulated) per-entry lock race.
fn contended(cx: &Ctx<'_>) -> bool {
    crate::faults::roll(cx.model.p_batch_entry_contention)
}

fn too_many(field: &str, n: usize, max: usize) -> Result<(), ApiError> {
    if n > max {
        return Err(ApiError::BadArg(format!(
            "{field}: list has {n} items, more than the maximum of {max}"
        )));
    }
    Ok(())
}

/// Stores a finished job and answers `{".tag":"async_job_id",…}`.
fn launch(cx: &Ctx<'_>, kind: &'static str, result: Value) -> Result<Response, ApiError> {
    let id = cx.jobs.launch(kind, result, cx.model.async_job_polls);
    let mut fields = Map::new();
    fields.insert("async_job_id".into(), id.into());
    ok(&tagged("async_job_id", fields))
}

#[derive(Debug, Deserialize)]
struct PollArg {
    async_job_id: String,
}

fn check(cx: &Ctx<'_>, kind: &'static str, arg: Value) -> Result<Response, ApiError> {
    let arg: PollArg = from_arg(arg)?;
    if arg.async_job_id.is_empty() {
        return Err(ApiError::BadArg(
            "async_job_id: '' is shorter than 1".into(),
        ));
    }
    match cx.jobs.check(kind, &arg.async_job_id) {
        None => Err(ApiError::route(tag("invalid_async_job_id"))),
        Some(JobStatus::InProgress) => ok(&tag("in_progress")),
        Some(JobStatus::Complete(result)) => ok(&flattened("complete", result)),
    }
}

// ---------------------------------------------------------------------------------------
// Upload sessions

#[derive(Debug, Deserialize)]
struct StartBatchArg {
    num_sessions: u64,
    #[serde(default)]
    session_type: Option<VoidUnion>,
}

async fn start_batch(cx: &Ctx<'_>, arg: Value) -> Result<Response, ApiError> {
    let arg: StartBatchArg = from_arg(arg)?;
    if !(1..=MAX_BATCH as u64).contains(&arg.num_sessions) {
        return Err(ApiError::BadArg(format!(
            "num_sessions: {} is not within the range 1 to {MAX_BATCH}",
            arg.num_sessions
        )));
    }
    let concurrent = match arg.session_type {
        None => false,
        Some(VoidUnion(kind)) if kind == "sequential" => false,
        Some(VoidUnion(kind)) if kind == "concurrent" => true,
        Some(VoidUnion(kind)) => {
            return Err(ApiError::BadArg(format!(
                "session_type: unknown tag '{kind}'"
            )));
        }
    };
    let mut ids = Vec::new();
    for _ in 0..arg.num_sessions {
        let id = cx
            .sessions
            .start_typed(&[], false, concurrent)
            .await
            .map_err(|e| match e {
                crate::sessions::SessionFailure::Io(e) => ApiError::from(e),
                crate::sessions::SessionFailure::Refused(e) => {
                    ApiError::Internal(format!("start_batch: {e:?}"))
                }
            })?;
        ids.push(Value::String(id));
    }
    ok(&json!({ "session_ids": ids }))
}

#[derive(Debug, Deserialize)]
struct FinishBatchArg {
    entries: Vec<SessionFinishArg>,
}

/// One entry after the session checks: ready to commit, or already failed.
enum Prepared {
    Ready {
        path: PathArg,
        hash: String,
        size: u64,
    },
    Failed(Value),
}

/// Finishes every entry (each session must be closed); the commits happen under one
/// acquisition of the write lock. Returns the result entries.
async fn finish_batch(cx: &Ctx<'_>, arg: Value) -> Result<Vec<Value>, ApiError> {
    let arg: FinishBatchArg = from_arg(arg)?;
    too_many("entries", arg.entries.len(), MAX_BATCH)?;
    let mut prepared = Vec::with_capacity(arg.entries.len());
    {
        for (i, entry) in arg.entries.iter().enumerate() {
            let malformed = || ApiError::route(nested("path", write_error(WriteErr::Malformed)));
            let path = match entry
                .commit
                .parse(&format!("entries[{i}].commit."), malformed)
            {
                Ok(path) => path,
                Err(ApiError::Route(error)) => {
                    prepared.push(Prepared::Failed(error));
                    continue;
                }
                Err(err) => return Err(err),
            };
            let id = &entry.cursor.session_id;
            if let Err(err) = cx
                .sessions
                .prepare_finish(id, entry.cursor.offset, &[], true)
                .await
            {
                match finish_failure(err) {
                    ApiError::Route(error) => {
                        prepared.push(Prepared::Failed(error));
                        continue;
                    }
                    other => return Err(other),
                }
            }
            let data = cx.sessions.data_path(id);
            let (hash, size) = crate::blobs::hash_file(&data).await?;
            if cx.sessions.is_sealed(id).await {
                cx.blobs.link_file(&hash, &data).await?;
            } else {
                cx.blobs.put_file(&hash, &data).await?;
            }
            prepared.push(Prepared::Ready { path, hash, size });
        }
    }
    let lock = cx.lock_writes(&cx.model, prepared.len()).await?;
    let mut results = Vec::with_capacity(prepared.len());
    let mut finished = Vec::new();
    {
        let mut tree = cx.tree();
        for (entry, prepared) in arg.entries.iter().zip(prepared) {
            let result = match prepared {
                Prepared::Failed(error) => failure(error),
                Prepared::Ready { .. } if contended(cx) => {
                    failure(tag("too_many_write_operations"))
                }
                Prepared::Ready { path, hash, size } => {
                    match commit_in(&mut tree, &path, &entry.commit, hash, size) {
                        Ok(node) => {
                            finished.push(entry.cursor.session_id.clone());
                            flattened("success", file_metadata(&node))
                        }
                        Err(err) => match err_to_finish(err) {
                            ApiError::Route(error) => failure(error),
                            other => return Err(other),
                        },
                    }
                }
            };
            results.push(result);
        }
    }
    lock.release().await;
    for id in finished {
        cx.sessions.remove(&id).await;
    }
    Ok(results)
}

// ---------------------------------------------------------------------------------------
// Folders, deletes, moves

#[derive(Debug, Deserialize)]
struct CreateFolderBatchArg {
    paths: Vec<String>,
    #[serde(default)]
    autorename: bool,
    #[serde(default)]
    force_async: bool,
}

async fn create_folder_batch(cx: &Ctx<'_>, arg: Value) -> Result<Response, ApiError> {
    let arg: CreateFolderBatchArg = from_arg(arg)?;
    too_many("paths", arg.paths.len(), MAX_FOLDER_BATCH)?;
    let paths = arg
        .paths
        .iter()
        .map(|raw| create_folder_path(raw))
        .collect::<Result<Vec<_>, _>>()?;
    let lock = cx.lock_writes(&cx.model, paths.len()).await?;
    let mut entries = Vec::with_capacity(paths.len());
    {
        let mut tree = cx.tree();
        for (i, path) in paths.into_iter().enumerate() {
            // A path named twice is created once; later mentions repeat the first result.
            let first = arg.paths[..i]
                .iter()
                .position(|p| crate::paths::lower(p) == crate::paths::lower(&arg.paths[i]));
            if let Some(first) = first {
                let repeated = entries.get(first).cloned().unwrap_or(Value::Null);
                entries.push(repeated);
                continue;
            }
            if contended(cx) {
                let error = nested("path", tag("too_many_write_operations"));
                entries.push(failure(error));
                continue;
            }
            let entry = match path.and_then(|p| create_folder_op(&mut tree, &p, arg.autorename)) {
                Ok(node) => {
                    let mut fields = Map::new();
                    fields.insert("metadata".into(), file_metadata(&node));
                    tagged("success", fields)
                }
                Err(ApiError::Route(error)) => failure(error),
                Err(other) => return Err(other),
            };
            entries.push(entry);
        }
    }
    lock.release().await;
    let result = json!({ "entries": entries });
    if arg.force_async {
        launch(cx, "create_folder_batch", result)
    } else {
        ok(&flattened("complete", result))
    }
}

#[derive(Debug, Deserialize)]
struct DeleteBatchArg {
    entries: Vec<DeleteArg>,
}

async fn delete_batch(cx: &Ctx<'_>, arg: Value) -> Result<Response, ApiError> {
    let arg: DeleteBatchArg = from_arg(arg)?;
    too_many("entries", arg.entries.len(), MAX_BATCH)?;
    for (i, entry) in arg.entries.iter().enumerate() {
        entry.check_rev(&format!("entries[{i}].parent_rev"))?;
    }
    let paths = arg
        .entries
        .iter()
        .map(|e| delete_path(&e.path))
        .collect::<Result<Vec<_>, _>>()?;
    let lock = cx.lock_writes(&cx.model, paths.len()).await?;
    let mut entries = Vec::with_capacity(paths.len());
    {
        let mut tree = cx.tree();
        for (entry, path) in arg.entries.iter().zip(paths) {
            if contended(cx) {
                entries.push(failure(tag("too_many_write_operations")));
                continue;
            }
            let result = path.and_then(|p| delete_op(&mut tree, &p, entry.parent_rev.as_deref()));
            entries.push(match result {
                Ok(node) => {
                    let mut fields = Map::new();
                    fields.insert("metadata".into(), node.tagged_metadata());
                    tagged("success", fields)
                }
                Err(ApiError::Route(error)) => failure(error),
                Err(other) => return Err(other),
            });
        }
    }
    lock.release().await;
    launch(cx, "delete_batch", json!({ "entries": entries }))
}

#[derive(Debug, Deserialize)]
struct MoveBatchArg {
    entries: Vec<RelocationPath>,
    #[serde(default)]
    autorename: bool,
}

#[derive(Debug, Deserialize)]
struct RelocationPath {
    from_path: String,
    to_path: String,
}

async fn move_batch(cx: &Ctx<'_>, arg: Value) -> Result<Response, ApiError> {
    let arg: MoveBatchArg = from_arg(arg)?;
    if arg.entries.is_empty() {
        return Err(ApiError::BadArg(
            "entries: list has 0 items, fewer than the minimum of 1".into(),
        ));
    }
    too_many("entries", arg.entries.len(), MAX_BATCH)?;
    let paths = arg
        .entries
        .iter()
        .map(|e| relocation_paths(&e.from_path, &e.to_path))
        .collect::<Result<Vec<_>, _>>()?;
    let lock = cx.lock_writes(&cx.model, paths.len()).await?;
    let mut entries = Vec::with_capacity(paths.len());
    {
        let mut tree = cx.tree();
        for paths in paths {
            if contended(cx) {
                entries.push(failure(tag("too_many_write_operations")));
                continue;
            }
            let result = paths
                .and_then(|(from, to)| relocate_op(&mut tree, &from, &to, arg.autorename, false));
            entries.push(match result {
                Ok(node) => nested("success", node.tagged_metadata()),
                Err(ApiError::Route(error)) => failure(nested("relocation_error", error)),
                Err(other) => return Err(other),
            });
        }
    }
    lock.release().await;
    launch(cx, "move_batch", json!({ "entries": entries }))
}
