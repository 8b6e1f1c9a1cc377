//! The results stream with and without encryption at rest, on the real Redis: what a
//! consumer sees on the wire, and what `results::read` gives back.

use std::collections::HashMap;

use chrono::{NaiveDate, Utc};
use shared::domain::{LoginId, RequestId};
use shared::results::{self, ReadPolicy, ResultEntry, ResultsError, ResultsSink};
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
            last_refresh: NaiveDate::from_ymd_opt(2026, 11, 25)
                .unwrap()
                .and_hms_opt(6, 0, 0),
            stale: false,
            accounts: &serde_json::value::to_raw_value(
                &serde_json::from_str::<serde_json::Value>(BODY).unwrap()["Accounts"],
            )
            .unwrap(),
        })
        .await
        .unwrap();
    assert!(stored.newly_stored);
}

fn with_key(cipher: &ResultsCipher) -> ReadPolicy<'_> {
    ReadPolicy {
        cipher: Some(cipher),
        ..ReadPolicy::default()
    }
}

async fn xadd(t: &TestRedis, fields: &HashMap<String, String>) -> String {
    let mut conn = t.conn.clone();
    let mut cmd = redis::cmd("XADD");
    let login = fields.get("login_id").map_or("", String::as_str);
    cmd.arg(t.keys.results_stream(t.keys.ledger_bucket_of(login)))
        .arg("*");
    for (k, v) in fields {
        cmd.arg(k).arg(v);
    }
    cmd.query_async(&mut conn).await.unwrap()
}

/// Every entry of the results streams, oldest first.
async fn raw_entries(t: &TestRedis) -> Vec<HashMap<String, String>> {
    let mut conn = t.conn.clone();
    let mut ids = Vec::new();
    for bucket in t.keys.all_ledger_buckets() {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(t.keys.results_stream(bucket))
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        ids.extend(reply.ids);
    }
    ids.sort_by_key(|e| {
        let (ms, seq) = e.id.split_once('-').unwrap();
        (ms.parse::<u64>().unwrap(), seq.parse::<u64>().unwrap())
    });
    ids.into_iter()
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
    assert_eq!(raw[0]["enc"], "aes-256-gcm-v2");
    assert_eq!(raw[0]["key_id"], "k1");
    assert!(!raw[0]["accounts_enc"].contains("1111000"));

    let page = results::read(&t.conn, &t.keys, "-", 10, with_key(&cipher))
        .await
        .unwrap();
    assert_eq!(page.errors, []);
    let records = page.records;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].key_id.as_deref(), Some("k1"));
    assert_eq!(records[0].request_id, "req-1");
    let accounts = serde_json::to_string(&records[0].accounts).unwrap();
    assert!(accounts.contains("5105.50"), "{accounts}");
    t.cleanup().await;
}

#[tokio::test]
async fn plain_entries_pass_through_without_keys_and_encrypted_ones_need_the_key() {
    let t = TestRedis::new("results-plain").await;
    let plain = ResultsSink::new(t.conn.clone(), &t.keys, 1000);
    store(&plain, &login(1), "req-1").await;
    let page = results::read(&t.conn, &t.keys, "-", 10, ReadPolicy::default())
        .await
        .unwrap();
    assert_eq!(page.records[0].key_id, None);
    assert!(raw_entries(&t).await[0].contains_key("accounts"));

    let sealed = plain.with_cipher(ResultsCipher::parse(K1).unwrap());
    store(&sealed, &login(2), "req-2").await;
    store(&sealed, &login(3), "req-3").await;

    // Without the key: the plain entry is read, each encrypted one is an error item.
    let page = results::read(&t.conn, &t.keys, "-", 10, ReadPolicy::default())
        .await
        .unwrap();
    assert_eq!(page.scanned, 3);
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.errors.len(), 2);
    for skipped in &page.errors {
        assert!(
            skipped.error.contains("RESULTS_ENCRYPTION_KEY"),
            "{skipped:?}"
        );
        assert!(skipped.error.contains("\"k1\""), "{skipped:?}");
    }
    assert_eq!(page.last_id.as_deref(), Some(page.errors[1].id.as_str()));

    let wrong = ResultsCipher::parse(&K2.replace("k2:", "k1:")).unwrap();
    let page = results::read(
        &t.conn,
        &t.keys,
        "-",
        10,
        ReadPolicy {
            allow_plaintext: true,
            ..with_key(&wrong)
        },
    )
    .await
    .unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.errors.len(), 2);
    assert!(page.errors[0].error.contains("cannot decrypt"), "{page:?}");
    t.cleanup().await;
}

#[tokio::test]
async fn with_keys_configured_plain_entries_are_refused_unless_allowed() {
    let t = TestRedis::new("results-downgrade").await;
    let cipher = ResultsCipher::parse(K1).unwrap();
    store(
        &ResultsSink::new(t.conn.clone(), &t.keys, 1000),
        &login(1),
        "req-1",
    )
    .await;
    let sink = ResultsSink::new(t.conn.clone(), &t.keys, 1000).with_cipher(cipher.clone());
    store(&sink, &login(2), "req-2").await;

    let page = results::read(&t.conn, &t.keys, "-", 10, with_key(&cipher))
        .await
        .unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].login_id, login(2).as_str());
    assert_eq!(page.errors.len(), 1);
    assert!(page.errors[0].error.contains("stored in clear"), "{page:?}");
    assert!(
        page.errors[0].error.contains("--allow-plaintext"),
        "{page:?}"
    );

    let page = results::read(
        &t.conn,
        &t.keys,
        "-",
        10,
        ReadPolicy {
            allow_plaintext: true,
            ..with_key(&cipher)
        },
    )
    .await
    .unwrap();
    assert_eq!((page.records.len(), page.errors.len()), (2, 0));

    // RESULTS_ENCRYPTION_REQUIRED refuses them even without a key.
    let page = results::read(
        &t.conn,
        &t.keys,
        "-",
        10,
        ReadPolicy {
            require_encryption: true,
            ..ReadPolicy::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(page.records.len(), 0);
    assert!(page.errors[0].error.contains("RESULTS_ENCRYPTION_REQUIRED"));
    t.cleanup().await;
}

#[tokio::test]
async fn after_key_rotation_old_entries_still_read_with_the_old_key_id() {
    // One stream, whatever the suite's ledger bucket count: its ids are unique, so paging
    // after the first entry returns exactly the second.
    let mut t = TestRedis::new("results-rotate").await;
    t.keys = t
        .keys
        .clone()
        .with_ledger_buckets(std::num::NonZeroU16::MIN);
    let old = ResultsSink::new(t.conn.clone(), &t.keys, 1000)
        .with_cipher(ResultsCipher::parse(K1).unwrap());
    store(&old, &login(1), "req-1").await;
    let rotated = ResultsCipher::parse(&format!("{K2},{K1}")).unwrap();
    let new = ResultsSink::new(t.conn.clone(), &t.keys, 1000).with_cipher(rotated.clone());
    store(&new, &login(2), "req-2").await;

    let records = results::read(&t.conn, &t.keys, "-", 10, with_key(&rotated))
        .await
        .unwrap()
        .records;
    let ids: Vec<_> = records.iter().map(|r| r.key_id.as_deref()).collect();
    assert_eq!(ids, [Some("k1"), Some("k2")]);

    // --from pages: an exclusive start after the first entry returns only the second.
    let after = format!("({}", records[0].id);
    let rest = results::read(&t.conn, &t.keys, &after, 10, with_key(&rotated))
        .await
        .unwrap()
        .records;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].login_id, login(2).as_str());
    t.cleanup().await;
}

#[tokio::test]
async fn editing_any_field_or_moving_the_ciphertext_fails_to_decrypt() {
    let t = TestRedis::new("results-tamper").await;
    let cipher = ResultsCipher::parse(K1).unwrap();
    let sink = ResultsSink::new(t.conn.clone(), &t.keys, 1000).with_cipher(cipher.clone());
    store(&sink, &login(1), "req-1").await;
    store(&sink, &login(2), "req-2").await;
    let raw = raw_entries(&t).await;
    let original = raw[0].clone();
    assert!(results::decode_entry("1-0", &original, with_key(&cipher)).is_ok());

    let mut tampered = Vec::new();
    for (name, value) in [
        ("login_id", login(9).as_str().to_string()),
        ("routine_date", "2026-11-26".into()),
        ("request_id", "req-9".into()),
        ("fetched_at", "2020-01-01T00:00:00+00:00".into()),
        ("last_refresh", String::new()),
        ("stale", "1".into()),
    ] {
        let mut fields = original.clone();
        fields.insert(name.into(), value);
        tampered.push((name, fields));
    }
    let mut moved = raw[1].clone();
    moved.insert("accounts_enc".into(), original["accounts_enc"].clone());
    tampered.push(("accounts_enc moved", moved));
    for (what, fields) in &tampered {
        let err = results::decode_entry("1-0", fields, with_key(&cipher)).unwrap_err();
        assert!(
            matches!(
                err,
                ResultsError::Crypto {
                    source: CryptoError::Decrypt { .. },
                    ..
                }
            ),
            "{what}: {err}"
        );
    }

    // An extra field would be unauthenticated; a forged plain `accounts` next to the
    // ciphertext included.
    let mut extra = original.clone();
    extra.insert("accounts".into(), "[]".into());
    let err = results::decode_entry("1-0", &extra, with_key(&cipher)).unwrap_err();
    assert!(
        err.to_string()
            .contains("unauthenticated field(s) accounts"),
        "{err}"
    );

    // A tampered entry in the stream is skipped and reported; the others are still read.
    xadd(&t, &tampered[5].1).await;
    let page = results::read(&t.conn, &t.keys, "-", 10, with_key(&cipher))
        .await
        .unwrap();
    assert_eq!((page.records.len(), page.errors.len()), (2, 1));
    assert_eq!(page.last_id.as_deref(), Some(page.errors[0].id.as_str()));
    t.cleanup().await;
}

#[tokio::test]
async fn an_entry_of_the_previous_format_is_refused_naming_it() {
    let t = TestRedis::new("results-legacy").await;
    let cipher = ResultsCipher::parse(K1).unwrap();
    let sink = ResultsSink::new(t.conn.clone(), &t.keys, 1000).with_cipher(cipher.clone());
    store(&sink, &login(1), "req-1").await;
    let mut fields = raw_entries(&t).await.remove(0);
    fields.insert("enc".into(), "aes-256-gcm".into());
    let err = results::decode_entry("1-0", &fields, with_key(&cipher)).unwrap_err();
    assert!(
        matches!(
            err,
            ResultsError::Crypto {
                source: CryptoError::Legacy,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("previous format"), "{err}");
    t.cleanup().await;
}

#[tokio::test]
async fn with_ledger_buckets_each_login_s_entry_is_in_its_bucket_s_stream_and_reads_merge_by_id() {
    // Arrange: four ledger buckets, one refresh of each of twelve logins.
    let mut t = TestRedis::new("results-buckets").await;
    t.keys = t
        .keys
        .clone()
        .with_ledger_buckets(std::num::NonZeroU16::new(4).unwrap());
    let sink = ResultsSink::new(t.conn.clone(), &t.keys, 1000);
    let logins: Vec<LoginId> = (1..=12).map(login).collect();
    for l in &logins {
        store(&sink, l, "req-1").await;
    }

    // Act: page through in fives, and read one login's entry back.
    let mut seen = Vec::new();
    let mut from = "-".to_string();
    loop {
        let page = results::read(&t.conn, &t.keys, &from, 5, ReadPolicy::default())
            .await
            .unwrap();
        seen.extend(
            page.records
                .iter()
                .map(|r| (r.id.clone(), r.login_id.clone())),
        );
        if !page.more {
            break;
        }
        from = format!("({}", page.last_id.unwrap());
    }
    let one = results::read_login(
        &t.conn,
        &t.keys,
        &logins[6],
        NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
        ReadPolicy::default(),
    )
    .await
    .unwrap()
    .unwrap();

    // Assert: every entry once, in id order; each in its login's bucket's stream.
    let ids: Vec<&String> = seen.iter().map(|(id, _)| id).collect();
    assert_eq!(seen.len(), 12, "{seen:?}");
    let sorted = {
        let mut s = ids.clone();
        s.sort_by_key(|id| {
            let (ms, seq) = id.split_once('-').unwrap();
            (ms.parse::<u64>().unwrap(), seq.parse::<u64>().unwrap())
        });
        s
    };
    assert_eq!(ids, sorted);
    // Ids repeat across streams (appends in one millisecond): the logins must not.
    let mut read_logins: Vec<&String> = seen.iter().map(|(_, login)| login).collect();
    read_logins.sort();
    read_logins.dedup();
    assert_eq!(read_logins.len(), 12);
    assert_eq!(one.records[0].login_id, logins[6].as_str());
    let mut conn = t.conn.clone();
    for l in &logins {
        let stream = t.keys.results_stream(t.keys.ledger_bucket_of(l.as_str()));
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&stream)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            entries.ids.iter().any(|e| {
                e.map
                    .get("login_id")
                    .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
                    == Some(l.as_str().to_string())
            }),
            "{} not in {stream}",
            l.as_str()
        );
    }
    t.cleanup().await;
}

#[tokio::test]
async fn a_page_never_ends_between_two_entries_of_one_id_in_two_buckets() {
    let mut t = TestRedis::new("results-ties").await;
    t.keys = t
        .keys
        .clone()
        .with_ledger_buckets(std::num::NonZeroU16::new(2).unwrap());
    let mut conn = t.conn.clone();
    // The same id in both streams (two appends in one millisecond), then a later one.
    for (bucket, id, n) in [(0, "5-0", 1), (1, "5-0", 2), (1, "6-0", 3)] {
        let _: String = redis::cmd("XADD")
            .arg(t.keys.results_stream(bucket))
            .arg(id)
            .arg("login_id")
            .arg(login(n).as_str())
            .arg("request_id")
            .arg("req")
            .arg("routine_date")
            .arg("2026-12-01")
            .arg("fetched_at")
            .arg("2026-12-01T06:00:00Z")
            .arg("last_refresh")
            .arg("")
            .arg("stale")
            .arg("0")
            .arg("accounts")
            .arg("[]")
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    let first = results::read(&t.conn, &t.keys, "-", 1, ReadPolicy::default())
        .await
        .unwrap();
    let rest = results::read(&t.conn, &t.keys, "(5-0", 1, ReadPolicy::default())
        .await
        .unwrap();

    assert_eq!(first.records.len(), 2, "both entries of id 5-0");
    assert!(first.more);
    assert_eq!(first.last_id.as_deref(), Some("5-0"));
    assert_eq!(rest.records.len(), 1);
    assert_eq!(rest.records[0].id, "6-0");
    t.cleanup().await;
}
