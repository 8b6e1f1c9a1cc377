//! The results stream with and without encryption at rest, on the real Redis:
//! what a consumer sees on the wire, and what `results::read` gives back.

use std::collections::HashMap;

use chrono::{NaiveDate, Utc};
use shared::domain::{LoginId, RequestId};
use shared::results::{self, ResultEntry, ResultsError, ResultsSink};
use shared::results_crypto::{CryptoError, ResultsCipher};

use crate::support::TestRedis;

const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2: &str = "k2:1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";
const BODY: &str = r#"{"HttpStatusCode":200,"Accounts":[{"AccountNumber":"1111000","Balance":{"Current":5105.50}}]}"#;

fn login(n: u32) -> LoginId {
    LoginId::parse(&format!("00000000-0000-4000-8000-{n:012}")).unwrap()
}

async fn store(sink: &ResultsSink, login: &LoginId, request: &str) {
    let request_id = RequestId::new(request);
    let stored = sink
        .store(&ResultEntry {
            login_id: login,
            request_id: &request_id,
            routine_date: NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
            fetched_at: Utc::now(),
            last_refresh: None,
            stale: false,
            body: BODY,
        })
        .await
        .unwrap();
    assert!(stored.newly_stored);
}

async fn raw_entries(t: &TestRedis) -> Vec<HashMap<String, String>> {
    let mut conn = t.conn.clone();
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(t.keys.results_stream())
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    reply
        .ids
        .into_iter()
        .map(|e| {
            e.map
                .iter()
                .map(|(k, v)| (k.clone(), redis::from_redis_value_ref::<String>(v).unwrap()))
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn encrypted_entries_hide_accounts_at_rest_and_read_back_exactly() {
    let t = TestRedis::new("results-enc").await;
    let cipher = ResultsCipher::parse(K1).unwrap();
    let sink = ResultsSink::new(t.conn.clone(), &t.keys, 1000).with_cipher(cipher.clone());
    store(&sink, &login(1), "req-1").await;

    let raw = raw_entries(&t).await;
    assert_eq!(raw.len(), 1);
    assert!(!raw[0].contains_key("accounts"));
    assert_eq!(raw[0]["enc"], "aes-256-gcm");
    assert_eq!(raw[0]["key_id"], "k1");
    assert!(!raw[0]["accounts_enc"].contains("1111000"));

    let records = results::read(&t.conn, &t.keys, "-", 10, Some(&cipher))
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].key_id.as_deref(), Some("k1"));
    assert_eq!(records[0].request_id, "req-1");
    let accounts = serde_json::to_string(&records[0].accounts).unwrap();
    assert!(accounts.contains("5105.50"), "{accounts}");
    t.cleanup().await;
}

#[tokio::test]
async fn plain_entries_pass_through_and_encrypted_ones_need_the_key() {
    let t = TestRedis::new("results-plain").await;
    let plain = ResultsSink::new(t.conn.clone(), &t.keys, 1000);
    store(&plain, &login(1), "req-1").await;
    let records = results::read(&t.conn, &t.keys, "-", 10, None)
        .await
        .unwrap();
    assert_eq!(records[0].key_id, None);
    assert!(raw_entries(&t).await[0].contains_key("accounts"));

    let sealed = plain.with_cipher(ResultsCipher::parse(K1).unwrap());
    store(&sealed, &login(2), "req-2").await;
    let err = results::read(&t.conn, &t.keys, "-", 10, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("RESULTS_ENCRYPTION_KEY"), "{err}");
    assert!(err.to_string().contains("\"k1\""), "{err}");

    let wrong = ResultsCipher::parse(&K2.replace("k2:", "k1:")).unwrap();
    let err = results::read(&t.conn, &t.keys, "-", 10, Some(&wrong))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ResultsError::Crypto { source: CryptoError::Decrypt { key_id }, .. } if key_id == "k1"),
        "{err}"
    );
    t.cleanup().await;
}

#[tokio::test]
async fn after_key_rotation_old_entries_still_read_with_the_old_key_id() {
    let t = TestRedis::new("results-rotate").await;
    let old = ResultsSink::new(t.conn.clone(), &t.keys, 1000)
        .with_cipher(ResultsCipher::parse(K1).unwrap());
    store(&old, &login(1), "req-1").await;
    let rotated = ResultsCipher::parse(&format!("{K2},{K1}")).unwrap();
    let new = ResultsSink::new(t.conn.clone(), &t.keys, 1000).with_cipher(rotated.clone());
    store(&new, &login(2), "req-2").await;

    let records = results::read(&t.conn, &t.keys, "-", 10, Some(&rotated))
        .await
        .unwrap();
    let ids: Vec<_> = records.iter().map(|r| r.key_id.as_deref()).collect();
    assert_eq!(ids, [Some("k1"), Some("k2")]);

    // --from pages: an exclusive start after the first entry returns only the second.
    let after = format!("({}", records[0].id);
    let rest = results::read(&t.conn, &t.keys, &after, 10, Some(&rotated))
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].login_id, login(2).as_str());
    t.cleanup().await;
}

#[tokio::test]
async fn an_entry_whose_ids_were_edited_fails_to_decrypt() {
    let t = TestRedis::new("results-tamper").await;
    let cipher = ResultsCipher::parse(K1).unwrap();
    let sink = ResultsSink::new(t.conn.clone(), &t.keys, 1000).with_cipher(cipher.clone());
    store(&sink, &login(1), "req-1").await;
    let mut fields = raw_entries(&t).await.remove(0);
    fields.insert("login_id".into(), login(2).as_str().to_string());
    let err = results::decode_entry("1-0", &fields, Some(&cipher)).unwrap_err();
    assert!(
        matches!(
            err,
            ResultsError::Crypto {
                source: CryptoError::Decrypt { .. },
                ..
            }
        ),
        "{err}"
    );
    t.cleanup().await;
}
