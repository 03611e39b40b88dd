//! Wire-level tests: the server runs on port 0 in a temporary directory and is spoken to with
//! raw HTTP (reqwest), checking status codes, headers and exact JSON shapes.

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::{EmulatorConfig, RunningEmulator};

mod accounts;
mod bad_input;
mod batch;
mod faults;
mod fuzz;
mod oauth;
mod team;
mod tls;

pub(crate) struct Harness {
    emulator: RunningEmulator,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

/// A response reduced to what tests look at.
pub(crate) struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The 409 `error` value, checking the envelope.
    fn route_error(&self) -> Value {
        assert_eq!(self.status, StatusCode::CONFLICT, "{}", self.text());
        let body = self.json();
        let summary = body["error_summary"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(summary.contains('/'), "summary {summary}");
        body["error"].clone()
    }

    fn summary(&self) -> String {
        self.json()["error_summary"]
            .as_str()
            .unwrap_or_default()
            .trim_end_matches('.')
            .to_string()
    }
}

impl Harness {
    async fn start() -> Harness {
        Self::start_with(|_| {}).await
    }

    async fn start_with(tweak: impl FnOnce(&mut EmulatorConfig)) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let mut config = EmulatorConfig::new(dir.path());
        tweak(&mut config);
        let emulator = RunningEmulator::start(config).await.unwrap();
        Harness {
            emulator,
            http: reqwest::Client::new(),
            dir,
        }
    }

    async fn restart(self) -> Harness {
        let Harness {
            emulator,
            http,
            dir,
        } = self;
        emulator.shutdown().await;
        let emulator = RunningEmulator::start(EmulatorConfig::new(dir.path()))
            .await
            .unwrap();
        Harness {
            emulator,
            http,
            dir,
        }
    }

    fn url(&self, route: &str) -> String {
        format!("{}/2/{route}", self.emulator.base_url())
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.emulator.token())
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap().to_vec();
        assert!(
            headers.contains_key("x-dropbox-request-id"),
            "every response has a request id"
        );
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn rpc(&self, route: &str, arg: Value) -> Reply {
        self.rpc_as(self.emulator.token(), route, arg).await
    }

    /// An RPC call with another account's token.
    async fn rpc_as(&self, token: &str, route: &str, arg: Value) -> Reply {
        self.send(
            self.http
                .post(self.url(route))
                .header("Authorization", format!("Bearer {token}"))
                .header("Content-Type", "application/json")
                .body(arg.to_string()),
        )
        .await
    }

    /// An upload with the argument header given as raw bytes.
    async fn upload_raw(&self, route: &str, arg: &[u8], data: &[u8]) -> Reply {
        self.send(
            self.http
                .post(self.url(route))
                .header("Authorization", self.bearer())
                .header("Content-Type", "application/octet-stream")
                .header("Dropbox-API-Arg", HeaderValue::from_bytes(arg).unwrap())
                .body(data.to_vec()),
        )
        .await
    }

    /// An upload with the argument serialised and ASCII-escaped like a careful client.
    async fn upload_to(&self, route: &str, arg: Value, data: &[u8]) -> Reply {
        let arg = crate::wire::ascii_json(&arg);
        self.upload_raw(route, arg.as_bytes(), data).await
    }

    async fn upload(&self, path: &str, data: &[u8]) -> Value {
        let reply = self
            .upload_to("files/upload", json!({"path": path}), data)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        reply.json()
    }

    async fn download(&self, path: &str, range: Option<&str>) -> Reply {
        let mut request = self
            .http
            .post(self.url("files/download"))
            .header("Authorization", self.bearer())
            .header(
                "Dropbox-API-Arg",
                crate::wire::ascii_json(&json!({"path": path})),
            );
        if let Some(range) = range {
            request = request.header("Range", range);
        }
        self.send(request).await
    }

    /// Calls `list_folder/continue` until `has_more` is false; returns the entries as
    /// `tag:path_display` and the final cursor.
    async fn drain(&self, mut cursor: Value) -> (Vec<String>, Value) {
        let mut all = Vec::new();
        loop {
            let page = self
                .rpc("files/list_folder/continue", json!({"cursor": cursor}))
                .await
                .json();
            all.extend(names(&page["entries"]));
            cursor = page["cursor"].clone();
            if page["has_more"] != true {
                return (all, cursor);
            }
        }
    }

    async fn metadata(&self, path: &str) -> Reply {
        self.rpc("files/get_metadata", json!({"path": path})).await
    }
}

fn names(entries: &Value) -> Vec<String> {
    entries
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    format!(
                        "{}:{}",
                        e[".tag"].as_str().unwrap_or("?"),
                        e["path_display"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn auth_errors() {
    let h = Harness::start().await;
    let url = h.url("users/get_current_account");

    let missing = h.send(h.http.post(&url).body("null")).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        missing.text(),
        "Error in call to API function \"users/get_current_account\": Must provide HTTP header \"Authorization\" or URL parameter \"authorization\"."
    );

    let malformed = h
        .send(h.http.post(&url).header("Authorization", "Token abc"))
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(
        malformed
            .text()
            .contains("Expecting \"Bearer <oauth2-access-token>\"")
    );

    let wrong = h
        .send(h.http.post(&url).header("Authorization", "Bearer nope"))
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer realm=\"Dropbox-API\"")
    );
    assert!(wrong.summary().starts_with("invalid_access_token/"));
    assert_eq!(
        wrong.json()["error"],
        json!({".tag": "invalid_access_token"})
    );
    assert!(
        wrong
            .text()
            .contains(r#""error":{".tag":"invalid_access_token"}"#)
    );

    // The token is generated, long, URL-safe.
    assert!(h.emulator.token().len() >= 40);
    assert_eq!(h.emulator.route_calls("users/get_current_account"), 3);
}

#[tokio::test]
async fn unknown_route_and_method() {
    let h = Harness::start().await;
    let reply = h.rpc("files/frobnicate", Value::Null).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.text(), "Unknown API function: \"files/frobnicate\"");
    let outside = h
        .send(h.http.get(format!("{}/elsewhere", h.emulator.base_url())))
        .await;
    assert_eq!(outside.status, StatusCode::NOT_FOUND);
    let get = h
        .send(
            h.http
                .get(h.url("files/list_folder"))
                .header("Authorization", h.bearer()),
        )
        .await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn current_account_and_void_bodies() {
    let h = Harness::start().await;
    let reply = h.rpc("users/get_current_account", Value::Null).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let account = reply.json();
    let id = account["account_id"].as_str().unwrap_or_default();
    assert_eq!(id.len(), 40);
    assert!(id.starts_with("dbid:"));
    for field in [
        "given_name",
        "surname",
        "familiar_name",
        "display_name",
        "abbreviated_name",
    ] {
        assert!(account["name"][field].is_string(), "{field}");
    }
    for field in ["email", "locale", "referral_link"] {
        assert!(account[field].is_string(), "{field}");
    }
    for field in ["email_verified", "disabled", "is_paired"] {
        assert!(account[field].is_boolean(), "{field}");
    }
    assert!(reply.text().contains(r#""account_type":{".tag":"basic"}"#));
    assert!(reply.text().contains(r#""root_info":{".tag":"user","#));

    // No body and no Content-Type is fine for a void route.
    let bare = h
        .send(
            h.http
                .post(h.url("users/get_current_account"))
                .header("Authorization", h.bearer()),
        )
        .await;
    assert_eq!(bare.status, StatusCode::OK, "{}", bare.text());
    // An empty body that claims to be JSON is not.
    let empty = h
        .send(
            h.http
                .post(h.url("users/get_current_account"))
                .header("Authorization", h.bearer())
                .header("Content-Type", "application/json"),
        )
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(
        empty.text().contains("could not decode input as JSON"),
        "{}",
        empty.text()
    );
    // Wrong Content-Type on an RPC route.
    let wrong = h
        .send(
            h.http
                .post(h.url("users/get_current_account"))
                .header("Authorization", h.bearer())
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body("null"),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(
        wrong.text().contains("Bad HTTP \"Content-Type\" header"),
        "{}",
        wrong.text()
    );
}

#[tokio::test]
async fn upload_download_roundtrip() {
    let h = Harness::start().await;
    let meta = h.upload("/Café/Hello x.txt", b"hello world").await;
    assert_eq!(meta["name"], "Hello x.txt");
    assert_eq!(meta["path_display"], "/Café/Hello x.txt");
    assert_eq!(meta["path_lower"], "/café/hello x.txt");
    assert_eq!(meta["size"], 11);
    assert_eq!(
        meta["content_hash"],
        "bc62d4b80d9e36da29c16c5d4d9f11731f36052c72401a76c23c0fb5a9b74423"
    );
    assert_eq!(meta["is_downloadable"], true);
    assert!(meta.get(".tag").is_none(), "FileMetadata is a plain object");
    let id = meta["id"].as_str().unwrap_or_default();
    assert!(id.starts_with("id:") && id.len() == 25, "{id}");
    let rev = meta["rev"].as_str().unwrap_or_default();
    assert!(
        rev.len() >= 9
            && rev
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    for ts in ["client_modified", "server_modified"] {
        let value = meta[ts].as_str().unwrap_or_default();
        assert!(crate::wire::check_timestamp(ts, value).is_ok(), "{value}");
    }

    let reply = h.download("/CAFÉ/hello X.TXT", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.body, b"hello world");
    let header = reply
        .headers
        .get("dropbox-api-result")
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    assert!(
        header.iter().all(|b| (0x20..0x7f).contains(b)),
        "ASCII only"
    );
    let header = String::from_utf8_lossy(&header).into_owned();
    assert!(header.contains(r"/Caf\u00e9/Hello x.txt"), "{header}");
    let result: Value = serde_json::from_str(&header).unwrap_or_default();
    assert_eq!(result, meta);

    let partial = h.download("/café/hello x.txt", Some("bytes=6-")).await;
    assert_eq!(partial.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(partial.body, b"world");
    assert_eq!(
        partial
            .headers
            .get("content-range")
            .and_then(|v| v.to_str().ok()),
        Some("bytes 6-10/11")
    );
    let bad = h.download("/café/hello x.txt", Some("bytes=50-")).await;
    assert_eq!(bad.status, StatusCode::RANGE_NOT_SATISFIABLE);

    // Download by id, and by rev.
    let by_id = h.download(id, None).await;
    assert_eq!(by_id.body, b"hello world");
    let by_rev = h.download(&format!("rev:{rev}"), None).await;
    assert_eq!(by_rev.body, b"hello world");

    // A folder is not a file; a missing file is not found.
    assert_eq!(
        h.download("/café", None).await.route_error(),
        json!({".tag": "path", "path": {".tag": "not_file"}})
    );
    let missing = h.download("/nope", None).await;
    assert!(
        missing
            .text()
            .contains(r#""error":{".tag":"path","path":{".tag":"not_found"}}"#)
    );
    assert!(missing.summary().starts_with("path/not_found/"));
    assert!(missing.headers.get("dropbox-api-result").is_none());
}

#[tokio::test]
async fn non_ascii_and_non_bmp_args() {
    let h = Harness::start().await;
    let raw = "{\"path\": \"/caf\u{e9}.txt\"}";
    let reply = h.upload_raw("files/upload", raw.as_bytes(), b"x").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.text(),
        "Error in call to API function \"files/upload\": HTTP header \"Dropbox-API-Arg\": could not decode input as JSON"
    );
    // Properly escaped (surrogate pair) emoji: refused as outside the BMP.
    let reply = h
        .upload_to("files/upload", json!({"path": "/a😀.txt"}), b"x")
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.text().ends_with(
            "path: invalid path: character at index 2: not part of the Unicode Basic Multilingual Plane"
        ),
        "{}",
        reply.text()
    );
    // The SDK's five-digit escape is read per JSON: \u1f60 followed by "0".
    let reply = h
        .upload_raw("files/upload", br#"{"path": "/a\u1f600.txt"}"#, b"x")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["name"], "a\u{1f60}0.txt");
}

#[tokio::test]
async fn path_validation_errors() {
    let h = Harness::start().await;
    let slash = h.rpc("files/list_folder", json!({"path": "/"})).await;
    assert_eq!(slash.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        slash.text(),
        "Error in call to API function \"files/list_folder\": request body: path: Specify the root folder as an empty string rather than as \"/\"."
    );
    let root = h.metadata("").await;
    assert_eq!(root.status, StatusCode::BAD_REQUEST);
    assert!(
        root.text()
            .ends_with("path: The root folder is unsupported.")
    );
    let pattern = h.metadata("test").await;
    assert_eq!(pattern.status, StatusCode::BAD_REQUEST);
    assert!(
        pattern.text().contains("did not match pattern"),
        "{}",
        pattern.text()
    );

    let upload = h
        .upload_to("files/upload", json!({"path": "/a//b.txt"}), b"x")
        .await;
    let error = upload.route_error();
    assert_eq!(error[".tag"], "path");
    assert_eq!(error["reason"], json!({".tag": "malformed_path"}));
    assert!(upload.summary().starts_with("path/malformed_path/"));
    let lookup = h.metadata("/trailing/").await;
    assert_eq!(
        lookup.route_error(),
        json!({".tag": "path", "path": {".tag": "malformed_path"}})
    );
    let long = format!("/{}", "n".repeat(256));
    let reply = h.rpc("files/create_folder_v2", json!({"path": long})).await;
    assert_eq!(
        reply.route_error(),
        json!({".tag": "path", "path": {".tag": "malformed_path"}})
    );

    let bad_ts = h
        .upload_to(
            "files/upload",
            json!({"path": "/t.txt", "client_modified": "2020-01-01 00:00:00"}),
            b"x",
        )
        .await;
    assert_eq!(bad_ts.status, StatusCode::BAD_REQUEST);
    let bad_ct = h
        .send(
            h.http
                .post(h.url("files/upload"))
                .header("Authorization", h.bearer())
                .header("Content-Type", "application/json; charset=UTF-8")
                .header("Dropbox-API-Arg", r#"{"path":"/x"}"#)
                .body("x"),
        )
        .await;
    assert_eq!(bad_ct.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad_ct.text(),
        "Error in call to API function \"files/upload\": Bad HTTP \"Content-Type\" header: \"application/json; charset=UTF-8\".  Expecting one of \"application/octet-stream\", \"text/plain; charset=dropbox-cors-hack\"."
    );
}

#[tokio::test]
async fn write_modes_conflicts_and_case() {
    let h = Harness::start().await;
    let first = h.upload("/Docs/Report.txt", b"v1").await;

    // Same content again: no conflict, no new rev, even with add mode.
    let again = h.upload("/docs/report.TXT", b"v1").await;
    assert_eq!(again["rev"], first["rev"]);

    // Different content in add mode: conflict (`.tag` first, struct member flattened).
    let conflict = h
        .upload_to("files/upload", json!({"path": "/DOCS/report.txt"}), b"v2")
        .await;
    assert!(
        conflict.text().contains(
            r#""error":{".tag":"path","reason":{".tag":"conflict","conflict":{".tag":"file"}},"upload_session_id":""#
        ),
        "{}",
        conflict.text()
    );
    assert!(conflict.summary().starts_with("path/conflict/file/"));
    // The data went into a closed session that finish can commit elsewhere.
    let session = conflict.json()["error"]["upload_session_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let finish = h
        .upload_to(
            "files/upload_session/finish",
            json!({"cursor": {"session_id": session, "offset": 2}, "commit": {"path": "/Docs/Report v2.txt"}}),
            b"",
        )
        .await;
    assert_eq!(finish.status, StatusCode::OK, "{}", finish.text());
    assert_eq!(finish.json()["size"], 2);

    // Autorename in add mode.
    let renamed = h
        .upload_to(
            "files/upload",
            json!({"path": "/docs/report.txt", "autorename": true}),
            b"v2",
        )
        .await;
    assert_eq!(renamed.json()["path_display"], "/Docs/Report (1).txt");

    // Overwrite keeps id and the first casing, changes rev.
    let overwritten = h
        .upload_to(
            "files/upload",
            json!({"path": "/docs/REPORT.txt", "mode": "overwrite"}),
            b"v3",
        )
        .await
        .json();
    assert_eq!(overwritten["id"], first["id"]);
    assert_eq!(overwritten["path_display"], "/Docs/Report.txt");
    assert_ne!(overwritten["rev"], first["rev"]);

    // Update with a stale rev: conflict, or a conflicted copy with autorename.
    let stale = json!({".tag": "update", "update": first["rev"]});
    let reply = h
        .upload_to(
            "files/upload",
            json!({"path": "/Docs/Report.txt", "mode": stale}),
            b"v4",
        )
        .await;
    assert!(reply.summary().starts_with("path/conflict/file/"));
    let reply = h
        .upload_to(
            "files/upload",
            json!({"path": "/Docs/Report.txt", "mode": stale, "autorename": true}),
            b"v4",
        )
        .await;
    assert_eq!(reply.json()["name"], "Report (conflicted copy).txt");
    // Update with the current rev succeeds.
    let current = json!({".tag": "update", "update": overwritten["rev"]});
    let reply = h
        .upload_to(
            "files/upload",
            json!({"path": "/Docs/Report.txt", "mode": current}),
            b"v5",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["id"], first["id"]);

    // A folder in the way; a file in place of a parent folder.
    let folder = h
        .upload_to("files/upload", json!({"path": "/Docs"}), b"x")
        .await;
    assert!(folder.summary().starts_with("path/conflict/folder/"));
    let ancestor = h
        .upload_to(
            "files/upload",
            json!({"path": "/Docs/Report.txt/inner.txt"}),
            b"x",
        )
        .await;
    assert!(
        ancestor
            .summary()
            .starts_with("path/conflict/file_ancestor/")
    );

    // Final sigma is lowered per character.
    let sigma = h.upload("/ΟΔΟΣ.txt", b"s").await;
    assert_eq!(sigma["path_lower"], "/οδοσ.txt");
    assert_eq!(h.metadata("/οδοσ.TXT").await.json()["id"], sigma["id"]);
}

#[tokio::test]
async fn upload_sessions() {
    let h = Harness::start().await;
    let start = h
        .upload_to("files/upload_session/start", json!({}), b"hello ")
        .await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text());
    let session = start.json()["session_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let wrong = h
        .upload_to(
            "files/upload_session/append_v2",
            json!({"cursor": {"session_id": session, "offset": 3}}),
            b"wor",
        )
        .await;
    assert_eq!(
        wrong.route_error(),
        json!({".tag": "incorrect_offset", "correct_offset": 6})
    );
    assert!(
        wrong
            .text()
            .contains(r#"{".tag":"incorrect_offset","correct_offset":6}"#)
    );
    let append = h
        .upload_to(
            "files/upload_session/append_v2",
            json!({"cursor": {"session_id": session, "offset": 6}}),
            b"wor",
        )
        .await;
    assert_eq!(append.status, StatusCode::OK, "{}", append.text());
    assert_eq!(append.text(), "null");

    let bad_finish = h
        .upload_to(
            "files/upload_session/finish",
            json!({"cursor": {"session_id": session, "offset": 6}, "commit": {"path": "/big.txt"}}),
            b"ld",
        )
        .await;
    assert!(
        bad_finish
            .summary()
            .starts_with("lookup_failed/incorrect_offset/")
    );
    assert_eq!(
        bad_finish.route_error(),
        json!({".tag": "lookup_failed", "lookup_failed": {".tag": "incorrect_offset", "correct_offset": 9}})
    );
    let finish = h
        .upload_to(
            "files/upload_session/finish",
            json!({"cursor": {"session_id": session, "offset": 9}, "commit": {"path": "/big.txt", "client_modified": "2020-01-02T03:04:05Z"}}),
            b"ld",
        )
        .await;
    assert_eq!(finish.status, StatusCode::OK, "{}", finish.text());
    let meta = finish.json();
    assert_eq!(meta["size"], 11);
    assert_eq!(meta["client_modified"], "2020-01-02T03:04:05Z");
    assert_eq!(
        meta["content_hash"],
        ferry_core::content_hash::content_hash(b"hello world")
    );
    assert_eq!(h.download("/big.txt", None).await.body, b"hello world");

    // Finished sessions are gone; unknown ones were never there.
    let gone = h
        .upload_to(
            "files/upload_session/append_v2",
            json!({"cursor": {"session_id": session, "offset": 11}}),
            b"x",
        )
        .await;
    assert_eq!(gone.route_error(), json!({".tag": "not_found"}));

    // Closed sessions refuse appends.
    let closed = h
        .upload_to("files/upload_session/start", json!({"close": true}), b"abc")
        .await
        .json();
    let reply = h
        .upload_to(
            "files/upload_session/append_v2",
            json!({"cursor": {"session_id": closed["session_id"], "offset": 3}}),
            b"d",
        )
        .await;
    assert_eq!(reply.route_error(), json!({".tag": "closed"}));

    // A wrong content_hash for the chunk.
    let mismatch = h
        .upload_to(
            "files/upload",
            json!({"path": "/h.txt", "content_hash": ferry_core::content_hash::content_hash(b"other")}),
            b"data",
        )
        .await;
    assert_eq!(
        mismatch.route_error(),
        json!({".tag": "content_hash_mismatch"})
    );
    assert_eq!(h.emulator.route_calls("files/upload_session/append_v2"), 4);
}

#[tokio::test]
async fn folders_delete_move() {
    let h = Harness::start().await;
    let created = h
        .rpc("files/create_folder_v2", json!({"path": "/Projects/Alpha"}))
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    let alpha = created.json()["metadata"].clone();
    assert_eq!(alpha["path_display"], "/Projects/Alpha");
    assert!(alpha.get(".tag").is_none());
    let exists = h
        .rpc("files/create_folder_v2", json!({"path": "/projects/alpha"}))
        .await;
    assert_eq!(
        exists.route_error(),
        json!({".tag": "path", "path": {".tag": "conflict", "conflict": {".tag": "folder"}}})
    );
    let auto = h
        .rpc(
            "files/create_folder_v2",
            json!({"path": "/projects/alpha", "autorename": true}),
        )
        .await;
    assert_eq!(
        auto.json()["metadata"]["path_display"],
        "/Projects/Alpha (1)"
    );

    let file = h.upload("/Projects/Alpha/a.txt", b"a").await;
    // get_metadata: `.tag` first.
    let meta = h.metadata("/projects/alpha/A.TXT").await;
    assert!(
        meta.text().starts_with(r#"{".tag":"file","#),
        "{}",
        meta.text()
    );
    let folder_meta = h.metadata("/projects").await;
    assert!(folder_meta.text().starts_with(r#"{".tag":"folder","#));

    // Moves keep ids; moving a folder into itself fails.
    let into = h
        .rpc(
            "files/move_v2",
            json!({"from_path": "/Projects", "to_path": "/projects/alpha/x"}),
        )
        .await;
    assert_eq!(
        into.route_error(),
        json!({".tag": "cant_move_folder_into_itself"})
    );
    let moved = h
        .rpc(
            "files/move_v2",
            json!({"from_path": "/Projects/Alpha", "to_path": "/Archive/Alpha"}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text());
    assert_eq!(moved.json()["metadata"][".tag"], "folder");
    assert_eq!(moved.json()["metadata"]["id"], alpha["id"]);
    let moved_file = h.metadata("/archive/alpha/a.txt").await.json();
    assert_eq!(moved_file["id"], file["id"]);
    assert_eq!(moved_file["rev"], file["rev"]);
    assert_eq!(moved_file["path_display"], "/Archive/Alpha/a.txt");
    let from_missing = h
        .rpc(
            "files/move_v2",
            json!({"from_path": "/Projects/Alpha", "to_path": "/b"}),
        )
        .await;
    assert_eq!(
        from_missing.route_error(),
        json!({".tag": "from_lookup", "from_lookup": {".tag": "not_found"}})
    );
    h.upload("/b.txt", b"b").await;
    let to_conflict = h
        .rpc(
            "files/move_v2",
            json!({"from_path": "/archive/alpha/a.txt", "to_path": "/B.txt"}),
        )
        .await;
    assert!(to_conflict.summary().starts_with("to/conflict/file/"));

    // Case-only rename: success, new casing everywhere below.
    let case = h
        .rpc(
            "files/move_v2",
            json!({"from_path": "/Archive/Alpha", "to_path": "/Archive/ALPHA"}),
        )
        .await;
    assert_eq!(case.status, StatusCode::OK, "{}", case.text());
    assert_eq!(
        h.metadata("/archive/alpha/a.txt").await.json()["path_display"],
        "/Archive/ALPHA/a.txt"
    );

    // Delete by id, recursive; parent_rev mismatch.
    let stale = h
        .rpc(
            "files/delete_v2",
            json!({"path": "/b.txt", "parent_rev": "0123456789"}),
        )
        .await;
    assert_eq!(
        stale.route_error(),
        json!({".tag": "path_lookup", "path_lookup": {".tag": "not_found"}})
    );
    let deleted = h.rpc("files/delete_v2", json!({"path": alpha["id"]})).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text());
    assert!(
        deleted
            .text()
            .starts_with(r#"{"metadata":{".tag":"folder","#),
        "{}",
        deleted.text()
    );
    let gone = h.metadata("/archive/alpha/a.txt").await;
    assert!(gone.summary().starts_with("path/not_found/"));
    let with_deleted = h
        .rpc(
            "files/get_metadata",
            json!({"path": "/archive/alpha/a.txt", "include_deleted": true}),
        )
        .await;
    assert_eq!(with_deleted.json()[".tag"], "deleted");
    let again = h
        .rpc("files/delete_v2", json!({"path": "/archive/alpha"}))
        .await;
    assert!(again.summary().starts_with("path_lookup/not_found/"));
}

#[tokio::test]
async fn list_folder_and_deltas() {
    let h = Harness::start().await;
    h.upload("/A/one.txt", b"1").await;
    h.upload("/A/Sub/two.txt", b"2").await;
    h.upload("/top.txt", b"t").await;

    let flat = h.rpc("files/list_folder", json!({"path": ""})).await.json();
    assert_eq!(names(&flat["entries"]), ["folder:/A", "file:/top.txt"]);
    assert_eq!(flat["has_more"], false);

    let sub = h
        .rpc(
            "files/list_folder",
            json!({"path": "/a", "recursive": true}),
        )
        .await
        .json();
    assert_eq!(
        names(&sub["entries"]),
        [
            "folder:/A",
            "file:/A/one.txt",
            "folder:/A/Sub",
            "file:/A/Sub/two.txt"
        ]
    );

    // Paging through the initial listing.
    let mut page = h
        .rpc(
            "files/list_folder",
            json!({"path": "", "recursive": true, "limit": 2}),
        )
        .await
        .json();
    let mut all = names(&page["entries"]);
    while page["has_more"] == true {
        page = h
            .rpc(
                "files/list_folder/continue",
                json!({"cursor": page["cursor"]}),
            )
            .await
            .json();
        all.extend(names(&page["entries"]));
    }
    assert_eq!(
        all,
        [
            "folder:/A",
            "file:/A/one.txt",
            "folder:/A/Sub",
            "file:/A/Sub/two.txt",
            "file:/top.txt"
        ]
    );
    let cursor = page["cursor"].clone();
    let latest = h
        .rpc("files/list_folder/get_latest_cursor", json!({"path": "/A"}))
        .await
        .json()["cursor"]
        .clone();

    // Changes: modify, delete a folder, move.
    h.upload_to(
        "files/upload",
        json!({"path": "/A/one.txt", "mode": "overwrite"}),
        b"1b",
    )
    .await;
    h.rpc("files/delete_v2", json!({"path": "/A/Sub"})).await;
    h.rpc(
        "files/move_v2",
        json!({"from_path": "/top.txt", "to_path": "/A/top.txt"}),
    )
    .await;
    // The cursor keeps the page size (2) of its list_folder call.
    let (changed, next) = h.drain(cursor).await;
    assert_eq!(
        changed,
        [
            "file:/A/one.txt",
            "deleted:/A/Sub/two.txt",
            "deleted:/A/Sub",
            "deleted:/top.txt",
            "file:/A/top.txt"
        ]
    );
    let (quiet, _) = h.drain(next).await;
    assert!(quiet.is_empty());

    // A non-recursive cursor on /A sees only direct children.
    let direct = h
        .rpc("files/list_folder/continue", json!({"cursor": latest}))
        .await
        .json();
    assert_eq!(
        names(&direct["entries"]),
        ["file:/A/one.txt", "deleted:/A/Sub", "file:/A/top.txt"]
    );

    // Listing a file or a missing folder.
    let not_folder = h
        .rpc("files/list_folder", json!({"path": "/A/one.txt"}))
        .await;
    assert_eq!(
        not_folder.route_error(),
        json!({".tag": "path", "path": {".tag": "not_folder"}})
    );
    let missing = h.rpc("files/list_folder", json!({"path": "/zzz"})).await;
    assert!(missing.summary().starts_with("path/not_found/"));
    let limit = h
        .rpc("files/list_folder", json!({"path": "", "limit": 0}))
        .await;
    assert_eq!(limit.status, StatusCode::BAD_REQUEST);

    // Include deleted in an initial listing.
    let with_deleted = h
        .rpc(
            "files/list_folder",
            json!({"path": "/A", "include_deleted": true}),
        )
        .await
        .json();
    assert_eq!(
        names(&with_deleted["entries"]),
        ["file:/A/one.txt", "deleted:/A/Sub", "file:/A/top.txt"]
    );
}

#[tokio::test]
async fn garbage_cursor_resets() {
    let h = Harness::start().await;
    for cursor in ["garbage!", "AAAA", "eyJ4IjoxfQ"] {
        let reply = h
            .rpc("files/list_folder/continue", json!({"cursor": cursor}))
            .await;
        assert_eq!(reply.route_error(), json!({".tag": "reset"}));
        assert!(reply.summary().starts_with("reset/"));
    }
    // A cursor from the future (journal position past the end) resets too.
    let cursor = crate::journal::Cursor {
        journal_id: "whatever".into(),
        scope: String::new(),
        recursive: false,
        include_deleted: false,
        seq: 99,
        after: None,
        limit: None,
        issued: None,
    };
    let reply = h
        .rpc(
            "files/list_folder/continue",
            json!({"cursor": cursor.encode()}),
        )
        .await;
    assert_eq!(reply.route_error(), json!({".tag": "reset"}));
}

#[tokio::test]
async fn state_survives_restart() {
    let h = Harness::start().await;
    let token = h.emulator.token().to_string();
    let account = h.rpc("users/get_current_account", Value::Null).await.json();
    let a = h.upload("/Keep/a.txt", b"alpha").await;
    let b = h.upload("/Keep/b.txt", b"beta").await;
    h.rpc(
        "files/move_v2",
        json!({"from_path": "/Keep/b.txt", "to_path": "/Moved/B.txt"}),
    )
    .await;
    h.rpc("files/delete_v2", json!({"path": "/Keep/a.txt"}))
        .await;
    let c = h.upload("/Keep/a.txt", b"alpha again").await;
    let cursor = h
        .rpc(
            "files/list_folder/get_latest_cursor",
            json!({"path": "", "recursive": true}),
        )
        .await
        .json()["cursor"]
        .clone();
    let listing = h
        .rpc("files/list_folder", json!({"path": "", "recursive": true}))
        .await
        .json();
    let session = h
        .upload_to("files/upload_session/start", json!({}), b"part")
        .await
        .json()["session_id"]
        .clone();

    let h = h.restart().await;
    assert_eq!(h.emulator.token(), token, "the generated token is kept");
    assert_eq!(
        h.emulator.route_calls("files/upload"),
        0,
        "counters are per start"
    );
    assert_eq!(
        h.rpc("users/get_current_account", Value::Null).await.json(),
        account
    );
    let again = h
        .rpc("files/list_folder", json!({"path": "", "recursive": true}))
        .await
        .json();
    assert_eq!(again["entries"], listing["entries"]);
    let moved = h.metadata("/moved/b.txt").await.json();
    assert_eq!(moved["id"], b["id"]);
    assert_eq!(moved["rev"], b["rev"]);
    let recreated = h.metadata("/keep/a.txt").await.json();
    assert_eq!(recreated["rev"], c["rev"]);
    assert_ne!(recreated["id"], a["id"]);
    assert_eq!(h.download("/Moved/B.txt", None).await.body, b"beta");
    assert_eq!(
        h.download(
            &format!("rev:{}", a["rev"].as_str().unwrap_or_default()),
            None
        )
        .await
        .body,
        b"alpha"
    );
    // Old cursors stay valid.
    let delta = h
        .rpc("files/list_folder/continue", json!({"cursor": cursor}))
        .await
        .json();
    assert_eq!(delta["entries"], json!([]));
    h.upload("/new.txt", b"n").await;
    let delta = h
        .rpc("files/list_folder/continue", json!({"cursor": cursor}))
        .await
        .json();
    assert_eq!(names(&delta["entries"]), ["file:/new.txt"]);
    // Upload sessions too.
    let append = h
        .upload_to(
            "files/upload_session/append_v2",
            json!({"cursor": {"session_id": session, "offset": 4}, "close": true}),
            b"!",
        )
        .await;
    assert_eq!(append.status, StatusCode::OK, "{}", append.text());
    h.emulator.shutdown().await;
}

#[tokio::test]
async fn configured_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmulatorConfig::new(dir.path());
    config.token = Some("secret-token".into());
    let emulator = RunningEmulator::start(config).await.unwrap();
    assert_eq!(emulator.token(), "secret-token");
    let ok = reqwest::Client::new()
        .post(format!(
            "{}/2/users/get_current_account",
            emulator.base_url()
        ))
        .header("Authorization", "Bearer secret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    emulator.shutdown().await;
}

#[tokio::test]
async fn id_and_namespace_paths() {
    let h = Harness::start().await;
    let folder = h
        .rpc("files/create_folder_v2", json!({"path": "/Team/Docs"}))
        .await
        .json()["metadata"]
        .clone();
    let id = folder["id"].as_str().unwrap_or_default().to_string();
    // Upload below a folder id keeps the folder's casing.
    let file = h.upload(&format!("{id}/Note.txt"), b"n").await;
    assert_eq!(file["path_display"], "/Team/Docs/Note.txt");
    let by_id = h.metadata(&format!("{id}/note.txt")).await.json();
    assert_eq!(by_id["id"], file["id"]);
    let listed = h.rpc("files/list_folder", json!({"path": id})).await.json();
    assert_eq!(names(&listed["entries"]), ["file:/Team/Docs/Note.txt"]);
    let unknown = h.metadata("id:doesnotexist").await;
    assert!(unknown.summary().starts_with("path/not_found/"));

    let account = h.rpc("users/get_current_account", Value::Null).await.json();
    let ns = account["root_info"]["root_namespace_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let via_ns = h
        .metadata(&format!("ns:{ns}/team/docs/note.txt"))
        .await
        .json();
    assert_eq!(via_ns["id"], file["id"]);
    let other_ns = h.metadata("ns:1/team").await;
    assert!(other_ns.summary().starts_with("path/not_found/"));

    // Moving by id keeps the id; the old id path follows the item.
    let moved = h
        .rpc(
            "files/move_v2",
            json!({"from_path": id, "to_path": "/Elsewhere"}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text());
    let follow = h.metadata(&format!("{id}/Note.txt")).await.json();
    assert_eq!(follow["path_display"], "/Elsewhere/Note.txt");

    let usage = h.rpc("users/get_space_usage", Value::Null).await;
    assert!(
        usage
            .text()
            .contains(r#""allocation":{".tag":"individual","#),
        "{}",
        usage.text()
    );
}
