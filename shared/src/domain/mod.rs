//! Newtypes at the boundary: values that arrive as strings (from a CSV, a job payload or
//! Flinks) are parsed once into types that cannot hold an invalid or leaked state.

mod flinks_code;
mod login_id;
mod request_id;
mod routine_day;
mod stream_from;

pub use flinks_code::FlinksCode;
pub use login_id::{Fingerprint, LoginId, LoginIdError, MIN_FINGERPRINT_HEX_LEN};
pub use request_id::RequestId;
pub use routine_day::{RoutineDay, RoutineDayError};
pub use stream_from::parse_stream_from;

/// The most bytes of any text Flinks sends (`Message`, `FlinksCode`, `RequestId`) that is
/// kept: enough for every real answer, small enough that a hostile or broken one cannot
/// grow Redis or a log line.
pub const MAX_FLINKS_TEXT_BYTES: usize = 1024;

/// `text` cut to at most `max_bytes` bytes, on a character boundary.
pub fn cap_text(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `text` with every control character written as an escape (`\u{1b}`, `\n`), so text
/// that came from outside (a tag, a reason, a Flinks message) can never move a terminal's
/// cursor or forge a line when printed.
pub fn escape_control(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{cap_text, escape_control};

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape_control("red\u{1b}[31m"), "red\\u{1b}[31m");
        assert_eq!(escape_control("two\nlines\ttab"), "two\\nlines\\ttab");
        assert_eq!(escape_control("café ✓"), "café ✓");
    }

    #[test]
    fn cap_text_cuts_on_a_character_boundary() {
        assert_eq!(cap_text("abc", 10), "abc");
        assert_eq!(cap_text("abcdef", 3), "abc");
        // "é" is two bytes: a cut in its middle backs off to before it.
        assert_eq!(cap_text("aé", 2), "a");
    }
}
