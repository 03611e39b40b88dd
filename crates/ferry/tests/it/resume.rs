//! A large upload interrupted by a crash resumes at the offset Dropbox confirmed, in a
//! sequential session and in a concurrent one.

use crate::support::Emu;
use ferry_core::content_hash::content_hash;
use ferry_dropbox::{Entry, FaultInjector, Injected};
use ferry_engine::{Engine, EngineConfig};
use ferry_store::{AttachmentInput, BlobStore, Priority, SecretCipher, SqliteStore, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Hangs (a crash) on every call of one route from the `n`-th on; counts the calls.
#[derive(Debug)]
struct HangOnNth {
    route: &'static str,
    n: u32,
    seen: AtomicU32,
}

impl FaultInjector for HangOnNth {
    fn decide(&self, route: &str) -> Injected {
        if route == self.route && self.seen.fetch_add(1, Ordering::SeqCst) + 1 >= self.n {
            Injected::Hang
        } else {
            Injected::Nothing
        }
    }
}

/// How the engines of a test upload: chunk size and chunks in flight.
#[derive(Clone, Copy)]
struct Upload {
    chunk: usize,
    in_flight: usize,
}

fn config(upload: Upload, injector: Option<Arc<dyn FaultInjector>>) -> EngineConfig {
    EngineConfig {
        chunk_size: upload.chunk,
        chunks_in_flight: upload.in_flight,
        lease: Duration::ZERO,
        client_attempts: 1,
        injector,
        custom_dropbox_hosts: true,
        ..EngineConfig::default()
    }
}

/// A store and blob store an engine "crashed" on, mid-upload of `master.mov`.
struct Crashed {
    store: Arc<dyn Store>,
    blobs: BlobStore,
    cipher: SecretCipher,
    data: Vec<u8>,
    hash: String,
    /// `append_v2` calls the crashed engine made (those that hung included).
    appends_tried: u32,
}

/// Syncs a `len`-byte file with an engine whose `append_v2` calls hang from the `hang_on`-th
/// on, and drops that engine after 3 s (a crash).
async fn crash_mid_upload(emu: &Emu, upload: Upload, len: u32, hang_on: u32) -> Crashed {
    let dir = emu.dir.path().join("ferry");
    std::fs::create_dir_all(&dir).unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("ferry.db")).await.unwrap());
    let blobs = BlobStore::local(&dir.join("blobs")).unwrap();
    let cipher = SecretCipher::from_key(&[3; 32]);
    let hang = Arc::new(HangOnNth {
        route: "files/upload_session/append_v2",
        n: hang_on,
        seen: AtomicU32::new(0),
    });
    let first = Engine::new(
        Arc::clone(&store),
        blobs.clone(),
        cipher.clone(),
        config(upload, Some(Arc::clone(&hang) as Arc<dyn FaultInjector>)),
    );
    let record =
        crate::support::connect_with_record(&first, &emu.emulator, ("r", "film", "F1")).await;
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let hash = blobs.put(data.clone().into()).await.unwrap();
    store
        .put_attachment(&AttachmentInput {
            record_id: record.id,
            name: "master.mov".into(),
            tags: vec![],
            content_hash: hash.clone(),
            size: data.len() as u64,
            origin_path: None,
            source: Default::default(),
            if_match: None,
        })
        .await
        .unwrap();
    store.enqueue(&[record.id], Priority::Normal).await.unwrap();

    let crashed = tokio::time::timeout(Duration::from_secs(3), first.run_one()).await;
    assert!(crashed.is_err(), "the pass should have hung: {crashed:?}");
    drop(first);
    Crashed {
        store,
        blobs,
        cipher,
        data,
        hash,
        appends_tried: hang.seen.load(Ordering::SeqCst),
    }
}

impl Crashed {
    /// A new process picks the task up again and finishes it; the file is in Dropbox whole
    /// and its saved session is forgotten.
    async fn restart_and_finish(self, emu: &Emu, upload: Upload) {
        let second = Engine::new(
            Arc::clone(&self.store),
            self.blobs.clone(),
            self.cipher.clone(),
            config(upload, None),
        );
        assert!(second.run_one().await.unwrap());
        assert_eq!(
            emu.emulator.route_calls("files/upload_session/start"),
            1,
            "no second session"
        );
        let meta = emu.client().metadata("/Ferry/F1/master.mov").await.unwrap();
        let Entry::File(meta) = meta else {
            panic!("not a file")
        };
        assert_eq!(
            meta.content_hash.as_deref(),
            Some(content_hash(&self.data).as_str())
        );
        assert_eq!(meta.size, self.data.len() as u64);
        assert!(
            self.store
                .upload_session("dropbox", &self.hash)
                .await
                .unwrap()
                .is_none(),
            "session forgotten once committed"
        );
    }

    async fn saved_offset(&self) -> Option<u64> {
        let saved = self.store.upload_session("dropbox", &self.hash).await;
        saved.unwrap().map(|s| s.1)
    }
}

const MIB: u32 = 1024 * 1024;

/// Crash during the third chunk of a 5 MiB upload in a sequential session (1 MiB chunks),
/// restart: the session is resumed (one session start in all), and the file arrives whole.
#[tokio::test]
async fn large_upload_resumes_after_a_crash() {
    let emu = Emu::start().await;
    let upload = Upload {
        chunk: MIB as usize,
        in_flight: 4,
    };
    // The first chunk goes with the session's start; the third append hangs.
    let crashed = crash_mid_upload(&emu, upload, 5 * MIB, 3).await;
    assert_eq!(
        crashed.saved_offset().await,
        Some(3 * u64::from(MIB)),
        "progress saved per chunk"
    );
    crashed.restart_and_finish(&emu, upload).await;
    // Resumed at 3 MiB: two more appends (the hung one never reached Dropbox).
    assert_eq!(
        emu.emulator.route_calls("files/upload_session/append_v2"),
        4
    );
}

/// The same in a concurrent session (4 MiB chunks, two at once): two chunks are on their way
/// when it crashes, the saved offset is the one below which every chunk is in, and the
/// restart goes on from there.
#[tokio::test]
async fn a_concurrent_upload_resumes_after_a_crash() {
    let emu = Emu::start().await;
    let upload = Upload {
        chunk: 4 * MIB as usize,
        in_flight: 2,
    };
    // Chunks at 0, 4, 8, 12 and 16 MiB, then the closing 1 MiB; from the third call on,
    // appends hang.
    let crashed = crash_mid_upload(&emu, upload, 21 * MIB, 3).await;
    assert_eq!(crashed.saved_offset().await, Some(8 * u64::from(MIB)));
    assert_eq!(
        emu.emulator.route_calls("files/upload_session/append_v2"),
        2
    );
    assert_eq!(
        crashed.appends_tried, 4,
        "the chunks at 8 and 12 MiB were both on their way when the engine crashed"
    );
    crashed.restart_and_finish(&emu, upload).await;
    // From 8 MiB: 8, 12, 16 and the closing chunk.
    assert_eq!(
        emu.emulator.route_calls("files/upload_session/append_v2"),
        6
    );
}
