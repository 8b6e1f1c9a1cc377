//! Secrets never leave the process: `--help` of both binaries, their errors and
//! their logs, with every secret set in the environment; and `producer results read`
//! decrypting the results stream as a customer's consumer would.

use std::path::PathBuf;
use std::process::{Command, Output};

use chrono::{NaiveDate, Utc};
use shared::domain::{LoginId, RequestId};
use shared::results::{ResultEntry, ResultsSink};
use shared::results_crypto::ResultsCipher;
use shared::KeySpace;

const SECRETS: &[(&str, &str)] = &[
    ("FLINKS_SECRET_KEY", "flinks-s3cret-key-value"),
    ("FLINKS_API_KEY", "flinks-api-key-value"),
    ("FLINKS_BEARER_SECRET", "flinks-bearer-value"),
    (
        "RESULTS_ENCRYPTION_KEY",
        "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ),
];
const REDIS_PASSWORD: &str = "redis-pa55word";

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The `worker` binary next to `producer` (built by `cargo test --workspace`).
fn worker_bin() -> Option<PathBuf> {
    let producer = PathBuf::from(env!("CARGO_BIN_EXE_producer"));
    let worker = producer.with_file_name(format!("worker{}", std::env::consts::EXE_SUFFIX));
    if worker.exists() {
        Some(worker)
    } else if std::env::var_os("CI").is_some() {
        panic!(
            "{} is missing: CI runs cargo test --workspace",
            worker.display()
        );
    } else {
        eprintln!("skipping the worker binary: build it with cargo build -p worker");
        None
    }
}

fn run_with_secrets(bin: &PathBuf, args: &[&str], redis_url: &str) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("REDIS_URL", redis_url)
        .env("FLINKS_BASE_URL", "http://127.0.0.1:1/v3/c/BankingServices")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "trace");
    for (k, v) in SECRETS {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

fn assert_no_secret(what: &str, output: &Output) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for (name, value) in SECRETS {
        assert!(!text.contains(value), "{what} printed {name}:\n{text}");
    }
    assert!(
        !text.contains("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"),
        "{what}: {text}"
    );
    assert!(
        !text.contains(REDIS_PASSWORD),
        "{what} printed the Redis password:\n{text}"
    );
}

#[test]
fn help_of_both_binaries_never_shows_a_secret_from_the_environment() {
    let url = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:6379");
    let producer = PathBuf::from(env!("CARGO_BIN_EXE_producer"));
    for args in [
        &["--help"][..],
        &["results", "read", "--help"],
        &["schedule", "--help"],
        &["--version"],
    ] {
        let out = run_with_secrets(&producer, args, &url);
        assert!(out.status.success(), "producer {args:?}: {out:?}");
        assert_no_secret(&format!("producer {args:?}"), &out);
    }
    if let Some(worker) = worker_bin() {
        let out = run_with_secrets(&worker, &["--help"], &url);
        assert!(out.status.success(), "worker --help: {out:?}");
        assert_no_secret("worker --help", &out);
    }
}

#[test]
fn an_unreachable_redis_is_reported_and_logged_without_any_secret() {
    let url = format!("redis://app:{REDIS_PASSWORD}@127.0.0.1:1/0");
    let producer = PathBuf::from(env!("CARGO_BIN_EXE_producer"));
    let out = run_with_secrets(&producer, &["results", "read"], &url);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("redis://app:***@127.0.0.1:1/0"), "{stderr}");
    assert_no_secret("producer results read", &out);
    if let Some(worker) = worker_bin() {
        let out = run_with_secrets(&worker, &[], &url);
        assert!(!out.status.success(), "{out:?}");
        assert_no_secret("worker", &out);
    }
}

#[tokio::test]
async fn results_read_decrypts_and_refuses_plain_entries_unless_allowed_reporting_each_skip() {
    // Arrange: one plain and one encrypted entry in a namespace of this test.
    let namespace = format!("test-producer-results-{}", uuid::Uuid::new_v4().simple());
    let keys = KeySpace::new(namespace.clone());
    let conn = shared::redis_conn::connect_in_env_mode(&redis_url())
        .await
        .unwrap();
    let accounts = serde_json::value::RawValue::from_string(
        r#"[{"AccountNumber":"9876543","Balance":{"Current":12.30}}]"#.to_owned(),
    )
    .unwrap();
    let plain = ResultsSink::new(conn.clone(), &keys, 100);
    let sealed = plain
        .clone()
        .with_cipher(ResultsCipher::parse(SECRETS[3].1).unwrap());
    for (n, sink) in [(1, &plain), (2, &sealed)] {
        let login = LoginId::parse(&format!("00000000-0000-4000-8000-{n:012}")).unwrap();
        sink.store(&ResultEntry {
            login_id: &login,
            request_id: &RequestId::new(format!("req-{n}")),
            routine_date: NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
            fetched_at: Utc::now(),
            last_refresh: None,
            stale: false,
            accounts: &accounts,
        })
        .await
        .unwrap();
    }
    let run = |args: &[&str], key: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_producer"));
        cmd.args(args)
            .env("REDIS_URL", redis_url())
            .env("REFRESH_NAMESPACE", &namespace)
            .env_remove("RESULTS_ENCRYPTION_KEY");
        if let Some(key) = key {
            cmd.env("RESULTS_ENCRYPTION_KEY", key);
        }
        cmd.output().unwrap()
    };

    // Act + Assert: with the key, the plain entry is refused (exit 3, named on stderr) and
    // the encrypted one is read.
    let out = run(&["results", "read"], Some(SECRETS[3].1));
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("skipped entry") && stderr.contains("--allow-plaintext"),
        "{stderr}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("\"key_id\":\"k1\""), "{stdout}");

    // With --allow-plaintext, both entries as JSON Lines, amounts exact.
    let out = run(
        &["results", "read", "--allow-plaintext"],
        Some(SECRETS[3].1),
    );
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0]["key_id"], serde_json::Value::Null);
    assert_eq!(lines[1]["key_id"], "k1");
    assert!(lines
        .iter()
        .all(|l| l["accounts"][0]["AccountNumber"] == "9876543"));
    assert!(stdout.contains("12.30"), "{stdout}");

    // Paging with --json: one entry, then the next from `next`.
    let out = run(
        &[
            "results",
            "read",
            "--count",
            "1",
            "--json",
            "--allow-plaintext",
        ],
        Some(SECRETS[3].1),
    );
    let page: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let next = page["next"].as_str().unwrap().to_string();
    let out = run(
        &["results", "read", "--from", &next, "--json"],
        Some(SECRETS[3].1),
    );
    let page: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    assert_eq!(page["entries"][0]["key_id"], "k1");

    // Without the key: the plain entry is read, the encrypted one is an error item naming
    // its stream id and key id, without its account data (exit 3).
    let out = run(&["results", "read", "--json"], None);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let page: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    let errors = page["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{page}");
    assert!(errors[0]["id"].as_str().unwrap().contains('-'), "{page}");
    let error = errors[0]["error"].as_str().unwrap();
    assert!(
        error.contains("\"k1\"") && error.contains("RESULTS_ENCRYPTION_KEY"),
        "{error}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("9876543")
            .count(),
        1,
        "only the plain entry's account number"
    );

    keys.delete_all(&conn).await.unwrap();
}

/// `producer results read` and `worker` (when built), with `env` on top of a clean
/// loopback setup whose Redis does not answer.
fn run_both(env: &[(&str, &str)]) -> Vec<(String, Output)> {
    let producer = PathBuf::from(env!("CARGO_BIN_EXE_producer"));
    let mut bins = vec![("producer", producer, vec!["results", "read"])];
    if let Some(worker) = worker_bin() {
        bins.push(("worker", worker, vec![]));
    }
    bins.into_iter()
        .map(|(name, bin, args)| {
            let mut cmd = Command::new(&bin);
            cmd.args(args)
                .env("REDIS_URL", "redis://127.0.0.1:1")
                .env("FLINKS_BASE_URL", "http://127.0.0.1:1/v3/c/BankingServices")
                .env("METRICS_ADDR", "127.0.0.1:0")
                .env("LOG_FORMAT", "json");
            for (k, _) in SECRETS {
                cmd.env_remove(k).env_remove(format!("{k}_FILE"));
            }
            cmd.env_remove("REDIS_URL_FILE")
                .env_remove("FLINKS_ALLOW_INSECURE");
            for (k, v) in env {
                cmd.env(k, v);
            }
            (name.to_string(), cmd.output().expect("the binary runs"))
        })
        .collect()
}

/// Every binary exits 2 with an error naming `variable` and without `secret`.
fn assert_config_error(env: &[(&str, &str)], variable: &str, secret: &str) {
    for (name, out) in run_both(env) {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{name} with {env:?}: {text}");
        assert!(
            text.contains(variable),
            "{name} does not name {variable}: {text}"
        );
        assert!(!text.contains(secret), "{name} printed the secret: {text}");
    }
}

fn temp_file(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nr-security-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, content).unwrap();
    file
}

#[test]
fn plain_http_to_a_remote_flinks_exits_2_unless_explicitly_allowed() {
    let remote = "http://flinks.example.com/v3/c/BankingServices";
    assert_config_error(
        &[("FLINKS_BASE_URL", remote)],
        "FLINKS_BASE_URL",
        "no secret here",
    );
    // Allowed explicitly: the configuration loads and the run fails later, on Redis (1).
    for (name, out) in run_both(&[
        ("FLINKS_BASE_URL", remote),
        ("FLINKS_ALLOW_INSECURE", "true"),
    ]) {
        assert_eq!(out.status.code(), Some(1), "{name}: {out:?}");
    }
}

#[test]
fn credentials_in_the_flinks_url_never_appear_in_the_error() {
    assert_config_error(
        &[(
            "FLINKS_BASE_URL",
            "http://user:fl1nks-pa55@flinks.example.com/v3/c/BankingServices",
        )],
        "FLINKS_BASE_URL",
        "fl1nks-pa55",
    );
}

#[test]
fn a_toml_syntax_error_on_a_secret_line_exits_2_without_the_secret() {
    let file = temp_file(
        "settings.toml",
        "max_attempts = 3\nflinks_api_key = \"t0ml-s3cret-value\n",
    );
    let config = file.to_str().unwrap();
    let producer = PathBuf::from(env!("CARGO_BIN_EXE_producer"));
    let mut bins = vec![(producer, vec!["--config", config, "results", "read"])];
    if let Some(worker) = worker_bin() {
        bins.push((worker, vec!["--config", config]));
    }
    for (bin, args) in bins {
        let out = Command::new(&bin).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", bin.display());
        assert!(
            stderr.contains("settings.toml") && stderr.contains("line 2"),
            "{stderr}"
        );
        assert!(!stderr.contains("t0ml-s3cret-value"), "{stderr}");
    }
}

#[test]
fn a_results_key_written_key_colon_id_exits_2_without_the_key() {
    let hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    assert_config_error(
        &[("RESULTS_ENCRYPTION_KEY", &format!("{hex}:k1"))],
        "RESULTS_ENCRYPTION_KEY",
        hex,
    );
}

#[test]
fn a_worker_that_would_store_results_in_clear_exits_2_when_encryption_is_required() {
    let Some(worker) = worker_bin() else { return };
    let run = |key: Option<&str>| {
        let mut cmd = Command::new(&worker);
        cmd.env("REDIS_URL", "redis://127.0.0.1:1")
            .env("FLINKS_BASE_URL", "http://127.0.0.1:1/v3/c/BankingServices")
            .env("METRICS_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RESULTS_ENCRYPTION_REQUIRED", "true")
            .env_remove("RESULTS_ENCRYPTION_KEY")
            .env_remove("RESULTS_ENCRYPTION_KEY_FILE");
        if let Some(key) = key {
            cmd.env("RESULTS_ENCRYPTION_KEY", key);
        }
        cmd.output().unwrap()
    };
    let out = run(None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("RESULTS_ENCRYPTION_REQUIRED"), "{stderr}");
    // With a key it starts, and fails later on the unreachable Redis (1).
    let out = run(Some(SECRETS[3].1));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn an_empty_secret_file_exits_2_naming_the_variable() {
    let file = temp_file("FLINKS_API_KEY", "\n");
    assert_config_error(
        &[("FLINKS_API_KEY_FILE", file.to_str().unwrap())],
        "FLINKS_API_KEY_FILE",
        "no secret here",
    );
}

#[test]
fn a_secret_with_a_line_break_exits_2_naming_the_variable() {
    let file = temp_file("FLINKS_SECRET_KEY", "first-l1ne\nsecond-l1ne\n");
    assert_config_error(
        &[("FLINKS_SECRET_KEY_FILE", file.to_str().unwrap())],
        "FLINKS_SECRET_KEY_FILE",
        "l1ne",
    );
    assert_config_error(
        &[("FLINKS_BEARER_SECRET", "bearer-v4lue\r\nX-Injected: yes")],
        "FLINKS_BEARER_SECRET",
        "bearer-v4lue",
    );
}

#[test]
fn a_redis_password_in_the_user_name_position_is_redacted() {
    let url = format!("redis://{REDIS_PASSWORD}@127.0.0.1:1/0");
    let producer = PathBuf::from(env!("CARGO_BIN_EXE_producer"));
    let out = run_with_secrets(&producer, &["results", "read"], &url);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("redis://***@127.0.0.1:1/0"), "{stderr}");
    assert_no_secret("producer results read", &out);
    if let Some(worker) = worker_bin() {
        let out = run_with_secrets(&worker, &[], &url);
        assert!(!out.status.success(), "{out:?}");
        assert_no_secret("worker", &out);
    }
}
