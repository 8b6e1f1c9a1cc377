//! The `flinks-sim` binary, run as a user would.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_flinks-sim");

#[test]
fn help_documents_every_option() {
    let out = Command::new(BIN).arg("--help").output().unwrap();

    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--customer-id",
        "--rules",
        "--throttle-per-window",
        "--throttle-window",
        "--throttle-status",
        "--seed",
        "--latency-ms",
        "--error-rate",
        "--hang-rate",
        "--hang-for",
        "--malformed-rate",
        "--secret-key",
        "--api-key",
        "--bearer-secret",
        "--token-ttl",
        "--request-id-ttl",
        "SIM_LISTEN",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[tokio::test]
async fn the_binary_prints_its_base_url_first_and_serves_it() {
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--customer-id",
            "cust",
            "--rules",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/demo.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();

    let url = line
        .trim()
        .strip_prefix("flinks-sim listening on ")
        .unwrap_or_else(|| panic!("first line: {line}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/v3/cust/BankingServices"));
    let resp = reqwest::Client::new()
        .post(format!("{url}/Authorize"))
        .json(&serde_json::json!({"LoginId": "unknown-1"}))
        .send()
        .await;
    // graceful shutdown on SIGTERM exits 0
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let exit = child.wait().unwrap();
    assert_eq!(resp.unwrap().status(), 401);
    assert!(term.success());
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn a_bad_flag_value_fails_at_start_up_naming_the_flag() {
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--error-rate", "2"])
        .output()
        .unwrap();

    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("error-rate"));
}
