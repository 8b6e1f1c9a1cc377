//! The one way the producer prints a table (comfy-table, no borders, never wrapped so
//! `grep`/`awk` see one row a line), the column headers every command shares, and the
//! escaping of control characters in every text field printed: a LoginId tag, a Flinks
//! message or an audit argument could otherwise move the cursor or recolour a terminal.

use comfy_table::{presets::NOTHING, Table};

/// Column headers, spelled once for every command.
pub(crate) mod col {
    pub(crate) const QUEUE: &str = "QUEUE";
    pub(crate) const JOB_ID: &str = "JOB ID";
    pub(crate) const STATE: &str = "STATE";
    pub(crate) const LOGIN_ID: &str = "LOGIN ID";
    pub(crate) const DATE: &str = "DATE";
    pub(crate) const ATTEMPTS: &str = "ATTEMPTS";
    pub(crate) const AGE: &str = "AGE";
    pub(crate) const AT: &str = "AT (UTC)";
    pub(crate) const FLINKS_CODE: &str = "FLINKS CODE";
    pub(crate) const DETAIL: &str = "DETAIL";
    pub(crate) const STATUS: &str = "STATUS";
    pub(crate) const FLINKS: &str = "FLINKS";
    pub(crate) const TAG: &str = "TAG";
    pub(crate) const ACTOR: &str = "ACTOR";
    pub(crate) const COMMAND: &str = "COMMAND";
    pub(crate) const COUNT: &str = "COUNT";
    pub(crate) const FAILED: &str = "FAILED";
    pub(crate) const ARGS: &str = "ARGS";
    pub(crate) const READY: &str = "READY";
    pub(crate) const DELAYED: &str = "DELAYED";
    pub(crate) const IN_FLIGHT: &str = "IN FLIGHT";
    pub(crate) const DEAD: &str = "DEAD";
    pub(crate) const WORKER: &str = "WORKER";
}

pub(crate) use shared::domain::escape_control as escape;

/// Multi-line text with every control character but the line breaks escaped.
pub(crate) fn escape_lines(text: &str) -> String {
    text.split('\n').map(escape).collect::<Vec<_>>().join("\n")
}

/// Prints `rows` under `headers` (no header line when `headers` is empty), every cell
/// escaped.
pub(crate) fn print(headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
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
    for line in table.lines() {
        println!("{}", line.trim_end());
    }
}

/// `-` for a missing value.
pub(crate) fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// A UTC time as `YYYY-MM-DD HH:MM:SS`.
pub(crate) fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Milliseconds since the epoch as [`time`].
pub(crate) fn ms_time(ms: u64) -> String {
    or_dash(chrono::DateTime::from_timestamp_millis(ms as i64).map(time))
}

/// An age in seconds, short: `42s`, `5m`, `3h`, `2d`.
pub(crate) fn age(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
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
}
