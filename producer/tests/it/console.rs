//! `producer console` as the built binary, over HTTP on a port of its own, against the real
//! Redis with the test's namespace: the login gate, the CSRF token, the login rate limit,
//! a requeue previewed then confirmed, pause / resume, the CSV export, and the users file
//! and password hashing at the command line.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};

use chrono::{NaiveDate, Utc};
use reqwest::header::{HeaderMap, ACCEPT, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use shared::domain::FlinksCode;
use shared::ledger::{IndexFilter, Ledger, LedgerOutcome, Overwrite};
use shared::stores::Stores;

use super::{login, redis_url, stderr, Env};

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// A `producer console` process on 127.0.0.1, killed on drop.
pub(crate) struct ConsoleProcess {
    child: Child,
    /// `http://127.0.0.1:PORT` plus the prefix.
    pub(crate) base: String,
}

impl Drop for ConsoleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The users file line of `user` with `password`.
pub(crate) fn user_line(user: &str, password: &str) -> String {
    format!(
        "{user}:{}",
        shared::console::users::hash_password(password).unwrap()
    )
}

/// Writes a users file with `users` (each with [`PASSWORD`]) and starts the console on a
/// free port under `prefix`, with ROUTINE_TZ=UTC.
pub(crate) async fn spawn_console(env: &Env, users: &[&str], prefix: &str) -> ConsoleProcess {
    let lines: Vec<String> = users.iter().map(|u| user_line(u, PASSWORD)).collect();
    spawn_console_with(env, &lines, &["--base-path", prefix]).await
}

/// Writes a users file of `lines` and starts the console on a free port with `args`.
pub(crate) async fn spawn_console_with(
    env: &Env,
    lines: &[String],
    args: &[&str],
) -> ConsoleProcess {
    let file = env.file(
        "console-users",
        &format!("# test users\n{}\n", lines.join("\n")),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(["console", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("REDIS_URL", redis_url())
        .env("REFRESH_NAMESPACE", env.keys.namespace())
        .env("CONSOLE_USERS_FILE", file)
        .env("ROUTINE_TZ", "UTC")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the producer binary runs");
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let url = line
        .trim()
        .strip_prefix("console listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
    ConsoleProcess {
        child,
        base: url.trim_end_matches('/').to_string(),
    }
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of cookie `name` among a response's `Set-Cookie` headers, with the whole
/// header line.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<(String, String)> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|line| {
            let (pair, _) = line.split_once(';').unwrap_or((line, ""));
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| (v.to_string(), line.to_string()))
        })
}

/// The value of the first hidden `csrf` field in `html`.
pub(crate) fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a csrf field") + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// A logged-in browser's state: its session cookie and the session's CSRF token.
pub(crate) struct LoggedIn {
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

/// Posts the login form as a browser would; returns the response.
async fn post_login(
    http: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
) -> reqwest::Response {
    post_login_via(http, base, user, password, None).await
}

/// [`post_login`] through a proxy that sends `X-Forwarded-For: forwarded_for`.
async fn post_login_via(
    http: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let form = http.get(format!("{base}/login")).send().await.unwrap();
    let (token, _) = set_cookie(form.headers(), "nr_console_login").expect("a login cookie");
    let html = form.text().await.unwrap();
    let mut post = http.post(format!("{base}/login"));
    if let Some(hops) = forwarded_for {
        post = post.header("x-forwarded-for", hops);
    }
    post.header(COOKIE, format!("nr_console_login={token}"))
        .form(&[
            ("csrf", csrf_of(&html).as_str()),
            ("user", user),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

pub(crate) async fn log_in(http: &reqwest::Client, base: &str, user: &str) -> LoggedIn {
    let response = post_login(http, base, user, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (token, _) = set_cookie(response.headers(), "nr_console").expect("a session cookie");
    let cookie = format!("nr_console={token}");
    let page = http
        .get(format!("{base}/queues"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_of(&page.text().await.unwrap());
    LoggedIn { cookie, csrf }
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

pub(crate) fn failed(code: &str) -> LedgerOutcome {
    LedgerOutcome::Failed {
        flinks_code: Some(FlinksCode::parse(code)),
        http_status: Some(503),
        message: "bank down".into(),
        attempts: 5,
        at: Utc::now(),
        reason: None,
    }
}

pub(crate) fn reauth(code: &str) -> LedgerOutcome {
    LedgerOutcome::NeedsReauth {
        flinks_code: Some(FlinksCode::parse(code)),
        message: Some("reconnect the login".into()),
        request_id: None,
        at: Utc::now(),
        unrecognised_code: false,
    }
}

/// Records `outcome` for login `n` on `date`.
pub(crate) async fn seed(env: &Env, date: NaiveDate, n: u32, outcome: &LedgerOutcome) {
    Ledger::new(env.conn().await, &env.keys)
        .record(date, &login(n), outcome, Overwrite::AllButRefreshed)
        .await
        .unwrap();
}

async fn stores(env: &Env) -> Stores {
    let settings = shared::config::Settings::load(None).unwrap();
    Stores::open(env.conn().await, &env.keys, &settings)
}

#[tokio::test]
async fn without_a_login_pages_redirect_to_it_and_everything_else_gets_401() {
    let env = Env::new("console-gate");
    let console = spawn_console(&env, &["alice"], "").await;
    let http = client();
    let base = &console.base;

    let page = http
        .get(format!("{base}/"))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    let api = http.get(format!("{base}/queues")).send().await.unwrap();
    let csv = http.get(format!("{base}/reauth.csv")).send().await.unwrap();
    let post = http
        .post(format!("{base}/queues/pause"))
        .form(&[("queue", "authorize")])
        .send()
        .await
        .unwrap();
    let forged = http
        .get(format!("{base}/audit"))
        .header(COOKIE, "nr_console=not-a-session")
        .send()
        .await
        .unwrap();
    let login_page = http.get(format!("{base}/login")).send().await.unwrap();
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();

    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()[LOCATION], "/login");
    for response in [&api, &csv, &post, &forged] {
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{}",
            response.url()
        );
    }
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(login_page.status(), StatusCode::OK);
    let headers = login_page.headers();
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let html = login_page.text().await.unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "no inline script or style"
    );
    assert!(!stores(&env)
        .await
        .control
        .is_paused("authorize")
        .await
        .unwrap());
    env.cleanup().await;
}

#[tokio::test]
async fn a_change_without_the_sessions_csrf_token_is_refused_with_403_and_changes_nothing() {
    let env = Env::new("console-csrf");
    let console = spawn_console(&env, &["alice"], "").await;
    let http = client();
    let base = &console.base;
    let alice = log_in(&http, base, "alice").await;
    let pause = |csrf: Option<&str>| {
        let mut form = vec![("queue", "authorize"), ("reason", "bank outage")];
        form.extend(csrf.map(|c| ("csrf", c)));
        http.post(format!("{base}/queues/pause"))
            .header(COOKIE, &alice.cookie)
            .form(&form)
            .send()
    };

    let missing = pause(None).await.unwrap();
    let wrong = pause(Some("0123")).await.unwrap();
    let paused_after_refusals = stores(&env)
        .await
        .control
        .is_paused("authorize")
        .await
        .unwrap();
    let right = pause(Some(&alice.csrf)).await.unwrap();

    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert!(!paused_after_refusals);
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    assert!(stores(&env)
        .await
        .control
        .is_paused("authorize")
        .await
        .unwrap());
    let audit = stores(&env).await.audit.recent(10).await.unwrap();
    let pause_entry = audit.iter().find(|e| e.command == "queues pause").unwrap();
    assert_eq!(pause_entry.actor, "alice");
    assert!(
        pause_entry.args.contains("bank outage"),
        "{}",
        pause_entry.args
    );
    assert_eq!(
        audit.iter().filter(|e| e.command == "queues pause").count(),
        1,
        "refused requests are not audited"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_repeated_failures_lock_the_user_out() {
    let env = Env::new("console-login-limit");
    let console = spawn_console(&env, &["alice", "bob"], "").await;
    let http = client();
    let base = &console.base;

    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(post_login(&http, base, "alice", "wrong").await.status());
    }
    let right_but_locked = post_login(&http, base, "alice", PASSWORD).await;
    let locked_status = right_but_locked.status();
    let locked_page = right_but_locked.text().await.unwrap();
    let bob = post_login(&http, base, "bob", PASSWORD).await;

    assert!(
        statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert_eq!(locked_status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        locked_page.contains("Too many failed logins"),
        "{locked_page}"
    );
    assert_eq!(
        bob.status(),
        StatusCode::SEE_OTHER,
        "another user still logs in"
    );
    let (_, line) = set_cookie(bob.headers(), "nr_console").unwrap();
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Strict"),
        "{line}"
    );
    assert!(!line.contains("Secure"), "plain HTTP on loopback: {line}");
    env.cleanup().await;
}

#[tokio::test]
async fn parallel_wrong_passwords_cannot_pass_the_limit_together() {
    let env = Env::new("console-login-burst");
    let console = spawn_console(&env, &["alice"], "").await;
    let http = client();
    let base = console.base.clone();

    // Each attempt gets its login form first, so the burst below is only the POSTs.
    let mut forms = Vec::new();
    for _ in 0..20 {
        let form = http.get(format!("{base}/login")).send().await.unwrap();
        let (token, _) = set_cookie(form.headers(), "nr_console_login").unwrap();
        forms.push((token, csrf_of(&form.text().await.unwrap())));
    }
    let burst = forms.into_iter().map(|(token, csrf)| {
        let (http, base) = (http.clone(), base.clone());
        tokio::spawn(async move {
            http.post(format!("{base}/login"))
                .header(COOKIE, format!("nr_console_login={token}"))
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("user", "alice"),
                    ("password", "wrong"),
                ])
                .send()
                .await
                .unwrap()
                .status()
        })
    });
    let mut statuses = Vec::new();
    for task in burst.collect::<Vec<_>>() {
        statuses.push(task.await.unwrap());
    }
    let right_but_locked = post_login(&http, &base, "alice", PASSWORD).await.status();

    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(checked <= 5, "at most the limit is checked: {statuses:?}");
    assert_eq!(checked + refused, 20, "{statuses:?}");
    assert_eq!(right_but_locked, StatusCode::TOO_MANY_REQUESTS);
    env.cleanup().await;
}

#[tokio::test]
async fn removing_a_user_or_changing_their_password_ends_their_sessions() {
    let env = Env::new("console-users-change");
    let http = client();
    let lines = [
        user_line("alice", PASSWORD),
        user_line("bob", PASSWORD),
        user_line("carol", PASSWORD),
    ];
    let console = spawn_console_with(&env, &lines, &[]).await;
    let alice = log_in(&http, &console.base, "alice").await;
    let bob = log_in(&http, &console.base, "bob").await;
    let carol = log_in(&http, &console.base, "carol").await;
    drop(console);

    // alice's password changes, bob is removed, carol's line stays as it was.
    let changed = [user_line("alice", "a new passphrase"), lines[2].clone()];
    let console = spawn_console_with(&env, &changed, &[]).await;
    let status_of = |cookie: String| {
        let (http, base) = (http.clone(), console.base.clone());
        async move {
            http.get(format!("{base}/queues"))
                .header(COOKIE, cookie)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let alice_status = status_of(alice.cookie.clone()).await;
    let bob_status = status_of(bob.cookie).await;
    let carol_status = status_of(carol.cookie).await;
    let alice_again = status_of(alice.cookie).await;

    assert_eq!(alice_status, StatusCode::UNAUTHORIZED, "password changed");
    assert_eq!(bob_status, StatusCode::UNAUTHORIZED, "user removed");
    assert_eq!(
        carol_status,
        StatusCode::OK,
        "an unchanged user stays logged in"
    );
    assert_eq!(alice_again, StatusCode::UNAUTHORIZED, "the session is gone");
    env.cleanup().await;
}

#[tokio::test]
async fn secure_cookies_marks_them_secure_on_loopback_and_sends_hsts() {
    let env = Env::new("console-secure-cookies");
    let http = client();
    let lines = [user_line("alice", PASSWORD)];
    let behind_proxy = spawn_console_with(&env, &lines, &["--secure-cookies"]).await;
    let secure = post_login(&http, &behind_proxy.base, "alice", PASSWORD).await;
    drop(behind_proxy);
    let plain = spawn_console_with(&env, &lines, &[]).await;
    let loopback = post_login(&http, &plain.base, "alice", PASSWORD).await;

    let (_, secure_line) = set_cookie(secure.headers(), "nr_console").unwrap();
    assert!(secure_line.contains("; Secure"), "{secure_line}");
    assert_eq!(
        secure.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let (_, plain_line) = set_cookie(loopback.headers(), "nr_console").unwrap();
    assert!(!plain_line.contains("Secure"), "{plain_line}");
    assert!(
        loopback
            .headers()
            .get("strict-transport-security")
            .is_none(),
        "no HSTS over plain HTTP"
    );
    env.cleanup().await;
}

#[test]
fn secure_and_insecure_cookies_together_are_refused() {
    let env = Env::new("console-cookie-flags");
    let file = env.file("console-users", &user_line("alice", PASSWORD));
    let out = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(["console", "--listen", "127.0.0.1:0"])
        .args(["--secure-cookies", "--insecure-cookies"])
        .env("REDIS_URL", redis_url())
        .env("REFRESH_NAMESPACE", env.keys.namespace())
        .env("CONSOLE_USERS_FILE", file)
        .output()
        .unwrap();

    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--secure-cookies")
            && err.contains("--insecure-cookies")
            && err.contains("cannot be used with"),
        "{err}"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_address_limit_is_per_forwarded_client() {
    let env = Env::new("console-trusted-proxy");
    let http = client();
    let lines = [user_line("alice", PASSWORD)];
    let console = spawn_console_with(&env, &lines, &["--trusted-proxy", "127.0.0.1"]).await;
    let base = &console.base;

    // 20 failures from one client behind the proxy (over 4 names, under the per-name limit).
    let mut statuses = Vec::new();
    for i in 0..20 {
        let user = format!("guess{}", i % 4);
        let via = Some("203.0.113.1");
        statuses.push(
            post_login_via(&http, base, &user, "wrong", via)
                .await
                .status(),
        );
    }
    let same_client = post_login_via(&http, base, "alice", PASSWORD, Some("203.0.113.1")).await;
    let other_client =
        post_login_via(&http, base, "alice", PASSWORD, Some("6.6.6.6, 203.0.113.2")).await;

    assert!(
        statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert_eq!(same_client.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        other_client.status(),
        StatusCode::SEE_OTHER,
        "another client behind the same proxy still logs in"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_requeue_is_previewed_then_confirmed_moves_the_jobs_and_is_audited_with_the_user() {
    let env = Env::new("console-requeue");
    for (n, code) in [
        (1, "RETRY_LATER"),
        (2, "RETRY_LATER"),
        (3, "AGGREGATION_ERROR"),
    ] {
        seed(&env, today(), n, &failed(code)).await;
    }
    let console = spawn_console(&env, &["alice"], "/ops").await;
    let http = client();
    let base = &console.base;
    let alice = log_in(&http, base, "alice").await;
    let date = today().to_string();
    let get = |path: String| {
        http.get(format!("{base}{path}"))
            .header(COOKIE, &alice.cookie)
            .send()
    };

    let failed_page = get(format!("/failed?date={date}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let preview = get(format!("/failed/requeue?date={date}&code=RETRY_LATER"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ready_after_preview = stores(&env).await.authorize.stats().await.unwrap().ready;
    let confirm = http
        .post(format!("{base}/failed/requeue"))
        .header(COOKIE, &alice.cookie)
        .form(&[
            ("csrf", alice.csrf.as_str()),
            ("code", "RETRY_LATER"),
            ("date", &date),
        ])
        .send()
        .await
        .unwrap();

    let after = get(format!("/failed?date={date}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(failed_page.contains("RETRY_LATER") && failed_page.contains("AGGREGATION_ERROR"));
    assert!(
        !after.contains(login(1).as_str()) && after.contains(login(3).as_str()),
        "the page after the requeue shows it at once: {after}"
    );
    assert!(preview.contains("2 failed logins"), "{preview}");
    assert!(preview.contains(login(1).as_str()) && !preview.contains(login(3).as_str()));
    assert_eq!(ready_after_preview, 0, "a preview moves nothing");
    assert_eq!(confirm.status(), StatusCode::SEE_OTHER);
    let location = confirm.headers()[LOCATION].to_str().unwrap();
    assert!(
        location.starts_with("/ops/failed?") && location.contains("moved=2"),
        "{location}"
    );
    let stores = stores(&env).await;
    assert_eq!(stores.authorize.stats().await.unwrap().ready, 2);
    let left = stores
        .ledger
        .list_failed(&IndexFilter::default())
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].login_id, login(3));
    let audit = stores.audit.recent(10).await.unwrap();
    let requeue = audit
        .iter()
        .find(|e| e.command == "queues requeue")
        .unwrap();
    assert_eq!(requeue.actor, "alice");
    assert_eq!(requeue.count, 2);
    assert_eq!(
        requeue.args,
        format!("failed --code RETRY_LATER --date {date}")
    );
    env.cleanup().await;
}

#[tokio::test]
async fn the_reauth_list_puts_new_logins_first_and_exports_csv() {
    let env = Env::new("console-reauth");
    let yesterday = today().pred_opt().unwrap();
    seed(&env, yesterday, 1, &reauth("SESSION_EXPIRED")).await;
    seed(&env, today(), 1, &reauth("SESSION_EXPIRED")).await;
    seed(&env, today(), 2, &reauth("=HYPERLINK(1)")).await;
    let console = spawn_console(&env, &["alice"], "").await;
    let http = client();
    let base = &console.base;
    let alice = log_in(&http, base, "alice").await;
    let get = |path: &str| {
        http.get(format!("{base}{path}"))
            .header(COOKIE, &alice.cookie)
            .send()
    };

    let page = get("/reauth").await.unwrap().text().await.unwrap();
    let search = get(&format!("/reauth?q={}", &login(2).as_str()[30..]))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csv = get("/reauth.csv").await.unwrap();
    let disposition = csv.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    let csv = csv.text().await.unwrap();

    assert!(
        page.contains("2 logins must reconnect, 1 of them new"),
        "{page}"
    );
    let (new, old) = (
        page.find(login(2).as_str()).unwrap(),
        page.find(login(1).as_str()).unwrap(),
    );
    assert!(new < old, "new since yesterday first");
    assert!(search.contains(login(2).as_str()) && !search.contains(login(1).as_str()));
    assert!(
        disposition.contains(&format!("reauth-{}.csv", today())),
        "{disposition}"
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "login_id,date,new_since_yesterday,flinks_code,message"
    );
    assert!(
        lines[1].starts_with(login(2).as_str()) && lines[1].contains(",true,'=HYPERLINK(1),"),
        "{csv}"
    );
    assert!(
        lines[2].starts_with(login(1).as_str()) && lines[2].contains(",false,"),
        "{csv}"
    );
    env.cleanup().await;
}

#[test]
fn a_bad_users_file_line_is_named_without_echoing_the_hash() {
    let env = Env::new("console-users-file");
    let good = shared::console::users::hash_password(PASSWORD).unwrap();
    let file = env.file(
        "users",
        &format!("alice:{good}\nbob:$argon2id$v=19$notahash-SECRET\n"),
    );

    let out = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(["console", "--listen", "127.0.0.1:0"])
        .env("REDIS_URL", redis_url())
        .env("REFRESH_NAMESPACE", env.keys.namespace())
        .env("CONSOLE_USERS_FILE", &file)
        .output()
        .unwrap();

    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&file) && err.contains("line 2"), "{err}");
    assert!(
        !err.contains("SECRET") && !err.contains("argon2id"),
        "{err}"
    );
}

#[test]
fn hash_password_prints_an_argon2_hash_of_the_password_on_stdin() {
    let run = |input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_producer"))
            .args(["console", "hash-password"])
            .env("REDIS_URL", "redis://127.0.0.1:1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };

    let out = run("s3cret pass\n");
    let empty = run("\n");

    assert!(out.status.success(), "{}", stderr(&out));
    let hash = String::from_utf8(out.stdout).unwrap();
    let users = shared::console::users::Users::parse(
        std::path::Path::new("users"),
        &format!("alice:{}", hash.trim()),
    )
    .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(users.verify("alice", "s3cret pass"));
    assert_eq!(empty.status.code(), Some(2), "{}", stderr(&empty));
    assert!(
        stderr(&empty).contains("password is empty"),
        "{}",
        stderr(&empty)
    );
}

#[tokio::test]
async fn every_page_renders_under_the_prefix_and_a_rate_change_is_stored_and_audited() {
    let env = Env::new("console-pages");
    seed(&env, today(), 1, &reauth("SESSION_EXPIRED")).await;
    let registry = shared::registry::Registry::new(env.conn().await, &env.keys);
    let record = shared::registry::LoginRecordInput {
        login_id: login(1),
        active: true,
        tag: None,
        priority: None,
    };
    registry.add(&record).await.unwrap();
    registry
        .record_outcome(&login(1), &reauth("SESSION_EXPIRED"))
        .await
        .unwrap();
    let console = spawn_console(&env, &["alice"], "/ops/console").await;
    let http = client();
    let base = &console.base;
    let alice = log_in(&http, base, "alice").await;
    let get = |path: String| {
        http.get(format!("{base}{path}"))
            .header(COOKIE, &alice.cookie)
            .send()
    };

    let mut pages = Vec::new();
    for path in [
        "/",
        "/reauth",
        "/failed",
        "/queues",
        "/workers",
        "/ratelimit",
        "/audit",
        "/history",
    ] {
        let response = get(path.to_string()).await.unwrap();
        pages.push((path, response.status(), response.text().await.unwrap()));
    }
    let history = get(format!("/history?login={}", login(1).as_str()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let unknown = get(format!("/history?login={}", login(2).as_str()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let bad_rate = http
        .post(format!("{base}/ratelimit"))
        .header(COOKIE, &alice.cookie)
        .form(&[("csrf", alice.csrf.as_str()), ("per_minute", "fast")])
        .send()
        .await
        .unwrap();
    let set = http
        .post(format!("{base}/ratelimit"))
        .header(COOKIE, &alice.cookie)
        .form(&[("csrf", alice.csrf.as_str()), ("per_minute", "42")])
        .send()
        .await
        .unwrap();
    let shown = get("/ratelimit".into())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let logout = http
        .post(format!("{base}/logout"))
        .header(COOKIE, &alice.cookie)
        .form(&[("csrf", alice.csrf.as_str())])
        .send()
        .await
        .unwrap();
    let after_logout = get("/queues".into()).await.unwrap();

    for (path, status, html) in &pages {
        assert_eq!(*status, StatusCode::OK, "{path}: {html}");
        assert!(
            html.contains("href=\"/ops/console/audit\""),
            "{path}: links under the prefix"
        );
        assert!(html.contains("/ops/console/static/console.css"), "{path}");
    }
    assert!(
        history.contains("needs_reauth") && history.contains("SESSION_EXPIRED"),
        "{history}"
    );
    assert!(unknown.contains("is not registered"), "{unknown}");
    assert_eq!(bad_rate.status(), StatusCode::BAD_REQUEST);
    assert!(bad_rate.text().await.unwrap().contains("rate limit"));
    assert_eq!(set.status(), StatusCode::SEE_OTHER);
    assert!(shown.contains("42/min"), "{shown}");
    let stores = stores(&env).await;
    assert_eq!(
        stores.control.stored_rate_limit().await.unwrap(),
        Some(42.0)
    );
    let audit = stores.audit.recent(10).await.unwrap();
    let entry = audit.iter().find(|e| e.command == "ratelimit set").unwrap();
    assert_eq!(entry.actor, "alice");
    assert!(audit
        .iter()
        .any(|e| e.command == "console login" && e.actor == "alice"));
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        after_logout.status(),
        StatusCode::UNAUTHORIZED,
        "the session is gone"
    );
    env.cleanup().await;
}
