//! Reading a customer's CSV of LoginIds into validated [`LoginRecordInput`]s.
//!
//! The whole file is validated before anything is written: one bad row fails the import
//! with every bad row listed by line number (up to [`MAX_LISTED_ERRORS`]) and nothing
//! imported, unless the caller asks to skip invalid rows. Validated rows are kept in
//! memory (a million rows is ~100 MB at worst), then written by
//! [`crate::registry::Registry::upsert_many`]. This module does no I/O on Redis.
//!
//! Format: a header row with `LoginId` (required) and optionally `Active` (true/false,
//! 1/0, yes/no, y/n; case-insensitive; empty = true), `Tag` (empty = keep the current
//! tag) and `Priority` (an integer from 0 to [`MAX_PRIORITY`], higher refreshed first when
//! a day's budget cannot cover every login; empty = 0; a file without the column keeps
//! each login's current priority, 0 for a new one), in any order, matched
//! case-insensitively; other columns are ignored, except a near miss of one of these
//! (`Actve`, `Priorty`, `Tags`), which is refused rather than silently lost. A LoginId
//! that appears twice keeps its last row and is counted in [`ParsedImport::duplicates`].
//!
//! Limits, so a hostile or broken file cannot exhaust memory or plant control characters
//! in the registry (and from there in terminals and dashboards): a line longer than
//! [`MAX_LINE_BYTES`] stops the import, naming the line; a field longer than
//! [`MAX_FIELD_CHARS`], a `Tag` longer than [`MAX_TAG_CHARS`] or a `Tag` holding a control
//! or invisible formatting character makes its row invalid.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::domain::LoginId;
use crate::registry::LoginRecordInput;

/// At most this many bad rows are kept (all are counted).
pub const MAX_LISTED_ERRORS: usize = 50;
/// Longest line accepted, in bytes (the line break excluded): far above a real row (a
/// LoginId, a flag, a tag and a few ignored columns), far below what hurts memory.
pub const MAX_LINE_BYTES: usize = 8 * 1024;
/// Longest field accepted, in characters (ignored columns included).
pub const MAX_FIELD_CHARS: usize = 1024;
/// Longest `Tag` accepted, in characters.
pub const MAX_TAG_CHARS: usize = 256;
/// Highest `Priority` accepted (the lowest is 0, the default). A small range is all a
/// customer needs to put chosen logins first, and it keeps the stored value one byte.
pub const MAX_PRIORITY: u8 = 100;

/// Why a file could not be imported. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file has no header row.
    #[error("{path} is empty: expected a header row with a LoginId column")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The header has no `LoginId` column (or a column twice).
    #[error("{path}: bad header: {reason} (found columns: {found})")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
        /// The header as read.
        found: String,
    },
    /// A line is longer than [`MAX_LINE_BYTES`]; nothing was imported.
    #[error("{path}: line {line} is longer than {max} bytes; nothing imported")]
    LineTooLong {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The limit, [`MAX_LINE_BYTES`].
        max: usize,
    },
    /// Some rows are invalid; nothing was imported.
    #[error("{path}: {total} invalid row(s), nothing imported (use --skip-invalid to import the valid rows):\n{}", RowErrors(.errors, *.total))]
    InvalidRows {
        /// The file.
        path: PathBuf,
        /// The first [`MAX_LISTED_ERRORS`] bad rows.
        errors: Vec<RowError>,
        /// How many rows are bad in all.
        total: usize,
    },
}

/// One bad row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

struct RowErrors<'a>(&'a [RowError], usize);

impl fmt::Display for RowErrors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  {error}")?;
        }
        if self.1 > self.0.len() {
            write!(f, "\n  ... and {} more", self.1 - self.0.len())?;
        }
        Ok(())
    }
}

/// Options of an import.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Import the valid rows and report the invalid ones instead of failing.
    pub skip_invalid: bool,
}

/// A validated file, ready to be written.
#[derive(Debug, Clone, Default)]
pub struct ParsedImport {
    /// One record per distinct LoginId, last row wins, in first-seen order.
    pub records: Vec<LoginRecordInput>,
    /// Data rows read (valid or not).
    pub rows: u64,
    /// Rows whose LoginId appeared on an earlier row too.
    pub duplicates: u64,
    /// Invalid rows skipped (first [`MAX_LISTED_ERRORS`]); empty unless `skip_invalid`.
    pub skipped: Vec<RowError>,
    /// Invalid rows skipped in all.
    pub skipped_total: usize,
}

struct Columns {
    login_id: usize,
    active: Option<usize>,
    tag: Option<usize>,
    priority: Option<usize>,
}

fn normalise(header: &str) -> String {
    header
        .trim()
        .trim_start_matches('\u{feff}')
        .chars()
        .filter(|c| !matches!(c, '_' | ' ' | '-'))
        .collect::<String>()
        .to_ascii_lowercase()
}

fn columns(path: &Path, header: &csv::StringRecord) -> Result<Columns, ImportError> {
    let found = header.iter().collect::<Vec<_>>().join(",");
    let bad = |reason: String| ImportError::BadHeader {
        path: path.to_path_buf(),
        reason,
        found: found.clone(),
    };
    let find = |name: &str| -> Result<Option<usize>, ImportError> {
        let mut hits = header
            .iter()
            .enumerate()
            .filter(|(_, h)| normalise(h) == name.to_ascii_lowercase());
        let first = hits.next().map(|(i, _)| i);
        if hits.next().is_some() {
            return Err(bad(format!("column {name} appears more than once")));
        }
        Ok(first)
    };
    let login_id = find("LoginId")?.ok_or_else(|| bad("no LoginId column".into()))?;
    if let Some((column, meant)) = header.iter().find_map(misspelt_column) {
        return Err(bad(format!(
            "column {column:?} looks like a misspelt {meant}: rename it, or remove it (other \
             columns are ignored, so its values would be lost)"
        )));
    }
    Ok(Columns {
        login_id,
        active: find("Active")?,
        tag: find("Tag")?,
        priority: find("Priority")?,
    })
}

/// The optional columns a header may misspell by one letter (a longer name, where one
/// edit is a typo and rarely another word: `Actve`, `Activ`, `Priorty`).
const TYPO_CHECKED_COLUMNS: [&str; 2] = ["Active", "Priority"];

/// `column` and the optional column it is a near miss of: one edit from `Active` or
/// `Priority`, or `Tags` (a three-letter name is one edit from too many real columns:
/// `Tax`, `Lag`). Other columns are ignored, so a misspelt one would silently drop what it
/// says (every login active, every priority 0). Words two edits away (`Native`,
/// `Archive`, `Inactive`) are other columns.
fn misspelt_column(column: &str) -> Option<(&str, &'static str)> {
    let name = normalise(column);
    if name == "tags" {
        return Some((column, "Tag"));
    }
    TYPO_CHECKED_COLUMNS
        .into_iter()
        .find(|known| edit_distance(&name, &normalise(known)) == 1)
        .map(|known| (column, known))
}

/// Levenshtein distance between two short names, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// Parses an `Active` cell; empty means active.
pub fn parse_active(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "" | "true" | "1" | "yes" | "y" | "t" => Ok(true),
        "false" | "0" | "no" | "n" | "f" => Ok(false),
        _ => Err(format!(
            "Active {raw:?} is not a boolean (expected true/false, 1/0 or yes/no)"
        )),
    }
}

/// Parses a `Priority` cell: an integer from 0 to [`MAX_PRIORITY`]; empty means 0.
pub fn parse_priority(raw: &str) -> Result<u8, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Ok(0);
    }
    trimmed
        .parse::<u8>()
        .ok()
        .filter(|p| *p <= MAX_PRIORITY)
        .ok_or_else(|| format!("Priority {raw:?} is not an integer from 0 to {MAX_PRIORITY}"))
}

/// The marker inside the I/O error [`LineLimit`] raises.
#[derive(Debug)]
struct LineTooLong {
    line: u64,
}

impl fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} is longer than {MAX_LINE_BYTES} bytes",
            self.line
        )
    }
}

impl std::error::Error for LineTooLong {}

/// Fails the read as soon as a physical line exceeds [`MAX_LINE_BYTES`], before the CSV
/// parser buffers it: the limit holds for quoted fields too.
struct LineLimit<R> {
    inner: R,
    line: u64,
    line_bytes: usize,
}

impl<R: std::io::Read> std::io::Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &byte in &buf[..n] {
            if byte == b'\n' {
                self.line += 1;
                self.line_bytes = 0;
            } else if byte != b'\r' {
                self.line_bytes += 1;
                if self.line_bytes > MAX_LINE_BYTES {
                    return Err(std::io::Error::other(LineTooLong { line: self.line }));
                }
            }
        }
        Ok(n)
    }
}

/// What `logins import` reports: the file's rows, what the registry wrote, what was
/// skipped. The skipped rows are listed as [`ParsedImport::skipped`] holds them (capped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// The file.
    pub file: String,
    /// Data rows read.
    pub rows: u64,
    /// Logins written (new or updated).
    pub imported: u64,
    /// Of them, active.
    pub active: u64,
    /// Of them, inactive.
    pub inactive: u64,
    /// Of them, not registered before.
    pub new: u64,
    /// Nightly-refresh changes queued for Flinks.
    pub flinks_changes: u64,
    /// Rows whose LoginId an earlier row already had (the last row wins).
    pub duplicates: u64,
    /// Invalid rows skipped (`--skip-invalid`).
    pub skipped: usize,
    /// The first skipped rows, with why.
    pub skipped_rows: Vec<RowError>,
}

impl ImportSummary {
    /// The summary of `parsed` from `file`, of which the registry wrote `written`.
    pub fn new(
        file: &Path,
        parsed: &ParsedImport,
        written: &crate::registry::UpsertSummary,
    ) -> Self {
        Self {
            file: file.display().to_string(),
            rows: parsed.rows,
            imported: written.upserted,
            active: written.active,
            inactive: written.inactive,
            new: written.new,
            flinks_changes: written.flinks_changes,
            duplicates: parsed.duplicates,
            skipped: parsed.skipped_total,
            skipped_rows: parsed.skipped.clone(),
        }
    }

    /// The warnings for stderr: each skipped row, the rest counted, duplicates.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .skipped_rows
            .iter()
            .map(|r| format!("skipped {r}"))
            .collect();
        if self.skipped > self.skipped_rows.len() {
            out.push(format!(
                "... and {} more skipped rows",
                self.skipped - self.skipped_rows.len()
            ));
        }
        if self.duplicates > 0 {
            out.push(format!(
                "{} duplicate LoginId row(s); the last row of each won",
                self.duplicates
            ));
        }
        out
    }

    /// The one-line result.
    pub fn render_text(&self) -> String {
        format!(
            "imported {} logins from {} ({} active, {} inactive, {} new); skipped {} invalid \
             row(s); {} nightly-refresh change(s) queued for Flinks",
            self.imported,
            self.file,
            self.active,
            self.inactive,
            self.new,
            self.skipped,
            self.flinks_changes
        )
    }
}

/// Reads and validates the CSV file at `path`.
pub fn parse_file(path: &Path, options: ImportOptions) -> Result<ParsedImport, ImportError> {
    let file = std::fs::File::open(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // A row holds at least a LoginId (36 characters for a UUID) and a line break.
    let expected_rows = file
        .metadata()
        .map_or(0, |m| m.len() / 40)
        .min(MAX_EXPECTED_ROWS) as usize;
    parse_rows(path, std::io::BufReader::new(file), options, expected_rows)
}

/// Reads and validates CSV from `reader`; `path` only names the source in errors.
pub fn parse_reader(
    path: &Path,
    reader: impl std::io::Read,
    options: ImportOptions,
) -> Result<ParsedImport, ImportError> {
    parse_rows(path, reader, options, 0)
}

/// The most rows room is made for before reading a file (as its size suggests).
const MAX_EXPECTED_ROWS: u64 = 20_000_000;

/// [`parse_reader`], with room made first for about `expected_rows` rows.
fn parse_rows(
    path: &Path,
    reader: impl std::io::Read,
    options: ImportOptions,
    expected_rows: usize,
) -> Result<ParsedImport, ImportError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(LineLimit {
            inner: reader,
            line: 1,
            line_bytes: 0,
        });
    let io_error = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(io) => {
            match io.get_ref().and_then(|e| e.downcast_ref::<LineTooLong>()) {
                Some(too_long) => ImportError::LineTooLong {
                    path: path.to_path_buf(),
                    line: too_long.line,
                    max: MAX_LINE_BYTES,
                },
                None => ImportError::Io {
                    path: path.to_path_buf(),
                    source: io,
                },
            }
        }
        other => ImportError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!("{other:?}")),
        },
    };
    // One record read into again and again: a fresh one per row cost its buffers'
    // allocations and frees on every row, most of the malloc time of a large parse.
    let mut row = csv::StringRecord::new();
    let header = loop {
        match csv.read_record(&mut row) {
            Ok(false) => {
                return Err(ImportError::Empty {
                    path: path.to_path_buf(),
                })
            }
            Err(e) if e.is_io_error() => return Err(io_error(e)),
            Err(e) => {
                return Err(ImportError::BadHeader {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                    found: String::new(),
                })
            }
            Ok(true) if row.iter().all(str::is_empty) => continue,
            Ok(true) => break row.clone(),
        }
    };
    let cols = columns(path, &header)?;
    let width = header.len();

    let mut out = ParsedImport::default();
    let mut errors: Vec<RowError> = Vec::new();
    let mut total_errors = 0usize;
    let mut seen = SeenLogins::with_capacity(expected_rows);
    loop {
        match csv.read_record(&mut row) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) if e.is_io_error() => return Err(io_error(e)),
            Err(e) => {
                out.rows += 1;
                total_errors += 1;
                if errors.len() < MAX_LISTED_ERRORS {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    errors.push(RowError {
                        line,
                        reason: e.to_string(),
                    });
                }
                continue;
            }
        }
        if row.iter().all(str::is_empty) {
            continue;
        }
        out.rows += 1;
        let line = row.position().map(|p| p.line()).unwrap_or(0);
        match validate(&row, &cols, width) {
            Ok(record) => {
                let hash = seen.hash(&record.login_id);
                match seen.place_of(hash, &record.login_id, &out.records) {
                    Some(at) => {
                        out.duplicates += 1;
                        out.records[at] = record;
                    }
                    None => {
                        seen.add(hash, out.records.len());
                        out.records.push(record);
                    }
                }
            }
            Err(reason) => {
                total_errors += 1;
                if errors.len() < MAX_LISTED_ERRORS {
                    errors.push(RowError { line, reason });
                }
            }
        }
    }
    if total_errors > 0 && !options.skip_invalid {
        return Err(ImportError::InvalidRows {
            path: path.to_path_buf(),
            errors,
            total: total_errors,
        });
    }
    out.skipped = errors;
    out.skipped_total = total_errors;
    Ok(out)
}

/// Where each LoginId read so far sits in the records: a table of places, hashed by the
/// LoginId the place holds, so the LoginIds are not stored twice. Each place keeps its
/// LoginId's hash, so the table grows without hashing every LoginId again. Hashed with
/// foldhash, seeded at random like std's SipHash but several times faster: SipHash was a
/// fifth of a million-row parse.
struct SeenLogins {
    places: hashbrown::HashTable<(u64, usize)>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl SeenLogins {
    /// Room for about `rows` LoginIds, so that a large file's table does not grow (and
    /// move) a dozen times.
    fn with_capacity(rows: usize) -> Self {
        SeenLogins {
            places: hashbrown::HashTable::with_capacity(rows),
            hasher: Default::default(),
        }
    }

    fn hash(&self, login: &LoginId) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, login.as_str())
    }

    /// The place in `records` of the record of `login` (whose hash is `hash`), if one
    /// was read.
    fn place_of(&self, hash: u64, login: &LoginId, records: &[LoginRecordInput]) -> Option<usize> {
        self.places
            .find(hash, |&(h, at)| h == hash && records[at].login_id == *login)
            .map(|&(_, at)| at)
    }

    /// Notes that the record of a LoginId not yet seen (whose hash is `hash`) goes to
    /// place `at`.
    fn add(&mut self, hash: u64, at: usize) {
        self.places.insert_unique(hash, (hash, at), |&(h, _)| h);
    }
}

fn validate(
    row: &csv::StringRecord,
    cols: &Columns,
    width: usize,
) -> Result<LoginRecordInput, String> {
    if row.len() != width {
        return Err(format!(
            "expected {width} field(s) like the header, found {}",
            row.len()
        ));
    }
    if let Some((column, field)) = row
        .iter()
        .enumerate()
        .find(|(_, f)| f.chars().count() > MAX_FIELD_CHARS)
    {
        return Err(format!(
            "field {} is {} characters long, more than {MAX_FIELD_CHARS}",
            column + 1,
            field.chars().count()
        ));
    }
    let login_id =
        LoginId::parse(row.get(cols.login_id).unwrap_or_default()).map_err(|e| e.to_string())?;
    let active = match cols.active {
        Some(i) => parse_active(row.get(i).unwrap_or_default())?,
        None => true,
    };
    let tag = cols
        .tag
        .and_then(|i| row.get(i))
        .filter(|t| !t.is_empty())
        .map(check_tag)
        .transpose()?;
    let priority = cols
        .priority
        .map(|i| parse_priority(row.get(i).unwrap_or_default()))
        .transpose()?;
    Ok(LoginRecordInput {
        login_id,
        active,
        tag,
        priority,
    })
}

/// A tag is at most [`MAX_TAG_CHARS`] printable characters: no control characters and no
/// invisible formatting ones (zero-width, bidirectional overrides) that would make a tag
/// display as something it is not.
pub fn check_tag(tag: &str) -> Result<String, String> {
    let length = tag.chars().count();
    if length > MAX_TAG_CHARS {
        return Err(format!(
            "Tag is {length} characters long, more than {MAX_TAG_CHARS}"
        ));
    }
    if let Some((position, c)) = tag.chars().enumerate().find(|(_, c)| !printable(*c)) {
        return Err(format!(
            "Tag has a control or invisible character (U+{:04X}) at position {}",
            u32::from(c),
            position + 1
        ));
    }
    Ok(tag.to_string())
}

fn printable(c: char) -> bool {
    !c.is_control()
        && !matches!(c,
            '\u{00AD}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}')
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10";
    const B: &str = "6f6c2a67-1c7d-4d64-b4b5-3c3e8b4f0a21";

    fn parse(text: &str, skip_invalid: bool) -> Result<ParsedImport, ImportError> {
        parse_reader(
            Path::new("logins.csv"),
            text.as_bytes(),
            ImportOptions { skip_invalid },
        )
    }

    #[test]
    fn columns_may_come_in_any_order_and_any_case() {
        let parsed = parse(&format!("tag,ACTIVE,loginid\nvip,No,{A}\n,,{B}\n"), false).unwrap();
        assert_eq!(parsed.records.len(), 2);
        assert_eq!(parsed.records[0].tag.as_deref(), Some("vip"));
        assert!(!parsed.records[0].active);
        assert!(parsed.records[1].active);
        assert_eq!(parsed.records[1].tag, None);
    }

    #[test]
    fn active_accepts_the_usual_spellings_and_rejects_others() {
        for (raw, want) in [
            ("TRUE", true),
            ("1", true),
            ("yes", true),
            ("false", false),
            ("0", false),
            ("No", false),
        ] {
            assert_eq!(parse_active(raw), Ok(want), "{raw}");
        }
        assert!(parse_active("maybe").is_err());
    }

    #[test]
    fn priority_is_an_integer_in_range_and_empty_means_zero() {
        let parsed = parse(
            &format!("LoginId,Priority\n{A},{MAX_PRIORITY}\n{B},\n"),
            false,
        )
        .unwrap();
        assert_eq!(parsed.records[0].priority, Some(MAX_PRIORITY));
        assert_eq!(parsed.records[1].priority, Some(0));
        let without = parse(&format!("LoginId\n{A}\n"), false).unwrap();
        assert_eq!(
            without.records[0].priority, None,
            "no column: keep the current"
        );
        for bad in ["-1", "101", "1.5", "high", "256"] {
            assert!(parse_priority(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_priority_names_the_line_the_column_and_the_value() {
        let err = parse(&format!("LoginId,Priority\n{A},3\n{B},urgent\n"), false).unwrap_err();
        let ImportError::InvalidRows { errors, total, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!((*total, errors[0].line), (1, 3));
        let text = err.to_string();
        assert!(
            text.contains("line 3") && text.contains("Priority") && text.contains("\"urgent\""),
            "{text}"
        );
        assert!(text.contains("0 to 100"), "{text}");
    }

    #[test]
    fn bad_rows_are_all_listed_with_line_numbers_and_fail_the_import() {
        let err = parse(
            &format!("LoginId,Active\n{A},true\nnope,true\n{B},perhaps\n"),
            false,
        )
        .unwrap_err();
        let ImportError::InvalidRows { errors, total, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(*total, 2);
        assert_eq!(errors[0].line, 3);
        assert_eq!(errors[1].line, 4);
        let text = err.to_string();
        assert!(
            text.contains("line 3") && text.contains("line 4") && text.contains("logins.csv"),
            "{text}"
        );
    }

    #[test]
    fn skip_invalid_keeps_the_good_rows_and_lists_the_bad_ones() {
        let parsed = parse(&format!("LoginId\n{A}\nnope\n"), true).unwrap();
        assert_eq!(parsed.records.len(), 1);
        assert_eq!(parsed.skipped_total, 1);
        assert_eq!(parsed.skipped[0].line, 3);
    }

    #[test]
    fn a_duplicate_login_keeps_its_last_row_and_is_counted() {
        let parsed = parse(&format!("LoginId,Tag\n{A},first\n{B},\n{A},last\n"), false).unwrap();
        assert_eq!(parsed.records.len(), 2);
        assert_eq!(parsed.duplicates, 1);
        assert_eq!(parsed.records[0].tag.as_deref(), Some("last"));
    }

    #[test]
    fn duplicates_among_thousands_keep_first_seen_order_and_last_rows() {
        let id = |n: u32| format!("{n:08x}-0000-4000-8000-000000000000");
        let mut text = String::from("LoginId,Tag\n");
        for n in 0..5_000 {
            text.push_str(&format!("{},a{n}\n", id(n)));
        }
        // Every third login again, last first, once the table has grown many times.
        for n in (0..5_000).rev().step_by(3) {
            text.push_str(&format!("{},b{n}\n", id(n)));
        }
        let parsed = parse(&text, false).unwrap();
        assert_eq!(parsed.records.len(), 5_000);
        assert_eq!(parsed.duplicates, 1_667);
        for (n, record) in (0..5_000).zip(&parsed.records) {
            assert_eq!(record.login_id.as_str(), id(n));
            let again = (4_999 - n) % 3 == 0;
            let tag = if again {
                format!("b{n}")
            } else {
                format!("a{n}")
            };
            assert_eq!(record.tag.as_deref(), Some(tag.as_str()), "login {n}");
        }
    }

    #[test]
    fn an_empty_file_or_missing_header_is_an_error_naming_the_file() {
        let err = parse("", false).unwrap_err();
        assert!(matches!(err, ImportError::Empty { .. }) && err.to_string().contains("logins.csv"));
        let err = parse(&format!("Id,Active\n{A},true\n"), false).unwrap_err();
        assert!(matches!(err, ImportError::BadHeader { .. }), "{err}");
        assert!(err.to_string().contains("logins.csv") && err.to_string().contains("LoginId"));
    }

    #[test]
    fn a_near_miss_of_a_known_column_is_refused_and_other_columns_are_ignored() {
        let refused = |header: &str| match parse(&format!("{header}\n{A},x,1\n"), true) {
            Err(ImportError::BadHeader { reason, .. }) => reason,
            other => panic!("{header}: {other:?}"),
        };

        let actve = refused("LoginId,Actve,Priority");
        let priorty = refused("LoginId,Active,Priorty");
        let actives = refused("LoginId,Actives,Note");
        let tags = refused("LoginId,Tags,Note");
        let header = "LoginId,Email,Tax,Lag,ETag,Native,Archive,Inactive,Reactive";
        let ignored = parse(&format!("{header}\n{A},a@b.c,1,2,3,4,5,6,7\n"), false).unwrap();

        assert_eq!(
            actve,
            "column \"Actve\" looks like a misspelt Active: rename it, or remove it (other \
             columns are ignored, so its values would be lost)"
        );
        assert!(priorty.contains("\"Priorty\" looks like a misspelt Priority"));
        assert!(actives.contains("\"Actives\" looks like a misspelt Active"));
        assert!(tags.contains("\"Tags\" looks like a misspelt Tag"));
        assert_eq!(ignored.records.len(), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn a_line_longer_than_the_limit_fails_the_import_naming_the_line() {
        let long = "x".repeat(MAX_LINE_BYTES + 1);
        let err = parse(&format!("LoginId,Note\n{A},ok\n{B},{long}\n"), true).unwrap_err();
        assert!(
            matches!(err, ImportError::LineTooLong { line: 3, .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("line 3") && text.contains("logins.csv"),
            "{text}"
        );
        assert!(!text.contains("xxxx"), "{text}");
        // Inside quotes too: the limit is on physical lines, before the CSV parser.
        let err = parse(&format!("LoginId,Note\n{A},\"{long}\"\n"), true).unwrap_err();
        assert!(
            matches!(err, ImportError::LineTooLong { line: 2, .. }),
            "{err}"
        );
        // A line at the limit is fine (eight fields within MAX_FIELD_CHARS).
        let mut notes = vec!["y".repeat(MAX_FIELD_CHARS - 1); 7];
        notes.push("y".repeat(MAX_LINE_BYTES - A.len() - 7 * MAX_FIELD_CHARS - 1));
        let line = format!("{A},{}", notes.join(","));
        assert_eq!(line.len(), MAX_LINE_BYTES);
        let header = format!("LoginId{}", ",Note".repeat(8));
        assert!(parse(&format!("{header}\r\n{line}\r\n"), false).is_ok());
    }

    #[test]
    fn an_overlong_field_or_tag_makes_its_row_invalid_naming_the_line() {
        let field = "z".repeat(MAX_FIELD_CHARS + 1);
        let tag = "t".repeat(MAX_TAG_CHARS + 1);
        let err = parse(
            &format!("LoginId,Tag,Note\n{A},{tag},\n{B},ok,{field}\n"),
            false,
        )
        .unwrap_err();
        let ImportError::InvalidRows { errors, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(errors[0].line, 2);
        assert!(errors[0].reason.contains("257 characters"), "{err}");
        assert_eq!(errors[1].line, 3);
        assert!(errors[1].reason.contains("field 3"), "{err}");
        assert!(!err.to_string().contains("zzzz"), "{err}");
        let ok = "é".repeat(MAX_TAG_CHARS);
        let parsed = parse(&format!("LoginId,Tag\n{A},{ok}\n"), false).unwrap();
        assert_eq!(parsed.records[0].tag.as_deref(), Some(ok.as_str()));
    }

    #[test]
    fn a_tag_with_control_or_invisible_characters_is_rejected() {
        for bad in [
            "a\u{1b}[31mred",
            "vip\u{7}",
            "abc\u{202E}cba",
            "zero\u{200B}width",
        ] {
            let err = parse(&format!("LoginId,Tag\n{A},\"{bad}\"\n"), false).unwrap_err();
            let ImportError::InvalidRows { errors, .. } = &err else {
                panic!("{err}");
            };
            assert_eq!(errors[0].line, 2, "{bad:?}");
            assert!(errors[0].reason.contains("control or invisible"), "{err}");
        }
        let parsed = parse(&format!("LoginId,Tag\n{A},Équipe Nord #2 (VIP)\n"), false).unwrap();
        assert_eq!(
            parsed.records[0].tag.as_deref(),
            Some("Équipe Nord #2 (VIP)")
        );
    }
}
