//! How an operator command ends: the two failures that are not a store's (a usage error,
//! a partial failure of a bulk operation), the exit code an error chain maps to, and the
//! one way an error is printed. The command line prints what this decides.
//!
//! Exit codes: 0 success, 2 usage or validation error (bad arguments, bad configuration,
//! invalid CSV, invalid LoginId, unknown job), 1 runtime failure (Redis unreachable, ...),
//! 3 partial failure of a bulk operation (some items failed).

use std::error::Error;

/// An error the user fixes by changing the command line (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Some items of a bulk operation failed (exit code 3); each result was printed.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} failed")]
pub struct PartialFailure {
    /// Items that failed.
    pub failed: usize,
    /// Items attempted.
    pub total: usize,
}

/// `Err(PartialFailure)` when some of `total` items failed.
pub fn partial(failed: usize, total: usize) -> Result<(), PartialFailure> {
    if failed > 0 {
        return Err(PartialFailure { failed, total });
    }
    Ok(())
}

/// True when `cause` is the user's to fix: bad arguments, configuration, CSV, LoginId,
/// or an ops input (a bad id, cursor or date).
fn is_usage(cause: &(dyn Error + 'static)) -> bool {
    cause.is::<UsageError>()
        || cause.is::<crate::config::ConfigError>()
        || cause.is::<crate::import::ImportError>()
        || cause.is::<crate::domain::LoginIdError>()
        || cause
            .downcast_ref::<super::OpsError>()
            .is_some_and(super::OpsError::is_usage)
        || cause
            .downcast_ref::<crate::routine::RoutineError>()
            .is_some_and(crate::routine::RoutineError::is_usage)
        || cause
            .downcast_ref::<crate::layout::LayoutError>()
            .is_some_and(crate::layout::LayoutError::is_usage)
}

/// The exit code of an error, given its chain (the error, then each cause): 3 partial
/// failure, 2 the user's to fix, 1 anything else.
pub fn exit_code<'a>(chain: impl IntoIterator<Item = &'a (dyn Error + 'static)> + Clone) -> u8 {
    if chain.clone().into_iter().any(|c| c.is::<PartialFailure>()) {
        3
    } else if chain.into_iter().any(is_usage) {
        2
    } else {
        1
    }
}

/// `error: <message>` followed by one `  caused by: <cause>` line per cause, skipping causes
/// whose text the line above already contains. `chain` is the error's message, then each
/// cause's.
pub fn render_error(chain: impl IntoIterator<Item = String>) -> String {
    let mut chain = chain.into_iter();
    let mut previous = chain.next().unwrap_or_default();
    let mut out = format!("error: {previous}");
    for text in chain {
        if !previous.contains(&text) {
            out.push_str(&format!("\n  caused by: {text}"));
        }
        previous = text;
    }
    out
}

/// The JSON an error is printed as with `--json`: `{"error", "causes", "exit_code"}`.
pub fn error_json(chain: impl IntoIterator<Item = String>, exit_code: u8) -> serde_json::Value {
    let mut chain = chain.into_iter();
    let error = chain.next().unwrap_or_default();
    let causes: Vec<String> = chain.collect();
    serde_json::json!({ "error": error, "causes": causes, "exit_code": exit_code })
}

/// Makes a closed standard output (`producer logins list | head`) end the process quietly
/// with exit code 0, as Unix tools do, instead of a panic and a backtrace: `println!`
/// panics on a broken pipe, and the panic hook is the one safe place to catch every one.
pub fn exit_quietly_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = (payload.downcast_ref::<String>().map(String::as_str))
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_failure_wins_over_a_usage_error_and_anything_else_is_1() {
        let partial = PartialFailure {
            failed: 1,
            total: 2,
        };
        let usage = UsageError("bad".into());
        let other = std::io::Error::other("down");
        let chain: [&(dyn Error + 'static); 2] = [&usage, &partial];
        assert_eq!(exit_code(chain), 3);
        assert_eq!(exit_code([&usage as &(dyn Error + 'static)]), 2);
        assert_eq!(exit_code([&other as &(dyn Error + 'static)]), 1);
    }

    #[test]
    fn a_cause_already_in_the_line_above_is_not_repeated() {
        let chain = [
            "reading: Redis unreachable at x: refused",
            "refused",
            "deeper",
        ];
        let text = render_error(chain.map(String::from));
        assert_eq!(
            text,
            "error: reading: Redis unreachable at x: refused\n  caused by: deeper"
        );
        let json = error_json(chain.map(String::from), 1);
        assert_eq!(json["causes"].as_array().map(Vec::len), Some(2));
    }
}
