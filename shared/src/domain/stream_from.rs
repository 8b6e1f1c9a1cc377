//! Where a read of a Redis stream starts (`events read --from`, `results read --from`),
//! checked before Redis sees it: Redis answers a malformed id with a bare "Invalid stream
//! ID" that names neither the flag nor the value.

/// `raw` when it is a stream position a read takes: `-` (the oldest entry), or an entry id
/// `MS` or `MS-SEQ` (decimal), optionally after `(` (after that entry, as the next page's
/// `--from` is printed). Otherwise what is wrong with it.
pub fn parse_stream_from(raw: &str) -> Result<String, String> {
    if raw == "-" {
        return Ok(raw.to_string());
    }
    let id = raw.strip_prefix('(').unwrap_or(raw);
    // Digits only (`parse` alone takes a `+`), and within u64 (`parse` refuses "" too).
    let number =
        |part: &str| part.bytes().all(|b| b.is_ascii_digit()) && part.parse::<u64>().is_ok();
    let valid = match id.split_once('-') {
        Some((ms, seq)) => number(ms) && number(seq),
        None => number(id),
    };
    if valid {
        Ok(raw.to_string())
    } else {
        Err(format!(
            "{:?} is not a stream position: give `-` (the oldest), an entry id such as \
             1764800000000-0, or `(` and an id for the entries after it",
            raw
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_is_the_oldest_or_an_entry_id_optionally_exclusive() {
        for ok in [
            "-",
            "0",
            "1764800000000",
            "1764800000000-0",
            "(1764800000000-12",
        ] {
            assert_eq!(parse_stream_from(ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in [
            "garbage",
            "",
            "(",
            "12-",
            "-3",
            "1-2-3",
            "+",
            "1.5",
            "99999999999999999999999",
        ] {
            assert!(parse_stream_from(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_stream_from("garbage").unwrap_err(),
            "\"garbage\" is not a stream position: give `-` (the oldest), an entry id such as \
             1764800000000-0, or `(` and an id for the entries after it"
        );
    }
}
