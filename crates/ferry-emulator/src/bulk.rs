//! Bulk loading for benchmarks: writes a change journal (and the blobs it refers to) into an
//! emulator data directory *before* the emulator starts, so that a namespace with a million
//! files exists without a million uploads. Start-up replays it like any other journal.

use std::collections::{HashMap, HashSet};
use std::io::{BufWriter, Write};
use std::path::Path;

use ferry_core::content_hash::content_hash;

use crate::journal::{FileInfo, JournalEntry, NodeState};
use crate::paths;
use crate::wire::{now_timestamp, random_token};
use crate::{EmulatorError, io_error};

/// One file to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkFile {
    /// Absolute display path (`/Folder/name.ext`); missing parent folders are created.
    pub path: String,
    /// Content hash of its content; the content must be among the `contents` given to
    /// [`write_bulk_journal`].
    pub content_hash: String,
    /// Size of that content in bytes.
    pub size: u64,
}

/// What Dropbox would answer for a created file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkWritten {
    /// The file's id (`id:…`).
    pub id: String,
    /// Its revision.
    pub rev: String,
}

/// Writes `files` (and every folder above them) as the journal of the primary account in
/// `data_dir`, and stores each of `contents` as a blob. Returns one [`BulkWritten`] per file,
/// in order. The data directory must hold no journal entries yet; start the emulator on it
/// afterwards ([`crate::RunningEmulator::start`]), which replays what was written.
pub fn write_bulk_journal(
    data_dir: &Path,
    files: &[BulkFile],
    contents: &[&[u8]],
) -> Result<Vec<BulkWritten>, EmulatorError> {
    std::fs::create_dir_all(data_dir).map_err(io_error(data_dir))?;
    let journal_path = data_dir.join("journal.jsonl");
    let existing = std::fs::metadata(&journal_path).map_or(0, |m| m.len());
    if existing > 0 {
        return Err(EmulatorError::Config(format!(
            "bulk load needs an empty journal, but {} holds {existing} bytes",
            journal_path.display()
        )));
    }
    let blob_dir = data_dir.join("blobs");
    std::fs::create_dir_all(&blob_dir).map_err(io_error(&blob_dir))?;
    let mut sizes: HashMap<String, u64> = HashMap::new();
    for content in contents {
        let hash = content_hash(content);
        let path = blob_dir.join(&hash);
        std::fs::write(&path, content).map_err(io_error(&path))?;
        sizes.insert(hash, content.len() as u64);
    }
    for file in files {
        if sizes.get(&file.content_hash) != Some(&file.size) {
            return Err(EmulatorError::Config(format!(
                "bulk file {}: no content with hash {} and size {} was given",
                file.path, file.content_hash, file.size
            )));
        }
    }

    let out = std::fs::File::create(&journal_path).map_err(io_error(&journal_path))?;
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let now = now_timestamp();
    let mut seq = 0u64;
    let mut folders: HashSet<String> = HashSet::new();
    let mut written = Vec::with_capacity(files.len());
    let mut line = Vec::with_capacity(512);
    let mut emit = |entry: &JournalEntry, out: &mut BufWriter<std::fs::File>| {
        line.clear();
        serde_json::to_writer(&mut line, entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        out.write_all(&line)
    };
    for file in files {
        let components: Vec<&str> = file.path.split('/').skip(1).collect();
        let Some((_, parents)) = components.split_last() else {
            return Err(EmulatorError::Config(format!(
                "bulk file path {:?} is not absolute",
                file.path
            )));
        };
        if !file.path.starts_with('/') || components.iter().any(|c| c.is_empty()) {
            return Err(EmulatorError::Config(format!(
                "bulk file path {:?} is not a plain absolute path",
                file.path
            )));
        }
        let mut display = String::new();
        for component in parents {
            display.push('/');
            display.push_str(component);
            let lower = paths::lower(&display);
            if folders.insert(lower.clone()) {
                seq += 1;
                let entry = JournalEntry {
                    seq,
                    lower,
                    display: display.clone(),
                    node: Some(NodeState {
                        id: format!("id:{}", random_token(22)),
                        file: None,
                    }),
                };
                emit(&entry, &mut out).map_err(io_error(&journal_path))?;
            }
        }
        seq += 1;
        let lower = paths::lower(&file.path);
        if folders.contains(&lower) {
            return Err(EmulatorError::Config(format!(
                "bulk file {} is also a folder",
                file.path
            )));
        }
        let id = format!("id:{}", random_token(22));
        // Same shape as the emulator's own revs: journal position in hex, then randomness.
        let rev = format!("{seq:010x}{:08x}", crate::wire::random::<u32>());
        let entry = JournalEntry {
            seq,
            lower,
            display: file.path.clone(),
            node: Some(NodeState {
                id: id.clone(),
                file: Some(FileInfo {
                    rev: rev.clone(),
                    size: file.size,
                    content_hash: file.content_hash.clone(),
                    client_modified: now.clone(),
                    server_modified: now.clone(),
                }),
            }),
        };
        emit(&entry, &mut out).map_err(io_error(&journal_path))?;
        written.push(BulkWritten { id, rev });
    }
    out.flush().map_err(io_error(&journal_path))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EmulatorConfig, FaultModel, RunningEmulator};

    #[tokio::test]
    async fn bulk_journal_replays_into_a_listable_tree() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("emu");
        let content: &[u8] = b"bulk content";
        let hash = content_hash(content);
        let files: Vec<BulkFile> = (0..3)
            .map(|i| BulkFile {
                path: format!("/Bench/R{i}/file.txt"),
                content_hash: hash.clone(),
                size: content.len() as u64,
            })
            .collect();
        let written = write_bulk_journal(&data, &files, &[content]).unwrap();
        assert_eq!(written.len(), 3);
        assert!(write_bulk_journal(&data, &files, &[content]).is_err());
        let mut config = EmulatorConfig::new(&data);
        config.model = FaultModel::off();
        let emulator = RunningEmulator::start(config).await.unwrap();
        let response = reqwest::Client::new()
            .post(format!("{}/2/files/list_folder", emulator.base_url()))
            .bearer_auth(emulator.token())
            .json(&serde_json::json!({"path": "/Bench", "recursive": true}))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = response.json().await.unwrap();
        let entries = body["entries"].as_array().unwrap();
        // /Bench itself, three folders, three files.
        assert_eq!(entries.len(), 7, "{body}");
        let file = entries
            .iter()
            .find(|e| e["path_display"] == "/Bench/R1/file.txt")
            .unwrap();
        assert_eq!(file["rev"], written[1].rev.as_str());
        assert_eq!(file["id"], written[1].id.as_str());
        emulator.shutdown().await;
    }

    #[test]
    fn unknown_content_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let files = [BulkFile {
            path: "/a.txt".into(),
            content_hash: content_hash(b"x"),
            size: 1,
        }];
        assert!(write_bulk_journal(dir.path(), &files, &[]).is_err());
    }
}
