//! Headless Chromium driven over WebDriver (chromedriver on 127.0.0.1, a fresh profile per
//! browser), with screenshots saved under the target dir (`console-screenshots/`).
//!
//! Chromium and ChromeDriver come from Debian's `chromium` and `chromium-driver` packages:
//! `.ci/run` installs them, and so does this harness when they are missing and it may run
//! `apt-get` (as root), so the README's one test command still does everything.

use fantoccini::{Client, ClientBuilder, Locator};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Installs Chromium and ChromeDriver once per test run if they are missing.
fn ensure_installed() {
    static ONCE: Mutex<bool> = Mutex::new(false);
    let mut done = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    if *done
        || (std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists())
    {
        *done = true;
        return;
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-q", "chromium", "chromium-driver"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    assert!(
        matches!(status, Ok(s) if s.success()) && std::path::Path::new(CHROMEDRIVER).exists(),
        "the console tests need Debian's chromium and chromium-driver packages; `apt-get install chromium chromium-driver` failed (run as root, or run bash .ci/run): {status:?}"
    );
    *done = true;
}

/// Where screenshots go: `<target>/tmp/console-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// A browser: chromedriver (killed on drop) and one session in it.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium window of `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        ensure_installed();
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("profile dir");
        // The flags keep Chromium off the network (this machine's is closed) and quiet.
        let args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": CHROMIUM, "args": args }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        driver,
                        _profile: profile,
                    };
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start a session: {last:?}");
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// The page's visible text. A navigation still settling (a redirect's next page not yet
    /// parsed) has no body for a moment: looked for again until one is there.
    pub async fn text(&self) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match self.client.find(Locator::Css("body")).await {
                Ok(body) => match body.text().await {
                    Ok(text) => return text,
                    // Replaced between finding and reading it: the next page's, then.
                    Err(_) if tokio::time::Instant::now() < deadline => {}
                    Err(e) => panic!("text: {e}"),
                },
                Err(_) if tokio::time::Instant::now() < deadline => {}
                Err(e) => panic!("body: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The path (and query) the browser is on.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Types `value` into the field with id `id` (cleared first).
    pub async fn fill(&self, id: &str, value: &str) {
        let field = self
            .client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("field #{id}: {e}"));
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
    }

    /// Clicks the element `css` selects (a radio button, a checkbox: no page change).
    pub async fn click(&self, css: impl AsRef<str>) {
        let css = css.as_ref();
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Clicks the button or link whose text is `text`, and waits until the browser has left
    /// the page (every click in these tests submits a form or follows a link).
    pub async fn click_text(&self, text: &str) {
        let xpath =
            format!("//button[normalize-space(.)='{text}'] | //a[normalize-space(.)='{text}']");
        let found = match self.client.find(Locator::XPath(&xpath)).await {
            Ok(found) => found,
            Err(e) => panic!(
                "no button or link {text:?} on {} ({e}); the page shows:\n{}",
                self.path().await,
                self.text().await
            ),
        };
        let page = self.client.find(Locator::Css("html")).await.expect("html");
        found
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {text:?}: {e}"));
        // The old page's root goes stale once the next page replaced it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while page.tag_name().await.is_ok() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "clicking {text:?} did not leave {}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a screenshot as `<name>.png` in [`screenshot_dir`].
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(screenshot_dir().join(format!("{name}.png")), png).expect("save");
    }

    /// Reloads until the page text contains `needle` (fails after 15 s, printing the page).
    pub async fn reload_until(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "page never showed {needle:?}; it shows:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            self.client.refresh().await.expect("reload");
        }
    }

    /// The value of a cookie the browser holds for the current site.
    /// GETs `url` outside the browser with its console session (a download the browser
    /// would save), for the test to read.
    pub async fn get_signed_in(&self, url: &str) -> reqwest::Response {
        let session = self.cookie("ferry_session").await;
        reqwest::Client::new()
            .get(url)
            .header("cookie", format!("ferry_session={session}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    pub async fn cookie(&self, name: &str) -> String {
        self.client
            .get_named_cookie(name)
            .await
            .expect("cookie")
            .value()
            .to_owned()
    }
}
