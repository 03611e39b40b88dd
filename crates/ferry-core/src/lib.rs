//! Ferry's domain model and pure logic: records, attachments, rules, path rendering, Dropbox
//! name rules, the three-tree sync planner and the content hash. Nothing here does I/O.

#![warn(missing_docs)]

pub mod clock;
pub mod content_hash;
pub mod model;
pub mod names;
pub mod retry;
pub mod rule_safety;
pub mod rules;
pub mod secret;
pub mod sync_plan;
