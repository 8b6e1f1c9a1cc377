//! The argument parsers of `producer::cli`, without a process: duration flags and the
//! validation of `ratelimit set` and `queues pause`.

use std::time::Duration;

use clap::Parser as _;
use producer::cli::{parse_age, Cli, MAX_AGE};

#[test]
fn an_age_parses_humantime_durations() {
    assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86_400)));
    assert_eq!(parse_age(" 36h "), Ok(Duration::from_secs(36 * 3_600)));
    assert_eq!(parse_age("0s"), Ok(Duration::ZERO));
    assert_eq!(parse_age("100y").map(|d| d <= MAX_AGE), Ok(true));
}

#[test]
fn an_age_rejects_negative_overflowing_and_huge_values() {
    for raw in ["-7d", "-1s", " -0s"] {
        let err = parse_age(raw).unwrap_err();
        assert!(err.contains("negative"), "{raw}: {err}");
    }
    for raw in ["300000000y", "101y", "99999999999999999999999s"] {
        assert!(parse_age(raw).is_err(), "{raw} was accepted");
    }
    assert!(parse_age("soon")
        .unwrap_err()
        .contains("expected a duration"));
}

#[test]
fn ratelimit_set_and_queues_pause_validate_their_arguments() {
    for bad in ["-5", "fast", "1e9"] {
        let err = Cli::try_parse_from(["producer", "ratelimit", "set", bad]).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{bad}");
        assert!(err.to_string().contains("PER_MINUTE"), "{err}");
    }
    let err = Cli::try_parse_from(["producer", "queues", "pause", "results"]).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(
        err.to_string().contains("authorize, detail, deactivation"),
        "{err}"
    );
    let cli = Cli::try_parse_from(["producer", "queues", "pause", "all", "--reason", "x"]).unwrap();
    let parsed = format!("{:?}", cli.command);
    for queue in shared::control::PAUSABLE_QUEUES {
        assert!(parsed.contains(queue), "{parsed}");
    }
}

#[test]
fn the_duration_flags_name_themselves_in_the_error() {
    let err = Cli::try_parse_from([
        "producer",
        "queues",
        "purge",
        "dead",
        "--older-than",
        "300000000y",
    ])
    .unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("--older-than"), "{err}");
    let err = Cli::try_parse_from(["producer", "logins", "deactivate", "--idle-since", "-1d"])
        .unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("--idle-since"), "{err}");
}
