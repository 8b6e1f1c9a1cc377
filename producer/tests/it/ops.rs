//! The ops commands (`queues ...`, `logins deactivate|activate|reconnected`,
//! `refresh-status`, `audit`) run as the built binary, on the real Redis and the simulator
//! (or a stub answering 500).

use std::process::{Command, Output};

use chrono::{NaiveDate, Utc};
use shared::domain::FlinksCode;
use shared::ledger::{IndexFilter, Ledger, LedgerOutcome, Overwrite};
use shared::registry::Registry;

use super::{json, login, redis_url, stderr, stdout, Env};

/// Runs the binary off the async runtime (the simulator serves on it meanwhile).
async fn run(env: &Env, extra: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_producer"));
    cmd.args(args)
        .env("REDIS_URL", redis_url())
        .env("REFRESH_NAMESPACE", env.keys.namespace())
        .env("RATE_LIMIT_PER_MINUTE", "6000")
        .env("RUST_LOG", "warn")
        .env("USER", "test-operator");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("the producer binary runs"))
        .await
        .unwrap()
}

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, 2).unwrap()
}

fn failed(code: &str) -> LedgerOutcome {
    LedgerOutcome::Failed {
        flinks_code: Some(FlinksCode::parse(code)),
        http_status: Some(503),
        message: "bank down".into(),
        attempts: 5,
        at: Utc::now(),
        reason: None,
    }
}

async fn seed_failed(env: &Env, codes: &[&str]) -> Ledger {
    let ledger = Ledger::new(env.conn().await, &env.keys);
    for (i, code) in codes.iter().enumerate() {
        ledger
            .record(
                date(),
                &login(i as u32),
                &failed(code),
                Overwrite::AllButRefreshed,
            )
            .await
            .unwrap();
    }
    ledger
}

/// A requeue by `--login` says which of the logins asked for had no record to move, rather
/// than printing only how many moved.
#[tokio::test]
async fn a_requeue_names_each_login_that_had_no_record() {
    let env = Env::new("ops-requeue-unmatched");
    seed_failed(&env, &["RETRY_LATER"]).await;
    let (held, absent) = (login(0), login(9));

    let out = run(
        &env,
        &[],
        &[
            "queues",
            "requeue",
            "failed",
            "--login",
            held.as_str(),
            "--login",
            absent.as_str(),
        ],
    )
    .await;

    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "no failed records matched --login {}",
            absent.as_str()
        )),
        "{err}"
    );
    assert!(!err.contains(held.as_str()), "{err}");
    env.cleanup().await;
}

#[tokio::test]
async fn list_dry_run_requeue_by_code_then_stats_and_audit_tell_the_whole_story() {
    let env = Env::new("ops-flow");
    let ledger = seed_failed(&env, &["RETRY_LATER", "AGGREGATION_ERROR", "RETRY_LATER"]).await;

    let listed = json(&run(&env, &[], &["queues", "list", "failed", "--json"]).await);
    let text = run(
        &env,
        &[],
        &["queues", "list", "failed", "--code", "RETRY_LATER"],
    )
    .await;
    let dry = json(
        &run(
            &env,
            &[],
            &[
                "queues",
                "requeue",
                "failed",
                "--code",
                "RETRY_LATER",
                "--dry-run",
                "--json",
            ],
        )
        .await,
    );
    let after_dry = ledger
        .list_failed(&IndexFilter::default())
        .await
        .unwrap()
        .len();
    let moved = json(
        &run(
            &env,
            &[],
            &[
                "queues",
                "requeue",
                "failed",
                "--code",
                "RETRY_LATER",
                "--json",
            ],
        )
        .await,
    );
    let stats = json(&run(&env, &[], &["queues", "stats", "--json"]).await);
    let jobs = json(
        &run(
            &env,
            &[],
            &["queues", "list", "authorize", "--state", "ready", "--json"],
        )
        .await,
    );
    let audit = json(&run(&env, &[], &["audit", "--json"]).await);
    let audit_text = run(&env, &[], &["audit"]).await;

    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert_eq!(listed[0]["attempts"], 5);
    assert!(listed[0]["flinks_code"].is_string());
    assert!(stdout(&text).contains("2 record(s)"), "{}", stdout(&text));
    assert_eq!(dry["moved"].as_array().unwrap().len(), 2);
    assert_eq!(after_dry, 3, "a dry run changes nothing");
    assert_eq!(moved["moved"].as_array().unwrap().len(), 2);
    assert_eq!(stats["failed"], 1);
    assert_eq!(stats["queues"][0]["queue"], "authorize");
    assert_eq!(stats["queues"][0]["ready"], 2);
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(jobs["jobs"][0]["state"], "ready");
    let entries = audit.as_array().unwrap();
    assert_eq!(entries.len(), 1, "dry runs and reads are not audited");
    assert_eq!(entries[0]["command"], "queues requeue");
    assert_eq!(entries[0]["actor"], "test-operator");
    assert_eq!(entries[0]["count"], 2);
    assert!(entries[0]["args"].as_str().unwrap().contains("RETRY_LATER"));
    assert!(stdout(&audit_text).contains("queues requeue"));
    env.cleanup().await;
}

#[tokio::test]
async fn requeue_without_a_filter_or_all_is_a_usage_error() {
    let env = Env::new("ops-no-filter");

    let out = run(&env, &[], &["queues", "requeue", "failed"]).await;

    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--all"), "{}", stderr(&out));
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_requeue_processes_at_once_enqueue_each_login_once() {
    let env = Env::new("ops-two-procs");
    let codes: Vec<&str> = vec!["RETRY_LATER"; 300];
    seed_failed(&env, &codes).await;
    let args = ["queues", "requeue", "failed", "--all", "--json"];

    let (a, b) = tokio::join!(run(&env, &[], &args), run(&env, &[], &args));

    let (a, b) = (json(&a), json(&b));
    let moved = a["moved"].as_array().unwrap().len() + b["moved"].as_array().unwrap().len();
    assert_eq!(moved, 300);
    let stats = json(&run(&env, &[], &["queues", "stats", "--json"]).await);
    assert_eq!(stats["queues"][0]["ready"], 300);
    assert_eq!(stats["failed"], 0);
    env.cleanup().await;
}

#[tokio::test]
async fn purge_older_than_a_week_removes_only_old_records() {
    let env = Env::new("ops-purge");
    let ledger = seed_failed(&env, &["RETRY_LATER"]).await;
    let old = LedgerOutcome::Failed {
        flinks_code: None,
        http_status: Some(500),
        message: "old".into(),
        attempts: 5,
        at: Utc::now() - chrono::Duration::days(9),
        reason: None,
    };
    ledger
        .record(date(), &login(50), &old, Overwrite::AllButRefreshed)
        .await
        .unwrap();

    let dry = json(
        &run(
            &env,
            &[],
            &[
                "queues",
                "purge",
                "failed",
                "--older-than",
                "7d",
                "--dry-run",
                "--json",
            ],
        )
        .await,
    );
    let out = run(
        &env,
        &[],
        &["queues", "purge", "failed", "--older-than", "7d"],
    )
    .await;

    assert_eq!(dry["removed"][0][1], 1);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("purged 1 failed entry"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        ledger
            .list_failed(&IndexFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
    env.cleanup().await;
}

#[tokio::test]
async fn deactivate_then_activate_flip_the_registry_and_queue_the_flinks_changes() {
    let env = Env::new("ops-deactivate");
    for n in [1, 2] {
        run(&env, &[], &["logins", "add", login(n).as_str()]).await;
    }

    let off = json(
        &run(
            &env,
            &[],
            &[
                "logins",
                "deactivate",
                login(1).as_str(),
                login(2).as_str(),
                "--json",
            ],
        )
        .await,
    );
    let inactive = json(&run(&env, &[], &["logins", "list", "--inactive", "--json"]).await);
    let pending = json(&run(&env, &[], &["logins", "list", "--flinks-pending", "--json"]).await);
    let on = run(&env, &[], &["logins", "activate", login(2).as_str()]).await;
    let active = json(&run(&env, &[], &["logins", "list", "--active", "--json"]).await);
    let shown = run(&env, &[], &["logins", "show", login(1).as_str()]).await;
    let audit = json(&run(&env, &[], &["audit", "--json"]).await);

    assert_eq!(off.as_array().unwrap().len(), 2);
    assert_eq!(off[0]["ok"], true);
    assert_eq!(off[0]["flinks_scheduled_refresh"], "pending");
    assert_eq!(inactive.as_array().unwrap().len(), 2);
    assert_eq!(pending.as_array().unwrap().len(), 2);
    assert_eq!(pending[0]["flinks_scheduled_refresh"], "pending");
    assert!(on.status.success(), "{}", stderr(&on));
    assert!(
        stdout(&on).contains("flinks_scheduled_refresh: pending"),
        "{}",
        stdout(&on)
    );
    assert_eq!(active[0]["login_id"], login(2).as_str());
    let shown = stdout(&shown);
    let flinks = shown
        .lines()
        .find(|l| l.starts_with("flinks_scheduled_refresh"))
        .unwrap_or_default();
    assert!(flinks.ends_with("pending"), "{shown}");
    assert_eq!(audit[0]["command"], "logins activate");
    assert_eq!(audit[1]["command"], "logins deactivate");
    assert_eq!(audit[1]["count"], 2);
    env.cleanup().await;
}

#[tokio::test]
async fn reconnected_clears_reauth_and_enqueues_an_authorize_job() {
    let env = Env::new("ops-reconnected");
    run(&env, &[], &["logins", "add", login(1).as_str()]).await;
    let ledger = Ledger::new(env.conn().await, &env.keys);
    let reauth = LedgerOutcome::NeedsReauth {
        flinks_code: Some(FlinksCode::parse("SESSION_EXPIRED")),
        message: Some("reconnect".into()),
        request_id: None,
        at: Utc::now(),
        unrecognised_code: false,
    };
    ledger
        .record(date(), &login(1), &reauth, Overwrite::AllButRefreshed)
        .await
        .unwrap();
    Registry::new(env.conn().await, &env.keys)
        .record_outcome(&login(1), &reauth)
        .await
        .unwrap();

    let out = json(
        &run(
            &env,
            &[],
            &["logins", "reconnected", login(1).as_str(), "--json"],
        )
        .await,
    );
    let unknown = run(&env, &[], &["logins", "reconnected", login(9).as_str()]).await;
    let unknown_json = run(
        &env,
        &[],
        &["logins", "reconnected", login(9).as_str(), "--json"],
    )
    .await;
    let stats = json(&run(&env, &[], &["queues", "stats", "--json"]).await);
    let shown = json(&run(&env, &[], &["logins", "show", login(1).as_str(), "--json"]).await);

    assert_eq!(out["reconnected"][0]["reauth_cleared"], 1);
    assert_eq!(unknown.status.code(), Some(3), "{}", stderr(&unknown));
    assert_eq!(unknown_json.status.code(), Some(3));
    let result: serde_json::Value =
        serde_json::from_slice(&unknown_json.stdout).unwrap_or_else(|e| {
            panic!(
                "one JSON document on stdout: {e}: {}",
                stdout(&unknown_json)
            )
        });
    assert_eq!(result["unknown"][0], login(9).as_str());
    assert_eq!(stats["reauth"], 0);
    assert_eq!(stats["queues"][0]["ready"], 1);
    assert!(shown["reauth_code"].is_null());
    env.cleanup().await;
}

#[tokio::test]
async fn refresh_status_marks_listed_logins_and_warns_about_unknown_ones() {
    let env = Env::new("ops-refresh-status");
    let rules = flinks_sim::Rules::default()
        .with_login(login(1).as_str(), flinks_sim::Scenario::DisabledLogin)
        .with_login(login(2).as_str(), flinks_sim::Scenario::QuestionNotFound);
    let sim = flinks_sim::spawn(flinks_sim::SimConfig {
        rules,
        ..Default::default()
    })
    .await
    .unwrap();
    run(&env, &[], &["logins", "add", login(1).as_str()]).await;

    let out = run(
        &env,
        &[("FLINKS_BASE_URL", &sim.base_url)],
        &["refresh-status"],
    )
    .await;
    let reauth = json(&run(&env, &[], &["queues", "list", "reauth", "--json"]).await);

    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("1 marked"), "{}", stdout(&out));
    assert!(stderr(&out).contains(login(2).as_str()), "{}", stderr(&out));
    assert_eq!(reauth.as_array().unwrap().len(), 1);
    assert_eq!(reauth[0]["flinks_code"], "DISABLED_LOGIN");
    env.cleanup().await;
}

#[test]
fn help_documents_exit_code_3_for_partial_failures() {
    let env = Env::new("ops-help");

    let out = env.run(&["--help"]);

    assert!(
        stdout(&out).contains("3  partial failure"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn a_huge_or_negative_duration_is_a_usage_error_naming_the_flag_and_purges_nothing() {
    let env = Env::new("ops-huge-duration");
    let ledger = seed_failed(&env, &["RETRY_LATER"]).await;

    let huge = run(
        &env,
        &[],
        &["queues", "purge", "failed", "--older-than", "300000000y"],
    )
    .await;
    let negative = run(
        &env,
        &[],
        &["queues", "purge", "failed", "--older-than", "-7d"],
    )
    .await;
    let idle = run(
        &env,
        &[],
        &[
            "logins",
            "deactivate",
            "--idle-since",
            "300000000y",
            "--dry-run",
        ],
    )
    .await;

    for (out, flag) in [
        (&huge, "--older-than"),
        (&negative, "--older-than"),
        (&idle, "--idle-since"),
    ] {
        assert_eq!(out.status.code(), Some(2), "{}", stderr(out));
        assert!(stderr(out).contains(flag), "{}", stderr(out));
    }
    assert_eq!(
        ledger
            .list_failed(&IndexFilter::default())
            .await
            .unwrap()
            .len(),
        1,
        "nothing was purged"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn requeue_dead_for_a_date_whose_ledger_expired_exits_2_naming_the_date() {
    let env = Env::new("ops-dead-expired");
    let old = (Utc::now().date_naive() - chrono::Days::new(60)).to_string();

    let out = run(&env, &[], &["queues", "requeue", "dead", "--date", &old]).await;
    let forced = run(
        &env,
        &[],
        &["queues", "requeue", "failed", "--all", "--force"],
    )
    .await;

    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(&old), "{}", stderr(&out));
    assert_eq!(forced.status.code(), Some(2), "{}", stderr(&forced));
    assert!(stderr(&forced).contains("--force"), "{}", stderr(&forced));
    env.cleanup().await;
}
