//! A throwaway PostgreSQL server for tests: Debian's `postgresql` binaries, `initdb` into a
//! temporary directory, a free port on 127.0.0.1, trust authentication for the user `ferry`.
//! One server per test process, started on first use; every [`database()`] is a new, empty
//! database on it. When the test process ends (however it ends) a watchdog beside the
//! server stops it and removes its directory.
//!
//! Not for production: the server runs with `fsync=off`.

use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The running test server.
#[derive(Debug)]
pub struct PgServer {
    port: u16,
    dir: PathBuf,
}

/// One fresh database on the test server; the guard a store's test keeps.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
}

impl TestDatabase {
    /// `postgres://ferry@127.0.0.1:<port>/<database>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the database (closing whatever is still connected to it), so many short runs
    /// do not fill the server's disk.
    pub async fn remove(self) {
        let Some(name) = self.url.rsplit('/').next() else {
            return;
        };
        if let Ok(mut admin) = sqlx::PgConnection::connect(&server().url("postgres")).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await;
            let _ = admin.close().await;
        }
    }
}

impl PgServer {
    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://ferry@127.0.0.1:{}/{name}", self.port)
    }

    /// The server's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

/// The test process's server, started on first use (panics with the reason if it cannot
/// start: a test that needs PostgreSQL must not pass without it).
pub fn server() -> &'static PgServer {
    static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();
    match SERVER.get_or_init(start) {
        Ok(server) => server,
        Err(why) => panic!("the test PostgreSQL server did not start: {why}"),
    }
}

/// A new, empty database on the test server.
pub async fn database() -> TestDatabase {
    static N: AtomicU32 = AtomicU32::new(0);
    let server = server();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The server accepts connections a moment before it is ready for them.
        match sqlx::PgConnection::connect(&server.url("postgres")).await {
            Ok(mut admin) => {
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await
                    .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
                let _ = admin.close().await;
                return TestDatabase {
                    url: server.url(&name),
                };
            }
            Err(e) if Instant::now() < deadline => {
                tracing::debug!("test PostgreSQL not ready yet: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!(
                "the test PostgreSQL server does not answer: {e}\n{}",
                server.log()
            ),
        }
    }
}

/// Where Debian keeps the server binaries (`/usr/lib/postgresql/<version>/bin`), newest
/// version first; `FERRY_PG_BIN` names another directory.
fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("FERRY_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("postgres").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Installs Debian's `postgresql` package when it is missing and we may (as root), as the
/// README's one test command promises.
fn install() -> Result<(), String> {
    if !is_root() {
        return Err("PostgreSQL's server binaries are missing: apt-get install postgresql".into());
    }
    let out = Command::new("apt-get")
        .args(["install", "-y", "-q", "postgresql"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("apt-get install postgresql: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "apt-get install postgresql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// The uid and gid of the `postgres` account (PostgreSQL refuses to run as root).
fn postgres_account() -> Result<(u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
        .ok_or_else(|| "no postgres account to run the server as".into())
}

/// `program args…`, as the postgres account when we are root.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn start() -> Result<PgServer, String> {
    let bin = match bin_dir() {
        Some(bin) => bin,
        None => {
            install()?;
            bin_dir().ok_or("no PostgreSQL server binaries after installing them")?
        }
    };
    let dir = std::env::temp_dir().join(format!(
        "ferry-pg-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if is_root() {
        let (uid, gid) = postgres_account()?;
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
    }
    let data = dir.join("data");
    let out = as_server_user(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "ferry",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = free_port()?;
    // The watchdog: while this test process lives, keep the server; then stop it and
    // remove its directory. It outlives us on purpose, so no test leaves a server behind.
    let script = format!(
        "{postgres} -D {data} -p {port} -k {dir} -c listen_addresses=127.0.0.1 \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
         -c max_connections=300 >{dir}/server.log 2>&1 & pg=$!; \
         while kill -0 $pg 2>/dev/null && [ -d /proc/{parent} ]; do sleep 0.5; done; \
         kill -INT $pg 2>/dev/null; wait $pg; rm -rf {dir}",
        postgres = shell_quote(&bin.join("postgres")),
        data = shell_quote(&data),
        dir = shell_quote(&dir),
        parent = std::process::id(),
    );
    as_server_user(Path::new("sh"))
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting postgres: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            return Err(format!("postgres did not listen on port {port}: {log}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(PgServer { port, dir })
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
