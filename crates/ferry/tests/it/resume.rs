//! A large upload interrupted by a crash resumes at the offset Dropbox confirmed.

use crate::support::Emu;
use ferry_core::content_hash::content_hash;
use ferry_core::secret::Secret;
use ferry_dropbox::{Endpoints, Entry, FaultInjector, Injected};
use ferry_engine::{ConnectionInput, Engine, EngineConfig};
use ferry_store::{
    AttachmentInput, BlobStore, Priority, RecordInput, SecretCipher, SqliteStore, Store,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Hangs (a crash) on the `n`-th call of one route.
#[derive(Debug)]
struct HangOnNth {
    route: &'static str,
    n: u32,
    seen: AtomicU32,
}

impl FaultInjector for HangOnNth {
    fn decide(&self, route: &str) -> Injected {
        if route == self.route && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.n {
            Injected::Hang
        } else {
            Injected::Nothing
        }
    }
}

fn config(injector: Option<Arc<dyn FaultInjector>>) -> EngineConfig {
    EngineConfig {
        chunk_size: 1024 * 1024,
        lease: Duration::ZERO,
        client_attempts: 1,
        injector,
        custom_dropbox_hosts: true,
        ..EngineConfig::default()
    }
}

/// Crash during the third chunk of a 5 MiB upload, restart: the session is resumed (one
/// session start in all), and the file arrives whole.
#[tokio::test]
async fn large_upload_resumes_after_a_crash() {
    let emu = Emu::start().await;
    let dir = emu.dir.path().join("ferry");
    std::fs::create_dir_all(&dir).unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("ferry.db")).await.unwrap());
    let blobs = BlobStore::local(&dir.join("blobs")).unwrap();
    let cipher = SecretCipher::from_key(&[3; 32]);
    let hang: Arc<dyn FaultInjector> = Arc::new(HangOnNth {
        route: "files/upload_session/append_v2",
        n: 3,
        seen: AtomicU32::new(0),
    });
    let first = Engine::new(
        Arc::clone(&store),
        blobs.clone(),
        cipher.clone(),
        config(Some(hang)),
    );
    first
        .put_connection(ConnectionInput {
            name: "dropbox".into(),
            credentials: ferry_engine::Credentials::Token(Secret::new(emu.emulator.token())),
            root: "/Ferry".into(),
            endpoints: Endpoints::single(&emu.emulator.base_url()).unwrap(),
            select_user: None,
            path_root: Default::default(),
            app_access: None,
        })
        .await
        .unwrap();
    store
        .put_rule(&ferry_core::rules::RuleSpec {
            name: "r".into(),
            record_kind: "film".into(),
            connection: "dropbox".into(),
            folder: "{{ record.key }}".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let record = store
        .upsert_record(&RecordInput {
            kind: "film".into(),
            key: "F1".into(),
            fields: serde_json::json!({}),
            parent_id: None,
        })
        .await
        .unwrap()
        .value;
    let data: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
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

    // The pass hangs on the third chunk: the process "crashes".
    let crashed = tokio::time::timeout(Duration::from_secs(3), first.run_one()).await;
    assert!(crashed.is_err(), "the pass should have hung: {crashed:?}");
    drop(first);
    let saved = store.upload_session("dropbox", &hash).await.unwrap();
    assert_eq!(
        saved.as_ref().map(|s| s.1),
        Some(3 * 1024 * 1024),
        "progress saved per chunk"
    );

    // A new process picks the task up again and resumes the session.
    let second = Engine::new(Arc::clone(&store), blobs.clone(), cipher, config(None));
    assert!(second.run_one().await.unwrap());
    assert_eq!(
        emu.emulator.route_calls("files/upload_session/start"),
        1,
        "no second session"
    );
    assert_eq!(
        emu.emulator.route_calls("files/upload_session/append_v2"),
        4
    );
    let meta = emu.client().metadata("/Ferry/F1/master.mov").await.unwrap();
    let Entry::File(meta) = meta else {
        panic!("not a file")
    };
    assert_eq!(
        meta.content_hash.as_deref(),
        Some(content_hash(&data).as_str())
    );
    assert_eq!(meta.size, data.len() as u64);
    assert!(
        store
            .upload_session("dropbox", &hash)
            .await
            .unwrap()
            .is_none(),
        "session forgotten once committed"
    );
}
