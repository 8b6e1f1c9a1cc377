//! The terminal text of the operator commands, built here so the `producer` binary only
//! parses, calls and prints, and so every rendering is unit-tested without a terminal.
//!
//! One table helper (comfy-table, no borders, never wrapped so `grep`/`awk` see one row a
//! line), the column headers every command shares, and the escaping of control characters
//! in every text field: a LoginId tag, a Flinks message or an audit argument could
//! otherwise move the cursor or recolour a terminal. Every function returns the text with
//! a trailing newline per line, ready for `print!`.

pub mod control;
pub mod logins;
pub mod queues;
pub mod routine;

use comfy_table::{presets::NOTHING, Table};

/// Column headers, spelled once for every command.
pub mod col {
    pub const QUEUE: &str = "QUEUE";
    pub const JOB_ID: &str = "JOB ID";
    pub const STATE: &str = "STATE";
    pub const LOGIN_ID: &str = "LOGIN ID";
    pub const DATE: &str = "DATE";
    pub const ATTEMPTS: &str = "ATTEMPTS";
    pub const AGE: &str = "AGE";
    pub const AT: &str = "AT (UTC)";
    pub const FLINKS_CODE: &str = "FLINKS CODE";
    pub const DETAIL: &str = "DETAIL";
    pub const STATUS: &str = "STATUS";
    pub const FLINKS: &str = "FLINKS";
    pub const TAG: &str = "TAG";
    pub const ACTOR: &str = "ACTOR";
    pub const COMMAND: &str = "COMMAND";
    pub const COUNT: &str = "COUNT";
    pub const FAILED: &str = "FAILED";
    pub const ARGS: &str = "ARGS";
    pub const READY: &str = "READY";
    pub const DELAYED: &str = "DELAYED";
    pub const IN_FLIGHT: &str = "IN FLIGHT";
    pub const DEAD: &str = "DEAD";
    pub const WORKER: &str = "WORKER";
}

pub use crate::domain::escape_control as escape;

/// Multi-line text with every control character but the line breaks escaped.
pub fn escape_lines(text: &str) -> String {
    text.split('\n').map(escape).collect::<Vec<_>>().join("\n")
}

/// `rows` under `headers` (no header line when `headers` is empty), every cell escaped.
pub fn table(headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut table = Table::new();
    table.load_preset(NOTHING);
    if !headers.is_empty() {
        table.set_header(headers.to_vec());
    }
    for row in rows {
        table.add_row(row.iter().map(|cell| escape(cell)).collect::<Vec<_>>());
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table
        .lines()
        .map(|line| format!("{}\n", line.trim_end()))
        .collect()
}

/// `-` for a missing value.
pub fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// A UTC time as `YYYY-MM-DD HH:MM:SS`.
pub fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Milliseconds since the epoch as [`time`].
pub fn ms_time(ms: u64) -> String {
    or_dash(chrono::DateTime::from_timestamp_millis(ms as i64).map(time))
}

/// An age in seconds, short: `42s`, `5m`, `3h`, `2d`.
pub fn age(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

/// JSON Lines: one compact JSON document per item, for `jq` and scripts.
pub fn json_lines<T: serde::Serialize>(items: &[T]) -> Result<String, serde_json::Error> {
    let line = |item| serde_json::to_string(item).map(|json| json + "\n");
    items.iter().map(line).collect()
}

/// `events redeliver`: how many parked batches went and how many still fail.
pub fn redelivered(report: &crate::events::webhook::RedeliverReport) -> String {
    let (delivered, events) = (report.delivered_batches, report.delivered_events);
    let failed = report.failed_batches;
    format!("{delivered} parked batch(es) delivered ({events} events), {failed} still failing\n")
}

/// `audit`: the entries, newest first, one row each.
pub fn audit(entries: &[crate::ops::audit::AuditEntry]) -> String {
    let headers = [
        col::AT,
        col::ACTOR,
        col::COMMAND,
        col::COUNT,
        col::FAILED,
        col::ARGS,
    ];
    let row = |e: &crate::ops::audit::AuditEntry| {
        let (count, failed) = (e.count.to_string(), e.failed.to_string());
        vec![
            time(e.at),
            e.actor.clone(),
            e.command.clone(),
            count,
            failed,
            e.args.clone(),
        ]
    };
    table(&headers, entries.iter().map(row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_short() {
        assert_eq!(age(42), "42s");
        assert_eq!(age(300), "5m");
        assert_eq!(age(3 * 3_600), "3h");
        assert_eq!(age(5 * 86_400), "5d");
    }

    #[test]
    fn tables_align_escape_and_end_lines() {
        let rows = vec![
            vec!["a".to_string(), "x\u{1b}[31m".to_string()],
            vec!["long".to_string(), String::new()],
        ];
        let text = table(&["K", "V"], rows);
        assert_eq!(text, "K     V\na     x\\u{1b}[31m\nlong\n");
    }

    #[test]
    fn an_empty_table_without_headers_is_empty() {
        assert_eq!(table(&[], Vec::<Vec<String>>::new()), "");
    }

    #[test]
    fn the_audit_table_escapes_arguments() {
        let entry = crate::ops::audit::AuditEntry {
            id: "1-0".into(),
            actor: "ops".into(),
            command: "queues purge".into(),
            args: "dead\u{1b}[2J".into(),
            count: 3,
            failed: 0,
            at: chrono::DateTime::from_timestamp(0, 0).unwrap_or_default(),
        };
        let text = audit(&[entry]);
        assert!(text.starts_with("AT (UTC)"), "{text}");
        assert!(
            text.contains("queues purge") && text.contains("\\u{1b}[2J"),
            "{text}"
        );
    }

    #[test]
    fn json_lines_end_every_item_with_a_newline() {
        assert_eq!(json_lines(&[1, 2]).ok().as_deref(), Some("1\n2\n"));
        assert_eq!(json_lines::<u8>(&[]).ok().as_deref(), Some(""));
    }

    #[test]
    fn missing_values_and_times() {
        assert_eq!(or_dash(None::<u32>), "-");
        assert_eq!(ms_time(0), "1970-01-01 00:00:00");
    }
}
