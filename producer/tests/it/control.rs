//! `producer ratelimit show|set` and `producer queues pause|resume` as the built binary:
//! validated, stored, audited, and visible in `queues stats` and `report`.

use super::{json, stderr, stdout, Env};

#[tokio::test]
async fn ratelimit_set_stores_a_validated_limit_that_show_stats_and_report_print() {
    let env = Env::new("ratelimit");

    let before = json(&env.run(&["ratelimit", "show", "--json"]));
    let set = json(&env.run(&["ratelimit", "set", "120", "--json"]));
    let shown = json(&env.run(&["ratelimit", "show", "--json"]));
    let text = env.run(&["ratelimit", "show"]);
    let negative = env.run(&["ratelimit", "set", "-5"]);
    let word = env.run(&["ratelimit", "set", "fast"]);
    let off = json(&env.run(&["--json", "ratelimit", "set", "0"]));
    let stats = json(&env.run(&["queues", "stats", "--json"]));
    let report = json(&env.run(&["report", "--date", "2025-06-02", "--json"]));
    let report_text = env.run(&["report", "--date", "2025-06-02"]);
    let audit = json(&env.run(&["audit", "--json"]));

    assert_eq!(before["stored"], false);
    assert_eq!(before["per_minute"], before["configured"]);
    assert_eq!(set["per_minute"], 120.0);
    assert!(set["previous"].is_null());
    assert_eq!(shown["per_minute"], 120.0);
    assert_eq!(shown["stored"], true);
    assert!(stdout(&text).contains("120/min"), "{}", stdout(&text));
    for bad in [&negative, &word] {
        assert_eq!(bad.status.code(), Some(2), "{}", stderr(bad));
        assert!(stderr(bad).contains("PER_MINUTE"), "{}", stderr(bad));
    }
    assert_eq!(off["previous"], 120.0);
    assert_eq!(stats["control"]["rate_limit"]["per_minute"], 0.0);
    assert!(
        stats["queues"].is_array(),
        "the snapshot fields stay: {stats}"
    );
    assert_eq!(report["control"]["rate_limit"]["per_minute"], 0.0);
    assert!(report["eta_seconds"].is_u64() || report["eta_seconds"].is_null());
    assert!(
        stdout(&report_text).contains("rate limit:      off"),
        "{}",
        stdout(&report_text)
    );
    let sets: Vec<&serde_json::Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["command"] == "ratelimit set")
        .collect();
    assert_eq!(sets.len(), 2, "{audit}");
    assert_eq!(sets[0]["args"], "per_minute=0 (was 120)");
    env.cleanup().await;
}

#[tokio::test]
async fn pause_and_resume_are_stored_audited_and_shown_by_stats_and_report() {
    let env = Env::new("pause");

    let paused = json(&env.run(&[
        "queues",
        "pause",
        "authorize",
        "--reason",
        "Flinks incident",
        "--json",
    ]));
    let again = json(&env.run(&["queues", "pause", "authorize", "--json"]));
    let stats = json(&env.run(&["queues", "stats", "--json"]));
    let stats_text = env.run(&["queues", "stats"]);
    let report = json(&env.run(&["report", "--date", "2025-06-02", "--json"]));
    let unknown = env.run(&["queues", "pause", "results"]);
    let resumed = json(&env.run(&["queues", "resume", "all", "--json"]));
    let after = json(&env.run(&["queues", "stats", "--json"]));
    let audit = json(&env.run(&["audit", "--json"]));

    assert_eq!(paused[0]["queue"], "authorize");
    assert_eq!(paused[0]["changed"], true);
    assert_eq!(again[0]["changed"], false);
    let pauses = &stats["control"]["pauses"];
    assert_eq!(pauses[0]["queue"], "authorize");
    assert_eq!(pauses[0]["paused"], true);
    assert_eq!(pauses[0]["reason"], "Flinks incident");
    assert_eq!(pauses[1]["paused"], false);
    assert!(
        stdout(&stats_text).contains("paused queue:    authorize since"),
        "{}",
        stdout(&stats_text)
    );
    assert!(stdout(&stats_text).contains("Flinks incident"));
    assert_eq!(report["control"]["pauses"][0]["paused"], true);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    assert!(
        stderr(&unknown).contains("\"results\""),
        "{}",
        stderr(&unknown)
    );
    let changed: Vec<bool> = resumed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["changed"].as_bool().unwrap())
        .collect();
    assert_eq!(changed, vec![true, false, false]);
    assert!(after["control"]["pauses"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["paused"] == false));
    let commands = super::audit_commands(&audit);
    assert_eq!(
        commands,
        vec!["queues resume", "queues pause", "queues pause"],
        "{audit}"
    );
    assert_eq!(audit[2]["args"], "authorize reason=Flinks incident");
    assert_eq!(audit[2]["count"], 1);
    assert_eq!(audit[0]["args"], "authorize,detail,deactivation");
    env.cleanup().await;
}
