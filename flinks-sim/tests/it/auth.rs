//! Credentials and lifetimes: secret key, single-use authorize tokens, x-api-key,
//! RequestId expiry.

use std::time::Duration;

use flinks_sim::SimConfig;
use serde_json::Value;

use crate::helpers::*;

async fn token(sim: &flinks_sim::SimHandle, secret: &str) -> (u16, Value) {
    send(
        client()
            .post(format!("{}/GenerateAuthorizeToken", sim.base_url))
            .header("flinks-auth-key", secret)
            .json(&serde_json::json!({})),
    )
    .await
}

fn with_secret() -> SimConfig {
    SimConfig {
        secret_key: Some("secret".into()),
        // Long enough for a loaded CI machine; the expiry test sets its own.
        token_ttl: Duration::from_secs(30),
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn generate_authorize_token_requires_the_secret_key() {
    let sim = sim(with_secret()).await;

    let (status, body) = token(&sim, "wrong").await;
    assert_eq!((status, flinks_code(&body)), (401, "ACCESS_DENIED"));
    let (status, body) = token(&sim, "secret").await;
    assert_eq!(status, 200);
    assert_eq!(body["HttpStatusCode"], 200);
    assert_eq!(body["Token"].as_str().unwrap().len(), 36);
}

#[tokio::test]
async fn an_authorize_token_works_once_only() {
    let sim = sim(with_secret()).await;
    let (_, body) = token(&sim, "secret").await;
    let t = body["Token"].as_str().unwrap();

    assert_eq!(authorize_with_token(&sim, "L", t).await.0, 200);
    let (status, body) = authorize_with_token(&sim, "L", t).await;

    assert_eq!((status, flinks_code(&body)), (401, "ACCESS_DENIED"));
    assert_eq!(body["Message"], "You must provide a valid authorize token");
    let (status, _) = authorize(&sim, "L").await;
    assert_eq!(status, 401, "no token at all");
}

#[tokio::test]
async fn an_authorize_token_expires_after_its_ttl() {
    let sim = sim(SimConfig {
        token_ttl: Duration::from_millis(200),
        ..with_secret()
    })
    .await;
    let (_, body) = token(&sim, "secret").await;
    let t = body["Token"].as_str().unwrap();

    tokio::time::sleep(Duration::from_millis(250)).await;
    let (status, body) = authorize_with_token(&sim, "L", t).await;

    assert_eq!((status, flinks_code(&body)), (401, "ACCESS_DENIED"));
}

#[tokio::test]
async fn a_request_id_expires_when_get_accounts_detail_comes_too_late() {
    let sim = sim(SimConfig {
        request_id_ttl: Duration::from_millis(1_500),
        ..SimConfig::default()
    })
    .await;
    let (_, late) = authorize(&sim, "L").await;
    let (_, prompt) = authorize(&sim, "L").await;
    assert_eq!(detail(&sim, &request_id(&prompt)).await.0, 200);

    tokio::time::sleep(Duration::from_millis(1_600)).await;

    let (status, body) = detail(&sim, &request_id(&late)).await;
    assert_eq!((status, flinks_code(&body)), (400, "SESSION_EXPIRED"));
    assert_eq!(
        detail(&sim, &request_id(&prompt)).await.0,
        200,
        "a RequestId in use is kept for the processing window"
    );
    let (status, body) = detail(&sim, "9a0e3e8c-0000-0000-0000-000000000000").await;
    assert_eq!((status, flinks_code(&body)), (400, "SESSION_NONEXISTENT"));
}

#[tokio::test]
async fn data_endpoints_require_the_x_api_key_when_configured() {
    let sim = sim(SimConfig {
        api_key: Some("k".into()),
        ..SimConfig::default()
    })
    .await;
    let (_, auth) = authorize(&sim, "L").await;
    let rid = request_id(&auth);

    let (status, body) = detail(&sim, &rid).await;
    assert_eq!((status, flinks_code(&body)), (401, "ACCESS_DENIED"));
    let (status, _) = send(
        client()
            .post(format!("{}/GetAccountsDetail", sim.base_url))
            .header("x-api-key", "k")
            .json(&serde_json::json!({"RequestId": rid})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        client()
            .get(format!("{}/GetAccountsDetailAsync/{rid}", sim.base_url))
            .header("x-api-key", "k"),
    )
    .await;
    assert_eq!(status, 200);
}
