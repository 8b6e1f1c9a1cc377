//! Rule files and scenario selection.

use std::collections::HashMap;

use flinks_sim::{Rules, Scenario};

/// `stable_hash("login-00042")`, cross-checked with an independent Python FNV-1a + fmix64.
const PINNED: u64 = 709_404_473_129_060_645;

#[test]
fn the_demo_rules_file_parses_and_pins_its_fixed_logins() {
    let rules = Rules::from_toml_str(include_str!("../../rules/demo.toml")).unwrap();

    assert_eq!(
        rules.scenario_for("00000000-0000-4000-8000-000000000002"),
        Scenario::QuestionNotFound
    );
    assert_eq!(
        rules.scenario_for("00000000-0000-4000-8000-000000000003"),
        Scenario::Pending { polls: 3 }
    );
    assert_eq!(rules.scenario_for("slow-1"), Scenario::Pending { polls: 6 });
    assert_eq!(rules.scenario_for("deleted-9"), Scenario::InvalidLogin);
}

#[test]
fn rules_match_logins_then_unknown_prefixes_then_longest_prefix_then_mix() {
    let rules = Rules::from_toml_str(
        r#"
        default = "retry_later"
        unknown_prefixes = ["x-"]
        [logins]
        "x-pinned" = "healthy"
        "tagged" = { aggregation_error = { failures = 4 } }
        [prefixes]
        "a-" = "stale:12"
        "a-b-" = "disabled_login"
        "#,
    )
    .unwrap();

    assert_eq!(rules.scenario_for("x-pinned"), Scenario::Healthy);
    assert_eq!(rules.scenario_for("x-other"), Scenario::InvalidLogin);
    assert_eq!(rules.scenario_for("a-b-1"), Scenario::DisabledLogin);
    assert_eq!(rules.scenario_for("a-1"), Scenario::Stale { hours: 12 });
    assert_eq!(
        rules.scenario_for("tagged"),
        Scenario::AggregationError { failures: 4 }
    );
    assert_eq!(
        rules.scenario_for("zzz"),
        Scenario::RetryLater,
        "default when no mix"
    );
    assert_eq!(Rules::default().scenario_for("anything"), Scenario::Healthy);
}

#[test]
fn the_weighted_mix_is_deterministic_and_roughly_proportional() {
    let text = r#"
        [mix]
        healthy = 70
        question_not_found = 20
        "pending:1" = 10
    "#;
    let a = Rules::from_toml_str(text).unwrap();
    let b = Rules::from_json_str(
        r#"{"mix": {"healthy": 70, "question_not_found": 20, "pending:1": 10}}"#,
    )
    .unwrap();

    let mut counts: HashMap<Scenario, u32> = HashMap::new();
    for i in 0..10_000 {
        let login = format!("login-{i:05}");
        let s = a.scenario_for(&login);
        assert_eq!(s, b.scenario_for(&login));
        *counts.entry(s).or_default() += 1;
    }
    let share = |s: Scenario| counts.get(&s).copied().unwrap_or(0);
    assert!(
        (6_700..=7_300).contains(&share(Scenario::Healthy)),
        "{counts:?}"
    );
    assert!(
        (1_750..=2_250).contains(&share(Scenario::QuestionNotFound)),
        "{counts:?}"
    );
    assert!(
        (800..=1_200).contains(&share(Scenario::Pending { polls: 1 })),
        "{counts:?}"
    );
    // pinned value: the hash must not change between versions or processes
    assert_eq!(flinks_sim::stable_hash("login-00042"), PINNED);
}

#[test]
fn a_bad_rules_file_is_rejected_with_the_reason() {
    let err = Rules::from_toml_str("[mix]\nhealty = 3\n").unwrap_err();
    assert!(err.to_string().contains("healty"), "{err}");
    let err = Rules::from_toml_str("mixx = 1\n").unwrap_err();
    assert!(err.to_string().contains("mixx"), "{err}");
}
