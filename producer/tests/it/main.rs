//! Runs the built `producer` binary as an operator would (ripgrep style), against the real
//! Redis at `REDIS_URL` with a namespace of its own per test, deleted at the end.

mod cli;
mod console;
mod console_browser;
mod control;
mod jobs;
mod ops;
mod report;

use std::path::PathBuf;
use std::process::{Command, Output};

use chrono::{NaiveDate, Utc};
use shared::domain::{FlinksCode, LoginId, RequestId};
use shared::ledger::{Ledger, LedgerOutcome, Overwrite};
use shared::redis_conn::RedisConn;
use shared::registry::Registry;
use shared::KeySpace;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn login(n: u32) -> LoginId {
    LoginId::parse(&format!("00000000-0000-4000-8000-{n:012}")).unwrap()
}

/// One test's namespace on the real Redis, plus a scratch directory.
struct Env {
    keys: KeySpace,
    dir: PathBuf,
}

impl Env {
    fn new(test: &str) -> Self {
        let namespace = format!("test-producer-{test}-{}", uuid::Uuid::new_v4().simple());
        let dir = std::env::temp_dir().join(&namespace);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            keys: shared::config::key_space_in_env(&namespace),
            dir,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_redis(&redis_url(), args)
    }

    fn run_with_redis(&self, url: &str, args: &[&str]) -> Output {
        self.run_with_env(&[("REDIS_URL", url)], args)
    }

    /// Runs the producer with `vars` set over the test's own environment.
    fn run_with_env(&self, vars: &[(&str, &str)], args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_producer"))
            .args(args)
            .env("REDIS_URL", redis_url())
            .env("REFRESH_NAMESPACE", self.keys.namespace())
            .env("RUST_LOG", "warn")
            .envs(vars.iter().copied())
            .output()
            .expect("the producer binary runs")
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    async fn conn(&self) -> RedisConn {
        shared::redis_conn::connect_in_env_mode(&redis_url())
            .await
            .unwrap()
    }

    async fn cleanup(self) {
        let conn = self.conn().await;
        self.keys.delete_all(&conn).await.unwrap();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `command` of each entry of `producer audit --json`, newest first.
fn audit_commands(audit: &serde_json::Value) -> Vec<&str> {
    let entries = audit.as_array().expect("audit --json is an array");
    entries
        .iter()
        .map(|e| e["command"].as_str().unwrap())
        .collect()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        stderr(out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

#[tokio::test]
async fn import_then_list_json_shows_every_login_with_its_state() {
    let env = Env::new("import-list");
    let csv = env.file(
        "logins.csv",
        &format!(
            "LoginId,Active,Tag\n{},true,vip\n{},no,\n{},1,\n",
            login(1).as_str(),
            login(2).as_str(),
            login(3).as_str()
        ),
    );

    let imported = json(&env.run(&["logins", "import", &csv, "--json"]));
    let all = json(&env.run(&["logins", "list", "--json"]));
    let inactive = json(&env.run(&["--json", "logins", "list", "--inactive"]));
    let limited = json(&env.run(&["logins", "list", "--active", "--limit", "1", "--json"]));

    assert_eq!(imported["imported"], 3);
    assert_eq!(imported["active"], 2);
    assert_eq!(imported["inactive"], 1);
    assert_eq!(all.as_array().unwrap().len(), 3);
    assert_eq!(inactive.as_array().unwrap().len(), 1);
    assert_eq!(inactive[0]["login_id"], login(2).as_str());
    assert_eq!(inactive[0]["active"], false);
    assert_eq!(limited.as_array().unwrap().len(), 1);
    env.cleanup().await;
}

#[tokio::test]
async fn show_json_gives_status_last_outcome_and_history() {
    let env = Env::new("show");
    env.run(&["logins", "add", login(5).as_str(), "--tag", "t1"]);
    let registry = Registry::new(env.conn().await, &env.keys);
    let outcome = LedgerOutcome::NeedsReauth {
        flinks_code: Some(FlinksCode::parse("SESSION_EXPIRED")),
        message: Some("please reconnect".into()),
        request_id: Some(RequestId::new("req-1")),
        at: Utc::now(),
        unrecognised_code: false,
    };
    registry.record_outcome(&login(5), &outcome).await.unwrap();

    let shown = json(&env.run(&["logins", "show", login(5).as_str(), "--json"]));
    let text = env.run(&["logins", "show", login(5).as_str()]);

    assert_eq!(shown["login_id"], login(5).as_str());
    assert_eq!(shown["active"], true);
    assert_eq!(shown["tag"], "t1");
    assert_eq!(shown["last_outcome"], "needs_reauth");
    assert_eq!(shown["reauth_code"], "SESSION_EXPIRED");
    assert_eq!(shown["history"][0]["kind"], "needs_reauth");
    assert!(
        stdout(&text).contains("SESSION_EXPIRED"),
        "{}",
        stdout(&text)
    );
    env.cleanup().await;
}

#[tokio::test]
async fn report_json_on_a_seeded_ledger_has_the_documented_fields() {
    let env = Env::new("report");
    let date = NaiveDate::from_ymd_opt(2025, 6, 2).unwrap();
    let conn = env.conn().await;
    let ledger = Ledger::new(conn.clone(), &env.keys);
    let registry = Registry::new(conn, &env.keys);
    for n in 0..3 {
        registry
            .add(&shared::registry::LoginRecordInput {
                login_id: login(n),
                active: true,
                tag: None,
                priority: None,
            })
            .await
            .unwrap();
    }
    ledger.set_expected(date, 3).await.unwrap();
    let refreshed = LedgerOutcome::Refreshed {
        request_id: RequestId::new("r"),
        last_refresh: None,
        stale: true,
        fetched_at: Utc::now(),
        results_stream_id: None,
    };
    ledger
        .record(date, &login(0), &refreshed, Overwrite::AllButRefreshed)
        .await
        .unwrap();
    registry
        .record_outcome(&login(0), &refreshed)
        .await
        .unwrap();
    let failed = LedgerOutcome::Failed {
        flinks_code: None,
        http_status: Some(500),
        message: "server error".into(),
        attempts: 5,
        at: Utc::now(),
        reason: None,
    };
    ledger
        .record(date, &login(1), &failed, Overwrite::AllButRefreshed)
        .await
        .unwrap();

    let report = json(&env.run(&["report", "--date", "2025-06-02", "--json"]));
    let text = env.run(&["report", "--date", "2025-06-02"]);

    assert_eq!(report["date"], "2025-06-02");
    assert_eq!(report["active"], 3);
    assert_eq!(report["done"], 2);
    assert_eq!(report["pending"], 1);
    assert_eq!(report["refreshed"], 1);
    assert_eq!(report["stale"][0], login(0).as_str());
    assert_eq!(report["failed"][0]["message"], "server error");
    assert_eq!(report["reauth"].as_array().unwrap().len(), 0);
    assert!(report["eta_seconds"].is_u64());
    assert!(report["new_reauth"].is_array());
    assert!(report["oldest_refresh_at"].is_string(), "{report}");
    assert!(report["oldest_data_age_seconds"].is_u64(), "{report}");
    assert_eq!(report["never_refreshed"], 2);
    assert!(report["deadline"].is_null(), "no run stored one: {report}");
    let text = stdout(&text);
    assert!(text.contains("pending"), "{text}");
    assert!(
        text.contains("oldest data") && text.contains("never refreshed"),
        "{text}"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_priority_out_of_range_exits_2_naming_the_value_in_the_csv_or_the_flag() {
    let env = Env::new("priority");
    let csv = env.file(
        "priority.csv",
        &format!(
            "LoginId,Priority\n{},5\n{},101\n",
            login(1).as_str(),
            login(2).as_str()
        ),
    );

    let import = env.run(&["logins", "import", &csv]);
    let add = env.run(&["logins", "add", login(3).as_str(), "--priority", "high"]);
    let ok = env.run(&[
        "logins",
        "add",
        login(4).as_str(),
        "--priority",
        "9",
        "--json",
    ]);

    assert_eq!(import.status.code(), Some(2), "{}", stderr(&import));
    let err = stderr(&import);
    assert!(
        err.contains("line 3") && err.contains("Priority \"101\""),
        "{err}"
    );
    assert_eq!(add.status.code(), Some(2), "{}", stderr(&add));
    let err = stderr(&add);
    assert!(err.contains("--priority") && err.contains("high"), "{err}");
    assert_eq!(json(&ok)["priority"], 9);
    env.cleanup().await;
}

/// `logins add --tag` holds a tag to what an import does: a tag with a control character
/// (one that would move a terminal's cursor) is refused naming the flag, not stored.
#[tokio::test]
async fn a_tag_given_to_logins_add_is_checked_as_an_imported_one_is() {
    let env = Env::new("add-tag");

    let escape = env.run(&[
        "logins",
        "add",
        login(1).as_str(),
        "--tag",
        "a\u{1b}[31mred",
    ]);
    let long = "t".repeat(257);
    let too_long = env.run(&["logins", "add", login(2).as_str(), "--tag", &long]);
    let fine = env.run(&["logins", "add", login(3).as_str(), "--tag", "team-b"]);
    let listed = json(&env.run(&["logins", "list", "--json"]));

    assert_eq!(escape.status.code(), Some(2), "{}", stderr(&escape));
    let err = stderr(&escape);
    assert!(err.contains("--tag") && err.contains("U+001B"), "{err}");
    assert_eq!(too_long.status.code(), Some(2), "{}", stderr(&too_long));
    assert!(
        stderr(&too_long).contains("more than 256"),
        "{}",
        stderr(&too_long)
    );
    assert!(fine.status.success(), "{}", stderr(&fine));
    assert_eq!(
        listed.to_string().matches("login_id").count(),
        1,
        "{listed}"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_bad_csv_exits_2_naming_the_line_and_imports_nothing() {
    let env = Env::new("bad-csv");
    let csv = env.file(
        "bad.csv",
        &format!(
            "LoginId,Active\n{},true\nnot-a-uuid,true\n",
            login(1).as_str()
        ),
    );

    let out = env.run(&["logins", "import", &csv]);
    let listed = json(&env.run(&["logins", "list", "--json"]));

    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("line 3") && err.contains("bad.csv"), "{err}");
    assert_eq!(listed.as_array().unwrap().len(), 0);
    env.cleanup().await;
}

#[tokio::test]
async fn an_overlong_line_or_a_tag_with_control_characters_exits_2_naming_the_line() {
    let env = Env::new("csv-limits");
    let long = env.file(
        "long.csv",
        &format!(
            "LoginId,Note\n{},{}\n",
            login(1).as_str(),
            "x".repeat(shared::import::MAX_LINE_BYTES)
        ),
    );
    let escape = env.file(
        "escape.csv",
        &format!("LoginId,Tag\n{},\"red\u{1b}[31m\"\n", login(1).as_str()),
    );

    // Even with --skip-invalid: an overlong line stops the import.
    let out = env.run(&["logins", "import", &long, "--skip-invalid"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("line 2") && err.contains("longer than"),
        "{err}"
    );
    assert!(!err.contains("xxxx"), "{err}");
    let out = env.run(&["logins", "import", &escape]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("line 2") && err.contains("control or invisible"),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "{err}");
    let listed = json(&env.run(&["logins", "list", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 0);
    env.cleanup().await;
}

#[tokio::test]
async fn skip_invalid_imports_the_good_rows_and_reports_the_skipped_ones() {
    let env = Env::new("skip-invalid");
    let csv = env.file(
        "mixed.csv",
        &format!(
            "LoginId\n{}\nnope\n{}\n",
            login(1).as_str(),
            login(2).as_str()
        ),
    );

    let out = env.run(&["logins", "import", &csv, "--skip-invalid"]);

    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("imported 2 logins"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("line 3"), "{}", stderr(&out));
    env.cleanup().await;
}

#[tokio::test]
async fn an_invalid_login_id_is_a_usage_error() {
    let env = Env::new("bad-id");

    let out = env.run(&["logins", "add", "not-a-uuid"]);

    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a UUID"), "{}", stderr(&out));
    env.cleanup().await;
}

#[test]
fn an_unreachable_redis_exits_1_with_a_message_naming_the_url() {
    let env = Env::new("unreachable");

    let out = env.run_with_redis("redis://127.0.0.1:1", &["logins", "list"]);

    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: Redis unreachable at redis://127.0.0.1:1"),
        "{err}"
    );
    assert_eq!(err.matches("error:").count(), 1, "printed once: {err}");
}

#[test]
fn help_documents_the_exit_codes() {
    let env = Env::new("help");

    let out = env.run(&["--help"]);

    assert!(out.status.success());
    assert!(
        stdout(&out).contains("2  usage or validation error"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn lookup_resolves_a_logged_fingerprint_to_its_login_id_and_refuses_the_rest() {
    let env = Env::new("lookup");
    for n in [1, 2] {
        assert!(env
            .run(&["logins", "add", login(n).as_str()])
            .status
            .success());
    }
    let fingerprint = login(2).fingerprint();

    let found = env.run(&["logins", "lookup", &fingerprint]);
    let found_json = json(&env.run(&["logins", "lookup", &fingerprint[4..14], "--json"]));
    let unknown = env.run(&["logins", "lookup", &login(3).fingerprint()]);
    let garbage = env.run(&["logins", "lookup", "lid:xyz"]);

    assert!(found.status.success(), "{}", stderr(&found));
    assert_eq!(stdout(&found).trim(), login(2).as_str());
    assert_eq!(found_json["login_id"], login(2).as_str());
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    assert!(
        stderr(&unknown).contains("no registered LoginId"),
        "{}",
        stderr(&unknown)
    );
    assert_eq!(garbage.status.code(), Some(2));
    assert!(
        stderr(&garbage).contains("not a LoginId fingerprint"),
        "{}",
        stderr(&garbage)
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_closed_pipe_ends_a_listing_quietly_with_exit_0() {
    let env = Env::new("closed-pipe");
    let mut csv = String::from("LoginId,Active\n");
    for n in 1..=2000 {
        csv.push_str(&format!("{},true\n", login(n).as_str()));
    }
    let file = env.file("logins.csv", &csv);
    assert!(env.run(&["logins", "import", &file]).status.success());

    // Read one line, then close the pipe while the producer is still printing.
    let mut child = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(["logins", "list", "--limit", "2000"])
        .env("REDIS_URL", redis_url())
        .env("REFRESH_NAMESPACE", env.keys.namespace())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();

    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    env.cleanup().await;
}

#[test]
fn completions_for_bash_name_the_subcommands_without_redis() {
    let env = Env::new("completions");

    let out = env.run_with_redis("redis://127.0.0.1:1", &["completions", "bash"]);
    let bad = env.run(&["completions", "tcsh"]);

    assert!(out.status.success(), "{}", stderr(&out));
    let script = stdout(&out);
    assert!(script.contains("_producer"), "{script}");
    for subcommand in ["logins", "routine", "queues", "ratelimit", "report"] {
        assert!(script.contains(subcommand), "{subcommand} missing");
    }
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

#[tokio::test]
async fn streams_lists_one_key_per_ledger_bucket_and_another_bucket_count_is_refused() {
    let env = Env::new("streams");
    let three = [("LEDGER_BUCKETS", "3")];

    let results = env.run_with_env(&three, &["results", "streams"]);
    let events = env.run_with_env(&three, &["--json", "events", "streams"]);
    let other = env.run_with_env(&[("LEDGER_BUCKETS", "5")], &["results", "streams"]);

    assert!(results.status.success(), "{}", stderr(&results));
    let ns = env.keys.namespace();
    assert_eq!(
        stdout(&results),
        format!(
            "{{{ns}:ledger:0}}:results\n{{{ns}:ledger:1}}:results\n{{{ns}:ledger:2}}:results\n"
        )
    );
    let events = json(&events);
    assert_eq!(events["streams"].as_array().unwrap().len(), 3);
    assert_eq!(events["streams"][2], format!("{{{ns}:ledger:2}}:events"));
    assert!(!other.status.success());
    assert!(
        stderr(&other).contains("LEDGER_BUCKETS=5")
            && stderr(&other).contains("set LEDGER_BUCKETS=3"),
        "{}",
        stderr(&other)
    );
    env.cleanup().await;
}

/// A malformed `--from` is refused by name before Redis sees it (Redis would answer a bare
/// "Invalid stream ID").
#[tokio::test]
async fn a_malformed_stream_position_or_an_empty_page_is_refused_naming_the_flag() {
    let env = Env::new("stream-from");

    let events = env.run(&["events", "read", "--from", "garbage"]);
    let results = env.run(&["results", "read", "--from", "12-x"]);
    let next_page = env.run(&["events", "read", "--from", "(1764800000000-0", "--json"]);

    for out in [&events, &results] {
        assert_eq!(out.status.code(), Some(2), "{}", stderr(out));
        assert!(
            stderr(out).contains("--from") && stderr(out).contains("not a stream position"),
            "{}",
            stderr(out)
        );
    }
    assert!(next_page.status.success(), "{}", stderr(&next_page));
    for command in ["events", "results"] {
        let none = env.run(&[command, "read", "--count", "0"]);
        assert_eq!(none.status.code(), Some(2), "{command}: {}", stderr(&none));
        assert!(
            stderr(&none).contains("--count"),
            "{command}: {}",
            stderr(&none)
        );
    }
    env.cleanup().await;
}
