//! The Lua scripts, loaded once: each is `common.lua` (key names and helpers) followed by the
//! script's own file. `redis::Script` runs them by SHA and loads them on `NOSCRIPT`.
//!
//! A script's top-level `local function`s are made anew on every call (a closure each,
//! about 80 ns of Redis' CPU), so each script carries only the helpers of `common.lua` it
//! calls, directly or through another helper: the acks run on every job, and most helpers
//! serve the rarer scripts.

use std::collections::HashSet;
use std::sync::LazyLock;

use redis::Script;

const COMMON: &str = include_str!("../lua/queue/common.lua");

fn load(body: &str) -> Script {
    Script::new(&format!("{}\n{body}", prelude_for(body)))
}

/// One piece of `common.lua`: a helper (`local function <name>` up to its closing `end`
/// at the start of a line, with the comment lines right above it), or anything else, which
/// every script keeps.
struct Piece<'a> {
    helper: Option<&'a str>,
    text: String,
}

/// The helper a line of `common.lua` starts, if it starts one: `local function <name>(`.
fn helper_name(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("local function ")?;
    Some(rest.split('(').next().unwrap_or(rest).trim())
}

fn pieces(common: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut kept = String::new();
    let mut comments = String::new();
    let mut helper: Option<Piece<'_>> = None;
    for line in common.lines() {
        if let Some(piece) = helper.as_mut() {
            piece.text.push_str(line);
            piece.text.push('\n');
            if line == "end" {
                out.extend(helper.take());
            }
            continue;
        }
        if let Some(name) = helper_name(line) {
            if !kept.is_empty() {
                out.push(Piece {
                    helper: None,
                    text: std::mem::take(&mut kept),
                });
            }
            let mut text = std::mem::take(&mut comments);
            text.push_str(line);
            text.push('\n');
            helper = Some(Piece {
                helper: Some(name),
                text,
            });
        } else if line.starts_with("--") {
            comments.push_str(line);
            comments.push('\n');
        } else {
            kept.push_str(&std::mem::take(&mut comments));
            kept.push_str(line);
            kept.push('\n');
        }
    }
    // A helper without its closing `end` is kept whole: Lua reports it when the script loads.
    kept.push_str(&comments);
    out.extend(helper.map(|piece| Piece {
        helper: None,
        text: piece.text,
    }));
    out.push(Piece {
        helper: None,
        text: kept,
    });
    out
}

/// Whether `text` names `name` as a whole word (comments count: a helper named only in
/// one is kept, which costs a closure and breaks nothing).
fn mentions(text: &str, name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(name).any(|(at, _)| {
        !text[..at].chars().next_back().is_some_and(word)
            && !text[at + name.len()..].chars().next().is_some_and(word)
    })
}

/// `common.lua` with only the helpers `body` and the rest of `common.lua` need, in their
/// order.
fn prelude_for(body: &str) -> String {
    let pieces = pieces(COMMON);
    let mut needed: Vec<&str> = pieces
        .iter()
        .filter(|piece| piece.helper.is_none())
        .map(|piece| piece.text.as_str())
        .chain([body])
        .collect();
    let mut kept: HashSet<usize> = HashSet::new();
    loop {
        let before = kept.len();
        for (i, piece) in pieces.iter().enumerate() {
            if let Some(name) = piece.helper {
                if !kept.contains(&i) && needed.iter().any(|text| mentions(text, name)) {
                    kept.insert(i);
                    needed.push(&piece.text);
                }
            }
        }
        if kept.len() == before {
            break;
        }
    }
    pieces
        .iter()
        .enumerate()
        .filter(|(i, piece)| piece.helper.is_none() || kept.contains(i))
        .map(|(_, piece)| piece.text.as_str())
        .collect()
}

pub(crate) static ENQUEUE: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/enqueue.lua")));
pub(crate) static FETCH: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/fetch.lua")));
pub(crate) static ACK: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/ack.lua")));
pub(crate) static FAIL: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/fail.lua")));
pub(crate) static RENEW: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/renew.lua")));
pub(crate) static REAP: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/reap.lua")));
pub(crate) static PROMOTE: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/promote.lua")));
pub(crate) static RELEASE: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/release.lua")));
pub(crate) static REQUEUE_DEAD: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/requeue_dead.lua")));
pub(crate) static PURGE_DEAD: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/purge_dead.lua")));
pub(crate) static REVIEW_DEAD: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/review_dead.lua")));
pub(crate) static DROP_DEAD: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/drop_dead.lua")));
pub(crate) static DELETE_JOB: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/delete_job.lua")));
pub(crate) static PROMOTE_JOB: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/promote_job.lua")));
const ACK_FETCH_BODY: &str = include_str!("../lua/queue/ack_fetch.lua");
pub(crate) static ACK_FETCH: LazyLock<Script> =
    LazyLock::new(|| load(&format!("local ack_write = nil\n{ACK_FETCH_BODY}")));
pub(crate) static FORGET_SUPERSEDED: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/forget_superseded.lua")));
pub(crate) static MIGRATE: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/migrate.lua")));
pub(crate) static MIGRATE_PENDING: LazyLock<Script> =
    LazyLock::new(|| load(include_str!("../lua/queue/migrate_pending.lua")));

/// `ack_fetch.lua` with a write of another module attached (see [`super::AckWrite`]): the
/// write's Lua source becomes the body of a function `ack_write(KEYS, ARGV)` called with
/// its own keys and arguments, so a script written to be called on its own (reading
/// `KEYS[1]`, `ARGV[1]`, ending in `return`) runs unchanged inside the ack's call, as long
/// as it uses neither `...` nor a `#!lua` flags line. Like any script it should check its
/// input before its first write: Redis keeps what a script wrote before an error. Build
/// one per kind of write, once (a `LazyLock`): each is a script of its own in Redis.
pub struct AckWriteScript(pub(crate) Script);

impl AckWriteScript {
    /// The ack script with `write_source` attached.
    pub fn new(write_source: &str) -> Self {
        Self(load(&format!(
            "local function ack_write(KEYS, ARGV)\n{write_source}\nend\n{ACK_FETCH_BODY}"
        )))
    }
}

impl std::fmt::Debug for AckWriteScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AckWriteScript")
            .field(&self.0.get_hash())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helpers(prelude: &str) -> Vec<&str> {
        prelude.lines().filter_map(helper_name).collect()
    }

    #[test]
    fn common_lua_splits_into_pieces_that_add_up_to_it() {
        let pieces = pieces(COMMON);
        let whole: String = pieces.iter().map(|piece| piece.text.as_str()).collect();
        assert_eq!(whole, COMMON);
        let named: Vec<&str> = pieces.iter().filter_map(|piece| piece.helper).collect();
        assert_eq!(named, helpers(COMMON));
        for piece in pieces.iter().filter(|piece| piece.helper.is_some()) {
            assert!(piece.text.ends_with("\nend\n"), "{}", piece.text);
        }
    }

    #[test]
    fn a_script_carries_the_helpers_it_calls_and_theirs_only() {
        let prelude = prelude_for("return finish(ARGV[1], ARGV[2], 0, KEYS[9])");
        assert_eq!(
            helpers(&prelude),
            [
                "job_prefix",
                "job_key",
                "lease_entry",
                "now_ms",
                "forget",
                "int",
                // Named in bump's comment: kept, which is harmless.
                "counter",
                "digits",
                "bump",
                "attempts_of",
                "finish"
            ]
        );
        // What every script keeps: the key names and field names.
        assert!(prelude.contains("local K_PENDING, K_SUPERSEDED = KEYS[7], KEYS[8]"));
        assert!(prelude.contains("local JOB_PREFIX = job_prefix(K_READY)"));
    }

    #[test]
    fn a_helper_is_named_by_whole_words_only() {
        assert!(mentions("x = lease_entry(id, t)", "lease_entry"));
        assert!(!mentions("x = lease_entry_of(id)", "lease_entry"));
        assert!(!mentions("x = my_bump(1)", "bump"));
        assert!(mentions("bump", "bump"));
    }

    #[test]
    fn the_ack_carries_fewer_helpers_than_common_lua_has() {
        let ack = prelude_for(ACK_FETCH_BODY);
        let kept = helpers(&ack);
        assert!(kept.contains(&"lease_ready") && kept.contains(&"read_into"));
        assert!(!kept.contains(&"bury") && !kept.contains(&"each_lease"));
    }
}
