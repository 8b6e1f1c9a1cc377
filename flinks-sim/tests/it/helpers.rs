//! Small HTTP helpers shared by the tests.

use std::time::Duration;

use flinks_sim::{spawn, SimConfig, SimHandle};
use serde_json::{json, Value};

pub(crate) async fn sim(config: SimConfig) -> SimHandle {
    spawn(config).await.expect("simulator starts")
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// Status and parsed JSON body (`Value::Null` if the body is not JSON).
pub(crate) async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub(crate) async fn authorize(sim: &SimHandle, login: &str) -> (u16, Value) {
    send(
        client()
            .post(format!("{}/Authorize", sim.base_url))
            .json(&json!({"LoginId": login, "MostRecentCached": true})),
    )
    .await
}

pub(crate) async fn authorize_with_token(
    sim: &SimHandle,
    login: &str,
    token: &str,
) -> (u16, Value) {
    send(
        client()
            .post(format!("{}/Authorize", sim.base_url))
            .header("flinks-auth-key", token)
            .json(&json!({"LoginId": login, "MostRecentCached": true})),
    )
    .await
}

pub(crate) async fn detail(sim: &SimHandle, request_id: &str) -> (u16, Value) {
    send(
        client()
            .post(format!("{}/GetAccountsDetail", sim.base_url))
            .json(&json!({"RequestId": request_id})),
    )
    .await
}

pub(crate) async fn detail_async(sim: &SimHandle, request_id: &str) -> (u16, Value) {
    send(client().get(format!(
        "{}/GetAccountsDetailAsync/{request_id}",
        sim.base_url
    )))
    .await
}

pub(crate) fn request_id(body: &Value) -> String {
    body["RequestId"]
        .as_str()
        .expect("RequestId present")
        .to_owned()
}

pub(crate) fn flinks_code(body: &Value) -> &str {
    body["FlinksCode"].as_str().unwrap_or("<none>")
}
