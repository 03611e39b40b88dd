//! The file manager: a connection's Dropbox tree as Ferry knows it, search by name, a
//! folder as a zip (streamed), uploads into a record, and moving a file to another record.

use super::records::{engine_failed, record_url};
use super::render::{self, urlencode};
use super::session::{self, Admin, CheckedForm, HasCsrf};
use crate::api::ApiState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_engine::EngineError;
use minijinja::context;
use serde::Deserialize;

/// `?connection=…&path=…&q=…`.
#[derive(Debug, Default, Deserialize)]
pub struct BrowseQuery {
    connection: Option<String>,
    path: Option<String>,
    q: Option<String>,
}

fn failed(admin: &Admin, e: &EngineError) -> Response {
    engine_failed(admin, e, "/console/files")
}

/// Breadcrumbs for `path` under connection `c`: (name, link).
fn crumbs(connection: &str, path: &str) -> Vec<(String, String)> {
    let mut out = vec![(
        connection.to_owned(),
        format!(
            "/console/files?connection={}",
            urlencode(connection.to_owned())
        ),
    )];
    let mut so_far = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        so_far.push('/');
        so_far.push_str(part);
        out.push((
            part.to_owned(),
            format!(
                "/console/files?connection={}&path={}",
                urlencode(connection.to_owned()),
                urlencode(so_far.clone())
            ),
        ));
    }
    out
}

/// `GET /console/files`: one folder of a connection's tree, or search results.
pub async fn browse(
    State(state): State<ApiState>,
    admin: Admin,
    query: Result<Query<BrowseQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|q| q.0).unwrap_or_default();
    let connections = match state.engine.connections().await {
        Ok(list) => list.connections,
        Err(e) => return failed(&admin, &e),
    };
    let Some(connection) = q
        .connection
        .clone()
        .filter(|c| !c.is_empty())
        .or_else(|| connections.first().map(|c| c.name.clone()))
    else {
        return render::page(
            &admin,
            "files",
            "files.html",
            context! { title => "Files", connections => Vec::<String>::new() },
        );
    };
    let root = connections
        .iter()
        .find(|c| c.name == connection)
        .map(|c| c.root.clone())
        .unwrap_or_default();
    let path = q.path.clone().unwrap_or(root);
    let names: Vec<String> = connections.iter().map(|c| c.name.clone()).collect();
    let search = q.q.clone().filter(|s| !s.trim().is_empty());
    let (listing, results) = match &search {
        Some(needle) => match state.engine.search_tree(&connection, needle).await {
            Ok(found) => (None, Some(found)),
            Err(e) => return failed(&admin, &e),
        },
        None => match state.engine.browse(&connection, &path).await {
            Ok(listing) => (Some(listing), None),
            Err(e) => return failed(&admin, &e),
        },
    };
    let zip = format!(
        "/console/files/zip?connection={}&path={}",
        urlencode(connection.clone()),
        urlencode(path.clone())
    );
    render::page(
        &admin,
        "files",
        "files.html",
        context! {
            title => "Files", connections => names, connection => connection, path => path,
            crumbs => crumbs(&connection, &path), listing => listing, results => results,
            q => search, zip => zip,
        },
    )
}

/// `GET /console/files/zip?connection=…&path=…`: the files Ferry holds under the folder, as
/// one zip.
pub async fn zip(
    State(state): State<ApiState>,
    admin: Admin,
    query: Result<Query<BrowseQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|q| q.0).unwrap_or_default();
    let connection = q.connection.unwrap_or_default();
    let path = q.path.unwrap_or_default();
    let files = state.engine.files_under(&connection, &path).await;
    zip_download(&state, &admin, files, folder_name(&path, &connection))
}

/// The selection form: the folder shown, and a checkbox `pick:<path>` per file or folder.
#[derive(Debug, Deserialize)]
pub struct SelectionForm {
    csrf: String,
    #[serde(default)]
    connection: String,
    #[serde(default)]
    path: String,
    #[serde(flatten)]
    checked: std::collections::BTreeMap<String, String>,
}

impl HasCsrf for SelectionForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/files/zip`: the ticked files and folders of the folder shown, as one zip.
pub async fn zip_selection(
    State(state): State<ApiState>,
    CheckedForm(admin, form): CheckedForm<SelectionForm>,
) -> Response {
    let picked = session::ticked(&form.checked, "pick:");
    let files = state
        .engine
        .files_selected(&form.connection, &form.path, &picked)
        .await;
    let folder = folder_name(&form.path, &form.connection);
    zip_download(&state, &admin, files, &format!("{folder} (selection)"))
}

/// The last name of a folder path (`connection` for the top), to name a download.
fn folder_name<'a>(path: &'a str, connection: &'a str) -> &'a str {
    path.rsplit('/')
        .find(|p| !p.is_empty())
        .unwrap_or(connection)
}

/// Files (each with its path inside the zip) as one zip, streamed as it is written (stored
/// entries: the files are read once, not packed); `name` names the download.
fn zip_download(
    state: &ApiState,
    admin: &Admin,
    files: Result<Vec<(String, ferry_core::model::Attachment)>, EngineError>,
    name: &str,
) -> Response {
    use futures::{AsyncWriteExt, StreamExt};
    let files = match files {
        Ok(files) if files.is_empty() => {
            return render::message(
                StatusCode::NOT_FOUND,
                Some(admin),
                "Nothing to download",
                "Ferry holds no files there.",
                Some("/console/files"),
            );
        }
        Ok(files) => files,
        Err(e) => return failed(admin, &e),
    };
    let (writer, reader) = tokio::io::duplex(256 * 1024);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<bool>();
    let engine = std::sync::Arc::clone(&state.engine);
    tokio::spawn(async move {
        let written = async {
            let mut zip = async_zip::base::write::ZipFileWriter::with_tokio(writer);
            for (name, attachment) in files {
                let (_, mut content) = engine.attachment_content(&attachment).await?;
                let entry =
                    async_zip::ZipEntryBuilder::new(name.into(), async_zip::Compression::Stored);
                let mut out = zip
                    .write_entry_stream(entry)
                    .await
                    .map_err(|e| EngineError::Conflict(format!("zip: {e}")))?;
                while let Some(chunk) = content.next().await {
                    out.write_all(&chunk?)
                        .await
                        .map_err(|e| EngineError::Conflict(format!("zip: {e}")))?;
                }
                out.close()
                    .await
                    .map_err(|e| EngineError::Conflict(format!("zip: {e}")))?;
            }
            zip.close()
                .await
                .map_err(|e| EngineError::Conflict(format!("zip: {e}")))?;
            Ok::<_, EngineError>(())
        }
        .await;
        if let Err(e) = &written {
            tracing::error!(error = %e, "zip download stopped early");
        }
        let _ = done_tx.send(written.is_ok());
    });
    // A zip that could not be finished ends the response with an error, so the browser
    // reports a failed download instead of saving a truncated file.
    let tail = futures::stream::once(async move {
        match done_rx.await {
            Ok(true) => None,
            _ => Some(Err(std::io::Error::other("the zip could not be finished"))),
        }
    })
    .filter_map(|x| async move { x });
    let body = tokio_util::io::ReaderStream::new(reader).chain(tail);
    let mut response = axum::body::Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(v) = HeaderValue::try_from(format!(
        "attachment; filename*=UTF-8''{}.zip",
        urlencode(name.to_owned())
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// `POST /console/records/{kind}/{key}/upload` (multipart: `csrf` first, then `file`): the
/// file becomes an attachment of the record and syncs into its folder.
pub async fn upload(
    State(state): State<ApiState>,
    admin: Admin,
    Path((kind, key)): Path<(String, String)>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let back = record_url(&kind, &key);
    let refuse = |status: StatusCode, message: &str| {
        render::message(status, Some(&admin), "Not uploaded", message, Some(&back))
    };
    let Ok(mut multipart) = multipart else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The upload form could not be read.",
        );
    };
    // The CSRF token comes first (its input precedes the file's): nothing is read or stored
    // for a form that lacks it.
    let mut csrf = Vec::new();
    if let Ok(Some(mut field)) = multipart.next_field().await
        && field.name() == Some("csrf")
    {
        while let Ok(Some(chunk)) = field.chunk().await {
            csrf.extend_from_slice(&chunk);
            if csrf.len() > 256 {
                break;
            }
        }
    }
    let csrf = String::from_utf8(csrf).unwrap_or_default();
    if !crate::api::keys_match(&csrf, &admin.csrf) {
        return refuse(
            StatusCode::FORBIDDEN,
            "This form has expired; reload the page and try again. Nothing was stored.",
        );
    }
    let field = match multipart.next_field().await {
        Ok(Some(field)) if field.name() == Some("file") => field,
        _ => return refuse(StatusCode::BAD_REQUEST, "Choose a file to upload."),
    };
    let Some(name) = field
        .file_name()
        .map(str::to_owned)
        .filter(|n| !n.is_empty())
    else {
        return refuse(StatusCode::BAD_REQUEST, "Choose a file to upload.");
    };
    if let Err(e) = crate::api::attachments::check_name(&name) {
        return refuse(StatusCode::BAD_REQUEST, e.message());
    }
    let record = match state.engine.find_record(&kind, &key).await {
        Ok(r) => r,
        Err(e) => return failed(&admin, &e),
    };
    let _hold = state.engine.blobs().hold().await;
    let (hash, size) = match crate::api::attachments::stream_into_blobs(&state, field).await {
        Ok(stored) => stored,
        Err(e) => return refuse(e.status(), e.message()),
    };
    let tags = state
        .engine
        .attachment(&kind, &key, &name)
        .await
        .map(|a| a.tags)
        .unwrap_or_default();
    match state
        .engine
        .put_attachment(&record, &name, tags, hash, size, None)
        .await
    {
        Ok(written) => session::done(
            &back,
            &if written.changed {
                format!("Uploaded {name} ({size} bytes); it syncs into the record's folder now.")
            } else {
                format!("{name} already had exactly this content; nothing changed.")
            },
            false,
        ),
        Err(e) => failed(&admin, &e),
    }
}

/// The move form.
#[derive(Debug, Deserialize)]
pub struct MoveForm {
    csrf: String,
    #[serde(default)]
    to: String,
}

impl HasCsrf for MoveForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/records/{kind}/{key}/files/{name}/move`: the file goes to record `to`
/// (`kind/key`).
pub async fn move_file(
    State(state): State<ApiState>,
    Path((kind, key, name)): Path<(String, String, String)>,
    CheckedForm(admin, form): CheckedForm<MoveForm>,
) -> Response {
    let Some((to_kind, to_key)) = form.to.trim().split_once('/') else {
        return render::message(
            StatusCode::BAD_REQUEST,
            Some(&admin),
            "Not moved",
            "Name the record to move the file to as kind/key, for example order/1002.",
            Some(&record_url(&kind, &key)),
        );
    };
    match state
        .engine
        .move_attachment((&kind, &key), &name, (to_kind.trim(), to_key.trim()))
        .await
    {
        Ok(_) => session::done(
            &record_url(to_kind.trim(), to_key.trim()),
            &format!(
                "Moved {name} here from {kind}/{key}; it syncs into this record's folder now."
            ),
            false,
        ),
        Err(e) => failed(&admin, &e),
    }
}
