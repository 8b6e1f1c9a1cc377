//! Wire shapes of the simulated Flinks API (PascalCase, as `docs/design-notes.md` summarises them), and
//! the deterministic fake account data.
//!
//! Bodies are built here and nowhere else so that their shape can be checked against the
//! contract in one place. Amounts are JSON numbers with exactly two decimals (`1500.25`,
//! `5105.50`); dates are naive UTC with 7 fractional digits, like Flinks' .NET output.
//! This file decides nothing about scenarios.

use std::str::FromStr;

use chrono::{Duration as ChronoDuration, NaiveDateTime, Timelike};
use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

use crate::scenario::stable_hash;

pub(crate) const INSTITUTION: &str = "FlinksCapital";
pub(crate) const INSTITUTION_ID: u32 = 14;
pub(crate) const USERNAME: &str = "Greatday";

/// Flinks' `LastRefresh` format: `2026-11-25T05:36:07.6121953` (UTC, no offset).
pub(crate) fn flinks_datetime(t: NaiveDateTime) -> String {
    format!(
        "{}.{:07}",
        t.format("%Y-%m-%dT%H:%M:%S"),
        t.nanosecond() % 1_000_000_000 / 100
    )
}

/// A GUID derived from a string, stable across runs.
pub(crate) fn stable_guid(seed: &str) -> Uuid {
    Uuid::from_u64_pair(
        stable_hash(seed),
        stable_hash(&format!("{seed}#2")) & 0x3fff_ffff_ffff_ffff,
    )
}

/// An amount in cents, serialised as a JSON number with two decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Money(pub(crate) i64);

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let text = format!("{sign}{}.{:02}", abs / 100, abs % 100);
        // With serde_json's `arbitrary_precision` (on in this workspace) the text is kept
        // verbatim; without it this is the nearest f64, still a JSON number.
        match serde_json::Number::from_str(&text) {
            Ok(n) => n.serialize(serializer),
            Err(_) => serializer.serialize_f64(self.0 as f64 / 100.0),
        }
    }
}

/// `{"rel": .., "href": .., "example": null}` (lower-case keys, as Flinks sends them).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Link {
    pub(crate) rel: &'static str,
    pub(crate) href: &'static str,
    pub(crate) example: Option<()>,
}

fn link(rel: &'static str, href: &'static str) -> Link {
    Link {
        rel,
        href,
        example: None,
    }
}

pub(crate) fn authorize_links() -> Vec<Link> {
    vec![
        link("AccountsDetail", "/GetAccountsDetail"),
        link("AccountsSummary", "/GetAccountsSummary"),
        link("Statements", "/GetStatements"),
    ]
}

pub(crate) fn error_links() -> Vec<Link> {
    vec![link("Authorization", "/Authorize")]
}

pub(crate) fn pending_links() -> Vec<Link> {
    vec![link("AccountsDetailAsync", "/GetAccountsDetailAsync")]
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Login {
    pub(crate) username: &'static str,
    pub(crate) is_scheduled_refresh: bool,
    pub(crate) last_refresh: String,
    #[serde(rename = "Type")]
    pub(crate) kind: &'static str,
    pub(crate) id: String,
}

impl Login {
    pub(crate) fn new(login_id: &str, scheduled: bool, last_refresh: NaiveDateTime) -> Self {
        Login {
            username: USERNAME,
            is_scheduled_refresh: scheduled,
            last_refresh: flinks_datetime(last_refresh),
            kind: "Personal",
            id: login_id.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TokenOk {
    pub(crate) http_status_code: u16,
    pub(crate) token: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AuthorizeOk {
    pub(crate) http_status_code: u16,
    pub(crate) links: Vec<Link>,
    pub(crate) institution_name: &'static str,
    pub(crate) login: Login,
    pub(crate) institution_id: u32,
    pub(crate) institution: &'static str,
    pub(crate) request_id: String,
}

/// The standard Flinks error body (also used for 202 OPERATION_PENDING).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ErrorBody {
    pub(crate) http_status_code: u16,
    pub(crate) links: Vec<Link>,
    pub(crate) message: String,
    pub(crate) flinks_code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) request_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AccountsDetail {
    pub(crate) http_status_code: u16,
    pub(crate) accounts: Vec<Account>,
    pub(crate) institution_name: &'static str,
    pub(crate) login: Login,
    pub(crate) institution_id: u32,
    pub(crate) institution: &'static str,
    pub(crate) request_id: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Account {
    pub(crate) transactions: Vec<Transaction>,
    pub(crate) transit_number: String,
    pub(crate) institution_number: &'static str,
    pub(crate) overdraft_limit: Option<Money>,
    pub(crate) title: &'static str,
    pub(crate) account_number: String,
    pub(crate) last_four_digits: Option<String>,
    pub(crate) balance: Balance,
    pub(crate) category: &'static str,
    #[serde(rename = "Type")]
    pub(crate) kind: &'static str,
    pub(crate) currency: &'static str,
    pub(crate) holder: Holder,
    pub(crate) account_type: Option<String>,
    pub(crate) id: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Transaction {
    pub(crate) date: String,
    pub(crate) code: Option<String>,
    pub(crate) description: &'static str,
    pub(crate) debit: Option<Money>,
    pub(crate) credit: Option<Money>,
    pub(crate) balance: Money,
    pub(crate) id: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Balance {
    pub(crate) available: Money,
    pub(crate) current: Money,
    pub(crate) limit: Option<Money>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Holder {
    pub(crate) name: &'static str,
    pub(crate) address: Address,
    pub(crate) email: &'static str,
    pub(crate) phone_number: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Address {
    pub(crate) civic_address: &'static str,
    pub(crate) city: &'static str,
    pub(crate) province: &'static str,
    pub(crate) postal_code: &'static str,
    #[serde(rename = "POBox")]
    pub(crate) po_box: Option<String>,
    pub(crate) country: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct IneligibleCard {
    pub(crate) login_id: String,
    pub(crate) last_refresh_date: String,
    pub(crate) last_refresh_state: &'static str,
    pub(crate) last_refresh_error_code: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct NightlyRefreshStatus {
    pub(crate) http_status_code: u16,
    pub(crate) ineligible_cards: Vec<IneligibleCard>,
}

/// `/Authorize` request (only the fields the simulator looks at).
#[derive(Debug, Deserialize)]
pub(crate) struct AuthorizeRequest {
    #[serde(rename = "LoginId", alias = "loginId", alias = "loginid")]
    pub(crate) login_id: Option<String>,
}

/// `/GetAccountsDetail` request.
#[derive(Debug, Deserialize)]
pub(crate) struct DetailRequest {
    #[serde(rename = "RequestId", alias = "requestId", alias = "requestid")]
    pub(crate) request_id: Option<String>,
}

/// `/SetScheduledRefresh` request (Flinks binds case-insensitively; accept both spellings).
#[derive(Debug, Deserialize)]
pub(crate) struct ScheduledRefreshRequest {
    #[serde(rename = "LoginId", alias = "loginId", alias = "loginid")]
    pub(crate) login_id: Option<String>,
    #[serde(rename = "IsActivated", alias = "isActivated", alias = "isactivated")]
    pub(crate) is_activated: Option<bool>,
}

const DESCRIPTIONS: [(&str, bool); 6] = [
    ("PAYROLL", true),
    ("GROCERY STORE", false),
    ("HYDRO BILL", false),
    ("E-TRANSFER RECEIVED", true),
    ("COFFEE SHOP", false),
    ("RENT", false),
];

/// Deterministic accounts for a LoginId: a chequing account and a credit card, five
/// transactions each, dated back from `last_refresh`.
pub(crate) fn accounts_for(login_id: &str, last_refresh: NaiveDateTime) -> Vec<Account> {
    let h = stable_hash(login_id);
    let holder = || Holder {
        name: "Testing",
        address: Address {
            civic_address: "25 york street",
            city: "TOR",
            province: "ON",
            postal_code: "M5J 2V5",
            po_box: None,
            country: "CA",
        },
        email: "x@y.com",
        phone_number: "9051234567",
    };
    let specs: [(&str, &str, &str, &str, i64); 2] = [
        (
            "chequing",
            "Chequing Account",
            "Operations",
            "Chequing",
            510_550,
        ),
        ("credit", "Credit Card", "Credits", "CreditCard", -42_075),
    ];
    specs
        .iter()
        .enumerate()
        .map(|(i, (tag, title, category, kind, base))| {
            let seed = format!("{login_id}/{tag}");
            let mut balance = base + (h % 100_000) as i64 * if *base < 0 { -1 } else { 1 };
            let closing = balance;
            let mut transactions = Vec::new();
            for n in 0..5u64 {
                let (description, is_credit) =
                    DESCRIPTIONS[((h >> (n * 3)) as usize + n as usize + i) % DESCRIPTIONS.len()];
                let amount = 1_000 + ((h >> (n * 7)) % 150_000) as i64 + 25;
                let date = (last_refresh - ChronoDuration::days((n * 3) as i64)).date();
                transactions.push(Transaction {
                    date: date.format("%Y-%m-%d").to_string(),
                    code: None,
                    description,
                    debit: (!is_credit).then_some(Money(amount)),
                    credit: is_credit.then_some(Money(amount)),
                    balance: Money(balance),
                    id: stable_guid(&format!("{seed}/tx{n}")).to_string(),
                });
                balance += if is_credit { -amount } else { amount };
            }
            let number = 1_000_000 + (stable_hash(&seed) % 9_000_000);
            Account {
                transactions,
                transit_number: "12347".to_owned(),
                institution_number: "777",
                overdraft_limit: (i == 0).then_some(Money(10_050)),
                title,
                account_number: number.to_string(),
                last_four_digits: None,
                balance: Balance {
                    available: Money(closing + 30_000),
                    current: Money(closing),
                    limit: Some(Money(if i == 0 { closing } else { 500_000 })),
                },
                category,
                kind,
                currency: "CAD",
                holder: holder(),
                account_type: None,
                id: stable_guid(&seed).to_string(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn last_refresh_has_seven_fractional_digits() {
        let t = NaiveDate::from_ymd_opt(2026, 11, 25)
            .unwrap()
            .and_hms_nano_opt(5, 36, 7, 612_195_300)
            .unwrap();
        assert_eq!(flinks_datetime(t), "2026-11-25T05:36:07.6121953");
    }

    #[test]
    fn money_is_a_json_number_with_two_decimals() {
        let json = serde_json::to_string(&[Money(150_025), Money(510_550), Money(-5)]).unwrap();
        assert_eq!(json, "[1500.25,5105.50,-0.05]");
    }
}
