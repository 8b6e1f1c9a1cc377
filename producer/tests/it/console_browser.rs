//! The console in a real browser: headless Chromium, driven over WebDriver by Debian's
//! chromedriver, logs in, reads the re-auth list, requeues failed logins through the
//! preview and its confirmation, and pauses then resumes a queue; a screenshot of every
//! page goes to `<target>/tmp/console-screenshots/`. Skips, saying so, when Chromium or
//! chromedriver is not installed (`apt-get install chromium chromium-driver`; CI installs
//! them with `scripts/ensure-chromium`).
//!
//! The WebDriver client is the few W3C commands the test needs, over reqwest.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use chrono::Utc;
use serde_json::{json, Value};
use shared::stores::Stores;

use super::console::{failed, reauth, seed, spawn_console, PASSWORD};
use super::{login, Env};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn installed(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session.
struct Browser {
    http: reqwest::Client,
    session: String,
    shots: PathBuf,
}

impl Browser {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.session);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let value: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {value}");
        value["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn url(&self) -> String {
        let v = self.call(reqwest::Method::GET, "/url", None).await;
        v.as_str().unwrap().to_string()
    }

    async fn source(&self) -> String {
        let v = self.call(reqwest::Method::GET, "/source", None).await;
        v.as_str().unwrap().to_string()
    }

    /// The element `css` selects, waiting up to 5 s for it to appear.
    async fn find(&self, css: &str) -> String {
        for _ in 0..50 {
            let response = self
                .http
                .post(format!("{}/element", self.session))
                .json(&json!({ "using": "css selector", "value": css }))
                .send()
                .await
                .unwrap();
            if response.status().is_success() {
                let v: Value = response.json().await.unwrap();
                let id = v["value"][ELEMENT].as_str();
                return id.unwrap_or_else(|| panic!("{css}: {v}")).to_string();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "no element {css} on {}:\n{}",
            self.url().await,
            self.source().await
        );
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        let v = self
            .call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await;
        v.as_str().unwrap().to_string()
    }

    async fn screenshot(&self, name: &str) {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    async fn quit(&self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

async fn start_browser(chromium: &Path, chromedriver: &Path, profile: &Path) -> (Driver, Browser) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    for _ in 0..100 {
        let ready = http.get(format!("{}/status", driver.url)).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let capabilities = json!({ "capabilities": { "alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium.display().to_string(),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    }}});
    let response = http
        .post(format!("{}/session", driver.url))
        .json(&capabilities)
        .send()
        .await
        .unwrap();
    let value: Value = response.json().await.unwrap();
    let id = value["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no WebDriver session: {value}"))
        .to_string();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let browser = Browser {
        http,
        session: format!("{}/session/{id}", driver.url),
        shots,
    };
    (driver, browser)
}

#[tokio::test]
async fn an_operator_logs_in_reads_the_reauth_list_requeues_with_confirmation_and_pauses_a_queue() {
    let chromium = installed(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
    let chromedriver = installed(&["/usr/bin/chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        // CI installs them (scripts/ensure-chromium): there, a skip would hide a lost test.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the console browser test: Chromium or chromedriver is missing"
        );
        eprintln!(
            "skipping the console browser test: Chromium or chromedriver is not installed \
             (apt-get install chromium chromium-driver, or scripts/ensure-chromium)"
        );
        return;
    };
    let env = Env::new("console-browser");
    let today = Utc::now().date_naive();
    seed(
        &env,
        today.pred_opt().unwrap(),
        1,
        &reauth("SESSION_EXPIRED"),
    )
    .await;
    seed(&env, today, 1, &reauth("SESSION_EXPIRED")).await;
    seed(&env, today, 2, &reauth("QUESTION_NOT_FOUND")).await;
    for (n, code) in [
        (3, "RETRY_LATER"),
        (4, "RETRY_LATER"),
        (5, "AGGREGATION_ERROR"),
    ] {
        seed(&env, today, n, &failed(code)).await;
    }
    let ledger = shared::ledger::Ledger::new(env.conn().await, &env.keys);
    ledger.set_expected(today, 12).await.unwrap();
    let started = Utc::now() - chrono::Duration::minutes(3);
    ledger.set_started_at(today, started).await.unwrap();
    let console = spawn_console(&env, &["alice"], "").await;
    let base = &console.base;
    let profile = env.dir.join("chromium-profile");
    let (_driver, browser) = start_browser(&chromium, &chromedriver, &profile).await;

    // Any page sends a new visitor to the login.
    browser.go(&format!("{base}/reauth")).await;
    browser.find("#login-form").await;
    assert!(browser.url().await.ends_with("/login"));
    browser.screenshot("login").await;
    browser.type_into("#user", "alice").await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("#login").await;
    browser.find("#progress").await;
    browser.screenshot("routine").await;

    // The re-auth list: the new login first.
    browser.go(&format!("{base}/reauth")).await;
    let table = browser.text("#reauth").await;
    let (new, old) = (
        table.find(login(2).as_str()).unwrap(),
        table.find(login(1).as_str()).unwrap(),
    );
    assert!(new < old, "{table}");
    browser.screenshot("reauth").await;

    // Requeue RETRY_LATER: the preview, then the confirmation.
    browser.go(&format!("{base}/failed")).await;
    browser.screenshot("failed").await;
    browser.click("#failed-codes a.requeue").await;
    let summary = browser.text("#preview-summary").await;
    assert!(summary.contains("2 failed logins"), "{summary}");
    browser.screenshot("requeue-preview").await;
    browser.click("#confirm").await;
    let notice = browser.text("#notice").await;
    assert!(notice.contains("Requeued 2"), "{notice}");
    let settings = shared::config::Settings::load(None).unwrap();
    let stores = Stores::open(env.conn().await, &env.keys, &settings);
    assert_eq!(stores.authorize.stats().await.unwrap().ready, 2);

    // Pause, then resume, the authorize queue.
    browser.go(&format!("{base}/queues")).await;
    browser.type_into("#reason-authorize", "bank outage").await;
    browser.click("#pause-authorize").await;
    let notice = browser.text("#notice").await;
    assert!(notice.contains("Paused authorize"), "{notice}");
    assert!(stores.control.is_paused("authorize").await.unwrap());
    browser.screenshot("queues-paused").await;
    browser.click("#resume-authorize").await;
    browser.find("#pause-authorize").await;
    assert!(!stores.control.is_paused("authorize").await.unwrap());

    // The other pages, for the pictures.
    for (name, path) in [
        ("workers", "/workers".to_string()),
        ("ratelimit", "/ratelimit".to_string()),
        ("history", format!("/history?login={}", login(1).as_str())),
        ("audit", "/audit".to_string()),
    ] {
        browser.go(&format!("{base}{path}")).await;
        browser.find("main h1").await;
        browser.screenshot(name).await;
    }
    let audit = browser.text("#audit").await;
    assert!(
        audit.contains("queues requeue") && audit.contains("queues pause"),
        "{audit}"
    );
    assert!(audit.contains("alice"), "{audit}");

    browser.quit().await;
    eprintln!("console screenshots: {}", browser.shots.display());
    env.cleanup().await;
}
