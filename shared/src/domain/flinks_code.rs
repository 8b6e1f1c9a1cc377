//! `FlinksCode`: the machine-readable reason Flinks gives with a non-200 answer.
//!
//! Known codes (contract §5) are variants; anything else is kept verbatim in
//! [`FlinksCode::Other`] so nothing is lost, but maps to the `other` metric label so an
//! unexpected code can never blow up label cardinality. How a code is *handled* depends
//! on the HTTP status too; that decision lives in `flinks::classify`, not here.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

impl PartialEq for FlinksCode {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (FlinksCode::Other(a), FlinksCode::Other(b)) => a.eq_ignore_ascii_case(b),
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl Eq for FlinksCode {}

impl std::hash::Hash for FlinksCode {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        if let FlinksCode::Other(raw) = self {
            raw.to_ascii_uppercase().hash(state);
        }
    }
}

macro_rules! flinks_codes {
    ($($variant:ident => $wire:literal),+ $(,)?) => {
        /// A FlinksCode from an API response. Codes compare without regard to ASCII case
        /// (an unknown code keeps the spelling Flinks sent).
        #[derive(Clone)]
        pub enum FlinksCode {
            $(
                #[doc = concat!("`", $wire, "`")]
                $variant,
            )+
            /// A code this version does not know, kept verbatim (trimmed).
            Other(String),
        }

        impl FlinksCode {
            /// Every known code, in contract order (for tests, docs and zeroed metrics).
            pub const KNOWN: &'static [FlinksCode] = &[$(FlinksCode::$variant),+];

            /// Parses a code as sent by Flinks; unknown codes become [`FlinksCode::Other`].
            pub fn parse(raw: &str) -> Self {
                let upper = raw.trim().to_ascii_uppercase();
                match upper.as_str() {
                    $($wire => FlinksCode::$variant,)+
                    _ => FlinksCode::Other(raw.trim().to_owned()),
                }
            }

            /// The code as Flinks spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $(FlinksCode::$variant => $wire,)+
                    FlinksCode::Other(raw) => raw,
                }
            }

            /// True for a code of the contract's table, false for [`FlinksCode::Other`].
            pub fn is_known(&self) -> bool {
                !matches!(self, FlinksCode::Other(_))
            }

            /// A bounded metric label: the code for known ones, `other` otherwise.
            pub fn as_label(&self) -> &'static str {
                match self {
                    $(FlinksCode::$variant => $wire,)+
                    FlinksCode::Other(_) => "other",
                }
            }
        }
    };
}

flinks_codes! {
    Ok => "OK",
    Created => "CREATED",
    OperationPending => "OPERATION_PENDING",
    OperationDispatched => "OPERATION_DISPATCHED",
    SessionNonexistent => "SESSION_NONEXISTENT",
    SessionExpired => "SESSION_EXPIRED",
    CardInUse => "CARD_IN_USE",
    InvalidRequest => "INVALID_REQUEST",
    AccessDenied => "ACCESS_DENIED",
    InvalidLogin => "INVALID_LOGIN",
    InvalidUsername => "INVALID_USERNAME",
    InvalidPassword => "INVALID_PASSWORD",
    InvalidSecurityResponse => "INVALID_SECURITY_RESPONSE",
    InvalidSecurityResponseNoRetry => "INVALID_SECURITY_RESPONSE_NO_RETRY",
    QuestionNotFound => "QUESTION_NOT_FOUND",
    UnknownChallengeKey => "UNKNOWN_CHALLENGE_KEY",
    SecurityResponsesIncomplete => "SECURITYRESPONSES_INCOMPLETE",
    NewAccount => "NEW_ACCOUNT",
    DisabledLogin => "DISABLED_LOGIN",
    Unauthorized => "UNAUTHORIZED",
    RetryLater => "RETRY_LATER",
    BankMaintenanceRetryLater => "BANK_MAINTENANCE_RETRY_LATER",
    ConcurrentSession => "CONCURRENT_SESSION",
    TooManyRequests => "TOO_MANY_REQUESTS",
    DisabledInstitution => "DISABLED_INSTITUTION",
    AggregationError => "AGGREGATION_ERROR",
    AlreadyAuthorized => "ALREADY_AUTHORIZED",
    NoTransaction => "NO_TRANSACTION",
    MethodNotAvailable => "METHOD_NOT_AVAILABLE",
}

impl fmt::Debug for FlinksCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for FlinksCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FlinksCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FlinksCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Ok(FlinksCode::parse(&raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_code_round_trips_through_its_wire_spelling() {
        for code in FlinksCode::KNOWN {
            assert_eq!(&FlinksCode::parse(code.as_str()), code);
            assert_eq!(code.as_label(), code.as_str());
        }
    }

    #[test]
    fn unknown_codes_are_kept_verbatim_but_labelled_other() {
        let code = FlinksCode::parse(" Brand_New_Code ");
        assert_eq!(code.as_str(), "Brand_New_Code");
        assert_eq!(code, FlinksCode::parse("BRAND_NEW_CODE"));
        assert_ne!(code, FlinksCode::parse("OTHER_CODE"));
        assert_eq!(code.as_label(), "other");
    }

    #[test]
    fn serde_uses_the_wire_spelling() {
        let code: FlinksCode = serde_json::from_str("\"QUESTION_NOT_FOUND\"").unwrap();
        assert_eq!(code, FlinksCode::QuestionNotFound);
        assert_eq!(
            serde_json::to_string(&code).unwrap(),
            "\"QUESTION_NOT_FOUND\""
        );
    }
}
