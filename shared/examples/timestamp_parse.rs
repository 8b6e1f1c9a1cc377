//! How long reading one Flinks `LastRefresh` takes: `parse_flinks_timestamp` (the plain
//! reading, which every answer goes through) against chrono's format string, which it
//! replaced on that path. Compare the ratio of one run; the figures move with the machine.
//!
//!     cargo run --release -p shared --example timestamp_parse

use std::time::Instant;

use chrono::NaiveDateTime;
use shared::flinks::model::parse_flinks_timestamp;

const ROUNDS: u32 = 200;

fn main() {
    let texts: Vec<String> = (0..1000u32)
        .map(|i| {
            let fraction = i * 7919 % 10_000_000;
            format!(
                "2026-11-{:02}T{:02}:{:02}:40.{fraction:07}",
                1 + i % 28,
                i % 24,
                i % 60
            )
        })
        .collect();
    let per_parse = |started: Instant| {
        started.elapsed().as_nanos() as f64 / f64::from(ROUNDS) / texts.len() as f64
    };
    for _ in 0..3 {
        let started = Instant::now();
        let mut read = 0;
        for _ in 0..ROUNDS {
            read += texts
                .iter()
                .filter(|t| parse_flinks_timestamp(t).is_some())
                .count();
        }
        let plain = per_parse(started);
        let started = Instant::now();
        for _ in 0..ROUNDS {
            read += texts
                .iter()
                .filter(|t| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").is_ok())
                .count();
        }
        let format = per_parse(started);
        println!(
            "plain reading {plain:.0} ns, format string {format:.0} ns a timestamp: {:.1}x ({read} read)",
            format / plain
        );
    }
}
