//! The official BullMQ Rust port (`bullmq-official`) running the same two-step workload
//! as our worker, for the side-by-side comparison (see BENCHMARKS.md).
//!
//! `bullmq-rs-bench enqueue` adds one "authorize" job per line of LOGINS_FILE;
//! `bullmq-rs-bench work` runs two Workers in one process: authorize (POST /Authorize;
//! 200 → add a "detail" job from the worker, 401 → completed as re-auth) and detail
//! (POST /GetAccountsDetail). Jobs are removed on completion. It prints "ready", then
//! one JSON line once every job has settled, then idles until killed (RSS/CPU readings).

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Instant;

use bullmq::types::RemoveOnFinish;
use bullmq::{BulkJob, Job, JobOptions, Queue, QueueOptions, Worker, WorkerOptions};
use bullmq::worker::WorkerEvent;
use serde_json::{json, Value};

fn conn() -> bullmq::options::RedisConnectionOptions {
    bullmq::options::RedisConnectionOptions {
        url: std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        ..Default::default()
    }
}

fn prefix() -> String {
    std::env::var("BULL_PREFIX").unwrap_or_else(|_| "bench-bullrs".into())
}

fn job_opts() -> JobOptions {
    JobOptions {
        remove_on_complete: Some(RemoveOnFinish::Bool(true)),
        remove_on_fail: Some(RemoveOnFinish::Bool(true)),
        ..Default::default()
    }
}

async fn queue(name: &str) -> Queue {
    let opts = QueueOptions { connection: conn(), prefix: prefix(), ..Default::default() };
    Queue::with_options(name, opts).await.expect("queue")
}

#[tokio::main]
async fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode == "enqueue" {
        let q = queue("authorize").await;
        let ids = std::fs::read_to_string(std::env::var("LOGINS_FILE").expect("LOGINS_FILE")).unwrap();
        let ids: Vec<&str> = ids.lines().filter(|l| !l.is_empty()).collect();
        for chunk in ids.chunks(1000) {
            let jobs = chunk
                .iter()
                .map(|id| BulkJob::with_options("authorize", json!({ "LoginId": id }), job_opts()))
                .collect();
            q.add_bulk(jobs).await.expect("add_bulk");
        }
        println!("{}", json!({ "enqueued": ids.len() }));
        return;
    }
    work().await;
}

async fn work() {
    let n: u64 = std::env::var("N").expect("N").parse().unwrap();
    let concurrency: usize = std::env::var("CONCURRENCY").ok().and_then(|c| c.parse().ok()).unwrap_or(32);
    let base = Arc::new(std::env::var("FLINKS_BASE_URL").expect("FLINKS_BASE_URL"));
    let http = reqwest::Client::new();
    let detail_q = Arc::new(queue("detail").await);
    let chained = Arc::new(AtomicU64::new(0));
    let reauth = Arc::new(AtomicU64::new(0));
    let wopts = || WorkerOptions {
        connection: conn(),
        prefix: prefix(),
        concurrency,
        autorun: false,
        ..Default::default()
    };

    let (h, b, dq, ch, ra) = (http.clone(), base.clone(), detail_q.clone(), chained.clone(), reauth.clone());
    let authorize = Worker::with_options(
        "authorize",
        move |job: Job, _token| {
            let (h, b, dq, ch, ra) = (h.clone(), b.clone(), dq.clone(), ch.clone(), ra.clone());
            async move {
                let login = job.data()["LoginId"].clone();
                let r = h
                    .post(format!("{b}/Authorize"))
                    .json(&json!({ "LoginId": login, "MostRecentCached": true }))
                    .send()
                    .await
                    .map_err(|e| bullmq::Error::Unrecoverable(e.to_string()))?;
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                match status {
                    200 => {
                        ch.fetch_add(1, SeqCst);
                        dq.add("detail", json!({ "LoginId": login, "RequestId": body["RequestId"] }))
                            .options(job_opts())
                            .await?;
                        Ok(json!("chained"))
                    }
                    401 => {
                        ra.fetch_add(1, SeqCst);
                        Ok(json!("reauth"))
                    }
                    s => Err(bullmq::Error::Unrecoverable(format!("authorize HTTP {s}"))),
                }
            }
        },
        wopts(),
    )
    .await
    .expect("authorize worker");

    let (h, b) = (http.clone(), base.clone());
    let detail = Worker::with_options(
        "detail",
        move |job: Job, _token| {
            let (h, b) = (h.clone(), b.clone());
            async move {
                let r = h
                    .post(format!("{b}/GetAccountsDetail"))
                    .json(&json!({ "RequestId": job.data()["RequestId"] }))
                    .send()
                    .await
                    .map_err(|e| bullmq::Error::Unrecoverable(e.to_string()))?;
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                if status != 200 {
                    return Err(bullmq::Error::Unrecoverable(format!("detail HTTP {status}")));
                }
                Ok(json!(body["Accounts"].as_array().map_or(0, |a| a.len())))
            }
        },
        wopts(),
    )
    .await
    .expect("detail worker");

    let authorize = Arc::new(authorize);
    let detail = Arc::new(detail);
    let auth_done = Arc::new(AtomicU64::new(0));
    let detail_done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    for (w, done) in [(authorize.clone(), auth_done.clone()), (detail.clone(), detail_done.clone())] {
        let failed = failed.clone();
        tokio::spawn(async move {
            while let Some(ev) = w.next_event().await {
                match ev {
                    WorkerEvent::Completed { .. } => {
                        done.fetch_add(1, SeqCst);
                    }
                    WorkerEvent::Failed { .. } => {
                        done.fetch_add(1, SeqCst);
                        failed.fetch_add(1, SeqCst);
                    }
                    _ => {}
                }
            }
        });
    }
    println!("ready");
    let t0 = Instant::now();
    for w in [authorize.clone(), detail.clone()] {
        tokio::spawn(async move { w.run().await });
    }
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        if auth_done.load(SeqCst) == n && detail_done.load(SeqCst) == chained.load(SeqCst) {
            break;
        }
    }
    println!(
        "{}",
        json!({
            "elapsed": t0.elapsed().as_secs_f64(),
            "authorize": auth_done.load(SeqCst),
            "detail": detail_done.load(SeqCst),
            "reauth": reauth.load(SeqCst),
            "failed": failed.load(SeqCst),
        })
    );
    futures_pending().await;
}

async fn futures_pending() {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}
