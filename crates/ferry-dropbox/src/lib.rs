//! Ferry's Dropbox client.
//!
//! The wire format comes from the official `dropbox-sdk` crate (its request and response
//! types); transport is our own `FerryHttpClient` (`http.rs`) on reqwest, which rewrites the SDK's
//! hard-coded `https://*.dropboxapi.com/` URLs to configurable [`Endpoints`]. The same code
//! path talks to the real Dropbox or to Ferry's emulator.

#![warn(missing_docs)]

mod batch;
mod client;
mod concurrent_upload;
mod endpoints;
mod error;
mod faults;
mod http;
mod lockstep;
mod oauth;
mod pacing;
mod sharing;
mod team;
mod types;

pub use batch::{MAX_APPEND_BATCH, MAX_APPEND_BATCH_BYTES, MAX_BATCH, Staged};
pub use client::{DEFAULT_CHUNK_SIZE, DropboxClient};
pub use concurrent_upload::CONCURRENT_BLOCK;
pub use endpoints::Endpoints;
pub use error::DropboxError;
pub use faults::{CallObserver, FaultInjector, Injected, ObservedCall};
pub use lockstep::Lockstep;
pub use oauth::{OAuthApp, Refresh};
pub use pacing::Pacer;
pub use sharing::{LinkAudience, SharedLink};
pub use team::{MAX_MEMBERS, TeamMember};
pub use types::{
    AccountInfo, Entry, FileInfo, FolderInfo, ListPage, PathRoot, SpaceUsage, WriteMode,
};
