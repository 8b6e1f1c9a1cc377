//! The console's pages: one askama template each (under `shared/templates/console/`,
//! checked at compile time, every value HTML-escaped), and the plain view data they show.
//! The data is already formatted here (counts, ages, durations), so templates hold layout
//! only and the formatting is unit-tested Rust.
//!
//! Nothing here reads Redis; [`super::routes`] builds these from the library's results.

use askama::Template;
use chrono::{DateTime, Utc};

/// What every page around its content shows: the prefix for links, who is logged in, the
/// CSRF token for its forms, which page it is, and how often it refreshes itself.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// The URL prefix (`""` or `/console`).
    pub base: String,
    /// The logged-in user.
    pub user: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// The page's name in the navigation.
    pub current: &'static str,
    /// Seconds between automatic reloads (the script does them), if any.
    pub refresh: Option<u32>,
}

/// One link of the navigation.
#[derive(Debug, Clone)]
pub struct NavLink {
    /// Its text.
    pub name: &'static str,
    /// Its URL.
    pub href: String,
    /// Whether it is the page shown.
    pub current: bool,
}

impl Chrome {
    /// The navigation's links.
    pub fn nav(&self) -> Vec<NavLink> {
        NAV.iter()
            .map(|(name, path)| NavLink {
                name,
                href: format!("{}{path}", self.base),
                current: *name == self.current,
            })
            .collect()
    }
}

/// The navigation: (page name, path).
pub const NAV: [(&str, &str); 8] = [
    ("routine", "/"),
    ("re-auth", "/reauth"),
    ("failed", "/failed"),
    ("queues", "/queues"),
    ("workers", "/workers"),
    ("rate limit", "/ratelimit"),
    ("login history", "/history"),
    ("audit", "/audit"),
];

/// A time as pages show it.
pub fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// An age in milliseconds as pages show it (`-` when unknown).
pub fn age_ms(ms: Option<u64>) -> String {
    ms.map_or_else(
        || "-".to_string(),
        |ms| crate::live::duration_text(ms / 1_000),
    )
}

/// `value` percent-encoded for a query string.
pub fn query_value(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Links to the pages around one page of a list.
#[derive(Debug, Clone, Default)]
pub struct Pager {
    /// This page, from 1.
    pub page: usize,
    /// Pages in all (at least 1).
    pub pages: usize,
    /// Rows in all.
    pub total: usize,
    /// The previous page's URL.
    pub prev: Option<String>,
    /// The next page's URL.
    pub next: Option<String>,
}

impl Pager {
    /// Page `page` (from 1, clamped) of `total` rows, `per_page` a page, whose URLs are
    /// `link(n)`; returns the pager and the range of rows it shows.
    pub fn new(
        page: usize,
        per_page: usize,
        total: usize,
        link: impl Fn(usize) -> String,
    ) -> (Self, std::ops::Range<usize>) {
        let pages = total.div_ceil(per_page.max(1)).max(1);
        let page = page.clamp(1, pages);
        let start = (page - 1) * per_page;
        let range = start.min(total)..(start + per_page).min(total);
        let pager = Self {
            page,
            pages,
            total,
            prev: (page > 1).then(|| link(page - 1)),
            next: (page < pages).then(|| link(page + 1)),
        };
        (pager, range)
    }
}

/// The login form.
#[derive(Template)]
#[template(path = "console/login.html")]
pub struct LoginPage {
    /// The URL prefix.
    pub base: String,
    /// The form's token (also in the pre-login cookie).
    pub csrf: String,
    /// Why the last attempt failed, if it did.
    pub error: Option<String>,
    /// The user name typed last.
    pub user: String,
}

/// A page that says what went wrong.
#[derive(Template)]
#[template(path = "console/error.html")]
pub struct ErrorPage {
    /// The chrome, when a user is logged in.
    pub chrome: Option<Chrome>,
    /// The URL prefix.
    pub base: String,
    /// `403 Forbidden` etc.
    pub status: String,
    /// What to do about it.
    pub message: String,
}

/// Today's routine (or another date's).
#[derive(Template)]
#[template(path = "console/routine.html")]
pub struct RoutinePage {
    /// Chrome.
    pub chrome: Chrome,
    /// The live view of the date.
    pub view: crate::live::LiveView,
    /// `412 of 10000 done (4.1 %)`.
    pub progress: String,
    /// The ETA, as a duration.
    pub eta: String,
    /// Refreshed logins whose data is stale, new re-auths, retries.
    pub refreshed: u64,
    /// Re-auths new since the day before.
    pub new_reauth: usize,
    /// Retries spent.
    pub retries: u64,
    /// Age of the stalest refreshed data.
    pub oldest_data: String,
}

/// One login in the re-auth list.
#[derive(Debug, Clone)]
pub struct ReauthRow {
    /// The LoginId.
    pub login_id: String,
    /// New since the day before.
    pub new: bool,
    /// The FlinksCode (`-` when none).
    pub code: String,
    /// Flinks' message.
    pub message: String,
    /// `unrecognised` when the code is new to this version.
    pub note: String,
}

/// The re-auth list of a date.
#[derive(Template)]
#[template(path = "console/reauth.html")]
pub struct ReauthPage {
    /// Chrome.
    pub chrome: Chrome,
    /// The date.
    pub date: String,
    /// The search text.
    pub q: String,
    /// This page's rows.
    pub rows: Vec<ReauthRow>,
    /// Re-auths in all (before the search).
    pub all: usize,
    /// New since the day before.
    pub new_count: usize,
    /// Pages.
    pub pager: Pager,
    /// The CSV export's URL (same date and search).
    pub csv: String,
}

/// One failed login.
#[derive(Debug, Clone)]
pub struct FailedRow {
    /// The LoginId.
    pub login_id: String,
    /// The FlinksCode (`-` when none).
    pub code: String,
    /// The message.
    pub message: String,
    /// `invalid_login`, `throttled` or `-`.
    pub reason: String,
}

/// The failed list of a date, by FlinksCode.
#[derive(Template)]
#[template(path = "console/failed.html")]
pub struct FailedPage {
    /// Chrome.
    pub chrome: Chrome,
    /// The date.
    pub date: String,
    /// The FlinksCode shown (empty: every code).
    pub code: String,
    /// Failed logins per FlinksCode, most first.
    pub codes: Vec<(String, u64)>,
    /// This page's rows.
    pub rows: Vec<FailedRow>,
    /// Pages.
    pub pager: Pager,
    /// What the last requeue did, when the page follows one.
    pub notice: Option<String>,
}

/// One (LoginId, date) a requeue would move or skip.
#[derive(Debug, Clone)]
pub struct PreviewRow {
    /// The LoginId.
    pub login_id: String,
    /// Its routine date.
    pub date: String,
}

/// What a requeue would move, with the form that confirms it.
#[derive(Template)]
#[template(path = "console/requeue.html")]
pub struct RequeuePage {
    /// Chrome.
    pub chrome: Chrome,
    /// The FlinksCode selected (empty: any).
    pub code: String,
    /// The date selected.
    pub date: String,
    /// How many would move.
    pub moving: usize,
    /// The first of them.
    pub rows: Vec<PreviewRow>,
    /// How many are left out because they are already refreshed.
    pub skipped: usize,
}

/// One queue's row.
#[derive(Debug, Clone)]
pub struct QueueRow {
    /// The queue.
    pub name: String,
    /// Whether the snapshot has its depth (authorize and detail).
    pub counted: bool,
    /// Ready jobs.
    pub ready: u64,
    /// Age of the job next in line.
    pub oldest: String,
    /// Delayed jobs.
    pub delayed: u64,
    /// Jobs in flight.
    pub in_flight: u64,
    /// Dead letters.
    pub dead: u64,
    /// Paused by an operator.
    pub paused: bool,
    /// Since when, by whom and why.
    pub pause_text: String,
}

/// The queues with pause and resume.
#[derive(Template)]
#[template(path = "console/queues.html")]
pub struct QueuesPage {
    /// Chrome.
    pub chrome: Chrome,
    /// The queues.
    pub queues: Vec<QueueRow>,
    /// Re-auth index entries (all dates).
    pub reauth: u64,
    /// Failed index entries (all dates).
    pub failed: u64,
    /// Requeue claims a crashed run left.
    pub requeue_pending: u64,
    /// What the last change did.
    pub notice: Option<String>,
}

/// One worker process.
#[derive(Debug, Clone)]
pub struct WorkerRow {
    /// Its id.
    pub id: String,
    /// Its queues.
    pub queues: String,
    /// Alive.
    pub alive: bool,
    /// Jobs it holds.
    pub in_flight: u64,
    /// Its last heartbeat.
    pub heartbeat: String,
}

/// One in-flight job.
#[derive(Debug, Clone)]
pub struct JobView {
    /// Its queue.
    pub queue: String,
    /// Its id.
    pub id: String,
    /// Its LoginId.
    pub login_id: String,
    /// Its routine date.
    pub date: String,
    /// Deliveries so far.
    pub attempts: u32,
    /// The delivery holding it.
    pub owner: String,
    /// Since it was enqueued.
    pub age: String,
}

/// The workers and their in-flight jobs.
#[derive(Template)]
#[template(path = "console/workers.html")]
pub struct WorkersPage {
    /// Chrome.
    pub chrome: Chrome,
    /// The workers.
    pub workers: Vec<WorkerRow>,
    /// Alive among them.
    pub alive: usize,
    /// The first in-flight jobs.
    pub jobs: Vec<JobView>,
    /// Whether more are in flight than listed.
    pub more_jobs: bool,
}

/// The rate limit, with the form that changes it.
#[derive(Template)]
#[template(path = "console/ratelimit.html")]
pub struct RateLimitPage {
    /// Chrome.
    pub chrome: Chrome,
    /// The limit in force, described.
    pub limit: String,
    /// The limit in force, per minute.
    pub per_minute: f64,
    /// Whether it is stored.
    pub stored: bool,
    /// This process' RATE_LIMIT_PER_MINUTE.
    pub configured: f64,
    /// Active logins.
    pub active: u64,
    /// Authorizes a day at the limit (`unbounded` when off).
    pub capacity: String,
    /// Days to cover every active login once.
    pub coverage: String,
    /// What the last change did.
    pub notice: Option<String>,
}

/// One outcome of a login.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    /// `refreshed`, `needs_reauth`, `failed` or `superseded`.
    pub kind: String,
    /// When.
    pub at: String,
    /// The FlinksCode (`-` when none).
    pub code: String,
    /// The message (`-` when none).
    pub message: String,
}

/// One login's state and outcome history.
#[derive(Debug, Clone)]
pub struct LoginView {
    /// The LoginId.
    pub login_id: String,
    /// Refreshed by the routine.
    pub active: bool,
    /// Fields shown as (name, value).
    pub fields: Vec<(&'static str, String)>,
    /// Its outcomes, newest first.
    pub history: Vec<HistoryRow>,
}

/// One login's history, with the search form.
#[derive(Template)]
#[template(path = "console/history.html")]
pub struct HistoryPage {
    /// Chrome.
    pub chrome: Chrome,
    /// The LoginId typed.
    pub q: String,
    /// The login, when found.
    pub login: Option<LoginView>,
    /// Why nothing is shown, when a search found nothing.
    pub error: Option<String>,
}

/// One audit entry.
#[derive(Debug, Clone)]
pub struct AuditRow {
    /// When.
    pub at: String,
    /// Who.
    pub actor: String,
    /// The command.
    pub command: String,
    /// Its arguments.
    pub args: String,
    /// Items affected.
    pub count: u64,
    /// Items failed.
    pub failed: u64,
}

/// A page of the audit trail.
#[derive(Template)]
#[template(path = "console/audit.html")]
pub struct AuditPage {
    /// Chrome.
    pub chrome: Chrome,
    /// The entries, newest first.
    pub rows: Vec<AuditRow>,
    /// The next (older) page's URL.
    pub older: Option<String>,
    /// Whether this is not the newest page.
    pub paged: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pager_clamps_the_page_and_links_its_neighbours() {
        let link = |n: usize| format!("?page={n}");
        let (pager, rows) = Pager::new(2, 50, 120, link);
        assert_eq!((pager.page, pager.pages, rows), (2, 3, 50..100));
        assert_eq!(pager.prev.as_deref(), Some("?page=1"));
        assert_eq!(pager.next.as_deref(), Some("?page=3"));

        let (last, rows) = Pager::new(99, 50, 120, link);
        assert_eq!((last.page, rows, last.next), (3, 100..120, None));
        let (empty, rows) = Pager::new(1, 50, 0, link);
        assert_eq!((empty.pages, rows, empty.prev), (1, 0..0, None));
    }

    #[test]
    fn text_from_flinks_or_an_operator_is_escaped_in_every_page() {
        let chrome = Chrome {
            base: "/c".into(),
            user: "alice".into(),
            csrf: "tok".into(),
            current: "re-auth",
            refresh: None,
        };
        let page = ReauthPage {
            chrome,
            date: "2026-11-30".into(),
            q: "\"><script>q</script>".into(),
            rows: vec![ReauthRow {
                login_id: "00000000-0000-4000-8000-000000000001".into(),
                new: true,
                code: "<b>CODE</b>".into(),
                message: "<script>alert(1)</script>".into(),
                note: String::new(),
            }],
            all: 1,
            new_count: 1,
            pager: Pager::default(),
            csv: "/c/reauth.csv".into(),
        };

        let html = page.render().unwrap();

        assert!(
            !html.contains("<script>alert") && !html.contains("<script>q"),
            "{html}"
        );
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{html}"
        );
        assert!(html.contains("&#60;b&#62;CODE&#60;/b&#62;"), "{html}");
        assert!(html.contains("href=\"/c/audit\""), "{html}");
        assert!(html.contains("name=\"csrf\" value=\"tok\""), "{html}");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(query_value("a b&c=d"), "a+b%26c%3Dd");
    }
}
