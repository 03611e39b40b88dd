//! High-level Dropbox operations used by the engine and the tests.

use crate::error::Classify;
use crate::http::{FerryHttpClient, Transport};
use crate::types::{entry, file_info, folder_info};
use crate::{
    AccountInfo, DropboxError, Endpoints, Entry, FileInfo, FolderInfo, ListPage, WriteMode,
};
use bytes::Bytes;
use dropbox_sdk::async_routes::{files as routes, users};
use dropbox_sdk::files;
use ferry_core::content_hash::content_hash;
use ferry_core::secret::Secret;
use futures::AsyncReadExt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Files larger than this go through an upload session, in chunks of this size.
pub const DEFAULT_CHUNK_SIZE: usize = 8 * 1024 * 1024;

/// Longest long-poll Dropbox accepts, in seconds.
const LONGPOLL_MAX_SECS: u64 = 480;

/// Dropbox's limit for one request body.
const MAX_REQUEST_BODY: usize = 150 * 1024 * 1024;

/// A Dropbox account, reached through one token.
#[derive(Clone, Debug)]
pub struct DropboxClient {
    pub(crate) transport: Arc<Transport>,
    pub(crate) chunk_size: usize,
    max_attempts: u32,
}

impl DropboxClient {
    /// A client for `endpoints` that authenticates with `token`.
    pub fn new(endpoints: Endpoints, token: &Secret) -> Result<Self, DropboxError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DropboxError::Config(format!("HTTP client: {e}")))?;
        let http_long = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(LONGPOLL_MAX_SECS + 120))
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DropboxError::Config(format!("HTTP client: {e}")))?;
        Ok(DropboxClient {
            transport: Arc::new(Transport {
                http,
                http_long,
                endpoints,
                token: std::sync::RwLock::new(Arc::new(token.expose().to_owned())),
                refresh: None,
                injector: None,
                observer: None,
                team_select: None,
                path_root: None,
                pacer: None,
                lockstep: None,
            }),
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_attempts: 3,
        })
    }

    /// Sets the upload-session threshold and chunk size (clamped to 1 byte ..= 150 MiB).
    pub fn with_chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes.clamp(1, MAX_REQUEST_BODY);
        self
    }

    /// Sets how often a call is tried when Dropbox says "later" (429, 5xx, network); ≥ 1.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// A client for an OAuth connection: gets its first access token from the refresh token
    /// now, and a new one whenever Dropbox says it expired.
    pub async fn with_refresh(
        endpoints: Endpoints,
        refresh: crate::Refresh,
    ) -> Result<Self, DropboxError> {
        let client = DropboxClient::new(endpoints, &Secret::new(""))?;
        let token = refresh
            .access_token(&client.transport.http, &client.transport.endpoints)
            .await?;
        let transport = Transport {
            http: client.transport.http.clone(),
            http_long: client.transport.http_long.clone(),
            endpoints: client.transport.endpoints.clone(),
            token: std::sync::RwLock::new(Arc::new(token)),
            refresh: Some(refresh),
            injector: None,
            observer: client.transport.observer.clone(),
            team_select: client.transport.team_select.clone(),
            path_root: client.transport.path_root.clone(),
            pacer: client.transport.pacer.clone(),
            lockstep: client.transport.lockstep.clone(),
        };
        Ok(DropboxClient {
            transport: Arc::new(transport),
            ..client
        })
    }

    /// This client with a transport of its own (same pools, token and refresh), changed by
    /// `change`: clients share nothing they set afterwards.
    fn with_transport(mut self, change: impl FnOnce(&mut Transport)) -> Self {
        let mut transport = Transport {
            http: self.transport.http.clone(),
            http_long: self.transport.http_long.clone(),
            endpoints: self.transport.endpoints.clone(),
            token: std::sync::RwLock::new(self.transport.current_token()),
            refresh: self.transport.refresh.clone(),
            injector: self.transport.injector.clone(),
            observer: self.transport.observer.clone(),
            team_select: self.transport.team_select.clone(),
            path_root: self.transport.path_root.clone(),
            pacer: self.transport.pacer.clone(),
            lockstep: self.transport.lockstep.clone(),
        };
        change(&mut transport);
        self.transport = Arc::new(transport);
        self
    }

    /// Injects faults into every call (deterministic simulation only).
    pub fn with_injector(self, injector: Arc<dyn crate::FaultInjector>) -> Self {
        self.with_transport(|t| t.injector = Some(injector))
    }

    /// Acts in a team's context: as the member `select_user` (`dbmid:…`, for a team token)
    /// and from `path_root` (the team space instead of the member's home).
    pub fn acting_as(self, select_user: Option<&str>, path_root: Option<&crate::PathRoot>) -> Self {
        let team_select =
            select_user.map(|m| dropbox_sdk::async_client_trait::TeamSelect::User(m.to_owned()));
        let path_root = path_root.map(crate::PathRoot::header);
        self.with_transport(|t| {
            t.team_select = team_select;
            t.path_root = path_root;
        })
    }

    /// Paces every request (but long-polls) by `pacer`, which the account's other clients
    /// may share (`pacing.rs`).
    pub fn with_pacer(self, pacer: Arc<crate::Pacer>) -> Self {
        self.with_transport(|t| t.pacer = Some(pacer))
    }

    /// Runs every exchange with the server in `lockstep` (deterministic simulation only):
    /// the caller's runtime sees each request finish, body read whole, before it goes on.
    pub fn with_lockstep(self, lockstep: crate::Lockstep) -> Self {
        self.with_transport(|t| t.lockstep = Some(lockstep))
    }

    /// Tells `observer` about every request this client sends (metrics).
    pub fn with_observer(self, observer: Arc<dyn crate::CallObserver>) -> Self {
        self.with_transport(|t| t.observer = Some(observer))
    }

    /// Where this client sends requests.
    pub fn endpoints(&self) -> &Endpoints {
        &self.transport.endpoints
    }

    /// Runs one SDK call, retrying transient failures with the delay Dropbox asked for.
    pub(crate) async fn call<T, E, F, Fut>(&self, mut op: F) -> Result<T, DropboxError>
    where
        E: Classify,
        F: FnMut(FerryHttpClient) -> Fut,
        Fut: Future<Output = (Result<T, dropbox_sdk::Error<E>>, u64)>,
    {
        let mut attempt = 1;
        loop {
            let (result, retry_after) = op(FerryHttpClient::new(Arc::clone(&self.transport))).await;
            match result {
                Ok(value) => return Ok(value),
                Err(e) => {
                    let err = match DropboxError::from_sdk(e, retry_after) {
                        // Without a refresh token nothing will renew it: reconnect.
                        DropboxError::TokenExpired if self.transport.refresh.is_none() => {
                            DropboxError::Auth("the access token expired".into())
                        }
                        other => other,
                    };
                    if !err.is_retryable() || attempt >= self.max_attempts {
                        return Err(err);
                    }
                    let wait = err
                        .retry_after()
                        .unwrap_or(Duration::from_millis(200 * u64::from(attempt)))
                        .min(Duration::from_secs(60));
                    tracing::debug!(attempt, ?wait, error = %err, "retrying Dropbox call");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Uploads `data` to `path`. Small files go in one request; larger ones through an upload
    /// session. Dropbox checks the content hash we send; we check the one it returns.
    pub async fn upload(
        &self,
        path: &str,
        data: Bytes,
        mode: &WriteMode,
    ) -> Result<FileInfo, DropboxError> {
        check_path(path)?;
        let hash = content_hash(&data);
        let meta = if data.len() <= self.chunk_size {
            let arg = files::UploadArg::new(path.to_owned())
                .with_mode(mode.into())
                .with_content_hash(hash.clone());
            self.call(|c| {
                let arg = arg.clone();
                let body = data.clone();
                async move {
                    let r = routes::upload(&c, &arg, body).await;
                    (r, c.retry_after_secs())
                }
            })
            .await?
        } else {
            self.upload_session(path, &data, mode).await?
        };
        let info = file_info(meta);
        if info.content_hash.as_deref() != Some(hash.as_str()) {
            return Err(DropboxError::Integrity(format!(
                "Dropbox reports content hash {:?} for {}, expected {hash}",
                info.content_hash, info.path_display
            )));
        }
        Ok(info)
    }

    async fn upload_session(
        &self,
        path: &str,
        data: &Bytes,
        mode: &WriteMode,
    ) -> Result<files::FileMetadata, DropboxError> {
        let first = data.slice(..self.chunk_size.min(data.len()));
        let start_arg =
            files::UploadSessionStartArg::default().with_content_hash(content_hash(&first));
        let session_id = self
            .call(|c| {
                let arg = start_arg.clone();
                let body = first.clone();
                async move {
                    let r = routes::upload_session_start(&c, &arg, body).await;
                    (r, c.retry_after_secs())
                }
            })
            .await?
            .session_id;
        let mut offset = first.len();
        // Everything but the last chunk is appended; the last one travels with `finish`.
        while data.len() - offset > self.chunk_size {
            let chunk = data.slice(offset..offset + self.chunk_size);
            let cursor = files::UploadSessionCursor::new(session_id.clone(), offset as u64);
            let arg =
                files::UploadSessionAppendArg::new(cursor).with_content_hash(content_hash(&chunk));
            let appended = self
                .call(|c| {
                    let arg = arg.clone();
                    let body = chunk.clone();
                    async move {
                        let r = routes::upload_session_append_v2(&c, &arg, body).await;
                        (r, c.retry_after_secs())
                    }
                })
                .await;
            match appended {
                Ok(()) => offset += chunk.len(),
                // A lost response after Dropbox took the data: resume where Dropbox is.
                Err(DropboxError::IncorrectOffset { correct })
                    if (correct as usize) <= data.len() =>
                {
                    offset = correct as usize;
                }
                Err(e) => return Err(e),
            }
        }
        let last = data.slice(offset..);
        let commit = files::CommitInfo::new(path.to_owned()).with_mode(mode.into());
        let cursor = files::UploadSessionCursor::new(session_id, offset as u64);
        let arg = files::UploadSessionFinishArg::new(cursor, commit)
            .with_content_hash(content_hash(&last));
        self.call(|c| {
            let arg = arg.clone();
            let body = last.clone();
            async move {
                let r = routes::upload_session_finish(&c, &arg, body).await;
                (r, c.retry_after_secs())
            }
        })
        .await
    }

    /// Downloads a file; checks its content against the hash Dropbox reports.
    pub async fn download(&self, path: &str) -> Result<(FileInfo, Bytes), DropboxError> {
        check_path(path)?;
        let arg = files::DownloadArg::new(path.to_owned());
        let (meta, body) = self
            .call(|c| {
                let arg = arg.clone();
                async move {
                    let r = match routes::download(&c, &arg, None, None).await {
                        Ok(result) => match result.body {
                            Some(mut body) => {
                                let mut buf = Vec::new();
                                match body.read_to_end(&mut buf).await {
                                    Ok(_) => Ok((result.result, buf)),
                                    Err(e) => Err(dropbox_sdk::Error::HttpClient(Box::new(e))),
                                }
                            }
                            None => Err(dropbox_sdk::Error::UnexpectedResponse(
                                "download without a body".into(),
                            )),
                        },
                        Err(e) => Err(e),
                    };
                    (r, c.retry_after_secs())
                }
            })
            .await?;
        let info = file_info(meta);
        let actual = content_hash(&body);
        if info.content_hash.as_deref().is_some_and(|h| h != actual) {
            return Err(DropboxError::Integrity(format!(
                "downloaded content of {} does not match its content hash",
                info.path_display
            )));
        }
        Ok((info, Bytes::from(body)))
    }

    /// Downloads a file as a stream: the metadata, and the body as it arrives. Not retried
    /// (a stream cannot be replayed); the caller checks the content hash at the end.
    pub async fn download_stream(
        &self,
        path: &str,
    ) -> Result<(FileInfo, Box<dyn futures::AsyncRead + Send + Unpin>), DropboxError> {
        check_path(path)?;
        let arg = files::DownloadArg::new(path.to_owned());
        let client = FerryHttpClient::new(Arc::clone(&self.transport));
        let result = routes::download(&client, &arg, None, None)
            .await
            .map_err(|e| DropboxError::from_sdk(e, client.retry_after_secs()))?;
        let body = result
            .body
            .ok_or_else(|| DropboxError::Other("download without a body".into()))?;
        Ok((file_info(result.result), body))
    }

    /// Metadata of a file or folder.
    pub async fn metadata(&self, path: &str) -> Result<Entry, DropboxError> {
        check_path(path)?;
        let arg = files::GetMetadataArg::new(path.to_owned());
        let meta = self
            .call(|c| {
                let arg = arg.clone();
                async move {
                    let r = routes::get_metadata(&c, &arg).await;
                    (r, c.retry_after_secs())
                }
            })
            .await?;
        Ok(entry(meta))
    }

    /// First page of a folder listing (`""` is the root).
    pub async fn list_folder(&self, path: &str, recursive: bool) -> Result<ListPage, DropboxError> {
        check_path(path)?;
        let arg = files::ListFolderArg::new(path.to_owned()).with_recursive(recursive);
        let result = self
            .call(|c| {
                let arg = arg.clone();
                async move {
                    let r = routes::list_folder(&c, &arg).await;
                    (r, c.retry_after_secs())
                }
            })
            .await?;
        Ok(page(result))
    }

    /// The next page, or the changes since the cursor.
    pub async fn list_folder_continue(&self, cursor: &str) -> Result<ListPage, DropboxError> {
        let arg = files::ListFolderContinueArg::new(cursor.to_owned());
        let result = self
            .call(|c| {
                let arg = arg.clone();
                async move {
                    let r = routes::list_folder_continue(&c, &arg).await;
                    (r, c.retry_after_secs())
                }
            })
            .await?;
        Ok(page(result))
    }

    /// Lists a folder completely, following `has_more`; returns the entries and the cursor
    /// for later changes.
    pub async fn list_all(
        &self,
        path: &str,
        recursive: bool,
    ) -> Result<(Vec<Entry>, String), DropboxError> {
        let mut page = self.list_folder(path, recursive).await?;
        let mut entries = std::mem::take(&mut page.entries);
        while page.has_more {
            page = self.list_folder_continue(&page.cursor).await?;
            entries.append(&mut page.entries);
        }
        Ok((entries, page.cursor))
    }

    /// A cursor for future changes only.
    pub async fn latest_cursor(&self, path: &str, recursive: bool) -> Result<String, DropboxError> {
        check_path(path)?;
        let arg = files::ListFolderArg::new(path.to_owned()).with_recursive(recursive);
        let result = self
            .call(|c| {
                let arg = arg.clone();
                async move {
                    let r = routes::list_folder_get_latest_cursor(&c, &arg).await;
                    (r, c.retry_after_secs())
                }
            })
            .await?;
        Ok(result.cursor)
    }

    /// Creates a folder (and its parents).
    pub async fn create_folder(&self, path: &str) -> Result<FolderInfo, DropboxError> {
        check_path(path)?;
        let arg = files::CreateFolderArg::new(path.to_owned());
        let result = self
            .call(|c| {
                let arg = arg.clone();
                async move {
                    let r = routes::create_folder_v2(&c, &arg).await;
                    (r, c.retry_after_secs())
                }
            })
            .await?;
        Ok(folder_info(result.metadata))
    }

    /// Deletes a file or folder. With `parent_rev`, only if the file is still at that revision.
    pub async fn delete(
        &self,
        path: &str,
        parent_rev: Option<&str>,
    ) -> Result<Entry, DropboxError> {
        check_path(path)?;
        let mut arg = files::DeleteArg::new(path.to_owned());
        if let Some(rev) = parent_rev {
            arg = arg.with_parent_rev(rev.to_owned());
        }
        let result = self
            .call(|c| {
                let arg = arg.clone();
                async move {
                    let r = routes::delete_v2(&c, &arg).await;
                    (r, c.retry_after_secs())
                }
            })
            .await?;
        Ok(entry(result.metadata))
    }

    /// Moves or renames a file or folder; its id stays the same.
    pub async fn move_entry(&self, from: &str, to: &str) -> Result<Entry, DropboxError> {
        check_path(from)?;
        check_path(to)?;
        let arg = files::RelocationArg::new(from.to_owned(), to.to_owned());
        let result = self
            .call(|c| {
                let arg = arg.clone();
                async move {
                    let r = routes::move_v2(&c, &arg).await;
                    (r, c.retry_after_secs())
                }
            })
            .await?;
        Ok(entry(result.metadata))
    }

    /// Waits until something changes under the cursor (at most `timeout_secs`, clamped to
    /// Dropbox's 30–480 s). Returns whether there are changes and how long Dropbox wants us
    /// to wait before the next long-poll.
    pub async fn longpoll(
        &self,
        cursor: &str,
        timeout_secs: u64,
    ) -> Result<(bool, Option<Duration>), DropboxError> {
        let arg = files::ListFolderLongpollArg::new(cursor.to_owned())
            .with_timeout(timeout_secs.clamp(30, LONGPOLL_MAX_SECS));
        let client = FerryHttpClient::noauth(Arc::clone(&self.transport));
        let result = routes::list_folder_longpoll(&client, &arg)
            .await
            .map_err(|e| DropboxError::from_sdk(e, client.retry_after_secs()))?;
        Ok((result.changes, result.backoff.map(Duration::from_secs)))
    }

    /// How much of the account's space is used, and how much it has (for a team member,
    /// the team's shared allocation).
    pub async fn space_usage(&self) -> Result<crate::SpaceUsage, DropboxError> {
        let usage = self
            .call(|c| async move {
                let r = users::get_space_usage(&c).await;
                (r, c.retry_after_secs())
            })
            .await?;
        let (allocated, team) = match usage.allocation {
            dropbox_sdk::users::SpaceAllocation::Individual(i) => (Some(i.allocated), false),
            dropbox_sdk::users::SpaceAllocation::Team(t) => (Some(t.allocated), true),
            _ => (None, false),
        };
        Ok(crate::SpaceUsage {
            used: usage.used,
            allocated,
            team,
        })
    }

    /// The account behind the token (also a cheap token check).
    pub async fn current_account(&self) -> Result<AccountInfo, DropboxError> {
        let account = self
            .call(|c| async move {
                let r = users::get_current_account(&c).await;
                (r, c.retry_after_secs())
            })
            .await?;
        let (root_namespace_id, home_namespace_id) = match &account.root_info {
            dropbox_sdk::common::RootInfo::Team(t) => {
                (t.root_namespace_id.clone(), t.home_namespace_id.clone())
            }
            dropbox_sdk::common::RootInfo::User(u) => {
                (u.root_namespace_id.clone(), u.home_namespace_id.clone())
            }
            _ => (String::new(), String::new()),
        };
        Ok(AccountInfo {
            account_id: account.account_id,
            display_name: account.name.display_name,
            email: account.email,
            business: matches!(
                account.account_type,
                dropbox_sdk::users_common::AccountType::Business
            ),
            team_member_id: account.team_member_id,
            root_namespace_id,
            home_namespace_id,
        })
    }
}

/// Refuses paths Dropbox cannot take. Characters outside the Basic Multilingual Plane matter
/// most: Dropbox rejects them, and dropbox-sdk 0.21 escapes them in `Dropbox-API-Arg` as
/// `\u1f600` (five hex digits), which a server reads as a *different* path.
pub(crate) fn check_path(path: &str) -> Result<(), DropboxError> {
    if let Some((index, c)) = path.chars().enumerate().find(|(_, c)| (*c as u32) > 0xFFFF) {
        return Err(DropboxError::BadPath(format!(
            "character {c:?} at index {index} is outside the Basic Multilingual Plane, which Dropbox does not accept"
        )));
    }
    Ok(())
}

fn page(result: files::ListFolderResult) -> ListPage {
    ListPage {
        entries: result.entries.into_iter().map(entry).collect(),
        cursor: result.cursor,
        has_more: result.has_more,
    }
}
