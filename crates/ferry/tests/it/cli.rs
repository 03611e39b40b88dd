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
