//! Each scenario's answers, checked against the shapes in the Flinks contract.

use chrono::{NaiveDateTime, Utc};
use flinks_sim::{Rules, Scenario, SimConfig};
use serde_json::{json, Value};

use crate::helpers::*;

fn config(rules: Rules) -> SimConfig {
    SimConfig {
        rules,
        ..SimConfig::default()
    }
}

fn parse_last_refresh(body: &Value) -> NaiveDateTime {
    let text = body["Login"]["LastRefresh"].as_str().expect("LastRefresh");
    assert_eq!(text.len(), 27, "7 fractional digits, no offset: {text}");
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").expect("naive datetime")
}

fn assert_two_decimals(n: &Value) {
    let text = n.to_string();
    let (_, decimals) = text.split_once('.').expect("has decimals");
    assert_eq!(decimals.len(), 2, "amount {text}");
}

#[tokio::test]
async fn healthy_login_authorizes_and_gets_accounts_shaped_like_the_contract() {
    let sim = sim(SimConfig::default()).await;

    let (status, auth) = authorize(&sim, "login-healthy").await;
    assert_eq!(status, 200);
    assert_eq!(auth["HttpStatusCode"], 200);
    assert_eq!(auth["Links"][0]["rel"], "AccountsDetail");
    assert_eq!(auth["Links"][0]["example"], Value::Null);
    assert_eq!(auth["Institution"], "FlinksCapital");
    assert_eq!(auth["InstitutionName"], "FlinksCapital");
    assert_eq!(auth["InstitutionId"], 14);
    assert_eq!(auth["Login"]["Id"], "login-healthy");
    assert_eq!(auth["Login"]["IsScheduledRefresh"], true);
    assert_eq!(auth["Login"]["Type"], "Personal");
    let last = parse_last_refresh(&auth);
    assert_eq!(last.date(), Utc::now().naive_utc().date());

    let (status, body) = detail(&sim, &request_id(&auth)).await;
    assert_eq!(status, 200);
    assert_eq!(body["HttpStatusCode"], 200);
    assert_eq!(body["RequestId"], auth["RequestId"]);
    assert_eq!(body["Login"]["Id"], "login-healthy");
    let accounts = body["Accounts"].as_array().expect("Accounts");
    assert!(!accounts.is_empty());
    let account = &accounts[0];
    for key in [
        "TransitNumber",
        "AccountNumber",
        "Id",
        "Currency",
        "Category",
        "Type",
    ] {
        assert!(account[key].is_string(), "{key}");
    }
    assert_eq!(account["Holder"]["Address"]["POBox"], Value::Null);
    for key in ["Available", "Current", "Limit"] {
        assert_two_decimals(&account["Balance"][key]);
    }
    let tx = &account["Transactions"][0];
    assert!(tx["Date"].as_str().expect("Date").len() == 10);
    assert!(tx["Debit"].is_null() != tx["Credit"].is_null());
    assert_two_decimals(&tx["Balance"]);

    // the same LoginId always gets the same data
    let (_, auth2) = authorize(&sim, "login-healthy").await;
    let (_, body2) = detail(&sim, &request_id(&auth2)).await;
    assert_eq!(body["Accounts"], body2["Accounts"]);
}

#[tokio::test]
async fn refusing_scenarios_answer_their_flinks_code() {
    let rules = Rules::default()
        .with_login("q", Scenario::QuestionNotFound)
        .with_login("p", Scenario::InvalidPassword)
        .with_login("d", Scenario::DisabledLogin)
        .with_login("r", Scenario::RetryLater)
        .with_unknown_prefix("unknown-");
    let sim = sim(config(rules)).await;

    for (login, code) in [
        ("p", "INVALID_PASSWORD"),
        ("d", "DISABLED_LOGIN"),
        ("r", "RETRY_LATER"),
        ("r", "RETRY_LATER"),
        ("unknown-1", "INVALID_LOGIN"),
    ] {
        let (status, body) = authorize(&sim, login).await;
        assert_eq!((status, flinks_code(&body)), (401, code), "{login}");
        assert_eq!(body["HttpStatusCode"], 401);
        assert_eq!(body["Links"][0]["href"], "/Authorize");
        assert!(body["Message"].is_string());
    }
}

#[tokio::test]
async fn question_not_found_carries_a_request_id_for_stale_data() {
    let sim = sim(config(Rules::all(Scenario::QuestionNotFound))).await;

    let (status, body) = authorize(&sim, "q").await;
    assert_eq!((status, flinks_code(&body)), (401, "QUESTION_NOT_FOUND"));
    let (status, data) = detail(&sim, &request_id(&body)).await;

    assert_eq!(status, 200);
    let age = Utc::now().naive_utc() - parse_last_refresh(&data);
    assert!(age.num_hours() >= 71, "stale data, {age}");
}

#[tokio::test]
async fn pending_answers_202_then_polls_k_times_before_200() {
    let sim = sim(config(Rules::all(Scenario::Pending { polls: 2 }))).await;
    let (_, auth) = authorize(&sim, "slow").await;
    let rid = request_id(&auth);

    let (status, body) = detail(&sim, &rid).await;
    assert_eq!((status, flinks_code(&body)), (202, "OPERATION_PENDING"));
    assert_eq!(body["RequestId"], rid.as_str());
    assert_eq!(body["Message"], "Your operation is still processing");
    assert_eq!(detail_async(&sim, &rid).await.0, 202);
    assert_eq!(detail_async(&sim, &rid).await.0, 202);
    let (status, body) = detail_async(&sim, &rid).await;
    assert_eq!(status, 200);
    assert!(body["Accounts"].is_array());
}

#[tokio::test]
async fn aggregation_error_fails_the_first_k_authorizes_then_heals() {
    let sim = sim(config(Rules::all(Scenario::AggregationError {
        failures: 2,
    })))
    .await;

    for _ in 0..2 {
        let (status, body) = authorize(&sim, "flaky").await;
        assert_eq!((status, flinks_code(&body)), (500, "AGGREGATION_ERROR"));
    }
    let (status, auth) = authorize(&sim, "flaky").await;
    assert_eq!(status, 200);
    assert_eq!(detail(&sim, &request_id(&auth)).await.0, 200);
    // another LoginId has its own count
    assert_eq!(authorize(&sim, "other").await.0, 500);
}

#[tokio::test]
async fn stale_login_reports_a_last_refresh_h_hours_old() {
    let sim = sim(config(Rules::all(Scenario::Stale { hours: 30 }))).await;

    let (status, auth) = authorize(&sim, "old").await;

    assert_eq!(status, 200);
    let age = Utc::now().naive_utc() - parse_last_refresh(&auth);
    assert!((29..=30).contains(&age.num_hours()), "{age}");
    assert_eq!(detail(&sim, &request_id(&auth)).await.0, 200);
}

#[tokio::test]
async fn session_expired_once_fails_the_first_detail_then_works_after_a_new_authorize() {
    let sim = sim(config(Rules::all(Scenario::SessionExpiredOnce))).await;
    let (_, auth) = authorize(&sim, "once").await;
    let rid = request_id(&auth);

    let (status, body) = detail(&sim, &rid).await;
    assert_eq!((status, flinks_code(&body)), (400, "SESSION_NONEXISTENT"));
    assert_eq!(detail(&sim, &rid).await.0, 400, "the RequestId is gone");

    let (_, auth) = authorize(&sim, "once").await;
    assert_eq!(detail(&sim, &request_id(&auth)).await.0, 200);
}

#[tokio::test]
async fn set_scheduled_refresh_answers_a_bare_string_and_updates_the_login() {
    let sim = sim(SimConfig::default()).await;
    let url = format!("{}/SetScheduledRefresh", sim.base_url);

    let resp = client()
        .patch(&url)
        .json(&json!({"LoginId": "L1", "IsActivated": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!("LoginId L1 has now been deactivated for automatic refresh")
    );
    let (_, auth) = authorize(&sim, "L1").await;
    assert_eq!(auth["Login"]["IsScheduledRefresh"], false);

    let (status, body) = send(
        client()
            .patch(&url)
            .json(&json!({"loginId": "L1", "isActivated": true})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!("LoginId L1 has now been activated for automatic refresh")
    );
    let (status, body) = send(client().patch(&url).json(&json!({"LoginId": "L1"}))).await;
    assert_eq!((status, flinks_code(&body)), (400, "INVALID_REQUEST"));
}

#[tokio::test]
async fn nightly_refresh_status_lists_ineligible_logins_behind_the_bearer_secret() {
    let rules = Rules::default()
        .with_login("q", Scenario::QuestionNotFound)
        .with_login("h", Scenario::Healthy)
        .with_prefix("pw-", Scenario::InvalidPassword);
    let sim = sim(SimConfig {
        rules,
        bearer_secret: Some("s3cret".into()),
        ..SimConfig::default()
    })
    .await;
    let url = format!("{}/GetNightlyRefreshStatus", sim.base_url);
    authorize(&sim, "pw-1").await;
    authorize(&sim, "healthy-seen").await;

    let (status, body) = send(client().get(&url)).await;
    assert_eq!((status, flinks_code(&body)), (401, "ACCESS_DENIED"));
    let (status, body) = send(client().get(&url).bearer_auth("s3cret")).await;

    assert_eq!(status, 200);
    assert_eq!(body["HttpStatusCode"], 200);
    let cards = body["IneligibleCards"].as_array().unwrap();
    let ids: Vec<&str> = cards
        .iter()
        .map(|c| c["LoginId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["pw-1", "q"]);
    assert_eq!(cards[1]["LastRefreshState"], "AnsweringSecurityChallenge");
    assert_eq!(cards[0]["LastRefreshErrorCode"], "INVALID_PASSWORD");
    assert_eq!(cards[0]["LastRefreshDate"].as_str().unwrap().len(), 27);
}

#[tokio::test]
async fn authorize_without_login_id_is_an_invalid_request() {
    let sim = sim(SimConfig::default()).await;

    let (status, body) = send(
        client()
            .post(format!("{}/Authorize", sim.base_url))
            .body("{\"MostRecentCached\":true}"),
    )
    .await;

    assert_eq!((status, flinks_code(&body)), (400, "INVALID_REQUEST"));
}
