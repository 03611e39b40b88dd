//! The `ferry` binary's own commands, run as a user would.

use std::process::Command;

fn ferry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
}

/// `ferry config check` prints the layered configuration with secrets redacted, and fails
/// with a clear message on a bad value.
#[test]
fn config_check_prints_the_effective_settings_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ferry.toml");
    std::fs::write(&file, "workers = 2\nmax_connections = 100\n").unwrap();
    let out = ferry()
        .args(["config", "check", "--config"])
        .arg(&file)
        .args(["--set", "max_connections=300", "--listen", "127.0.0.1:9999"])
        .env("FERRY_WORKERS", "5")
        .env("FERRY_API_KEY", "very-secret-key")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "workers = 5",
        "max_connections = 300",
        "listen = \"127.0.0.1:9999\"",
        "api_key = \"<redacted>\"",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line:?} missing:\n{stdout}"
        );
    }
    assert!(!stdout.contains("very-secret-key"), "{stdout}");

    for (args, env, expect) in [
        (
            vec!["--set", "workers=0"],
            None,
            "workers must be between 1 and 64",
        ),
        (vec!["--set", "colour=red"], None, "no configuration key"),
        (
            vec![],
            Some(("FERRY_BRAKE_SHARE", "lots")),
            "FERRY_BRAKE_SHARE",
        ),
    ] {
        let mut command = ferry();
        command.args(["config", "check"]).args(&args);
        if let Some((k, v)) = env {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
}

/// Runs `ferry <args>` against `stack`; returns (success, stdout, stderr).
async fn admin(stack: &crate::support::Stack, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .args(["--url", &stack.app.base_url()])
        .args(["--api-key", stack.app.api_key().expose()])
        .env_remove("FERRY_API_KEY")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The admin commands against a running server, as an operator would use them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_drive_a_running_server() {
    let stack = crate::support::Stack::start().await;
    stack
        .push_rule("tickets", "ticket", "Tickets/{{ record.key }}")
        .await;
    for key in ["T-1", "T-2"] {
        stack.record_with("ticket", key, &["a.txt"]).await;
    }
    stack.settle().await;

    let (ok, out, err) = admin(&stack, &["status"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("0 queued") && out.contains("2 synced"),
        "{out}"
    );
    assert!(out.contains("dropbox (/Ferry) active"), "{out}");

    let (ok, out, _) = admin(&stack, &["records", "list", "--kind", "ticket"]).await;
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("KIND") && lines.len() == 3, "{out}");
    assert!(
        lines[1].contains("T-1") && lines[1].ends_with("synced"),
        "{out}"
    );

    let (ok, out, _) = admin(&stack, &["records", "show", "ticket", "T-1"]).await;
    assert!(ok);
    assert!(
        out.contains("/Ferry/Tickets/T-1/a.txt") && out.contains("synced"),
        "{out}"
    );

    let (ok, out, err) = admin(&stack, &["records", "sync", "ticket", "T-2", "--wait"]).await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("ticket/T-2: 1 synced, 0 pending, 0 failed"),
        "{out}"
    );

    let (ok, out, _) = admin(&stack, &["records", "show", "ticket", "nope"]).await;
    assert!(!ok, "{out}");

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[rules.archive]\nrecord_kind = \"ticket\"\nconnection = \"dropbox\"\nfolder = \"Archive/{{ record.key }}\"\n",
    )
    .unwrap();
    let file = rules.to_str().unwrap();
    let (ok, out, err) = admin(&stack, &["rules", "preview", "-f", file]).await;
    assert!(ok, "{err}");
    assert!(out.contains("ticket/T-1 -> /Ferry/Archive/T-1"), "{out}");
    let (ok, out, err) = admin(&stack, &["rules", "apply", "-f", file, "--wait"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("applied archive: 2 record(s) queued"), "{out}");
    let (ok, out, _) = admin(&stack, &["rules", "list"]).await;
    assert!(
        ok && out.contains("archive") && out.contains("tickets"),
        "{out}"
    );
    // --wait waited for the back-fill: the archive copies are there.
    let state = stack.api.get("/v1/records/ticket/T-1/sync").await.unwrap();
    assert_eq!(state["summary"]["synced"], 2, "{state}");

    let (ok, out, _) = admin(
        &stack,
        &["log", "--record", "ticket/T-1", "--action", "upload"],
    )
    .await;
    assert!(ok);
    assert!(
        out.lines().count() >= 2 && out.lines().all(|l| l.contains("upload")),
        "{out}"
    );
    let (ok, out, _) = admin(
        &stack,
        &["log", "--export", "csv", "--record", "ticket/T-1"],
    )
    .await;
    assert!(ok);
    assert!(out.starts_with("id,at,connection,kind,key,"), "{out}");

    let (ok, out, _) = admin(&stack, &["connections", "list"]).await;
    assert!(
        ok && out.contains("dropbox") && out.contains("active"),
        "{out}"
    );
    let (ok, out, _) = admin(&stack, &["dead"]).await;
    assert!(ok && out.starts_with("RECORD"), "{out}");
    let (ok, out, _) = admin(&stack, &["dead", "--requeue", "--wait"]).await;
    assert!(ok && out.contains("requeued 0"), "{out}");

    let (ok, out, err) = admin(&stack, &["connections", "remove", "dropbox", "--wait"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("disconnected dropbox"), "{out}");
    let (ok, out, _) = admin(&stack, &["connections", "list"]).await;
    assert!(ok && !out.contains("dropbox"), "{out}");

    let (ok, out, _) = admin(&stack, &["status", "--json"]).await;
    assert!(ok);
    let status: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(status["queue"]["queued"], 0);

    // A wrong key: a clear error, not a crash.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "status",
            "--url",
            &stack.app.base_url(),
            "--api-key",
            "wrong",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}

/// Shell completions are generated for the whole command tree.
#[test]
fn completions_cover_the_commands() {
    let out = ferry().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    for word in ["records", "rules", "connections", "dead", "serve"] {
        assert!(script.contains(word), "{word} missing from the completions");
    }
}

/// `ferry log --follow` prints entries logged after it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_follow_prints_new_entries() {
    use serde_json::json;
    use tokio::io::AsyncBufReadExt;
    let stack = crate::support::Stack::start().await;
    stack
        .push_rule("tickets", "ticket", "T/{{ record.key }}")
        .await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["log", "--follow", "--url", &stack.app.base_url()])
        .args(["--api-key", stack.app.api_key().expose()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stack
        .api
        .put_json("/v1/records/ticket/FOLLOWED", &json!({}))
        .await
        .unwrap();
    stack
        .api
        .put_bytes(
            "/v1/records/ticket/FOLLOWED/attachments/new.txt",
            b"n".to_vec(),
        )
        .await
        .unwrap();
    let seen = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("ticket/FOLLOWED") && line.contains("new.txt") {
                return line;
            }
        }
        panic!("ferry log --follow ended");
    })
    .await
    .expect("the new entry was printed");
    assert!(seen.contains("upload"), "{seen}");
    child.kill().await.unwrap();
}

/// `ferry admin set-password` reads the password from standard input and creates the admin;
/// `ferry admin login-link` prints a link that signs in once; a short password is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_set_password_and_login_link() {
    use tokio::io::AsyncWriteExt;
    let stack = crate::support::Stack::start().await;
    let run = |password: &'static str| {
        let url = stack.app.base_url();
        let key = stack.app.api_key().expose().to_owned();
        async move {
            let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
                .args([
                    "admin",
                    "set-password",
                    "--name",
                    "ops",
                    "--url",
                    &url,
                    "--api-key",
                    &key,
                ])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(password.as_bytes()).await.unwrap();
            drop(stdin);
            child.wait_with_output().await.unwrap()
        }
    };
    let out = run("a long enough password\n").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created console admin ops"));
    let out = run("short\n").await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 10 characters"));

    let (ok, link, err) = admin(&stack, &["admin", "login-link", "--name", "ops"]).await;
    assert!(ok, "{err}");
    let link = link.trim();
    assert!(
        link.starts_with(&format!(
            "{}/console/login/link?token=",
            stack.app.base_url()
        )),
        "{link}"
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    assert_eq!(http.get(link).send().await.unwrap().status(), 303);
    assert_eq!(http.get(link).send().await.unwrap().status(), 400, "once");
    let (ok, _, err) = admin(&stack, &["admin", "login-link", "--name", "nobody"]).await;
    assert!(!ok && err.contains("no console admin named"), "{err}");
}
