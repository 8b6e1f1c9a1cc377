//! Wire types of the Flinks API (contract §2–§4): PascalCase JSON, every nullable field an
//! `Option` (or an empty `Vec` for a null list), unknown fields ignored.
//!
//! A GetAccountsDetail answer's `Accounts` stays JSON, never typed: the routine stores it
//! and reads nothing inside, so an account field in an unexpected shape cannot fail a
//! usable answer, and amounts keep the exact digits Flinks sent (the workspace enables
//! serde_json's `arbitrary_precision`; nothing goes through `f64`). `LastRefresh` is naive
//! UTC with up to 7 fractional digits. Types that hold account or login data have
//! hand-written `Debug` impls that print none of it, so a stray `?detail` in a log line
//! leaks nothing. This file does no I/O.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDateTime};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::domain::{cap_text, FlinksCode, LoginId, RequestId, MAX_FLINKS_TEXT_BYTES};

// ---------------------------------------------------------------------------------------
// Lenient field parsers.

/// Parses a Flinks timestamp: naive UTC with 0–9 fractional digits
/// (`2018-10-23T05:36:07.6121953`, `0001-01-01T00:00:00`). An explicit offset or `Z`, which
/// the contract says never comes, is tolerated and converted to UTC.
pub fn parse_flinks_timestamp(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    parse_plain_timestamp(text).or_else(|| parse_with_format_strings(text))
}

/// The shape every Flinks timestamp has, `YYYY-MM-DDTHH:MM:SS` with `.` and 1 to 9
/// fraction digits or none (a space for the `T` too), read without interpreting a format
/// string: this runs for every answer. `None` for any other text, a leap second
/// included, which [`parse_with_format_strings`] then reads as it always did, so both
/// give the same answer for every text (a test compares them).
fn parse_plain_timestamp(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    let shape = b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b' ')
        && b[13] == b':'
        && b[16] == b':';
    if !shape {
        return None;
    }
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |value, &c| {
            c.is_ascii_digit().then(|| value * 10 + u32::from(c - b'0'))
        })
    };
    let nano = match &b[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            number(digits)? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let second = number(&b[17..19])?;
    if second > 59 {
        return None;
    }
    let year = i32::try_from(number(&b[0..4])?).ok()?;
    chrono::NaiveDate::from_ymd_opt(year, number(&b[5..7])?, number(&b[8..10])?)?.and_hms_nano_opt(
        number(&b[11..13])?,
        number(&b[14..16])?,
        second,
        nano,
    )
}

/// The parsers of chrono that [`parse_flinks_timestamp`] falls back on: its format strings
/// (`T` or a space), then RFC 3339.
fn parse_with_format_strings(text: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()
        .or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|dt| dt.naive_utc())
        })
}

/// `at` as `%Y-%m-%dT%H:%M:%S%.f` (`2018-10-23T05:36:07.612`), the text a stored
/// LastRefresh keeps and [`parse_flinks_timestamp`] reads back. Written without parsing
/// a format string on every stored refresh: chrono's `Debug` of a `NaiveDateTime` is that
/// text, which a test pins.
pub fn format_flinks_timestamp(at: NaiveDateTime) -> String {
    format!("{at:?}")
}

fn timestamp_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDateTime>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Ok(None),
        Some(text) => parse_flinks_timestamp(&text)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid Flinks timestamp {text:?}"))),
    }
}

/// `null` or absent → `T::default()` (Flinks sends `null` for empty lists).
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A LoginId that may be malformed on the wire: kept when valid, `None` otherwise.
fn login_id_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<LoginId>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.and_then(|raw| LoginId::parse(&raw).ok()))
}

/// A FlinksCode that may be `null` or empty.
fn code_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<FlinksCode>, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .filter(|raw| !raw.trim().is_empty())
        .map(|raw| FlinksCode::parse(cap_text(&raw, MAX_FLINKS_TEXT_BYTES))))
}

/// A RequestId that may be `null` or empty.
fn request_id_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RequestId>, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .filter(|raw| !raw.trim().is_empty())
        .map(|raw| RequestId::new(cap_text(&raw, MAX_FLINKS_TEXT_BYTES))))
}

/// An open string that may be `null`, cut to [`MAX_FLINKS_TEXT_BYTES`]: it ends up in Redis
/// and on the operator's terminal.
fn capped_text_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .map(|raw| cap_text(&raw, MAX_FLINKS_TEXT_BYTES).to_owned()))
}

/// A string-or-number field (e.g. `InstitutionId`) kept as text.
fn text_or_number_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(text)) => Some(text),
        Some(serde_json::Value::Number(number)) => Some(number.to_string()),
        Some(other) => Some(other.to_string()),
    })
}

// ---------------------------------------------------------------------------------------
// Every answer: the fields of the standard error body, read from any JSON object.

/// The fields every Flinks answer may carry (the standard error body, contract §2).
/// Read leniently from any JSON object, success bodies included: keys match in any case,
/// a field of an unexpected type is ignored rather than failing the whole envelope, and
/// every text is cut to [`MAX_FLINKS_TEXT_BYTES`] so a hostile answer cannot grow Redis
/// or a log line.
#[derive(Debug, Default)]
pub(crate) struct Envelope {
    /// The body was a JSON object (an envelope at all, as opposed to HTML, a bare string
    /// or nothing).
    pub(crate) is_object: bool,
    /// The body's own `HttpStatusCode`, when it is a plausible HTTP status.
    pub(crate) http_status_code: Option<u16>,
    pub(crate) flinks_code: Option<FlinksCode>,
    pub(crate) message: Option<String>,
    pub(crate) request_id: Option<RequestId>,
}

impl Envelope {
    /// Reads the envelope of a body parsed as JSON; a body that is not a JSON object (or
    /// not JSON: `None`) gives an empty one.
    pub(crate) fn of(body: Option<&serde_json::Value>) -> Self {
        let Some(serde_json::Value::Object(map)) = body else {
            return Self::default();
        };
        let field = |name: &str| {
            map.iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value)
        };
        let text = |name: &str| match field(name)? {
            serde_json::Value::String(s) if !s.trim().is_empty() => {
                Some(cap_text(s, MAX_FLINKS_TEXT_BYTES).to_owned())
            }
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let http_status_code = match field("HttpStatusCode") {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| (100..=599).contains(n));
        Self {
            is_object: true,
            http_status_code,
            flinks_code: text("FlinksCode").map(|raw| FlinksCode::parse(&raw)),
            message: text("Message"),
            request_id: text("RequestId").map(RequestId::new),
        }
    }
}

// ---------------------------------------------------------------------------------------
// GenerateAuthorizeToken

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AuthorizeTokenBody {
    #[serde(default)]
    pub(crate) token: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Authorize

/// The `Login` object of Authorize and GetAccountsDetail answers.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct LoginInfo {
    /// The LoginId (`Id`), when present and well-formed.
    #[serde(rename = "Id", deserialize_with = "login_id_opt")]
    pub id: Option<LoginId>,
    /// The bank username. Sensitive: never log it (`Debug` hides it).
    #[serde(deserialize_with = "null_default")]
    pub username: Option<String>,
    /// Whether nightly refresh is enabled for this card.
    #[serde(deserialize_with = "null_default")]
    pub is_scheduled_refresh: Option<bool>,
    /// The last refresh, naive UTC. `0001-01-01T00:00:00` means never refreshed; see
    /// [`LoginInfo::last_refresh_known`].
    #[serde(deserialize_with = "timestamp_opt")]
    pub last_refresh: Option<NaiveDateTime>,
    /// `Personal` or `Business` (open string; newer field).
    #[serde(rename = "Type", deserialize_with = "null_default")]
    pub login_type: Option<String>,
}

impl LoginInfo {
    /// `last_refresh`, with the `0001-01-01` "never refreshed" sentinel as `None`.
    pub fn last_refresh_known(&self) -> Option<NaiveDateTime> {
        self.last_refresh.filter(|at| at.year() > 1)
    }
}

impl fmt::Debug for LoginInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginInfo")
            .field("id", &self.id)
            .field("username", &self.username.as_ref().map(|_| "<redacted>"))
            .field("is_scheduled_refresh", &self.is_scheduled_refresh)
            .field("last_refresh", &self.last_refresh)
            .field("login_type", &self.login_type)
            .finish()
    }
}

/// The institution fields shared by Authorize and GetAccountsDetail answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Institution {
    /// `Institution` (legacy name, e.g. `FlinksCapital`).
    pub name_legacy: Option<String>,
    /// `InstitutionName` (newer field).
    pub name: Option<String>,
    /// `InstitutionId` (a number in the docs; kept as text).
    pub id: Option<String>,
}

impl Institution {
    pub(crate) fn new(legacy: Option<String>, name: Option<String>, id: Option<String>) -> Self {
        Self {
            name_legacy: legacy,
            name,
            id,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AuthorizeBody {
    #[serde(default, deserialize_with = "request_id_opt")]
    pub(crate) request_id: Option<RequestId>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) login: LoginInfo,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) institution: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) institution_name: Option<String>,
    #[serde(default, deserialize_with = "text_or_number_opt")]
    pub(crate) institution_id: Option<String>,
}

/// A successful cached Authorize: a session is open.
///
/// A 200 only means that; compare `login.last_refresh` with today to know whether the
/// nightly refresh actually happened (contract §2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizeOk {
    /// The session id for GetAccountsDetail: use it within 8 minutes, never across runs.
    pub request_id: RequestId,
    /// The `Login` object.
    pub login: LoginInfo,
    /// The institution fields.
    pub institution: Institution,
}

/// What a cached Authorize answered when it did not fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthorizeOutcome {
    /// 200: a session is open.
    Authorized(AuthorizeOk),
    /// 202 `OPERATION_PENDING` / `OPERATION_DISPATCHED` with a RequestId: the refresh is
    /// still running at Flinks; poll `GET /GetAccountsDetailAsync/{request_id}` (contract
    /// §3, async flow) instead of authorizing again.
    Pending {
        /// The RequestId to poll with.
        request_id: RequestId,
        /// The code Flinks gave, if any.
        code: Option<FlinksCode>,
    },
}

// ---------------------------------------------------------------------------------------
// GetAccountsDetail

/// The fields of a GetAccountsDetail body the routine reads, besides `Accounts` (which is
/// kept as JSON, never typed: the routine stores it and reads nothing in it, so a field
/// Flinks sends in an unexpected shape cannot turn a usable answer into a failure).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AccountsDetailBody {
    #[serde(default, deserialize_with = "request_id_opt")]
    pub(crate) request_id: Option<RequestId>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) login: Option<DetailLogin>,
}

/// The one field of a detail answer's `Login` the routine reads.
#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct DetailLogin {
    #[serde(deserialize_with = "timestamp_opt")]
    pub(crate) last_refresh: Option<NaiveDateTime>,
}

impl AccountsDetailBody {
    /// Reads a 200 body already parsed as JSON but for its `Accounts` field, which the
    /// client's parse keeps as text (`accounts`; an empty array when absent): the rest is
    /// decoded into the fields the routine reads. `None` when the body is not an object or
    /// a read field is malformed.
    pub(crate) fn decode(
        body: serde_json::Value,
        accounts: Option<Box<RawValue>>,
        asked: &RequestId,
    ) -> Option<AccountsDetail> {
        if !body.is_object() {
            return None;
        }
        let accounts = match accounts {
            Some(text) => text,
            None => RawValue::from_string("[]".to_owned()).ok()?,
        };
        let body: Self = serde_json::from_value(body).ok()?;
        Some(AccountsDetail {
            request_id: body.request_id.unwrap_or_else(|| asked.clone()),
            last_refresh: body
                .login
                .and_then(|login| login.last_refresh)
                .filter(|at| at.year() > 1),
            accounts,
        })
    }
}

/// A 200 GetAccountsDetail answer: what the routine reads, and the accounts to store.
#[derive(Clone)]
pub struct AccountsDetail {
    /// The RequestId of the answer (or the one asked for, if the body has none).
    pub request_id: RequestId,
    /// `Login.LastRefresh`, with the `0001-01-01` "never refreshed" sentinel as `None`.
    pub last_refresh: Option<NaiveDateTime>,
    /// The `Accounts` field exactly as Flinks sent it, as JSON text (amounts keep their
    /// digits). Account data: never log it.
    pub accounts: Box<RawValue>,
}

impl PartialEq for AccountsDetail {
    fn eq(&self, other: &Self) -> bool {
        self.request_id == other.request_id
            && self.last_refresh == other.last_refresh
            && self.accounts.get() == other.accounts.get()
    }
}

impl Eq for AccountsDetail {}

impl fmt::Debug for AccountsDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountsDetail")
            .field("request_id", &self.request_id)
            .field("last_refresh", &self.last_refresh)
            .field("accounts_bytes", &self.accounts.get().len())
            .finish()
    }
}

/// What GetAccountsDetail(+Async) answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DetailOutcome {
    /// 200: the data.
    Ready(Box<AccountsDetail>),
    /// 202 `OPERATION_PENDING` / `OPERATION_DISPATCHED`: poll
    /// `GET /GetAccountsDetailAsync/{request_id}` (every 10 s, at most 30 min).
    Pending {
        /// The RequestId to poll with.
        request_id: RequestId,
        /// The code Flinks gave, if any.
        code: Option<FlinksCode>,
    },
}

// ---------------------------------------------------------------------------------------
// GetNightlyRefreshStatus

/// A card with nightly refresh enabled that is no longer eligible: the user must relink.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct IneligibleCard {
    /// The LoginId (`None` if Flinks sent something that is not a LoginId).
    #[serde(deserialize_with = "login_id_opt")]
    pub login_id: Option<LoginId>,
    /// Last refresh attempt, naive UTC.
    #[serde(deserialize_with = "timestamp_opt")]
    pub last_refresh_date: Option<NaiveDateTime>,
    /// e.g. `AnsweringSecurityChallenge` (open string, at most [`MAX_FLINKS_TEXT_BYTES`]).
    #[serde(deserialize_with = "capped_text_opt")]
    pub last_refresh_state: Option<String>,
    /// The error of the last refresh, if any.
    #[serde(deserialize_with = "code_opt")]
    pub last_refresh_error_code: Option<FlinksCode>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct NightlyRefreshStatusBody {
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) ineligible_cards: Vec<IneligibleCard>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTHORIZE_200: &str = r#"{
      "HttpStatusCode": 200,
      "Links": [
        {"rel": "AccountsDetail",  "href": "/GetAccountsDetail",  "example": null},
        {"rel": "AccountsSummary", "href": "/GetAccountsSummary", "example": null},
        {"rel": "Statements",      "href": "/GetStatements",      "example": null}
      ],
      "InstitutionName": "FlinksCapital",
      "Login": {
        "Username": "Greatday",
        "IsScheduledRefresh": true,
        "LastRefresh": "2018-10-23T05:36:07.6121953",
        "Type": "Personal",
        "Id": "5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10"
      },
      "InstitutionId": 14,
      "Institution": "FlinksCapital",
      "RequestId": "0a1b2c3d-0000-4000-8000-000000000001"
    }"#;

    const DETAIL_200: &str = r#"{
      "HttpStatusCode": 200,
      "Accounts": [{
        "Transactions": [{"Date":"2025-01-31","Code":null,"Description":"PAYROLL","Debit":null,
                          "Credit":1500.25,"Balance":5105.6,"Id":"t-1"},
                         {"Date":"2025/01/30","Code":null,"Description":"COFFEE","Debit":0.1,
                          "Credit":null,"Balance":3605.35000000000000000001,"Id":"t-2"}],
        "TransitNumber": "12347", "InstitutionNumber": "777", "OverdraftLimit": 100.5,
        "Title": "Chequing Account", "AccountNumber": "7641238", "LastFourDigits": null,
        "Balance": {"Available": 5405.5, "Current": 5105.5, "Limit": null},
        "Category": "Operations", "Type": "Chequing", "Currency": "CAD",
        "Holder": {"Name":"Testing","Address":{"CivicAddress":"25 york street","City":"TOR","Province":"ON",
                   "PostalCode":"M5J 2V5","POBox":null,"Country":"CA"},
                   "Email":"x@y.com","PhoneNumber":"9051234567"},
        "AccountType": null,
        "Id": "acc-1"
      }, {"Id": "acc-2", "Transactions": null, "Balance": null, "Holder": null, "Title": null}],
      "InstitutionName": "FlinksCapital",
      "Login": {"Username":"x","IsScheduledRefresh":false,"LastRefresh":"2025-01-31T17:40:54.569261",
                "Type":"Personal","Id":"5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10"},
      "InstitutionId": 14, "Institution": "FlinksCapital", "RequestId": "req-1",
      "SomeFutureField": {"nested": [1, 2, 3]}
    }"#;

    #[test]
    fn an_authorize_200_parses_with_last_refresh_to_the_tick() {
        let body: AuthorizeBody = serde_json::from_str(AUTHORIZE_200).unwrap();
        assert_eq!(
            body.request_id.unwrap().as_str(),
            "0a1b2c3d-0000-4000-8000-000000000001"
        );
        let expected =
            NaiveDateTime::parse_from_str("2018-10-23T05:36:07.612195300", "%Y-%m-%dT%H:%M:%S%.f")
                .unwrap();
        assert_eq!(body.login.last_refresh, Some(expected));
        assert_eq!(body.login.is_scheduled_refresh, Some(true));
        assert_eq!(body.login.login_type.as_deref(), Some("Personal"));
        assert_eq!(body.institution_id.as_deref(), Some("14"));
        assert_eq!(body.institution_name.as_deref(), Some("FlinksCapital"));
        assert!(!format!("{:?}", body.login).contains("Greatday"));
    }

    #[test]
    fn the_2018_authorize_shape_without_newer_fields_parses() {
        let body: AuthorizeBody = serde_json::from_str(
            r#"{"HttpStatusCode":200,"Links":[],"Login":{"Username":"u","IsScheduledRefresh":false,
                "LastRefresh":"0001-01-01T00:00:00","Id":"5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10"},
                "Institution":"FlinksCapital","RequestId":"r"}"#,
        )
        .unwrap();
        assert_eq!(body.institution_name, None);
        assert_eq!(body.login.login_type, None);
        assert_eq!(
            body.login.last_refresh.unwrap().to_string(),
            "0001-01-01 00:00:00"
        );
        assert_eq!(body.login.last_refresh_known(), None);
    }

    #[test]
    fn a_timestamp_is_written_as_its_format_string_would_and_reads_back() {
        let day = chrono::NaiveDate::from_ymd_opt(2018, 10, 23).unwrap();
        let far = chrono::NaiveDate::from_ymd_opt(12345, 1, 2).unwrap();
        for (date, h, m, s, nano) in [
            (day, 5, 36, 7, 0),
            (day, 5, 36, 7, 600_000_000),
            (day, 5, 36, 7, 612_195_000),
            (day, 5, 36, 7, 612_195_300),
            (day, 23, 59, 59, 1_500_000_000),
            (
                chrono::NaiveDate::from_ymd_opt(1, 1, 1).unwrap(),
                0,
                0,
                0,
                0,
            ),
            (far, 1, 2, 3, 4),
        ] {
            let at = date.and_hms_nano_opt(h, m, s, nano).unwrap();
            let text = format_flinks_timestamp(at);
            assert_eq!(text, at.format("%Y-%m-%dT%H:%M:%S%.f").to_string());
            if date != far {
                assert_eq!(parse_flinks_timestamp(&text), Some(at), "{text}");
            }
        }
    }

    #[test]
    fn the_plain_reading_agrees_with_chronos_format_strings_on_every_text() {
        let mut texts: Vec<String> = [
            "2018-10-23T05:36:07",
            "2018-10-23 05:36:07.6121953",
            "0001-01-01T00:00:00",
            "0000-01-01T00:00:00",
            "9999-12-31T23:59:59.999999999",
            "2018-10-23T05:36:07.",
            "2018-10-23T05:36:07.1234567891",
            "2018-10-23T05:36:60",
            "2018-10-23T05:36:59.5",
            "2018-10-23T24:00:00",
            "2018-10-23T05:60:00",
            "2018-02-29T00:00:00",
            "2020-02-29T00:00:00",
            "2018-13-01T00:00:00",
            "2018-00-01T00:00:00",
            "2018-10-00T00:00:00",
            "2018-1-23T05:36:07",
            "2018-10-23T5:36:07",
            "+2018-10-23T05:36:07",
            "12018-10-23T05:36:07",
            "2018-10-23T05:36:07Z",
            "2018-10-23T05:36:07.612+02:00",
            "2018-10-23t05:36:07",
            "2018-10-23T05:36:07.6a",
            "2018-10-23T05:36:0a",
            "2018/10/23T05:36:07",
            "2018-10-23T05:36:07 ",
            "yesterday",
            "",
        ]
        .map(str::to_owned)
        .to_vec();
        // Every date of a leap and a common year at a spread of times and fractions.
        let mut seed = 7u64;
        for day in 0..731 {
            let date =
                chrono::NaiveDate::from_ymd_opt(2023, 1, 1).unwrap() + chrono::Duration::days(day);
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let digits = (seed >> 60) as usize % 10;
            let fraction = format!("{:09}", seed % 1_000_000_000);
            let time = format!(
                "{:02}:{:02}:{:02}",
                (seed >> 8) % 24,
                (seed >> 16) % 60,
                (seed >> 24) % 60
            );
            let text = match digits {
                0 => format!("{date}T{time}"),
                n => format!("{date}T{time}.{}", &fraction[..n]),
            };
            texts.push(text);
        }
        for text in &texts {
            let plain = parse_plain_timestamp(text);
            let chrono = parse_with_format_strings(text);
            assert!(
                plain.is_none() || plain == chrono,
                "{text:?}: {plain:?} against {chrono:?}"
            );
            let trimmed = parse_with_format_strings(text.trim());
            assert_eq!(parse_flinks_timestamp(text), trimmed, "{text:?}");
        }
        let read = texts
            .iter()
            .filter(|t| parse_plain_timestamp(t).is_some())
            .count();
        assert!(read > 731, "the plain reading took only {read} texts");
    }

    #[test]
    fn flinks_timestamps_parse_with_zero_to_seven_fraction_digits_and_null() {
        for text in [
            "2018-10-23T05:36:07",
            "2018-10-23T05:36:07.6",
            "2018-10-23T05:36:07.6121953",
            "2018-10-23T05:36:07.6121953Z",
        ] {
            let parsed = parse_flinks_timestamp(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(parsed.date().to_string(), "2018-10-23", "{text}");
        }
        assert_eq!(parse_flinks_timestamp("yesterday"), None);
        let login: LoginInfo = serde_json::from_str(r#"{"LastRefresh":null,"Id":null}"#).unwrap();
        assert_eq!(login.last_refresh, None);
        assert_eq!(login.id, None);
    }

    /// Decodes `body` as the client does (its `Accounts` kept as text), and checks that the
    /// accounts read back as the `Accounts` of the body parsed whole into a tree (`[]`
    /// when it has none).
    fn detail(body: &str) -> Option<AccountsDetail> {
        let (json, kept) =
            super::super::client::parse_body(body.as_bytes(), Some("Accounts")).expect("JSON");
        let split = AccountsDetailBody::decode(json, kept, &RequestId::new("asked"));
        if let Some(split) = &split {
            let whole: serde_json::Value = serde_json::from_str(body).unwrap();
            let expected = whole.get("Accounts").cloned();
            assert_eq!(
                accounts_of(split),
                expected.unwrap_or_else(|| serde_json::json!([]))
            );
        }
        split
    }

    fn accounts_of(detail: &AccountsDetail) -> serde_json::Value {
        serde_json::from_str(detail.accounts.get()).unwrap()
    }

    #[test]
    fn a_detail_200_keeps_accounts_as_sent_with_amounts_exact() {
        let ready = detail(DETAIL_200).unwrap();
        assert_eq!(ready.request_id.as_str(), "req-1");
        let text = serde_json::to_string(&ready.accounts).unwrap();
        for exact in ["1500.25", "5105.6", "3605.35000000000000000001", "100.5"] {
            assert!(text.contains(exact), "{exact} in {text}");
        }
        let zeros = detail(r#"{"Accounts":[{"Balance":{"Current":5105.50,"Available":0.10}}]}"#);
        let text = zeros.unwrap().accounts.to_string();
        assert!(text.contains("5105.50") && text.contains("0.10"), "{text}");
        assert_eq!(
            accounts_of(&ready)[1]["Transactions"],
            serde_json::Value::Null
        );
        assert_eq!(
            ready.last_refresh.unwrap().to_string(),
            "2025-01-31 17:40:54.569261"
        );
    }

    #[test]
    fn unread_fields_in_unexpected_shapes_do_not_fail_a_usable_detail() {
        let odd = r#"{"RequestId":"r","Login":{"LastRefresh":"2025-01-31T17:40:54","Username":7,
            "IsScheduledRefresh":"yes","Id":["x"]},"Institution":{"a":1},"InstitutionId":true,
            "Accounts":[{"Balance":"n/a","Transactions":{"not":"a list"},"OverdraftLimit":"lots",
            "Holder":42}]}"#;
        let ready = detail(odd).expect("a usable body");
        assert_eq!(accounts_of(&ready)[0]["Balance"], "n/a");
        assert!(ready.last_refresh.is_some());
    }

    #[test]
    fn a_detail_without_accounts_or_login_has_an_empty_list_and_no_last_refresh() {
        let ready =
            detail(r#"{"HttpStatusCode":200,"Login":{"LastRefresh":"0001-01-01T00:00:00"}}"#)
                .unwrap();
        assert_eq!(ready.accounts.get(), "[]");
        assert_eq!(ready.last_refresh, None);
        assert_eq!(ready.request_id.as_str(), "asked");
        assert!(
            AccountsDetailBody::decode(serde_json::json!("text"), None, &RequestId::new("a"))
                .is_none()
        );
    }

    #[test]
    fn debug_of_a_detail_prints_no_number_holder_or_amount() {
        let debug = format!("{:?}", detail(DETAIL_200).unwrap());
        for secret in [
            "7641238", "Testing", "york", "1500.25", "5105", "PAYROLL", "x@y.com",
        ] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }

    fn envelope(body: &[u8]) -> Envelope {
        Envelope::of(serde_json::from_slice(body).ok().as_ref())
    }

    #[test]
    fn the_401_error_shape_keeps_code_message_and_request_id() {
        let envelope = envelope(
            br#"{ "HttpStatusCode": 401, "Links": [{"rel":"Authorization","href":"/Authorize","example":null}],
                  "Message": "No stored answer", "FlinksCode": "QUESTION_NOT_FOUND",
                  "RequestId": "3b5d7f1e-0000-4000-8000-000000000009" }"#,
        );
        assert_eq!(envelope.flinks_code, Some(FlinksCode::QuestionNotFound));
        assert_eq!(envelope.message.as_deref(), Some("No stored answer"));
        assert_eq!(
            envelope.request_id.unwrap().as_str(),
            "3b5d7f1e-0000-4000-8000-000000000009"
        );
    }

    #[test]
    fn the_202_shape_and_odd_bodies_read_as_envelopes() {
        let pending = envelope(
            br#"{ "HttpStatusCode": 202, "FlinksCode": "OPERATION_PENDING", "Links": [],
                  "Message": "Your operation is still processing", "RequestId": "r-2" }"#,
        );
        assert_eq!(pending.flinks_code, Some(FlinksCode::OperationPending));
        assert_eq!(pending.request_id.unwrap().as_str(), "r-2");
        let nulls = envelope(br#"{"FlinksCode":null,"Message":null,"RequestId":null}"#);
        assert!(
            nulls.flinks_code.is_none() && nulls.message.is_none() && nulls.request_id.is_none()
        );
        let html = envelope(b"<html><body>502 Bad Gateway</body></html>");
        assert!(html.flinks_code.is_none());
        let bare = envelope(br#""LoginId x has now been activated for automatic refresh""#);
        assert!(bare.message.is_none());
    }

    #[test]
    fn the_nightly_refresh_status_lists_ineligible_cards() {
        let body: NightlyRefreshStatusBody = serde_json::from_str(
            r#"{ "HttpStatusCode": 200,
                 "IneligibleCards": [{ "LoginId": "5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10",
                    "LastRefreshDate": "2020-06-18T03:26:34.6854364",
                    "LastRefreshState": "AnsweringSecurityChallenge", "LastRefreshErrorCode": null },
                    { "LoginId": "not-a-guid", "LastRefreshErrorCode": "QUESTION_NOT_FOUND" }] }"#,
        )
        .unwrap();
        assert_eq!(body.ineligible_cards.len(), 2);
        let first = &body.ineligible_cards[0];
        assert_eq!(
            first.login_id.as_ref().unwrap().as_str(),
            "5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10"
        );
        assert_eq!(
            first.last_refresh_state.as_deref(),
            Some("AnsweringSecurityChallenge")
        );
        assert_eq!(first.last_refresh_error_code, None);
        assert_eq!(body.ineligible_cards[1].login_id, None);
        assert_eq!(
            body.ineligible_cards[1].last_refresh_error_code,
            Some(FlinksCode::QuestionNotFound)
        );
    }

    #[test]
    fn every_text_of_an_ineligible_card_is_capped() {
        let huge = "S".repeat(MAX_FLINKS_TEXT_BYTES * 4);
        let body: NightlyRefreshStatusBody = serde_json::from_str(&format!(
            r#"{{ "IneligibleCards": [{{ "LoginId": "5e5b1f56-0b6c-4c53-a3a4-2b2d7a3e9f10",
                   "LastRefreshState": "{huge}", "LastRefreshErrorCode": "{huge}" }}] }}"#
        ))
        .unwrap();
        let card = &body.ineligible_cards[0];
        assert_eq!(
            card.last_refresh_state.as_ref().unwrap().len(),
            MAX_FLINKS_TEXT_BYTES
        );
        let code = card.last_refresh_error_code.as_ref().unwrap().to_string();
        assert!(code.len() <= MAX_FLINKS_TEXT_BYTES, "{}", code.len());
    }
}
