//! Benchmark of the global rate limiter with real processes: for 1, 2, 4 and 8 client
//! processes sharing one limit, the achieved rate against the configured one, the busiest
//! window (full and 1/60-scaled), and the limiter's own cost per granted slot (Redis round
//! trips and microseconds per round trip).
//!
//! Run: `cargo bench -p shared --bench ratelimit` (or with arguments
//! `-- RATE_PER_MINUTE SECONDS`; defaults 6000/min for 10 s per configuration). It re-runs
//! itself as the child processes (`--child`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flinks_sim::busiest_window_ms;
use shared::ratelimit::{Attempt, RateLimiter};
use shared::KeySpace;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A child: acquires permits until `until_ms`, prints `grant <ms>` lines and a summary.
async fn child(namespace: &str, rate: f64, until_ms: u64) {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let conn = shared::queue::connect(&url).await.unwrap();
    let limiter = RateLimiter::new(conn, &KeySpace::new(namespace), rate);
    let (mut calls, mut busy) = (0u64, Duration::ZERO);
    while now_ms() < until_ms {
        let t = Instant::now();
        let attempt = limiter.try_acquire().await.unwrap();
        busy += t.elapsed();
        calls += 1;
        match attempt {
            Attempt::Granted => println!("grant {}", now_ms()),
            Attempt::Wait(wait) => {
                let left = until_ms.saturating_sub(now_ms());
                tokio::time::sleep(wait.min(Duration::from_millis(left))).await;
            }
        }
    }
    println!("calls {calls} {}", busy.as_micros());
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        let rate: f64 = args[3].parse().unwrap();
        let until: u64 = args[4].parse().unwrap();
        child(&args[2], rate, until).await;
        return;
    }
    let numbers: Vec<f64> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    let rate = numbers.first().copied().unwrap_or(6000.0);
    let seconds = numbers.get(1).copied().unwrap_or(10.0);
    println!("global rate limiter, {rate}/min for {seconds} s per configuration");
    println!("| processes | achieved / configured | busiest 60 s-scaled window (limit) | busiest 1 s window | round trips per slot | µs per round trip |");
    println!("|---|---|---|---|---|---|");
    for processes in [1usize, 2, 4, 8] {
        let namespace = format!("bench-rl-{}", uuid::Uuid::new_v4().simple());
        let start = now_ms() + 300;
        let until = start + (seconds * 1000.0) as u64;
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = (0..processes)
            .map(|_| {
                std::process::Command::new(&exe)
                    .args(["--child", &namespace, &rate.to_string(), &until.to_string()])
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let (mut grants, mut calls, mut busy_us) = (Vec::new(), 0u64, 0u64);
        for c in children {
            let out = c.wait_with_output().unwrap();
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let parts: Vec<&str> = line.split_whitespace().collect();
                match parts.as_slice() {
                    ["grant", t] => grants.push(t.parse::<u64>().unwrap()),
                    ["calls", n, us] => {
                        calls += n.parse::<u64>().unwrap();
                        busy_us += us.parse::<u64>().unwrap();
                    }
                    _ => {}
                }
            }
        }
        let span_s = seconds;
        let achieved = grants.len() as f64 / span_s * 60.0;
        // The 60 s window scaled to the run: rate × seconds / 60 permits allowed.
        let window_ms = (seconds * 1000.0) as u64;
        let allowed = (rate * seconds / 60.0).floor() as usize;
        println!(
            "| {processes} | {:.3} | {} ({allowed}) | {} ({:.0}) | {:.2} | {:.0} |",
            achieved / rate,
            busiest_window_ms(&grants, window_ms),
            busiest_window_ms(&grants, 1_000),
            rate / 60.0,
            calls as f64 / grants.len().max(1) as f64,
            busy_us as f64 / calls.max(1) as f64,
        );
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let mut conn = shared::queue::connect(&url).await.unwrap();
        let _: () = redis::cmd("DEL")
            .arg(format!("{namespace}:ratelimit:authorize:tat"))
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}
