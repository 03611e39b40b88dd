//! Large uploads into `concurrent` upload sessions: a file's chunks go up several at a time
//! (reading, sending and Dropbox's writes overlap), each read once by the caller and never
//! hashed again (the commit checks the whole file's content hash).
//!
//! Dropbox's rules for such a session: no data in `start`, every append at an offset and of a
//! length that are multiples of 4 MiB except the closing one, and the session closed before it
//! is committed. Ferry sends the closing chunk only once every other chunk is in, so a closed
//! session is always complete.

use crate::{DropboxClient, DropboxError};
use bytes::Bytes;
use dropbox_sdk::async_routes::files as routes;
use dropbox_sdk::files;
use futures::StreamExt;

/// Offsets and lengths of a concurrent session's appends are multiples of this.
pub const CONCURRENT_BLOCK: usize = 4 << 20;

impl DropboxClient {
    /// True if this client's chunk size suits concurrent sessions (a multiple of 4 MiB).
    pub fn chunks_fit_concurrent_sessions(&self) -> bool {
        self.chunk_size.is_multiple_of(CONCURRENT_BLOCK)
    }

    /// Opens an empty `concurrent` upload session; returns its id.
    pub async fn concurrent_session_start(&self) -> Result<String, DropboxError> {
        let arg = files::UploadSessionStartArg::default()
            .with_session_type(files::UploadSessionType::Concurrent);
        Ok(self
            .call(|c| {
                let arg = arg.clone();
                async move {
                    let r = routes::upload_session_start(&c, &arg, Bytes::new()).await;
                    (r, c.retry_after_secs())
                }
            })
            .await?
            .session_id)
    }

    /// Sends bytes `from..len` into concurrent session `session_id` and closes it: chunks of
    /// the client's chunk size, up to `in_flight` at once, the closing chunk last. `read(offset,
    /// len)` supplies each chunk; `progress(offset)` is called, in order, each time everything
    /// below `offset` is confirmed (so a caller can persist it and continue from there after a
    /// restart). `from` is such an offset: a multiple of the chunk size.
    pub async fn stage_concurrent<R, RFut, F, Fut>(
        &self,
        session_id: &str,
        from: u64,
        len: u64,
        in_flight: usize,
        read: R,
        mut progress: F,
    ) -> Result<(), DropboxError>
    where
        R: Fn(u64, usize) -> RFut,
        RFut: std::future::Future<Output = Result<Bytes, DropboxError>>,
        F: FnMut(u64) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let chunk = self.chunk_size as u64;
        if !self.chunks_fit_concurrent_sessions() || !from.is_multiple_of(chunk) || from > len {
            return Err(DropboxError::Config(format!(
                "a concurrent session cannot go on from offset {from} of {len} in chunks of {chunk}"
            )));
        }
        // The closing chunk: the last, shorter or whole (empty if everything is in already).
        let closing = if from == len {
            len
        } else {
            (len - 1) / chunk * chunk
        };
        let read = &read;
        let sends = futures::stream::iter((from..closing).step_by(self.chunk_size))
            .map(|offset| async move {
                let data = read(offset, self.chunk_size).await?;
                if data.len() as u64 != chunk {
                    return Err(short_read(data.len(), offset, len));
                }
                self.session_append(session_id, offset, data, false)
                    .await
                    .map(|()| offset + chunk)
            })
            .buffered(in_flight.max(1));
        futures::pin_mut!(sends);
        while let Some(sent) = sends.next().await {
            match sent {
                Ok(confirmed) => progress(confirmed).await,
                // Closed already (by an attempt whose answer was lost): closing comes only
                // after every chunk is in, so the content is complete.
                Err(DropboxError::SessionClosed) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        let want = usize::try_from(len - closing).unwrap_or(usize::MAX);
        let data = if want == 0 {
            Bytes::new()
        } else {
            read(closing, want).await?
        };
        if data.len() != want {
            return Err(short_read(data.len(), closing, len));
        }
        match self.session_append(session_id, closing, data, true).await {
            Ok(()) | Err(DropboxError::SessionClosed) => {}
            Err(e) => return Err(e),
        }
        progress(len).await;
        Ok(())
    }
}

fn short_read(got: usize, offset: u64, len: u64) -> DropboxError {
    DropboxError::Other(format!(
        "read {got} bytes at offset {offset} of a {len}-byte file"
    ))
}
