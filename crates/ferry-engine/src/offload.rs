//! Offload: for rules with `offload`, Ferry drops its own copy of a file's content once
//! Dropbox confirms it (the synced revision has the attachment's content hash), and reads it
//! back from that revision (`rev:` addressing survives renames, moves and deletions).
//!
//! The guarantees, and where they are kept:
//! - Only content Dropbox confirms is dropped: `mark_offloaded` checks the synced row in the
//!   same statement, and a blob goes only when no current attachment holds that content here
//!   and no archived version has it (`needs_blob`, checked again under the drop guard).
//! - A blob is never dropped between its write and the commit of the row that needs it:
//!   writers hold [`ferry_store::BlobHold`]; dropping takes the exclusive guard, without
//!   waiting.
//! - An archived version always has its content: the store refuses to archive an offloaded
//!   attachment (`StoreError::Offloaded`); the engine brings the content back first.
//! - Before anything could leave Dropbox's copy the last one — a rule or connection
//!   change, a disconnect, a new place to upload to, a deletion in Dropbox — the pass brings
//!   the content back ([`Engine::bring_back_unless_in_step`]).

use crate::placement::Placement;
use crate::{Engine, EngineError};
use ferry_core::model::Attachment;
use ferry_core::rules::RuleSpec;
use ferry_dropbox::DropboxError;
use ferry_store::{Binding, SyncRow, SyncState};
use futures::AsyncReadExt;
use std::sync::Arc;
use std::time::Duration;

/// Candidates read from the store at a time.
const PAGE: u32 = 200;
/// How often the offloader looks even without being woken.
const IDLE: Duration = Duration::from_secs(30);

impl Engine {
    /// One round: marks confirmed files of offloading rules offloaded, then drops the blobs
    /// nothing needs any more. Returns how many attachments and blobs it handled.
    pub async fn offload_round(&self) -> Result<usize, EngineError> {
        let rules: Vec<RuleSpec> = self
            .store
            .rules()
            .await?
            .into_iter()
            .filter(|r| r.offload)
            .collect();
        // Without an offloading rule there is nothing to offload, and content offloaded under
        // one since removed is brought back by the passes its removal queued.
        if rules.is_empty() {
            return Ok(0);
        }
        let mut done = 0;
        for connection in self.store.connections().await? {
            if connection.disconnecting {
                continue;
            }
            for rule in rules.iter().filter(|r| r.connection == connection.name) {
                for candidate in self
                    .store
                    .offload_candidates(&connection.name, &rule.name, PAGE)
                    .await?
                {
                    if self.store.mark_offloaded(&candidate).await? {
                        done += 1;
                    }
                }
            }
        }
        let droppable = self.store.droppable_blobs(PAGE).await?;
        if droppable.is_empty() {
            return Ok(done);
        }
        // Content is being written: try again next round rather than stall the writers.
        let Some(guard) = self.blobs.try_drop_guard() else {
            return Ok(done);
        };
        for hash in droppable {
            if self.store.needs_blob(&hash).await? {
                continue;
            }
            self.blobs.delete(&hash, &guard).await?;
            self.store.set_blob_dropped(&hash).await?;
            done += 1;
        }
        Ok(done)
    }

    /// Runs the offloader until `shutdown`: woken after passes, and every half minute.
    pub fn spawn_offload(
        self: &Arc<Self>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        self.spawn_rounds(
            "offload",
            |e| &e.wake_offload,
            IDLE,
            shutdown,
            |e| async move { e.offload_round().await },
        )
    }

    /// Brings an offloaded attachment's content back from Dropbox into the blob store and
    /// clears the offload. Nothing to do for one that is not offloaded.
    pub async fn bring_back(&self, attachment: &Attachment) -> Result<(), EngineError> {
        let Some(off) = &attachment.offloaded else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        let _hold = self.blobs.hold().await;
        if !self.blobs.contains(&attachment.content_hash).await? {
            let (client, _) = self.client(&off.connection).await?;
            let (_, mut body) = client.download_stream(&format!("rev:{}", off.rev)).await?;
            let mut writer = self.blobs.writer().await?;
            if let Err(e) = crate::import::fill(&mut writer, &mut body).await {
                writer.abort().await;
                return Err(e.into());
            }
            // Only exactly the offloaded content comes back.
            writer.finish(Some(&attachment.content_hash)).await?;
        }
        if self
            .store
            .clear_offloaded(attachment.id, &attachment.content_hash)
            .await?
        {
            tracing::info!(attachment = attachment.id, "offloaded content brought back");
            let logged = self
                .store
                .log(&ferry_store::LogEntry {
                    id: 0,
                    at: 0,
                    connection: off.connection.clone(),
                    binding_id: None,
                    record_id: attachment.record_id,
                    path: attachment.name.clone(),
                    action: "bring_back".into(),
                    outcome: "ok".into(),
                    bytes: attachment.size,
                    duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    error: None,
                })
                .await;
            // The content is back either way; only the log line is missing.
            if let Err(e) = logged {
                tracing::error!(error = %e, "cannot write the sync log");
            }
        }
        Ok(())
    }

    /// An attachment's content as a stream, with its size: from the blob store, or — when
    /// offloaded and dropped here — from its revision in Dropbox (checked against the
    /// content hash at the end; a mismatch ends the stream with an error).
    pub async fn attachment_content(
        &self,
        attachment: &Attachment,
    ) -> Result<
        (
            u64,
            futures::stream::BoxStream<'static, Result<bytes::Bytes, EngineError>>,
        ),
        EngineError,
    > {
        use futures::StreamExt;
        let held =
            attachment.offloaded.is_none() || self.blobs.contains(&attachment.content_hash).await?;
        let off = match (&attachment.offloaded, held) {
            (Some(off), false) => off,
            _ => {
                let (size, stream) = self.blobs.stream(&attachment.content_hash).await?;
                return Ok((size, stream.map(|r| r.map_err(EngineError::from)).boxed()));
            }
        };
        let (client, _) = self.client(&off.connection).await?;
        let (info, body) = client.download_stream(&format!("rev:{}", off.rev)).await?;
        let expected = attachment.content_hash.clone();
        let state = (
            body,
            ferry_core::content_hash::ContentHasher::new(),
            Some(expected),
        );
        let stream = futures::stream::unfold(
            state,
            |(mut body, mut hasher, expected)| async move {
                let expected = expected?;
                let mut buffer = vec![0u8; 256 * 1024];
                match body.read(&mut buffer).await {
                    Ok(0) => {
                        let hash = hasher.finish();
                        if hash == expected {
                            None
                        } else {
                            Some((
                                Err(EngineError::Dropbox(DropboxError::Integrity(format!(
                                    "content read back from Dropbox has hash {hash}, expected {expected}"
                                )))),
                                (body, ferry_core::content_hash::ContentHasher::new(), None),
                            ))
                        }
                    }
                    Ok(n) => {
                        buffer.truncate(n);
                        hasher.update(&buffer);
                        Some((
                            Ok(bytes::Bytes::from(buffer)),
                            (body, hasher, Some(expected)),
                        ))
                    }
                    Err(e) => Some((
                        Err(EngineError::Dropbox(DropboxError::Transport(format!(
                            "download interrupted: {e}"
                        )))),
                        (body, hasher, None),
                    )),
                }
            },
        );
        Ok((info.size, stream.boxed()))
    }

    /// Brings back every offloaded attachment of a record whose content Dropbox might stop
    /// holding, or that must be uploaded somewhere: kept offloaded only while every rule
    /// placing it offloads, each of those has it synced with this very content, and nothing
    /// else tracks it (no binding of a rule that no longer places it, none being reversed).
    pub(crate) async fn bring_back_unless_in_step(
        &self,
        attachments: &[Attachment],
        placement: &Placement,
        rules: &[RuleSpec],
        bindings: &[Binding],
        rows: &[SyncRow],
        leaving: &(dyn Fn(&Binding) -> bool + Sync),
    ) -> Result<(), EngineError> {
        for a in attachments.iter().filter(|a| a.offloaded.is_some()) {
            let placing: Vec<_> = placement
                .rules
                .iter()
                .filter(|p| p.local.iter().any(|l| l.attachment_id == a.id))
                .collect();
            let offloads = |rule: &str| rules.iter().any(|r| r.name == rule && r.offload);
            let synced_here = |rule: &str| {
                bindings.iter().any(|b| {
                    b.rule_name == rule
                        && !leaving(b)
                        && rows.iter().any(|r| {
                            r.binding_id == Some(b.id)
                                && r.attachment_id == Some(a.id)
                                && r.state == SyncState::Synced
                                && r.content_hash.as_deref() == Some(a.content_hash.as_str())
                        })
                })
            };
            let tracked_elsewhere = rows.iter().any(|r| {
                r.attachment_id == Some(a.id)
                    && !placing.iter().any(|p| {
                        bindings
                            .iter()
                            .any(|b| Some(b.id) == r.binding_id && b.rule_name == p.rule)
                    })
            });
            let in_step = !placing.is_empty()
                && placing
                    .iter()
                    .all(|p| offloads(&p.rule) && synced_here(&p.rule))
                && !tracked_elsewhere;
            if !in_step {
                self.bring_back(a).await?;
            }
        }
        Ok(())
    }
}
