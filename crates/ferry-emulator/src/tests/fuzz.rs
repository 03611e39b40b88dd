//! Bounded fuzzing (proptest) of request decoding: random routes, methods, Content-Types,
//! `Dropbox-API-Arg` bytes and JSON bodies built from the argument vocabulary. A panic in a
//! handler would surface as a dropped connection; every request must instead get a Dropbox-
//! style status. `PROPTEST_CASES` raises the number of cases (default 192 per property).

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Value};

use crate::{EmulatorConfig, FaultModel, RunningEmulator};

const ROUTES: &[&str] = &[
    "files/upload",
    "files/upload_session/start",
    "files/upload_session/append_v2",
    "files/upload_session/finish",
    "files/upload_session/start_batch",
    "files/upload_session/finish_batch",
    "files/upload_session/finish_batch/check",
    "files/upload_session/finish_batch_v2",
    "files/download",
    "files/get_metadata",
    "files/list_folder",
    "files/list_folder/continue",
    "files/list_folder/get_latest_cursor",
    "files/list_folder/longpoll",
    "files/create_folder_v2",
    "files/create_folder_batch",
    "files/create_folder_batch/check",
    "files/delete_v2",
    "files/delete_batch",
    "files/delete_batch/check",
    "files/move_v2",
    "files/copy_v2",
    "files/move_batch_v2",
    "files/move_batch/check_v2",
    "files/search_v2",
    "files/search/continue_v2",
    "files/get_temporary_link",
    "sharing/create_shared_link_with_settings",
    "sharing/list_shared_links",
    "sharing/revoke_shared_link",
    "users/get_current_account",
    "users/get_space_usage",
    "files/nope",
];

const KEYS: &[&str] = &[
    "path",
    "from_path",
    "to_path",
    "cursor",
    "entries",
    "paths",
    "commit",
    "mode",
    ".tag",
    "update",
    "autorename",
    "strict_conflict",
    "client_modified",
    "content_hash",
    "offset",
    "session_id",
    "close",
    "session_type",
    "recursive",
    "include_deleted",
    "limit",
    "timeout",
    "parent_rev",
    "async_job_id",
    "num_sessions",
    "query",
    "options",
    "max_results",
    "file_status",
    "settings",
    "audience",
    "expires",
    "url",
    "direct_only",
    "force_async",
];

/// `"auto"` picks the Content-Type the route's style expects.
const CONTENT_TYPES: &[&str] = &[
    "auto",
    "auto",
    "auto",
    "auto",
    "auto",
    "application/json",
    "application/octet-stream",
    "text/plain; charset=dropbox-cors-hack",
    "application/json; charset=utf-8",
    "text/html",
    "",
];

fn text() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("/".to_string()),
        Just("id:".to_string()),
        Just("rev:0123456789a".to_string()),
        Just("ns:1".to_string()),
        Just("a".to_string()),
        Just(" ".to_string()),
        Just("\u{1F600}".to_string()),
        Just("É".to_string()),
        Just("..".to_string()),
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(pieces, 0..8).prop_map(|p| p.concat())
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text().prop_map(Value::String),
        prop::sample::select(KEYS).prop_map(|k| Value::String(k.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|fields| {
                let mut map = Map::new();
                for (k, v) in fields {
                    map.insert(k.to_string(), v);
                }
                Value::Object(map)
            }),
        ]
    })
}

fn path() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => text().prop_map(|t| Value::String(format!("/{t}"))),
        1 => text().prop_map(Value::String),
    ]
}

/// A well-formed argument skeleton for `route` (so decoding gets past the first required
/// field), with random values.
fn skeleton(route: &'static str) -> BoxedStrategy<Value> {
    use serde_json::json;
    let cursor = || text().prop_map(|t| json!({"session_id": t, "offset": 0}));
    match route {
        "files/upload"
        | "files/download"
        | "files/get_metadata"
        | "files/get_temporary_link"
        | "files/create_folder_v2"
        | "files/delete_v2"
        | "files/list_folder"
        | "files/list_folder/get_latest_cursor"
        | "sharing/create_shared_link_with_settings"
        | "sharing/list_shared_links" => path().prop_map(|p| json!({"path": p})).boxed(),
        "files/upload_session/start" => any::<bool>().prop_map(|c| json!({"close": c})).boxed(),
        "files/upload_session/append_v2" => cursor().prop_map(|c| json!({"cursor": c})).boxed(),
        "files/upload_session/finish" => (cursor(), path())
            .prop_map(|(c, p)| json!({"cursor": c, "commit": {"path": p}}))
            .boxed(),
        "files/upload_session/finish_batch" | "files/upload_session/finish_batch_v2" => {
            prop::collection::vec((cursor(), path()), 0..3)
                .prop_map(|e| {
                    let entries: Vec<Value> = e
                        .into_iter()
                        .map(|(c, p)| json!({"cursor": c, "commit": {"path": p}}))
                        .collect();
                    json!({"entries": entries})
                })
                .boxed()
        }
        "files/upload_session/start_batch" => {
            (0u64..3).prop_map(|n| json!({"num_sessions": n})).boxed()
        }
        "files/create_folder_batch" => prop::collection::vec(path(), 0..3)
            .prop_map(|p| json!({"paths": p}))
            .boxed(),
        "files/delete_batch" => prop::collection::vec(path(), 0..3)
            .prop_map(|p| {
                let entries: Vec<Value> = p.into_iter().map(|p| json!({"path": p})).collect();
                json!({"entries": entries})
            })
            .boxed(),
        "files/move_v2" | "files/copy_v2" => (path(), path())
            .prop_map(|(a, b)| json!({"from_path": a, "to_path": b}))
            .boxed(),
        "files/move_batch_v2" => prop::collection::vec((path(), path()), 0..3)
            .prop_map(|p| {
                let entries: Vec<Value> = p
                    .into_iter()
                    .map(|(a, b)| json!({"from_path": a, "to_path": b}))
                    .collect();
                json!({"entries": entries})
            })
            .boxed(),
        "files/search_v2" => text().prop_map(|t| json!({"query": t})).boxed(),
        "sharing/revoke_shared_link" => text().prop_map(|t| json!({"url": t})).boxed(),
        "users/get_current_account" | "users/get_space_usage" => Just(Value::Null).boxed(),
        r if r.ends_with("check") || r.ends_with("check_v2") => {
            text().prop_map(|t| json!({"async_job_id": t})).boxed()
        }
        _ => text().prop_map(|t| json!({"cursor": t})).boxed(),
    }
}

/// The route's skeleton, sometimes with random extra or replaced fields.
fn argument(route: &'static str) -> impl Strategy<Value = Value> {
    let extra = prop_oneof![
        2 => Just(Vec::new()),
        1 => prop::collection::vec((prop::sample::select(KEYS), json()), 1..3),
    ];
    (skeleton(route), extra).prop_map(|(mut value, extra)| {
        if let Some(map) = value.as_object_mut() {
            for (k, v) in extra {
                map.insert(k.to_string(), v);
            }
        }
        value
    })
}

#[derive(Debug, Clone)]
struct Input {
    route: &'static str,
    get: bool,
    content_type: &'static str,
    auth: u8,
    arg: Option<Vec<u8>>,
    body: Vec<u8>,
}

fn input() -> impl Strategy<Value = Input> {
    prop::sample::select(ROUTES).prop_flat_map(|route| {
        let arg = prop_oneof![
            4 => argument(route).prop_map(|v| crate::wire::ascii_json(&v).into_bytes()),
            1 => json().prop_map(|v| v.to_string().into_bytes()),
            1 => prop::collection::vec(any::<u8>(), 0..40),
        ];
        let body = prop_oneof![
            4 => argument(route).prop_map(|v| v.to_string().into_bytes()),
            1 => json().prop_map(|v| v.to_string().into_bytes()),
            1 => prop::collection::vec(any::<u8>(), 0..40),
            1 => Just(Vec::new()),
        ];
        (
            prop::bool::weighted(0.1),
            prop::sample::select(CONTENT_TYPES),
            0u8..8,
            prop::option::weighted(0.9, arg),
            body,
        )
            .prop_map(move |(get, content_type, auth, arg, body)| Input {
                route,
                get,
                content_type,
                auth,
                arg,
                body,
            })
    })
}

#[test]
fn random_requests_get_dropbox_style_answers() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmulatorConfig::new(dir.path());
    config.model = FaultModel {
        longpoll_cap_ms: Some(10),
        ..FaultModel::off()
    };
    let emulator = runtime.block_on(RunningEmulator::start(config)).unwrap();
    let http = reqwest::Client::new();
    let base = emulator.base_url();
    let token = emulator.token().to_string();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(192);
    // A fixed seed keeps CI reproducible (and the coverage check below stable);
    // `PROPTEST_CASES` explores further.
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    let result = runner.run(&input(), |input| {
        let url = format!("{base}/2/{}", input.route);
        let mut request = if input.get {
            http.get(&url)
        } else {
            http.post(&url)
        };
        request = match input.auth {
            0 => request,
            1 => request.header("Authorization", "Bearer wrong"),
            2 => request.header("Authorization", "Basic x"),
            _ => request.header("Authorization", format!("Bearer {token}")),
        };
        let content_type = match input.content_type {
            "auto"
                if crate::server::style_of(input.route) == Some(crate::server::Style::Upload) =>
            {
                "application/octet-stream"
            }
            "auto"
                if crate::server::style_of(input.route) == Some(crate::server::Style::Download) =>
            {
                ""
            }
            "auto" => "application/json",
            other => other,
        };
        if !content_type.is_empty() {
            request = request.header("Content-Type", content_type);
        }
        if let Some(arg) = &input.arg
            && let Ok(value) = reqwest::header::HeaderValue::from_bytes(arg)
        {
            request = request.header("Dropbox-API-Arg", value);
        }
        let response = runtime.block_on(async {
            let response = request.body(input.body.clone()).send().await?;
            let status = response.status().as_u16();
            response.bytes().await.map(|_| status)
        });
        let status = response.map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
        *seen.lock().unwrap().entry(status).or_default() += 1;
        prop_assert!(
            matches!(status, 200 | 206 | 400 | 401 | 404 | 405 | 409 | 416),
            "status {status} for {input:?}"
        );
        Ok(())
    });
    if let Err(err) = result {
        panic!("{err}");
    }
    let seen = seen.into_inner().unwrap();
    eprintln!("status histogram: {seen:?}");
    // The inputs reach past authentication and argument checks into the routes.
    assert!(
        seen.get(&200).is_some_and(|n| *n > 0) || cases < 100,
        "{seen:?}"
    );
    assert!(
        seen.get(&409).is_some_and(|n| *n > 0) || cases < 100,
        "{seen:?}"
    );
}

proptest! {
    #![proptest_config(Config { cases: 512, failure_persistence: None, ..Config::default() })]

    #[test]
    fn path_parsing_never_panics(raw in text()) {
        for kind in [
            crate::paths::PathKind::Read,
            crate::paths::PathKind::ReadOrId,
            crate::paths::PathKind::Write,
            crate::paths::PathKind::WriteOrId,
        ] {
            let _ = crate::paths::parse(&raw, kind, true);
            let _ = crate::paths::parse(&raw, kind, false);
        }
        let _ = crate::paths::lower(&raw);
        let _ = crate::journal::Cursor::decode(&raw);
    }

    #[test]
    fn argument_decoding_never_panics(value in json()) {
        let _ = serde_json::from_value::<crate::wire::WriteMode>(value.clone());
        let _ = serde_json::from_value::<crate::wire::VoidUnion>(value.clone());
        let _ = crate::wire::error_summary(&value);
        let _ = crate::wire::ascii_json(&value);
    }
}
