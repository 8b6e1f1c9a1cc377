//! `producer report --watch` (the live view, as a pipe sees it: one line per interval) and
//! `report --json --cursor` (the lists paged by LoginId).

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use shared::domain::RequestId;
use shared::ledger::{Ledger, LedgerOutcome, Overwrite};

use super::{json, login, redis_url, stderr, stdout, Env};

const DATE: &str = "2025-06-02";

fn date() -> NaiveDate {
    NaiveDate::parse_from_str(DATE, "%Y-%m-%d").unwrap()
}

fn failed() -> LedgerOutcome {
    LedgerOutcome::Failed {
        flinks_code: None,
        http_status: Some(500),
        message: "server error".into(),
        attempts: 5,
        at: Utc::now(),
        reason: None,
    }
}

fn refreshed(stale: bool) -> LedgerOutcome {
    LedgerOutcome::Refreshed {
        request_id: RequestId::new("r"),
        last_refresh: None,
        stale,
        fetched_at: Utc::now(),
        results_stream_id: None,
    }
}

/// A usage error: exit 2, its message (on stderr, or JSON on stdout with `--json`) naming
/// every one of `needles`.
fn exits_2_saying(out: &std::process::Output, needles: &[&str]) {
    let err = format!("{}{}", stderr(out), stdout(out));
    assert_eq!(out.status.code(), Some(2), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} missing: {err}");
    }
}

fn spawn_watch(env: &Env) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(["report", "--watch", "--interval", "200ms", "--date", DATE])
        .env("REDIS_URL", redis_url())
        .env("REFRESH_NAMESPACE", env.keys.namespace())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the producer binary runs");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                // The test stopped listening: close the pipe, as `| head` does.
                return;
            }
        }
    });
    (child, rx)
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("report --watch did not exit within 5 s");
}

#[tokio::test]
async fn report_watch_prints_a_line_per_interval_on_a_pipe_and_stops_cleanly_on_sigterm() {
    // Arrange: 3 logins expected, one refreshed (stale), one failed.
    let env = Env::new("report-watch");
    let ledger = Ledger::new(env.conn().await, &env.keys);
    ledger.set_expected(date(), 3).await.unwrap();
    ledger
        .record(
            date(),
            &login(1),
            &refreshed(true),
            Overwrite::AllButRefreshed,
        )
        .await
        .unwrap();
    ledger
        .record(date(), &login(2), &failed(), Overwrite::AllButRefreshed)
        .await
        .unwrap();
    // Stored deadlines expire after their day: this one is in the future.
    let deadline = chrono::Utc::now() + chrono::Duration::days(1);
    shared::control::Control::new(env.conn().await, &env.keys)
        .set_routine_deadline(date(), deadline)
        .await
        .unwrap();

    // Act: watch two intervals, then SIGTERM.
    let (mut child, lines) = spawn_watch(&env);
    let first = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("a first line");
    let second = lines
        .recv_timeout(Duration::from_secs(5))
        .expect("a second line");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = wait_exit(&mut child);

    // Assert
    assert!(killed.success());
    assert!(status.success(), "exit {status:?}");
    for line in [&first, &second] {
        assert!(
            !line.contains('\x1b'),
            "no redraw codes on a pipe: {line:?}"
        );
        for expected in [
            "date=2025-06-02",
            "done=2/3",
            "pending=1",
            "refreshed=1",
            "stale=1",
            "failed=1",
            "codes=failed:-:1",
            &format!("deadline={}", deadline.format("%Y-%m-%dT%H:%MZ")),
        ] {
            assert!(line.contains(expected), "{expected:?} missing: {line}");
        }
    }
    env.cleanup().await;
}

#[tokio::test]
async fn report_watch_exits_quietly_when_the_reader_goes_away() {
    let env = Env::new("report-watch-pipe");
    let (mut child, lines) = spawn_watch(&env);
    lines
        .recv_timeout(Duration::from_secs(10))
        .expect("a first line");

    // The reader closes the pipe (as `| head -1` does); the next write finds it closed.
    drop(lines);
    let status = wait_exit(&mut child);

    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "exit {status:?}, stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    env.cleanup().await;
}

#[tokio::test]
async fn report_json_cursor_pages_every_list_without_repeating_or_skipping_a_login() {
    // Arrange: 5 failed logins, 3 refreshed stale ones, 2 refreshed fresh ones (not listed).
    let env = Env::new("report-cursor");
    let ledger = Ledger::new(env.conn().await, &env.keys);
    ledger.set_expected(date(), 10).await.unwrap();
    for n in 0..10u32 {
        let outcome = match n % 2 {
            0 => failed(),
            _ => refreshed(n < 7),
        };
        ledger
            .record(date(), &login(n), &outcome, Overwrite::AllButRefreshed)
            .await
            .unwrap();
    }

    // Act: page 3 listed logins at a time.
    let mut cursor = "start".to_string();
    let mut pages = Vec::new();
    while pages.len() < 10 {
        let page = json(&env.run(&[
            "report", "--date", DATE, "--json", "--limit", "3", "--cursor", &cursor,
        ]));
        let next = page["next_cursor"].as_str().map(str::to_string);
        pages.push(page);
        match next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    let text_cursor = env.run(&["report", "--date", DATE, "--cursor", "start"]);
    let bad_cursor = env.run(&["report", "--date", DATE, "--json", "--cursor", "nope"]);

    // Assert: 8 listed logins in pages of 3, 3, 2; counts whole on every page.
    assert_eq!(pages.len(), 3, "{pages:#?}");
    let mut seen = Vec::new();
    for page in &pages {
        assert_eq!(page["done"], 10);
        assert_eq!(page["refreshed"], 5);
        assert_eq!(page["totals"]["failed"], 5);
        assert_eq!(page["totals"]["stale"], 3);
        for item in page["failed"].as_array().unwrap() {
            seen.push(item["login_id"].as_str().unwrap().to_string());
        }
        for login in page["stale"].as_array().unwrap() {
            seen.push(login.as_str().unwrap().to_string());
        }
    }
    let mut expected: Vec<String> = [0, 1, 2, 3, 4, 5, 6, 8]
        .iter()
        .map(|n| login(*n).as_str().to_string())
        .collect();
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected);
    exits_2_saying(&text_cursor, &["--json"]);
    exits_2_saying(&bad_cursor, &["--cursor", "nope"]);
    env.cleanup().await;
}
