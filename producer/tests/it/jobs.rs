//! `producer queues show|delete|promote|list` on single jobs and pages, and the command-line
//! habits (headers, escaping, `--json` errors, `--date` words, man pages, quiet logs), as
//! the built binary on the real Redis.

use std::time::Duration;

use chrono::{Days, NaiveDate, Utc};
use shared::jobs::{AuthorizeJob, AUTHORIZE_QUEUE};
use shared::queue::{EnqueueOptions, JobId, Queue, QueueConfig};

use super::{json, login, stderr, stdout, Env};

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, 2).unwrap()
}

async fn authorize_queue(env: &Env) -> Queue<AuthorizeJob> {
    Queue::new(
        env.conn().await,
        &env.keys,
        QueueConfig::new(AUTHORIZE_QUEUE),
    )
}

async fn enqueue(queue: &Queue<AuthorizeJob>, n: u32, delay: Option<Duration>) -> String {
    let options = EnqueueOptions {
        delay,
        ..EnqueueOptions::default()
    };
    let job = AuthorizeJob::new(login(n), date());
    queue.enqueue(&job, options).await.unwrap().id().to_string()
}

#[tokio::test]
async fn show_promote_and_delete_act_on_one_job_and_refuse_clearly() {
    let env = Env::new("jobs-single");
    let queue = authorize_queue(&env).await;
    let delayed = enqueue(&queue, 1, Some(Duration::from_secs(3_600))).await;
    let ready = enqueue(&queue, 2, None).await;

    let shown = json(&env.run(&["queues", "show", &delayed, "--json"]));
    let promoted = env.run(&["queues", "promote", &delayed]);
    let after = json(&env.run(&["queues", "show", &delayed, "--json"]));
    let again = env.run(&["queues", "promote", &delayed]);
    let deleted = json(&env.run(&["queues", "delete", &ready, "--json"]));
    let gone = env.run(&["queues", "show", &ready]);
    let bad = env.run(&["queues", "delete", "no such\u{1b}id"]);
    let audit = json(&env.run(&["audit", "--json"]));

    assert_eq!(shown["queue"], "authorize");
    assert_eq!(shown["state"], "delayed");
    assert_eq!(shown["login_id"], login(1).as_str());
    assert_eq!(shown["date"], "2025-06-02");
    assert!(promoted.status.success(), "{}", stderr(&promoted));
    assert!(
        stdout(&promoted).contains("promoted"),
        "{}",
        stdout(&promoted)
    );
    assert_eq!(after["state"], "ready");
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(stderr(&again).contains("not delayed"), "{}", stderr(&again));
    assert_eq!(deleted["id"], ready.as_str());
    assert_eq!(deleted["state"], "ready");
    assert_eq!(queue.job(&JobId::from(ready.as_str())).await.unwrap(), None);
    assert_eq!(
        queue.stats().await.unwrap().ready,
        1,
        "only the promoted job waits"
    );
    assert_eq!(gone.status.code(), Some(2), "{}", stderr(&gone));
    assert!(stderr(&gone).contains("no job"), "{}", stderr(&gone));
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(!stderr(&bad).contains('\u{1b}'), "{}", stderr(&bad));
    assert_eq!(audit[0]["command"], "queues delete");
    assert_eq!(audit[1]["command"], "queues promote");
    env.cleanup().await;
}

#[tokio::test]
async fn an_in_flight_job_is_never_deleted() {
    let env = Env::new("jobs-in-flight");
    let queue = authorize_queue(&env).await;
    let id = enqueue(&queue, 1, None).await;
    let worker = shared::queue::WorkerId::generate();
    let leased = queue.fetch(&worker, 1).await.unwrap();
    assert_eq!(leased.len(), 1);

    let out = env.run(&["queues", "delete", &id]);

    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("in flight"), "{}", stderr(&out));
    assert!(queue
        .job(&JobId::from(id.as_str()))
        .await
        .unwrap()
        .is_some());
    env.cleanup().await;
}

#[tokio::test]
async fn list_pages_with_a_cursor_through_every_job_once_with_its_age() {
    let env = Env::new("jobs-pages");
    let queue = authorize_queue(&env).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(enqueue(&queue, n, None).await);
    }
    ids.push(enqueue(&queue, 9, Some(Duration::from_secs(600))).await);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = vec!["queues", "list", "authorize", "--limit", "2", "--json"];
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let page = json(&env.run(&args));
        pages += 1;
        for job in page["jobs"].as_array().unwrap() {
            assert!(job["age_seconds"].is_u64(), "{job}");
            seen.push(job["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(pages < 10, "the cursor never ends");
    }
    let text = env.run(&["queues", "list", "authorize", "--limit", "2"]);
    let one = json(&env.run(&[
        "queues",
        "list",
        "authorize",
        "--login",
        login(3).as_str(),
        "--json",
    ]));
    let bad = env.run(&["queues", "list", "authorize", "--cursor", "detail:ready:0"]);

    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 6, "every job once: {seen:?}");
    assert_eq!(seen.len(), 6, "no job twice: {seen:?}");
    let head = stdout(&text);
    for column in ["JOB ID", "LOGIN ID", "AGE", "--cursor authorize:"] {
        assert!(head.contains(column), "{column}: {head}");
    }
    assert_eq!(one["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(one["jobs"][0]["login_id"], login(3).as_str());
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("--cursor detail:ready:0"),
        "{}",
        stderr(&bad)
    );
    env.cleanup().await;
}

#[tokio::test]
async fn control_characters_in_printed_text_are_escaped() {
    let env = Env::new("escape");
    let reason = "bank down\u{1b}[31m\nforged line";
    assert!(env
        .run(&["queues", "pause", "authorize", "--reason", reason])
        .status
        .success());

    let audit = env.run(&["audit"]);
    let stats = env.run(&["queues", "stats"]);

    for out in [&audit, &stats] {
        let text = stdout(out);
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(!text.contains("\nforged"), "{text}");
        assert!(text.contains("\\u{1b}[31m\\nforged line"), "{text}");
    }
    env.cleanup().await;
}

#[tokio::test]
async fn json_errors_go_to_stdout_as_json_with_the_exit_code() {
    let env = Env::new("json-errors");

    let unknown = env.run(&["queues", "show", "abc123", "--json"]);
    let usage = env.run(&["queues", "list", "nowhere", "--json"]);
    let down = env.run_with_redis("redis://127.0.0.1:1", &["--json", "audit"]);

    for (out, code) in [(&unknown, 2), (&usage, 2), (&down, 1)] {
        assert_eq!(out.status.code(), Some(code), "{}", stderr(out));
        let body: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)));
        assert_eq!(body["exit_code"], code);
        assert!(body["error"].is_string(), "{body}");
    }
    assert!(stdout(&unknown).contains("abc123"));
    env.cleanup().await;
}

#[tokio::test]
async fn date_words_are_resolved_in_the_routine_zone_and_bad_dates_exit_2() {
    let env = Env::new("date-words");
    // Fourteen hours ahead of UTC all year: its date is not UTC's for ten hours a day.
    let zone = [("ROUTINE_TZ", "Pacific/Kiritimati")];
    let today = (Utc::now() + chrono::Duration::hours(14)).date_naive();
    let yesterday = today.checked_sub_days(Days::new(1)).unwrap();

    let report = json(&env.run_with_env(&zone, &["report", "--date", "yesterday", "--json"]));
    let run = json(&env.run_with_env(&zone, &["routine", "run", "--date", "today", "--json"]));
    let bad = env.run_with_env(&zone, &["report", "--date", "tomorrow"]);

    assert_eq!(report["date"], yesterday.to_string());
    assert_eq!(run["date"], today.to_string());
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("--date"), "{}", stderr(&bad));
    env.cleanup().await;
}

#[tokio::test]
async fn logins_list_has_a_header_and_a_default_limit_and_prints_no_log_line() {
    let env = Env::new("logins-habits");
    let mut csv = String::from("LoginId\n");
    for n in 1..=120 {
        csv.push_str(&format!("{}\n", login(n).as_str()));
    }
    let file = env.file("logins.csv", &csv);
    assert!(env.run(&["logins", "import", &file]).status.success());

    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_producer"));
    cmd.args(["logins", "list"])
        .env("REDIS_URL", super::redis_url())
        .env("REFRESH_NAMESPACE", env.keys.namespace())
        .env_remove("RUST_LOG");
    let out = cmd.output().unwrap();

    let text = stdout(&out);
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("LOGIN ID") && header.contains("STATUS"),
        "{header}"
    );
    assert_eq!(lines.count(), 100);
    assert_eq!(stderr(&out), "", "no log line");
    env.cleanup().await;
}

#[tokio::test]
async fn mutations_are_audited_with_a_sanitized_actor() {
    let env = Env::new("audit-all");
    let file = env.file("one.csv", &format!("LoginId\n{}\n", login(1).as_str()));

    let actor = "eve\nadmin\u{1b}[31m";
    assert!(env
        .run(&["logins", "import", &file, "--actor", actor])
        .status
        .success());
    assert!(env
        .run(&["logins", "add", login(2).as_str()])
        .status
        .success());
    assert!(env
        .run(&["routine", "run", "--date", "2025-06-02"])
        .status
        .success());
    let audit = json(&env.run(&["audit", "--json"]));
    let text = env.run(&["audit"]);

    let commands = super::audit_commands(&audit);
    assert_eq!(commands, ["routine run", "logins add", "logins import"]);
    assert_eq!(audit[0]["count"], 2);
    assert_eq!(audit[2]["actor"], "eve_admin__31m");
    assert!(stdout(&text).lines().next().unwrap().contains("ACTOR"));
    env.cleanup().await;
}

#[test]
fn man_prints_a_page_and_writes_one_per_command_without_redis() {
    let env = Env::new("man");
    let dir = env.dir.join("man1");

    let page = env.run_with_redis("redis://127.0.0.1:1", &["man"]);
    let written = env.run_with_redis(
        "redis://127.0.0.1:1",
        &["man", "--out", dir.to_str().unwrap()],
    );

    assert!(page.status.success(), "{}", stderr(&page));
    assert!(stdout(&page).contains(".TH producer"), "{}", stdout(&page));
    assert!(written.status.success(), "{}", stderr(&written));
    for name in [
        "producer.1",
        "producer-queues.1",
        "producer-queues-promote.1",
    ] {
        assert!(dir.join(name).exists(), "{name} missing");
    }
}

#[tokio::test]
async fn results_read_by_login_and_date_prints_that_refresh_only() {
    let env = Env::new("results-login");
    let sink = shared::results::ResultsSink::new(env.conn().await, &env.keys, 100);
    let accounts = serde_json::value::RawValue::from_string(
        r#"[{"AccountNumber":"1","Balance":{"Current":1.50}}]"#.to_owned(),
    )
    .unwrap();
    for n in [1, 2] {
        let entry = shared::results::ResultEntry {
            login_id: &login(n),
            request_id: &shared::RequestId::new(format!("req-{n}")),
            routine_date: date(),
            fetched_at: Utc::now(),
            last_refresh: None,
            stale: false,
            accounts: &accounts,
        };
        sink.store(&entry).await.unwrap();
    }
    let run = |n: u32, day: &str| {
        let id = login(n);
        let args = [
            "results",
            "read",
            "--login",
            id.as_str(),
            "--date",
            day,
            "--json",
        ];
        env.run(&args)
    };

    let found = json(&run(2, "2025-06-02"));
    let missing = run(3, "2025-06-02");
    let alone = env.run(&["results", "read", "--login", login(2).as_str()]);

    let entries = found["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{found}");
    assert_eq!(entries[0]["login_id"], login(2).as_str());
    assert!(found["next"].is_null());
    assert_eq!(missing.status.code(), Some(2), "{}", stdout(&missing));
    assert!(
        stdout(&missing).contains("no refresh"),
        "{}",
        stdout(&missing)
    );
    assert_eq!(alone.status.code(), Some(2), "--login needs --date");
    env.cleanup().await;
}

/// A routine date far ahead (a mistyped year) would supersede every waiting job and leave
/// each daily run with nothing to queue until it came: it is refused, and nothing is queued.
#[tokio::test]
async fn a_routine_date_more_than_a_day_ahead_is_refused_and_queues_nothing() {
    let env = Env::new("routine-ahead");
    let file = env.file("one.csv", &format!("LoginId\n{}\n", login(1).as_str()));
    assert!(env.run(&["logins", "import", &file]).status.success());

    let far = env.run(&["routine", "run", "--date", "2099-01-01"]);
    let far_json = env.run(&["routine", "run", "--date", "2099-01-01", "--json"]);
    let far_json: serde_json::Value = serde_json::from_slice(&far_json.stdout).unwrap();
    let stats = json(&env.run(&["queues", "stats", "--json"]));

    assert_eq!(far.status.code(), Some(2), "{}", stderr(&far));
    assert!(
        stderr(&far).contains("routine date 2099-01-01 is")
            && stderr(&far).contains("at most 1 day ahead"),
        "{}",
        stderr(&far)
    );
    assert_eq!(far_json["exit_code"], 2, "{far_json}");
    assert_eq!(stats["queues"][0]["queue"], "authorize", "{stats}");
    assert_eq!(stats["queues"][0]["ready"], 0, "nothing queued: {stats}");
    env.cleanup().await;
}
