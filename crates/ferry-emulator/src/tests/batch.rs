//! Batch routes, concurrent sessions, copy, search and temporary links.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::Harness;

/// Starts a session holding `data`, closed or not; returns its id.
async fn session(h: &Harness, data: &[u8], close: bool) -> String {
    let reply = h
        .upload_to("files/upload_session/start", json!({"close": close}), data)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()["session_id"].as_str().unwrap().to_string()
}

fn finish_entry(id: &str, offset: usize, path: &str) -> Value {
    json!({"cursor": {"session_id": id, "offset": offset}, "commit": {"path": path}})
}

#[tokio::test]
async fn finish_batch_v2_reports_each_entry() {
    let h = Harness::start().await;
    h.upload("/b/taken.txt", b"old").await;
    let a = session(&h, b"alpha", true).await;
    let b = session(&h, b"beta!", true).await;
    let open = session(&h, b"open", false).await;
    let conflict = session(&h, b"other", true).await;
    let reply = h
        .rpc(
            "files/upload_session/finish_batch_v2",
            json!({"entries": [
                finish_entry(&a, 5, "/b/a.txt"),
                finish_entry(&b, 5, "/b/B.txt"),
                finish_entry(&open, 4, "/b/open.txt"),
                finish_entry(&conflict, 5, "/b/taken.txt"),
                finish_entry(&a, 5, "/b/again.txt"),
                finish_entry(&b, 3, "/b/offset.txt"),
            ]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let entries = reply.json()["entries"].clone();
    assert_eq!(entries[0][".tag"], "success");
    assert_eq!(entries[0]["path_display"], "/b/a.txt");
    assert_eq!(entries[0]["size"], 5);
    assert_eq!(entries[1]["name"], "B.txt");
    assert_eq!(
        entries[2],
        json!({".tag": "failure", "failure": {".tag": "lookup_failed", "lookup_failed": {".tag": "not_closed"}}})
    );
    assert_eq!(
        entries[3],
        json!({".tag": "failure", "failure": {".tag": "path", "path": {".tag": "conflict", "conflict": {".tag": "file"}}}})
    );
    // The session was used up by entry 0 (checked before any commit: still there), and
    // entry 5's offset is wrong.
    assert_eq!(entries[4][".tag"], "success", "{entries}");
    assert_eq!(
        entries[5]["failure"]["lookup_failed"],
        json!({".tag": "incorrect_offset", "correct_offset": 5})
    );
    assert_eq!(h.download("/b/a.txt", None).await.body, b"alpha");
    // Finished sessions are gone.
    let again = h
        .rpc(
            "files/upload_session/finish_batch_v2",
            json!({"entries": [finish_entry(&a, 5, "/b/x.txt")]}),
        )
        .await;
    assert_eq!(
        again.json()["entries"][0]["failure"]["lookup_failed"][".tag"],
        "not_found"
    );
    let too_many: Vec<Value> = (0..1001)
        .map(|i| finish_entry("x", 0, &format!("/{i}")))
        .collect();
    let reply = h
        .rpc(
            "files/upload_session/finish_batch_v2",
            json!({"entries": too_many}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
}

#[tokio::test]
async fn finish_batch_v1_is_async() {
    let h = Harness::start().await;
    h.emulator.faults().update(|m| m.async_job_polls = 1);
    let a = session(&h, b"one", true).await;
    let launch = h
        .rpc(
            "files/upload_session/finish_batch",
            json!({"entries": [finish_entry(&a, 3, "/v1.txt")]}),
        )
        .await
        .json();
    assert_eq!(launch[".tag"], "async_job_id");
    let job = json!({"async_job_id": launch["async_job_id"]});
    let first = h
        .rpc("files/upload_session/finish_batch/check", job.clone())
        .await
        .json();
    assert_eq!(first, json!({".tag": "in_progress"}));
    let done = h
        .rpc("files/upload_session/finish_batch/check", job.clone())
        .await
        .json();
    assert_eq!(done[".tag"], "complete");
    assert_eq!(done["entries"][0]["path_display"], "/v1.txt");
    // A job id of another family, or garbage, is invalid.
    let wrong = h.rpc("files/delete_batch/check", job).await;
    assert_eq!(wrong.route_error(), json!({".tag": "invalid_async_job_id"}));
}

#[tokio::test]
async fn concurrent_sessions() {
    let h = Harness::start().await;
    const BLOCK: usize = 4 << 20;
    let ids = h
        .rpc(
            "files/upload_session/start_batch",
            json!({"num_sessions": 2, "session_type": {".tag": "concurrent"}}),
        )
        .await
        .json();
    let id = ids["session_ids"][0].as_str().unwrap().to_string();
    let gappy = ids["session_ids"][1].as_str().unwrap().to_string();
    let block = |b: u8| vec![b; BLOCK];
    let append = |id: String, offset: usize, data: Vec<u8>, close: bool| {
        let h = &h;
        async move {
            h.upload_to(
                "files/upload_session/append_v2",
                json!({"cursor": {"session_id": id, "offset": offset}, "close": close}),
                &data,
            )
            .await
        }
    };
    // Out of order: the second block first, then the first, then the closing tail.
    assert_eq!(
        append(id.clone(), BLOCK, block(2), false).await.status,
        StatusCode::OK
    );
    let misaligned = append(id.clone(), 10, block(1), false).await;
    assert_eq!(
        misaligned.route_error(),
        json!({".tag": "concurrent_session_invalid_offset"})
    );
    let odd_size = append(id.clone(), 0, vec![1; 10], false).await;
    assert_eq!(
        odd_size.route_error(),
        json!({".tag": "concurrent_session_invalid_data_size"})
    );
    let early = h
        .upload_to(
            "files/upload_session/finish",
            json!({"cursor": {"session_id": id, "offset": 2 * BLOCK}, "commit": {"path": "/c.bin"}}),
            b"",
        )
        .await;
    assert_eq!(
        early.route_error(),
        json!({".tag": "concurrent_session_not_closed"})
    );
    assert_eq!(
        append(id.clone(), 0, block(1), false).await.status,
        StatusCode::OK
    );
    assert_eq!(
        append(id.clone(), 2 * BLOCK, b"tail".to_vec(), true)
            .await
            .status,
        StatusCode::OK
    );
    let with_data = h
        .upload_to(
            "files/upload_session/finish",
            json!({"cursor": {"session_id": id, "offset": 2 * BLOCK + 4}, "commit": {"path": "/c.bin"}}),
            b"x",
        )
        .await;
    assert_eq!(
        with_data.route_error(),
        json!({".tag": "concurrent_session_data_not_allowed"})
    );
    let finished = h
        .upload_to(
            "files/upload_session/finish",
            json!({"cursor": {"session_id": id, "offset": 2 * BLOCK + 4}, "commit": {"path": "/c.bin"}}),
            b"",
        )
        .await;
    assert_eq!(finished.status, StatusCode::OK, "{}", finished.text());
    let mut expected = block(1);
    expected.extend(block(2));
    expected.extend(b"tail");
    assert_eq!(finished.json()["size"], expected.len());
    let content = h.download("/c.bin", None).await.body;
    assert!(content == expected, "content reassembled in offset order");

    // A closed session with a hole is missing data.
    append(gappy.clone(), BLOCK, b"end".to_vec(), true).await;
    let reply = h
        .rpc(
            "files/upload_session/finish_batch_v2",
            json!({"entries": [finish_entry(&gappy, BLOCK + 3, "/gap.bin")]}),
        )
        .await;
    assert_eq!(
        reply.json()["entries"][0]["failure"],
        json!({".tag": "concurrent_session_missing_data"})
    );
    // After the close, blocks may still fill gaps below the end, nothing beyond it.
    let beyond = append(gappy.clone(), 2 * BLOCK, block(3), false).await;
    assert_eq!(beyond.route_error(), json!({".tag": "closed"}));
    assert_eq!(
        append(gappy.clone(), 0, block(3), false).await.status,
        StatusCode::OK
    );
    let filled = h
        .rpc(
            "files/upload_session/finish_batch_v2",
            json!({"entries": [finish_entry(&gappy, BLOCK + 3, "/gap.bin")]}),
        )
        .await;
    assert_eq!(filled.json()["entries"][0]["size"], BLOCK + 3);
    // Concurrent sessions take no data and no close at start.
    let start = h
        .upload_to(
            "files/upload_session/start",
            json!({"session_type": "concurrent"}),
            b"data",
        )
        .await;
    assert_eq!(
        start.route_error(),
        json!({".tag": "concurrent_session_data_not_allowed"})
    );
}

#[tokio::test]
async fn folder_delete_and_move_batches() {
    let h = Harness::start().await;
    let created = h
        .rpc(
            "files/create_folder_batch",
            json!({"paths": ["/f/a", "/f/b", "/F/A", "/f/b/../c"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    let created = created.json();
    assert_eq!(created[".tag"], "complete");
    assert_eq!(created["entries"][0]["metadata"]["path_display"], "/f/a");
    assert_eq!(
        created["entries"][2], created["entries"][0],
        "duplicates once"
    );
    assert_eq!(
        created["entries"][3],
        json!({".tag": "failure", "failure": {".tag": "path", "path": {".tag": "malformed_path"}}})
    );
    let again = h
        .rpc(
            "files/create_folder_batch",
            json!({"paths": ["/f/a"], "force_async": true}),
        )
        .await
        .json();
    assert_eq!(again[".tag"], "async_job_id");
    let status = h
        .rpc(
            "files/create_folder_batch/check",
            json!({"async_job_id": again["async_job_id"]}),
        )
        .await
        .json();
    assert_eq!(
        status["entries"][0]["failure"]["path"]["conflict"][".tag"],
        "folder"
    );

    h.upload("/f/a/one.txt", b"1").await;
    let moved = h
        .rpc(
            "files/move_batch_v2",
            json!({"entries": [
                {"from_path": "/f/a/one.txt", "to_path": "/f/b/one.txt"},
                {"from_path": "/f/missing", "to_path": "/f/x"},
            ]}),
        )
        .await
        .json();
    assert_eq!(moved[".tag"], "async_job_id");
    let status = h
        .rpc(
            "files/move_batch/check_v2",
            json!({"async_job_id": moved["async_job_id"]}),
        )
        .await
        .json();
    assert_eq!(status[".tag"], "complete");
    assert_eq!(status["entries"][0][".tag"], "success");
    assert_eq!(status["entries"][0]["success"][".tag"], "file");
    assert_eq!(
        status["entries"][0]["success"]["path_display"],
        "/f/b/one.txt"
    );
    assert_eq!(
        status["entries"][1],
        json!({".tag": "failure", "failure": {".tag": "relocation_error", "relocation_error": {".tag": "from_lookup", "from_lookup": {".tag": "not_found"}}}})
    );

    let bad_rev = h
        .rpc(
            "files/delete_v2",
            json!({"path": "/f/b", "parent_rev": "zzz"}),
        )
        .await;
    assert_eq!(
        bad_rev.status,
        StatusCode::BAD_REQUEST,
        "{}",
        bad_rev.text()
    );
    let deleted = h
        .rpc(
            "files/delete_batch",
            json!({"entries": [{"path": "/f/b"}, {"path": "/nope"}]}),
        )
        .await
        .json();
    let status = h
        .rpc(
            "files/delete_batch/check",
            json!({"async_job_id": deleted["async_job_id"]}),
        )
        .await
        .json();
    assert_eq!(status["entries"][0][".tag"], "success");
    assert_eq!(status["entries"][0]["metadata"][".tag"], "folder");
    assert_eq!(
        status["entries"][1]["failure"],
        json!({".tag": "path_lookup", "path_lookup": {".tag": "not_found"}})
    );
    assert_eq!(
        h.metadata("/f/b/one.txt").await.status,
        StatusCode::CONFLICT
    );
    // Deleted items are visible with include_deleted.
    let gone = h
        .rpc(
            "files/get_metadata",
            json!({"path": "/f/b/one.txt", "include_deleted": true}),
        )
        .await
        .json();
    assert_eq!(gone[".tag"], "deleted");
}

#[tokio::test]
async fn copy_makes_new_ids() {
    let h = Harness::start().await;
    let original = h.upload("/src/dir/f.txt", b"content").await;
    let copied = h
        .rpc(
            "files/copy_v2",
            json!({"from_path": "/src", "to_path": "/dst"}),
        )
        .await;
    assert_eq!(copied.status, StatusCode::OK, "{}", copied.text());
    assert_eq!(copied.json()["metadata"][".tag"], "folder");
    let file = h.metadata("/dst/dir/f.txt").await.json();
    assert_ne!(file["id"], original["id"]);
    assert_ne!(file["rev"], original["rev"]);
    assert_eq!(file["content_hash"], original["content_hash"]);
    assert_eq!(h.download("/dst/dir/f.txt", None).await.body, b"content");
    assert_eq!(
        h.metadata("/src/dir/f.txt").await.json()["id"],
        original["id"]
    );
    let conflict = h
        .rpc(
            "files/copy_v2",
            json!({"from_path": "/src/dir/f.txt", "to_path": "/dst/dir/f.txt"}),
        )
        .await;
    assert_eq!(
        conflict.route_error(),
        json!({".tag": "to", "to": {".tag": "conflict", "conflict": {".tag": "file"}}})
    );
    let renamed = h
        .rpc(
            "files/copy_v2",
            json!({"from_path": "/src/dir/f.txt", "to_path": "/dst/dir/f.txt", "autorename": true}),
        )
        .await
        .json();
    assert_eq!(renamed["metadata"]["name"], "f (1).txt");
    let into_itself = h
        .rpc(
            "files/copy_v2",
            json!({"from_path": "/src", "to_path": "/src/inner"}),
        )
        .await;
    assert_eq!(
        into_itself.route_error(),
        json!({".tag": "cant_move_folder_into_itself"})
    );
}

#[tokio::test]
async fn search_pages_by_name() {
    let h = Harness::start().await;
    for path in [
        "/s/Report 2024.pdf",
        "/s/report-draft.txt",
        "/s/other.txt",
        "/t/REPORT.pdf",
    ] {
        h.upload(path, path.as_bytes()).await;
    }
    let first = h
        .rpc(
            "files/search_v2",
            json!({"query": "report", "options": {"path": "/s", "max_results": 1}}),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let first = first.json();
    assert_eq!(first["has_more"], true);
    let m = &first["matches"][0]["metadata"];
    assert_eq!(m[".tag"], "metadata");
    assert_eq!(m["metadata"][".tag"], "file");
    let second = h
        .rpc(
            "files/search/continue_v2",
            json!({"cursor": first["cursor"]}),
        )
        .await
        .json();
    assert_eq!(second["has_more"], false);
    let names: Vec<&str> = [&first, &second]
        .iter()
        .map(|p| {
            p["matches"][0]["metadata"]["metadata"]["name"]
                .as_str()
                .unwrap_or("")
        })
        .collect();
    assert_eq!(names, ["Report 2024.pdf", "report-draft.txt"]);
    let pdfs = h
        .rpc(
            "files/search_v2",
            json!({"query": "report", "options": {"file_extensions": ["pdf"]}}),
        )
        .await
        .json();
    assert_eq!(pdfs["matches"].as_array().map(Vec::len), Some(2));
    h.rpc("files/delete_v2", json!({"path": "/s/other.txt"}))
        .await;
    let deleted = h
        .rpc(
            "files/search_v2",
            json!({"query": "other", "options": {"file_status": "deleted"}}),
        )
        .await
        .json();
    assert_eq!(
        deleted["matches"][0]["metadata"]["metadata"][".tag"],
        "deleted"
    );
    let bad = h
        .rpc("files/search/continue_v2", json!({"cursor": "nonsense"}))
        .await;
    assert_eq!(bad.route_error()[".tag"], "invalid_argument");
}

#[tokio::test]
async fn temporary_links_are_served() {
    let h = Harness::start().await;
    h.upload("/Docs/Ünïcode name.txt", b"linked bytes").await;
    let reply = h
        .rpc(
            "files/get_temporary_link",
            json!({"path": "/docs/ünïcode name.txt"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let reply = reply.json();
    assert_eq!(reply["metadata"]["name"], "Ünïcode name.txt");
    let link = reply["link"].as_str().unwrap();
    assert!(link.starts_with(&h.emulator.base_url()), "{link}");
    let fetched = h.http.get(link).send().await.unwrap();
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), b"linked bytes");
    let folder = h
        .rpc("files/get_temporary_link", json!({"path": "/Docs"}))
        .await;
    assert_eq!(
        folder.route_error(),
        json!({".tag": "path", "path": {".tag": "not_file"}})
    );
}

#[tokio::test]
async fn per_entry_lock_contention_in_batches() {
    let h = Harness::start().await;
    h.upload("/e/a.txt", b"a").await;
    let a = session(&h, b"x", true).await;
    h.emulator
        .faults()
        .update(|m| m.p_batch_entry_contention = 1.0);
    let finished = h
        .rpc(
            "files/upload_session/finish_batch_v2",
            json!({"entries": [finish_entry(&a, 1, "/e/x.txt")]}),
        )
        .await
        .json();
    assert_eq!(
        finished["entries"][0],
        json!({".tag": "failure", "failure": {".tag": "too_many_write_operations"}})
    );
    let folders = h
        .rpc("files/create_folder_batch", json!({"paths": ["/e/f"]}))
        .await
        .json();
    assert_eq!(
        folders["entries"][0]["failure"],
        json!({".tag": "path", "path": {".tag": "too_many_write_operations"}})
    );
    let launch = h
        .rpc(
            "files/delete_batch",
            json!({"entries": [{"path": "/e/a.txt"}]}),
        )
        .await
        .json();
    let status = h
        .rpc(
            "files/delete_batch/check",
            json!({"async_job_id": launch["async_job_id"]}),
        )
        .await
        .json();
    assert_eq!(
        status["entries"][0]["failure"],
        json!({".tag": "too_many_write_operations"})
    );
    // Nothing was applied; the session is still there for a retry.
    h.emulator
        .faults()
        .update(|m| m.p_batch_entry_contention = 0.0);
    assert_eq!(h.metadata("/e/a.txt").await.status, StatusCode::OK);
    let retried = h
        .rpc(
            "files/upload_session/finish_batch_v2",
            json!({"entries": [finish_entry(&a, 1, "/e/x.txt")]}),
        )
        .await
        .json();
    assert_eq!(retried["entries"][0][".tag"], "success");
}

#[tokio::test]
async fn concurrent_session_appends_in_parallel() {
    let h = Harness::start().await;
    const BLOCK: usize = 4 << 20;
    let id = h
        .upload_to(
            "files/upload_session/start",
            json!({"session_type": "concurrent"}),
            b"",
        )
        .await
        .json()["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let append = |offset: usize, data: Vec<u8>, close: bool| {
        let (h, id) = (&h, &id);
        async move {
            h.upload_to(
                "files/upload_session/append_v2",
                json!({"cursor": {"session_id": id, "offset": offset}, "close": close}),
                &data,
            )
            .await
        }
    };
    let (a, b, c, d) = tokio::join!(
        append(0, vec![1; BLOCK], false),
        append(BLOCK, vec![2; BLOCK], false),
        append(2 * BLOCK, vec![3; BLOCK], false),
        append(3 * BLOCK, b"end".to_vec(), true),
    );
    for reply in [a, b, c, d] {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let done = h
        .upload_to(
            "files/upload_session/finish",
            json!({"cursor": {"session_id": id, "offset": 3 * BLOCK + 3}, "commit": {"path": "/par.bin"}}),
            b"",
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    let body = h.download("/par.bin", None).await.body;
    assert_eq!(body.len(), 3 * BLOCK + 3);
    assert!(body[..BLOCK].iter().all(|b| *b == 1));
    assert!(body[BLOCK..2 * BLOCK].iter().all(|b| *b == 2));
    assert!(body[2 * BLOCK..3 * BLOCK].iter().all(|b| *b == 3));
    assert_eq!(&body[3 * BLOCK..], b"end");
}

#[tokio::test]
async fn append_batch_fills_many_sessions_in_one_request() {
    let h = Harness::start().await;
    let ids = h
        .rpc(
            "files/upload_session/start_batch",
            json!({"num_sessions": 3}),
        )
        .await
        .json();
    let id = |i: usize| ids["session_ids"][i].as_str().unwrap().to_string();
    let body = b"onetwothree";
    let append = h
        .upload_to(
            "files/upload_session/append_batch",
            json!({"entries": [
                {"cursor": {"session_id": id(0), "offset": 0}, "length": 3, "close": true},
                {"cursor": {"session_id": id(1), "offset": 0}, "length": 3, "close": true},
                // Wrong offset: this entry alone fails, with where the session really is.
                {"cursor": {"session_id": id(2), "offset": 7}, "length": 5, "close": true},
            ]}),
            body,
        )
        .await;
    assert_eq!(append.status, StatusCode::OK, "{}", append.text());
    let entries = append.json()["entries"].clone();
    assert_eq!(entries[0], json!({".tag": "success"}));
    assert_eq!(entries[1], json!({".tag": "success"}));
    assert_eq!(
        entries[2],
        json!({".tag": "failure", "failure": {".tag": "incorrect_offset", "correct_offset": 0}})
    );
    // Applying it again: the closed sessions say so, nothing is appended twice.
    let again = h
        .upload_to(
            "files/upload_session/append_batch",
            json!({"entries": [
                {"cursor": {"session_id": id(0), "offset": 0}, "length": 3, "close": true},
            ]}),
            b"one",
        )
        .await;
    assert_eq!(
        again.json()["entries"][0],
        json!({".tag": "failure", "failure": {".tag": "closed"}})
    );
    // Lengths that do not add up to the body fail the whole call.
    let short = h
        .upload_to(
            "files/upload_session/append_batch",
            json!({"entries": [
                {"cursor": {"session_id": id(2), "offset": 0}, "length": 9, "close": true},
            ]}),
            b"five!",
        )
        .await;
    assert_eq!(short.route_error(), json!({".tag": "length_mismatch"}));
    // The two filled sessions commit with exactly their pieces.
    let finished = h
        .rpc(
            "files/upload_session/finish_batch_v2",
            json!({"entries": [
                {"cursor": {"session_id": id(0), "offset": 3}, "commit": {"path": "/one.txt"}},
                {"cursor": {"session_id": id(1), "offset": 3}, "commit": {"path": "/two.txt"}},
            ]}),
        )
        .await
        .json();
    assert_eq!(finished["entries"][0]["size"], 3);
    assert_eq!(
        finished["entries"][1]["content_hash"],
        ferry_core::content_hash::content_hash(b"two")
    );
    assert_eq!(
        h.emulator.route_calls("files/upload_session/append_batch"),
        3
    );
}
