//! The console's routes and handlers. Each handler reads or changes the deployment through
//! the same library calls as the matching `producer` command (named in its doc), audits a
//! change with the logged-in user as the actor, and renders a page from [`super::pages`].
//!
//! Routes are registered under the console's prefix (`--base-path`) rather than nested, so
//! `/prefix/` and every link built with [`Console::url`] match exactly. A change answers
//! with a redirect to the page that shows its effect (POST, redirect, GET), so a reload
//! never repeats it. Lists are cut into pages here; a page holds at most [`PER_PAGE`] rows.

use std::str::FromStr as _;

use askama::Template;
use axum::extract::{Query, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;

use super::auth::{self, ClientAddress, LoggedIn, SessionStore, SESSION_COOKIE, SESSION_TTL};
use super::csrf::{self, CsrfRejected, LOGIN_COOKIE, LOGIN_FORM_TTL};
use super::pages::{self, Chrome, Pager};
use super::Console;
use crate::control::{self, ControlError};
use crate::domain::{FlinksCode, LoginId, RoutineDay};
use crate::ledger::LedgerOutcome;
use crate::ops::list::{ListRequest, ListState, ListTarget, Listing};
use crate::ops::requeue::{RequeueOptions, RequeueRun, Selection, Source};
use crate::ops::OpsError;
use crate::report::ReportItem;

/// Rows on one page of a list.
pub const PER_PAGE: usize = 50;

/// Rows a requeue preview lists (it counts them all).
pub const PREVIEW_ROWS: usize = 100;

/// Seconds between the routine page's reloads.
pub const ROUTINE_REFRESH_SECONDS: u32 = 10;

const SCRIPT: &str = include_str!("static/console.js");
const STYLESHEET: &str = include_str!("static/console.css");

/// The console's router: every route under the prefix, the login gate on every page but
/// the login, the static files and `/healthz`, and the security headers on every response.
pub fn app(console: Console) -> Router {
    let at = |path: &str| console.url(path);
    let gated = Router::new()
        .route(&at("/"), get(routine))
        .route(&at("/reauth"), get(reauth))
        .route(&at("/reauth.csv"), get(reauth_csv))
        .route(&at("/failed"), get(failed))
        .route(&at("/failed/requeue"), get(requeue_preview).post(requeue))
        .route(&at("/queues"), get(queues))
        .route(&at("/queues/pause"), post(pause))
        .route(&at("/queues/resume"), post(resume))
        .route(&at("/workers"), get(workers))
        .route(&at("/ratelimit"), get(ratelimit).post(set_ratelimit))
        .route(&at("/history"), get(history))
        .route(&at("/audit"), get(audit))
        .route(&at("/logout"), post(logout))
        .route_layer(middleware::from_fn_with_state(
            console.clone(),
            auth::require_login,
        ));
    let mut open = Router::new()
        .route(&at("/login"), get(login_form).post(login))
        .route(&at("/static/console.js"), get(script))
        .route(&at("/static/console.css"), get(stylesheet))
        .route(&at("/healthz"), get(|| async { "ok\n" }));
    if !console.base().is_empty() {
        let home = at("/");
        open = open.route(console.base(), get(move || async move { redirect(&home) }));
    }
    gated
        .merge(open)
        .layer(middleware::from_fn_with_state(
            console.clone(),
            render_failures,
        ))
        .layer(middleware::from_fn_with_state(
            console.clone(),
            super::headers::security_headers,
        ))
        .with_state(console)
}

/// Why a request failed: its status and a message for the operator. Rendered as a page
/// by [`render_failures`], which knows the prefix.
#[derive(Debug, Clone)]
pub struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn internal(error: &dyn std::error::Error) -> Self {
        let chain: Vec<String> = std::iter::successors(Some(error), |e| e.source())
            .map(|e| e.to_string())
            .collect();
        tracing::error!(error.message = %error, error.cause_chain = ?chain, "console request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The console could not read or change the deployment (Redis did not answer as \
             expected). Try again; the console's log has the cause.",
        )
    }
}

impl From<OpsError> for Failure {
    fn from(e: OpsError) -> Self {
        if e.is_usage() {
            Self::bad_request(e.to_string())
        } else {
            Self::internal(&e)
        }
    }
}

impl From<ControlError> for Failure {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Redis(_) => Self::internal(&e),
            ControlError::InvalidRate(_) | ControlError::UnknownQueue(_) => {
                Self::bad_request(e.to_string())
            }
        }
    }
}

impl From<redis::RedisError> for Failure {
    fn from(e: redis::RedisError) -> Self {
        Self::internal(&e)
    }
}

impl From<askama::Error> for Failure {
    fn from(e: askama::Error) -> Self {
        Self::internal(&e)
    }
}

impl From<CsrfRejected> for Failure {
    fn from(e: CsrfRejected) -> Self {
        Self::new(StatusCode::FORBIDDEN, e.to_string())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.message.clone()).into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// The response of a server error outside a handler (the login gate).
pub(crate) fn server_error(_console: &Console, error: &OpsError) -> Response {
    Failure::internal(error).into_response()
}

/// Turns a [`Failure`] into the error page, under the console's prefix.
async fn render_failures(State(console): State<Console>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let Some(failure) = response.extensions().get::<Failure>().cloned() else {
        return response;
    };
    let page = pages::ErrorPage {
        chrome: None,
        base: console.base().to_string(),
        status: format!(
            "{} {}",
            failure.status.as_u16(),
            failure.status.canonical_reason().unwrap_or("")
        ),
        message: failure.message,
    };
    match page.render() {
        Ok(html) => (failure.status, Html(html)).into_response(),
        Err(_) => response,
    }
}

type Page = Result<Response, Failure>;

fn html(page: &impl Template) -> Page {
    Ok(Html(page.render()?).into_response())
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

fn chrome(console: &Console, user: &LoggedIn, current: &'static str) -> Chrome {
    Chrome {
        base: console.base().to_string(),
        user: user.user.clone(),
        csrf: user.csrf.clone(),
        current,
        refresh: None,
    }
}

/// The routine date a `date` parameter names (today in ROUTINE_TZ when absent or empty).
fn date_of(console: &Console, raw: Option<&str>) -> Result<NaiveDate, Failure> {
    let day = match raw.map(str::trim).filter(|d| !d.is_empty()) {
        None => None,
        Some(raw) => Some(
            RoutineDay::from_str(raw).map_err(|e| Failure::bad_request(format!("date: {e}")))?,
        ),
    };
    Ok(console.session().date(day))
}

fn code_text(code: Option<&FlinksCode>) -> String {
    code.map_or_else(|| "-".to_string(), |c| c.as_str().to_string())
}

// ---- login -----------------------------------------------------------------------------

async fn login_form(State(console): State<Console>) -> Page {
    login_page(&console, StatusCode::OK, None, String::new())
}

/// The login form with a fresh pre-login token in the form and its cookie.
fn login_page(console: &Console, status: StatusCode, error: Option<String>, user: String) -> Page {
    let token = auth::random_token();
    let page = pages::LoginPage {
        base: console.base().to_string(),
        csrf: token.clone(),
        error,
        user,
    };
    let mut response = (status, Html(page.render()?)).into_response();
    let cookie = auth::set_cookie(console, LOGIN_COOKIE, &token, LOGIN_FORM_TTL);
    response.headers_mut().append(SET_COOKIE, cookie);
    Ok(response)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
}

/// Checks the login form's token, counts the attempt against the limits, then checks the
/// password (off the runtime's threads, at most [`auth::VERIFY_PERMITS`] at once); starts a
/// session and audits the login.
async fn login(
    State(console): State<Console>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Page {
    let expected = auth::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    csrf::check(&expected, &form.csrf)?;
    let user = form.user.trim().to_string();
    let store = SessionStore::of(&console).await?;
    let limits = console.inner.limits;
    if !store.count_attempt(limits, &user, &address).await? {
        let minutes = limits.window.as_secs().div_ceil(60);
        let why = format!("Too many failed logins. Try again in {minutes} minutes.");
        return login_page(&console, StatusCode::TOO_MANY_REQUESTS, Some(why), user);
    }
    let users = console.inner.users.clone();
    let (name, password) = (user.clone(), form.password);
    let ok = {
        // Closed only if the console is dropping the semaphore, i.e. shutting down.
        let _permit = console.inner.verifications.acquire().await;
        tokio::task::spawn_blocking(move || users.verify(&name, &password))
            .await
            .unwrap_or(false)
    };
    if !ok {
        let why = "Wrong user name or password.".to_string();
        return login_page(&console, StatusCode::UNAUTHORIZED, Some(why), user);
    }
    store.login_succeeded(&user, &address).await?;
    let digest = console.inner.users.line_digest(&user).unwrap_or_default();
    let (token, _) = store.create(&user, &digest).await?;
    console
        .session_for(&user)
        .audit("console login", "", 0, 0)
        .await?;
    let mut response = redirect(&console.url("/"));
    let headers = response.headers_mut();
    headers.append(
        SET_COOKIE,
        auth::set_cookie(&console, SESSION_COOKIE, &token, SESSION_TTL),
    );
    headers.append(
        SET_COOKIE,
        auth::set_cookie(&console, LOGIN_COOKIE, "", std::time::Duration::ZERO),
    );
    Ok(response)
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(console): State<Console>,
    Extension(user): Extension<LoggedIn>,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Page {
    csrf::check(&user.csrf, &form.csrf)?;
    if let Some(token) = auth::cookie(&headers, SESSION_COOKIE) {
        SessionStore::of(&console).await?.delete(&token).await?;
    }
    let mut response = redirect(&console.url("/login"));
    response.headers_mut().append(
        SET_COOKIE,
        auth::set_cookie(&console, SESSION_COOKIE, "", std::time::Duration::ZERO),
    );
    Ok(response)
}

// ---- static ------------------------------------------------------------------------------

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

async fn script() -> Response {
    static_file("text/javascript; charset=utf-8", SCRIPT)
}

async fn stylesheet() -> Response {
    static_file("text/css; charset=utf-8", STYLESHEET)
}

// ---- routine -----------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct DateQuery {
    date: Option<String>,
}

/// Today's routine: `producer report --watch`'s live view.
async fn routine(
    State(console): State<Console>,
    Extension(user): Extension<LoggedIn>,
    Query(query): Query<DateQuery>,
) -> Page {
    let date = date_of(&console, query.date.as_deref())?;
    let reading = console.reading(date).await?;
    let view = crate::live::LiveView::of(&reading);
    let report = &reading.report;
    let mut chrome = chrome(&console, &user, "routine");
    chrome.refresh = Some(ROUTINE_REFRESH_SECONDS);
    html(&pages::RoutinePage {
        chrome,
        progress: view.progress_text(),
        eta: view
            .eta_seconds
            .map_or_else(|| "-".to_string(), crate::live::duration_text),
        refreshed: report.refreshed,
        new_reauth: report.new_reauth.len(),
        retries: report.retries,
        oldest_data: report
            .oldest_data_age_seconds
            .map_or_else(|| "-".to_string(), crate::live::duration_text),
        view,
    })
}

// ---- re-auth -----------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct ListQuery {
    date: Option<String>,
    q: Option<String>,
    code: Option<String>,
    page: Option<usize>,
    moved: Option<usize>,
}

/// The re-auth items of `date` matching the search `q`, new ones first, then by LoginId,
/// with whether each is new; and how many there are in all and new.
async fn reauth_rows(
    console: &Console,
    date: NaiveDate,
    q: &str,
) -> Result<(Vec<(ReportItem, bool)>, usize, usize), Failure> {
    let reading = console.reading(date).await?;
    let report = &reading.report;
    let new: std::collections::HashSet<&LoginId> = report.new_reauth.iter().collect();
    let needle = q.trim().to_ascii_lowercase();
    let mut rows: Vec<(ReportItem, bool)> = report
        .reauth
        .iter()
        .filter(|i| needle.is_empty() || i.login_id.as_str().contains(&needle))
        .map(|i| (i.clone(), new.contains(&i.login_id)))
        .collect();
    // Stable: the report lists by LoginId already.
    rows.sort_by_key(|(_, is_new)| !is_new);
    Ok((rows, report.reauth.len(), report.new_reauth.len()))
}

/// The re-auth list of a date: `producer report`'s `reauth` and `new_reauth`.
async fn reauth(
    State(console): State<Console>,
    Extension(user): Extension<LoggedIn>,
    Query(query): Query<ListQuery>,
) -> Page {
    let date = date_of(&console, query.date.as_deref())?;
    let q = query.q.unwrap_or_default();
    let (rows, all, new_count) = reauth_rows(&console, date, &q).await?;
    let link = |page: usize| {
        console.url(&format!(
            "/reauth?date={date}&q={}&page={page}",
            pages::query_value(&q)
        ))
    };
    let (pager, range) = Pager::new(query.page.unwrap_or(1), PER_PAGE, rows.len(), link);
    let rows = rows[range]
        .iter()
        .map(|(item, new)| pages::ReauthRow {
            login_id: item.login_id.as_str().to_string(),
            new: *new,
            code: code_text(item.flinks_code.as_ref()),
            message: item.message.clone().unwrap_or_default(),
            note: if item.unrecognised_code {
                "unrecognised code".to_string()
            } else {
                String::new()
            },
        })
        .collect();
    let csv = console.url(&format!(
        "/reauth.csv?date={date}&q={}",
        pages::query_value(&q)
    ));
    html(&pages::ReauthPage {
        chrome: chrome(&console, &user, "re-auth"),
        date: date.to_string(),
        q,
        rows,
        all,
        new_count,
        pager,
        csv,
    })
}

/// A CSV cell that a spreadsheet will not run as a formula.
fn csv_cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// The re-auth list of a date as CSV, for the product team: every matching row.
async fn reauth_csv(State(console): State<Console>, Query(query): Query<ListQuery>) -> Page {
    let date = date_of(&console, query.date.as_deref())?;
    let q = query.q.unwrap_or_default();
    let (rows, _, _) = reauth_rows(&console, date, &q).await?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = [
        "login_id",
        "date",
        "new_since_yesterday",
        "flinks_code",
        "message",
    ];
    let write = |out: &mut csv::Writer<Vec<u8>>, record: &[String]| {
        out.write_record(record).map_err(|e| Failure::internal(&e))
    };
    write(&mut out, &header.map(String::from))?;
    for (item, new) in &rows {
        let record = [
            item.login_id.as_str().to_string(),
            date.to_string(),
            new.to_string(),
            csv_cell(&code_text(item.flinks_code.as_ref())),
            csv_cell(item.message.as_deref().unwrap_or("")),
        ];
        write(&mut out, &record)?;
    }
    let body = out.into_inner().map_err(|e| Failure::internal(e.error()))?;
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    let disposition = format!("attachment; filename=\"reauth-{date}.csv\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

// ---- failed and requeue ------------------------------------------------------------------

/// The code filter of a form or link: `None` for every code.
fn code_filter(raw: Option<&str>) -> Option<String> {
    raw.map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
}

/// The failed list of a date by FlinksCode: `producer report`'s `failed`.
async fn failed(
    State(console): State<Console>,
    Extension(user): Extension<LoggedIn>,
    Query(query): Query<ListQuery>,
) -> Page {
    let date = date_of(&console, query.date.as_deref())?;
    let code = code_filter(query.code.as_deref());
    let reading = console.reading(date).await?;
    let report = &reading.report;
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    for item in &report.failed {
        *counts
            .entry(code_text(item.flinks_code.as_ref()))
            .or_default() += 1;
    }
    let mut codes: Vec<(String, u64)> = counts.into_iter().collect();
    codes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let matching: Vec<&ReportItem> = report
        .failed
        .iter()
        .filter(|i| {
            code.as_deref()
                .is_none_or(|c| code_text(i.flinks_code.as_ref()) == c)
        })
        .collect();
    let code = code.unwrap_or_default();
    let link = |page: usize| {
        console.url(&format!(
            "/failed?date={date}&code={}&page={page}",
            pages::query_value(&code)
        ))
    };
    let (pager, range) = Pager::new(query.page.unwrap_or(1), PER_PAGE, matching.len(), link);
    let rows = matching[range]
        .iter()
        .map(|i| pages::FailedRow {
            login_id: i.login_id.as_str().to_string(),
            code: code_text(i.flinks_code.as_ref()),
            message: i.message.clone().unwrap_or_default(),
            reason: i.reason.map_or("", |r| r.as_str()).to_string(),
        })
        .collect();
    html(&pages::FailedPage {
        chrome: chrome(&console, &user, "failed"),
        date: date.to_string(),
        code,
        codes,
        rows,
        pager,
        notice: query
            .moved
            .map(|n| format!("Requeued {n} failed logins to the authorize queue.")),
    })
}

/// The requeue selection of a code (`None`: every code) on one date.
fn failed_selection(date: NaiveDate, code: Option<&str>) -> Result<Selection, Failure> {
    let selection = Selection {
        logins: Vec::new(),
        code: code.map(FlinksCode::parse),
        date: Some(date),
    };
    selection.check(Source::Failed, false, false)?;
    Ok(selection)
}

/// What `producer queues requeue failed --code C --date D --dry-run` prints, with the form
/// that runs it.
async fn requeue_preview(
    State(console): State<Console>,
    Extension(user): Extension<LoggedIn>,
    Query(query): Query<ListQuery>,
) -> Page {
    let date = date_of(&console, query.date.as_deref())?;
    let code = code_filter(query.code.as_deref());
    let selection = failed_selection(date, code.as_deref())?;
    let options = RequeueOptions {
        dry_run: true,
        ..RequeueOptions::default()
    };
    let requeuer = console.session().requeuer().await?;
    let RequeueRun::Index(report) = requeuer
        .requeue(Source::Failed, &selection, options)
        .await?
    else {
        return Err(Failure::bad_request("failed records expected"));
    };
    let rows = report
        .moved
        .iter()
        .take(PREVIEW_ROWS)
        .map(|m| pages::PreviewRow {
            login_id: m.login_id.as_str().to_string(),
            date: m.date.to_string(),
        })
        .collect();
    html(&pages::RequeuePage {
        chrome: chrome(&console, &user, "failed"),
        code: code.unwrap_or_default(),
        date: date.to_string(),
        moving: report.moved.len(),
        rows,
        skipped: report.skipped.len(),
    })
}

#[derive(Deserialize)]
struct RequeueForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    date: String,
}

/// `producer queues requeue failed --code C --date D`, audited as that command.
async fn requeue(
    State(console): State<Console>,
    Extension(user): Extension<LoggedIn>,
    Form(form): Form<RequeueForm>,
) -> Page {
    csrf::check(&user.csrf, &form.csrf)?;
    let date = date_of(&console, Some(&form.date))?;
    let code = code_filter(Some(&form.code));
    let selection = failed_selection(date, code.as_deref())?;
    let session = console.session_for(&user.user);
    let run = session
        .requeuer()
        .await?
        .requeue(Source::Failed, &selection, RequeueOptions::default())
        .await?;
    let done = crate::text::queues::Requeued::of(&run);
    let summary = selection.summary(Source::Failed, code.as_deref(), false, false);
    session
        .audit("queues requeue", summary, done.count, 0)
        .await?;
    console.forget_readings();
    Ok(redirect(&console.url(&format!(
        "/failed?date={date}&code={}&moved={}",
        pages::query_value(code.as_deref().unwrap_or("")),
        done.count
    ))))
}

// ---- queues ------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct QueuesQuery {
    done: Option<String>,
    queue: Option<String>,
}

/// `producer queues stats`, with pause and resume per queue.
async fn queues(
    State(console): State<Console>,
    Extension(user): Extension<LoggedIn>,
    Query(query): Query<QueuesQuery>,
) -> Page {
    let stats = console.session().queue_stats().await?;
    let rows = stats
        .control
        .pauses
        .iter()
        .map(|pause| {
            let counted = stats.snapshot.queue(&pause.queue);
            pages::QueueRow {
                name: pause.queue.clone(),
                counted: counted.is_some(),
                ready: counted.map_or(0, |q| q.ready),
                oldest: pages::age_ms(counted.and_then(|q| q.oldest_ready_age_ms)),
                delayed: counted.map_or(0, |q| q.delayed),
                in_flight: counted.map_or(0, |q| q.in_flight),
                dead: counted.map_or(0, |q| q.dead),
                paused: pause.paused,
                pause_text: pause_text(pause),
            }
        })
        .collect();
    let queue = query
        .queue
        .as_deref()
        .and_then(|q| control::parse_queues(q).ok())
        .map(|q| q.join(", "));
    let notice = match (query.done.as_deref(), queue) {
        (Some("paused"), Some(q)) => Some(format!("Paused {q}.")),
        (Some("resumed"), Some(q)) => Some(format!("Resumed {q}.")),
        _ => None,
    };
    html(&pages::QueuesPage {
        chrome: chrome(&console, &user, "queues"),
        queues: rows,
        reauth: stats.snapshot.reauth,
        failed: stats.snapshot.failed,
        requeue_pending: stats.snapshot.requeue_pending,
        notice,
    })
}

fn pause_text(pause: &control::PauseState) -> String {
    if !pause.paused {
        return String::new();
    }
    let since = pause.since.map(pages::when).unwrap_or_else(|| "-".into());
    let by = pause.actor.as_deref().unwrap_or("-");
    match pause.reason.as_deref() {
        Some(reason) => format!("since {since} by {by}: {reason}"),
        None => format!("since {since} by {by}"),
    }
}

#[derive(Deserialize)]
struct QueueForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    queue: String,
    #[serde(default)]
    reason: String,
}

/// `producer queues pause <queue> [--reason]`, audited as that command.
async fn pause(
    State(console): State<Console>,
    Extension(user): Extension<LoggedIn>,
    Form(form): Form<QueueForm>,
) -> Page {
    csrf::check(&user.csrf, &form.csrf)?;
    let queues = control::parse_queues(&form.queue)?;
    let reason = Some(form.reason.trim()).filter(|r| !r.is_empty());
    let session = console.session_for(&user.user);
    let control = session.stores().await?.control;
    let changes = control
        .pause_all(&queues, reason, session.actor(), Utc::now())
        .await?;
    let count = changes.iter().filter(|c| c.changed).count();
    let summary = control::pause_summary(&queues, reason);
    session.audit("queues pause", summary, count, 0).await?;
    console.forget_readings();
    Ok(redirect(&console.url(&format!(
        "/queues?done=paused&queue={}",
        pages::query_value(&form.queue)
    ))))
}

/// `producer queues resume <queue>`, audited as that command.
async fn resume(
    State(console): State<Console>,
    Extension(user): Extension<LoggedIn>,
    Form(form): Form<QueueForm>,
) -> Page {
    csrf::check(&user.csrf, &form.csrf)?;
    let queues = control::parse_queues(&form.queue)?;
    let session = console.session_for(&user.user);
    let control = session.stores().await?.control;
    let changes = control.resume_all(&queues).await?;
    let count = changes.iter().filter(|c| c.changed).count();
    session
        .audit("queues resume", queues.join(","), count, 0)
        .await?;
    console.forget_readings();
    Ok(redirect(&console.url(&format!(
        "/queues?done=resumed&queue={}",
        pages::query_value(&form.queue)
    ))))
}

// ---- workers -----------------------------------------------------------------------------

/// The workers of `producer queues stats` and the first in-flight jobs of `producer queues
/// list authorize|detail --state in-flight`.
async fn workers(State(console): State<Console>, Extension(user): Extension<LoggedIn>) -> Page {
    let session = console.session();
    let snapshot = session.snapshot().await?;
    let mut jobs = Vec::new();
    let mut more_jobs = false;
    for target in [ListTarget::Authorize, ListTarget::Detail] {
        let request = ListRequest {
            target,
            state: Some(ListState::InFlight),
            login: None,
            code: None,
            date: None,
            limit: PER_PAGE,
            cursor: None,
        };
        if let Listing::Jobs(page) = session.list(&request).await? {
            more_jobs |= page.next_cursor.is_some();
            jobs.extend(page.jobs.into_iter().map(|j| {
                pages::JobView {
                    queue: j.queue,
                    id: j.id,
                    login_id: j.login_id.unwrap_or_else(|| "-".into()),
                    date: j.date.map_or_else(|| "-".into(), |d| d.to_string()),
                    attempts: j.attempts,
                    owner: j.owner.unwrap_or_else(|| "-".into()),
                    age: j
                        .age_seconds
                        .map_or_else(|| "-".into(), crate::live::duration_text),
                }
            }));
        }
    }
    let rows = snapshot
        .workers
        .iter()
        .map(|w| pages::WorkerRow {
            id: w.worker.clone(),
            queues: w.queues.join(", "),
            alive: w.alive,
            in_flight: w.in_flight,
            heartbeat: crate::live::ago(w.heartbeat_age_ms),
        })
        .collect();
    html(&pages::WorkersPage {
        chrome: chrome(&console, &user, "workers"),
        workers: rows,
        alive: snapshot.workers_alive() as usize,
        jobs,
        more_jobs,
    })
}

// ---- rate limit --------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct RateQuery {
    set: Option<u8>,
}

/// `producer ratelimit show`, with the capacity forecast and the form of `ratelimit set`.
async fn ratelimit(
    State(console): State<Console>,
    Extension(user): Extension<LoggedIn>,
    Query(query): Query<RateQuery>,
) -> Page {
    let session = console.session();
    let state = session.control_view().await?.rate_limit;
    let active = session
        .stores()
        .await?
        .registry
        .count_active()
        .await
        .map_err(OpsError::from)?;
    let forecast = crate::forecast::Forecast::new(state.per_minute, active);
    html(&pages::RateLimitPage {
        chrome: chrome(&console, &user, "rate limit"),
        limit: state.describe(),
        per_minute: state.per_minute,
        stored: state.stored,
        configured: state.configured,
        active,
        capacity: forecast
            .capacity_per_day
            .map_or_else(|| "without bound".to_string(), |c| format!("{c} logins")),
        coverage: match forecast.coverage_days {
            Some(1) | None => "one day or less".to_string(),
            Some(days) => format!("{days} days, in rotation"),
        },
        notice: query.set.map(|_| "Stored the new rate limit.".to_string()),
    })
}

#[derive(Deserialize)]
struct RateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    per_minute: String,
}

/// `producer ratelimit set <PER_MINUTE>`, audited as that command.
async fn set_ratelimit(
    State(console): State<Console>,
    Extension(user): Extension<LoggedIn>,
    Form(form): Form<RateForm>,
) -> Page {
    csrf::check(&user.csrf, &form.csrf)?;
    let per_minute = control::parse_rate(&form.per_minute)?;
    let session = console.session_for(&user.user);
    let change = session
        .stores()
        .await?
        .control
        .change_rate_limit(per_minute)
        .await?;
    session
        .audit("ratelimit set", change.summary(), 1, 0)
        .await?;
    console.forget_readings();
    Ok(redirect(&console.url("/ratelimit?set=1")))
}

// ---- one login's history -----------------------------------------------------------------

#[derive(Deserialize, Default)]
struct HistoryQuery {
    login: Option<String>,
}

fn history_row(outcome: &LedgerOutcome) -> pages::HistoryRow {
    let message = match outcome {
        LedgerOutcome::Superseded {
            deactivated: true, ..
        } => "deactivated after the routine queued it; Flinks not called".to_string(),
        LedgerOutcome::Superseded { by_date, .. } => {
            format!("replaced by the routine of {by_date}")
        }
        other => other.message().unwrap_or("-").to_string(),
    };
    pages::HistoryRow {
        kind: outcome.kind().to_string(),
        at: pages::when(outcome.at()),
        code: code_text(outcome.flinks_code()),
        message,
    }
}

/// `producer logins show <LoginId>`: the registry's record and the latest outcomes.
async fn history(
    State(console): State<Console>,
    Extension(user): Extension<LoggedIn>,
    Query(query): Query<HistoryQuery>,
) -> Page {
    let q = query.login.unwrap_or_default().trim().to_string();
    let mut page = pages::HistoryPage {
        chrome: chrome(&console, &user, "login history"),
        q: q.clone(),
        login: None,
        error: None,
    };
    if q.is_empty() {
        return html(&page);
    }
    let login = match LoginId::parse(&q) {
        Ok(login) => login,
        Err(e) => {
            page.error = Some(e.to_string());
            return html(&page);
        }
    };
    let detail = match console.session().login_ops().await?.show(&login).await {
        Ok(detail) => detail,
        Err(e) if e.is_usage() => {
            page.error = Some(e.to_string());
            return html(&page);
        }
        Err(e) => return Err(e.into()),
    };
    let s = &detail.status;
    let time = |t: Option<chrono::DateTime<Utc>>| t.map_or_else(|| "-".into(), pages::when);
    let text = |t: Option<String>| t.unwrap_or_else(|| "-".into());
    let fields = vec![
        ("registered", time(s.added_at)),
        ("last outcome", text(s.last_outcome.clone())),
        ("last outcome at", time(s.last_outcome_at)),
        ("last refreshed", time(s.last_success_at)),
        (
            "Flinks LastRefresh",
            text(s.last_refresh.map(|t| t.to_string())),
        ),
        ("stale", text(s.stale.map(|v| v.to_string()))),
        ("re-auth FlinksCode", code_text(s.reauth_code.as_ref())),
        ("re-auth message", text(s.reauth_message.clone())),
        ("last error", text(s.last_error.clone())),
        (
            "nightly refresh at Flinks",
            text(s.flinks_scheduled_refresh.map(|f| f.as_str().to_string())),
        ),
    ];
    page.login = Some(pages::LoginView {
        login_id: s.login_id.as_str().to_string(),
        active: s.active,
        fields,
        history: detail.history.iter().map(history_row).collect(),
    });
    html(&page)
}

// ---- audit trail -------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct AuditQuery {
    before: Option<String>,
}

fn stream_id(raw: &str) -> bool {
    let mut parts = raw.splitn(2, '-');
    let digits =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    digits(parts.next()) && digits(parts.next())
}

/// `producer audit`, a page at a time.
async fn audit(
    State(console): State<Console>,
    Extension(user): Extension<LoggedIn>,
    Query(query): Query<AuditQuery>,
) -> Page {
    let before = query.before.filter(|b| !b.is_empty());
    if let Some(id) = &before {
        if !stream_id(id) {
            return Err(Failure::bad_request(format!(
                "before {id:?}: expected an audit entry id like 1700000000000-0"
            )));
        }
    }
    let audit = console.session().stores().await?.audit;
    let entries = audit.page(before.as_deref(), PER_PAGE).await?;
    let older = (entries.len() == PER_PAGE)
        .then(|| entries.last())
        .flatten()
        .map(|last| console.url(&format!("/audit?before={}", last.id)));
    let rows = entries
        .into_iter()
        .map(|e| pages::AuditRow {
            at: pages::when(e.at),
            actor: e.actor,
            command: e.command,
            args: e.args,
            count: e.count,
            failed: e.failed,
        })
        .collect();
    html(&pages::AuditPage {
        chrome: chrome(&console, &user, "audit"),
        rows,
        older,
        paged: before.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_cell_never_starts_a_formula() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_cell("-1"), "'-1");
        assert_eq!(csv_cell("bank down"), "bank down");
    }

    #[test]
    fn only_stream_ids_page_the_audit_trail() {
        assert!(stream_id("1700000000000-0"));
        for bad in ["", "17", "17-", "-1", "1-2-3", "a-1", "1-0)"] {
            assert!(!stream_id(bad), "{bad}");
        }
    }
}
