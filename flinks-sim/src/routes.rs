//! The HTTP surface: BankingServices endpoints plus `/_sim/stats` and `/_sim/reset`.
//!
//! All mutable state (tokens, sessions, per-LoginId counters, throttle, fault RNG, stats)
//! sits behind one `std::sync::Mutex` that is never held across an `.await`: a simulator
//! favours simple, obviously-correct bookkeeping over throughput. Handlers parse the raw body
//! themselves so that bad input gets a Flinks-shaped `INVALID_REQUEST`, not an axum
//! rejection. Order for faultable calls: arrival (stats, throttle) -> fault draw -> latency
//! -> fault or scenario answer. Throttled calls answer at once, draw no fault and do not
//! consume their authorize token. LoginIds are logged at debug level only.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use chrono::{NaiveDateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::SimConfig;
use crate::faults::{Fault, Injector};
use crate::model::{self, ErrorBody};
use crate::scenario::Scenario;
use crate::stats::{endpoint, Recorder, Stats};
use crate::throttle::Limiter;

/// How long a RequestId stays usable once data retrieval started (Flinks: 30 min).
const PROCESSING_TTL: Duration = Duration::from_secs(30 * 60);
/// Age of the cached data behind a `QUESTION_NOT_FOUND` RequestId.
const STALE_AFTER_FAILED_REFRESH_HOURS: i64 = 72;
/// Purge expired sessions and tokens every this many Authorize calls.
const PURGE_EVERY: u64 = 1024;

/// One simulator instance: config, live state, and the shutdown signal for hung calls.
pub(crate) struct Sim {
    config: SimConfig,
    inner: Mutex<Inner>,
    cancel: CancellationToken,
}

struct Inner {
    /// authorize token -> issue time
    tokens: HashMap<String, Instant>,
    /// RequestId -> session
    sessions: HashMap<String, Session>,
    logins: HashMap<String, LoginState>,
    limiter: Option<Limiter>,
    faults: Injector,
    /// Draws `/GenerateAuthorizeToken` latencies (apart from `faults`, so they do not shift
    /// the fault sequence).
    token_rng: StdRng,
    stats: Recorder,
    /// Authorize calls left before the next purge of expired tokens and sessions.
    until_purge: u64,
}

struct Session {
    login_id: String,
    scenario: Scenario,
    created: Instant,
    /// When GetAccountsDetail(+Async) was first called.
    started: Option<Instant>,
    polls_left: u32,
    last_refresh: NaiveDateTime,
}

#[derive(Default)]
struct LoginState {
    aggregation_failures: u32,
    expired_once: bool,
    deactivated: bool,
    scheduled_refresh_failures: u32,
}

/// A JSON answer before faults are applied.
struct Reply {
    status: u16,
    body: Vec<u8>,
    /// The LoginId whose account data this reply carries (a GetAccountsDetail 200), so the
    /// stats count data delivered, not calls made.
    delivers_accounts_of: Option<String>,
}

impl Reply {
    fn json<T: Serialize>(status: u16, body: &T) -> Self {
        Reply {
            status,
            body: serde_json::to_vec(body).unwrap_or_default(),
            delivers_accounts_of: None,
        }
    }

    fn error(status: u16, code: &'static str, message: &str, request_id: Option<String>) -> Self {
        Reply::json(
            status,
            &ErrorBody {
                http_status_code: status,
                links: model::error_links(),
                message: message.to_owned(),
                flinks_code: code,
                request_id,
            },
        )
    }

    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            )],
            self.body,
        )
            .into_response()
    }
}

fn html(status: StatusCode, title: &str) -> Response {
    let body = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    );
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/html"))],
        body,
    )
        .into_response()
}

fn header_is(headers: &HeaderMap, name: &str, expected: &str) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == expected)
}

/// Healthy `LastRefresh`: about 30 min ago, but never before today's UTC midnight, so a
/// healthy card always looks refreshed "today".
fn fresh_last_refresh() -> NaiveDateTime {
    let now = Utc::now().naive_utc();
    let candidate = now - chrono::Duration::minutes(30);
    if candidate.date() == now.date() {
        candidate
    } else {
        now.date().and_time(chrono::NaiveTime::MIN)
    }
}

impl Sim {
    pub(crate) fn new(config: SimConfig) -> Self {
        let window = config
            .throttle
            .map(|t| t.window)
            .unwrap_or(Duration::from_secs(60));
        Sim {
            inner: Mutex::new(Inner {
                tokens: HashMap::new(),
                sessions: HashMap::new(),
                logins: HashMap::new(),
                limiter: config.throttle.map(Limiter::new),
                faults: Injector::new(config.faults),
                token_rng: StdRng::seed_from_u64(config.faults.seed),
                stats: Recorder::new(window),
                until_purge: PURGE_EVERY,
            }),
            config,
            cancel: CancellationToken::new(),
        }
    }

    pub(crate) fn config(&self) -> &SimConfig {
        &self.config
    }

    pub(crate) fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves counters, not invariants: keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn stats(&self) -> Stats {
        self.lock().stats.snapshot()
    }

    /// Clears stats, tokens, sessions, per-LoginId state and the throttle; reseeds faults.
    pub(crate) fn reset(&self) {
        let mut inner = self.lock();
        inner.tokens.clear();
        inner.sessions.clear();
        inner.logins.clear();
        if let Some(l) = inner.limiter.as_mut() {
            l.clear();
        }
        inner.faults.reseed();
        inner.token_rng = StdRng::seed_from_u64(self.config.faults.seed);
        inner.stats.clear();
        inner.until_purge = PURGE_EVERY;
    }

    /// Sleeps unless the simulator shuts down first.
    async fn sleep(&self, d: Duration) {
        if d.is_zero() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(d) => {}
            () = self.cancel.cancelled() => {}
        }
    }

    /// Applies latency and the drawn fault to a faultable call; `answer` produces the
    /// scenario's reply (under the lock) when the fault lets the call through.
    async fn faulted(
        &self,
        name: &'static str,
        answer: impl FnOnce(&mut Inner) -> Reply,
    ) -> Response {
        let (plan, hang_for) = {
            let mut inner = self.lock();
            (inner.faults.next(), inner.faults.hang_for())
        };
        self.sleep(plan.latency).await;
        match plan.fault {
            Fault::ErrorJson | Fault::ErrorHtml => {
                let mut inner = self.lock();
                inner.stats.faults().errors += 1;
                inner.stats.call(name, 500);
                drop(inner);
                if plan.fault == Fault::ErrorHtml {
                    html(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "500 Internal Server Error",
                    )
                } else {
                    Reply::error(
                        500,
                        "AGGREGATION_ERROR",
                        "An unexpected error occurred (simulated fault)",
                        None,
                    )
                    .into_response()
                }
            }
            Fault::Hang => {
                {
                    let mut inner = self.lock();
                    inner.stats.faults().hangs += 1;
                    inner.stats.call(name, 504);
                }
                self.sleep(hang_for).await;
                html(StatusCode::GATEWAY_TIMEOUT, "504 Gateway Time-out")
            }
            Fault::Malformed | Fault::None => {
                let mut inner = self.lock();
                let mut reply = answer(&mut inner);
                if plan.fault == Fault::Malformed {
                    inner.stats.faults().malformed += 1;
                    let keep = reply.body.len() / 2;
                    reply.body.truncate(keep);
                } else if let Some(login) = reply.delivers_accounts_of.take() {
                    inner.stats.accounts_delivered(&login);
                }
                inner.stats.call(name, reply.status);
                reply.into_response()
            }
        }
    }

    /// The latency to add to the next `/GenerateAuthorizeToken`.
    fn token_latency(&self) -> Duration {
        let (min, max) = self.config.token_latency_ms;
        if max <= min {
            return Duration::from_millis(min);
        }
        Duration::from_millis(self.lock().token_rng.random_range(min..=max))
    }

    fn generate_token(&self, headers: &HeaderMap) -> Reply {
        let mut inner = self.lock();
        let now = Instant::now();
        let reply = match &self.config.secret_key {
            Some(secret) if !header_is(headers, "flinks-auth-key", secret) => Reply::error(
                401,
                "ACCESS_DENIED",
                "You must provide a valid secret key",
                None,
            ),
            _ => {
                let ttl = self.config.token_ttl;
                inner
                    .tokens
                    .retain(|_, issued| now.saturating_duration_since(*issued) < ttl);
                let token = Uuid::new_v4().to_string();
                inner.tokens.insert(token.clone(), now);
                Reply::json(
                    200,
                    &model::TokenOk {
                        http_status_code: 200,
                        token,
                    },
                )
            }
        };
        inner
            .stats
            .call(endpoint::GENERATE_AUTHORIZE_TOKEN, reply.status);
        reply
    }

    async fn authorize(&self, headers: HeaderMap, body: Bytes) -> Response {
        let now = Instant::now();
        let login_id = serde_json::from_slice::<model::AuthorizeRequest>(&body)
            .ok()
            .and_then(|r| r.login_id)
            .filter(|l| !l.trim().is_empty());
        {
            let mut inner = self.lock();
            inner.stats.authorize_arrival(now);
            if let Some(login) = &login_id {
                inner.stats.login_call(login, endpoint::AUTHORIZE);
            }
            inner.until_purge = inner.until_purge.saturating_sub(1);
            if inner.until_purge == 0 {
                inner.until_purge = PURGE_EVERY;
                self.purge(&mut inner, now);
            }
            if let Some(limiter) = inner.limiter.as_mut() {
                if !limiter.try_acquire(now) {
                    let status = limiter.status();
                    inner.stats.violation();
                    inner.stats.call(endpoint::AUTHORIZE, status);
                    tracing::debug!(login_id = ?login_id, "authorize throttled");
                    return Reply::error(
                        status,
                        "TOO_MANY_REQUESTS",
                        "Too many requests have been made in a given time window",
                        None,
                    )
                    .into_response();
                }
            }
        }
        self.faulted(endpoint::AUTHORIZE, |inner| {
            self.authorize_answer(inner, &headers, login_id, now)
        })
        .await
    }

    fn purge(&self, inner: &mut Inner, now: Instant) {
        let (token_ttl, rid_ttl) = (self.config.token_ttl, self.config.request_id_ttl);
        inner
            .tokens
            .retain(|_, issued| now.saturating_duration_since(*issued) < token_ttl);
        inner.sessions.retain(|_, s| match s.started {
            None => now.saturating_duration_since(s.created) < rid_ttl,
            Some(t) => now.saturating_duration_since(t) < PROCESSING_TTL,
        });
    }

    fn authorize_answer(
        &self,
        inner: &mut Inner,
        headers: &HeaderMap,
        login_id: Option<String>,
        now: Instant,
    ) -> Reply {
        if self.config.secret_key.is_some() {
            let token = headers
                .get("flinks-auth-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .unwrap_or_default();
            let valid = inner.tokens.remove(token).is_some_and(|issued| {
                now.saturating_duration_since(issued) < self.config.token_ttl
            });
            if !valid {
                return Reply::error(
                    401,
                    "ACCESS_DENIED",
                    "You must provide a valid authorize token",
                    None,
                );
            }
        }
        let Some(login_id) = login_id else {
            return Reply::error(400, "INVALID_REQUEST", "LoginId is required", None);
        };
        let scenario = self.config.rules.scenario_for(&login_id);
        tracing::debug!(%login_id, %scenario, "authorize");
        let state = inner.logins.entry(login_id.clone()).or_default();
        let scheduled = !state.deactivated;
        let open_session = |inner: &mut Inner, last_refresh: NaiveDateTime| {
            let request_id = Uuid::new_v4().to_string();
            inner.sessions.insert(
                request_id.clone(),
                Session {
                    login_id: login_id.clone(),
                    scenario,
                    created: now,
                    started: None,
                    polls_left: 0,
                    last_refresh,
                },
            );
            request_id
        };
        let last_refresh = match scenario {
            Scenario::InvalidLogin => {
                return Reply::error(
                    401,
                    "INVALID_LOGIN",
                    "The LoginId is invalid or does not belong to this customer",
                    None,
                )
            }
            Scenario::InvalidLogin400 => {
                return Reply::error(400, "INVALID_LOGIN", "LoginId is not valid", None)
            }
            Scenario::InvalidLoginCredentials => {
                return Reply::error(
                    401,
                    "INVALID_LOGIN",
                    "The stored credentials are no longer valid",
                    None,
                )
            }
            Scenario::UnknownReauthCode => {
                return Reply::error(
                    401,
                    "CONSENT_RENEWAL_REQUIRED",
                    "The end user must renew their consent",
                    None,
                )
            }
            Scenario::BodySays401 => {
                let mut reply = Reply::error(
                    401,
                    "QUESTION_NOT_FOUND",
                    "The security question was not found in the stored answers",
                    None,
                );
                reply.status = 200;
                return reply;
            }
            Scenario::BodySays401NoCode => {
                return Reply::json(
                    200,
                    &serde_json::json!({
                        "HttpStatusCode": 401,
                        "Links": model::error_links(),
                        "Message": "Authorization has been denied for this request"
                    }),
                )
            }
            Scenario::Bare203 => {
                return Reply {
                    status: 203,
                    body: Vec::new(),
                    delivers_accounts_of: None,
                }
            }
            Scenario::Throttled => {
                return Reply::error(
                    401,
                    "TOO_MANY_REQUESTS",
                    "Too many requests have been made in a given time window",
                    None,
                )
            }
            Scenario::AuthorizePending { .. } => {
                let request_id = open_session(inner, fresh_last_refresh());
                return Reply::error(
                    202,
                    "OPERATION_PENDING",
                    "Your operation is still processing",
                    Some(request_id),
                );
            }
            Scenario::RetryLater => {
                return Reply::error(
                    401,
                    "RETRY_LATER",
                    "We were unable to connect to the financial institution, please retry later",
                    None,
                )
            }
            Scenario::InvalidPassword => {
                return Reply::error(
                    401,
                    "INVALID_PASSWORD",
                    "The password provided was incorrect",
                    None,
                )
            }
            Scenario::DisabledLogin => {
                return Reply::error(
                    401,
                    "DISABLED_LOGIN",
                    "The account has been disabled by the financial institution",
                    None,
                )
            }
            Scenario::QuestionNotFound => {
                let stale = Utc::now().naive_utc()
                    - chrono::Duration::hours(STALE_AFTER_FAILED_REFRESH_HOURS);
                let request_id = open_session(inner, stale);
                return Reply::error(
                    401,
                    "QUESTION_NOT_FOUND",
                    "The security question was not found in the stored answers",
                    Some(request_id),
                );
            }
            Scenario::AggregationError { failures } if state.aggregation_failures < failures => {
                state.aggregation_failures += 1;
                return Reply::error(
                    500,
                    "AGGREGATION_ERROR",
                    "An unexpected error occurred during aggregation",
                    None,
                );
            }
            Scenario::Stale { hours } => {
                Utc::now().naive_utc() - chrono::Duration::hours(i64::from(hours))
            }
            Scenario::Healthy
            | Scenario::Pending { .. }
            | Scenario::AggregationError { .. }
            | Scenario::SessionExpiredOnce => fresh_last_refresh(),
        };
        let request_id = open_session(inner, last_refresh);
        Reply::json(
            200,
            &model::AuthorizeOk {
                http_status_code: 200,
                links: model::authorize_links(),
                institution_name: model::INSTITUTION,
                login: model::Login::new(&login_id, scheduled, last_refresh),
                institution_id: model::INSTITUTION_ID,
                institution: model::INSTITUTION,
                request_id,
            },
        )
    }

    async fn accounts_detail(
        &self,
        name: &'static str,
        headers: HeaderMap,
        request_id: Option<String>,
    ) -> Response {
        if let Some(key) = &self.config.api_key {
            if !header_is(&headers, "x-api-key", key) {
                let reply = Reply::error(
                    401,
                    "ACCESS_DENIED",
                    "You must provide a valid x-api-key",
                    None,
                );
                self.lock().stats.call(name, reply.status);
                return reply.into_response();
            }
        }
        let now = Instant::now();
        self.faulted(name, |inner| {
            self.detail_answer(inner, name, request_id, now)
        })
        .await
    }

    fn detail_answer(
        &self,
        inner: &mut Inner,
        name: &'static str,
        request_id: Option<String>,
        now: Instant,
    ) -> Reply {
        let Some(request_id) = request_id.filter(|r| !r.trim().is_empty()) else {
            return Reply::error(400, "INVALID_REQUEST", "RequestId is required", None);
        };
        let nonexistent = |rid: String| {
            Reply::error(
                400,
                "SESSION_NONEXISTENT",
                "The RequestId is not valid or has expired",
                Some(rid),
            )
        };
        let Some(session) = inner.sessions.get_mut(&request_id) else {
            return nonexistent(request_id);
        };
        let expired = match session.started {
            None => now.saturating_duration_since(session.created) >= self.config.request_id_ttl,
            Some(t) => now.saturating_duration_since(t) >= PROCESSING_TTL,
        };
        let login_id = session.login_id.clone();
        inner.stats.login_call(&login_id, name);
        if expired {
            inner.sessions.remove(&request_id);
            return Reply::error(
                400,
                "SESSION_EXPIRED",
                "The session has expired, please call Authorize again",
                Some(request_id),
            );
        }
        let login = inner.logins.entry(login_id.clone()).or_default();
        let scheduled = !login.deactivated;
        if session.scenario == Scenario::SessionExpiredOnce && !login.expired_once {
            login.expired_once = true;
            inner.sessions.remove(&request_id);
            return nonexistent(request_id);
        }
        let first = session.started.is_none();
        session.started.get_or_insert(now);
        if let Scenario::Pending { polls } | Scenario::AuthorizePending { polls } = session.scenario
        {
            if first {
                session.polls_left = polls;
            }
            let is_async = name == endpoint::GET_ACCOUNTS_DETAIL_ASYNC;
            let pending = if is_async {
                let pending = session.polls_left > 0;
                session.polls_left = session.polls_left.saturating_sub(1);
                pending
            } else {
                first || session.polls_left > 0
            };
            if pending {
                return Reply::json(
                    202,
                    &ErrorBody {
                        http_status_code: 202,
                        links: model::pending_links(),
                        message: "Your operation is still processing".to_owned(),
                        flinks_code: "OPERATION_PENDING",
                        request_id: Some(request_id),
                    },
                );
            }
        }
        let last_refresh = session.last_refresh;
        let mut reply = Reply::json(
            200,
            &model::AccountsDetail {
                http_status_code: 200,
                accounts: model::accounts_for(&login_id, last_refresh),
                institution_name: model::INSTITUTION,
                login: model::Login::new(&login_id, scheduled, last_refresh),
                institution_id: model::INSTITUTION_ID,
                institution: model::INSTITUTION,
                request_id,
            },
        );
        reply.delivers_accounts_of = Some(login_id);
        reply
    }

    fn set_scheduled_refresh(&self, body: &[u8]) -> Reply {
        let mut inner = self.lock();
        let req = serde_json::from_slice::<model::ScheduledRefreshRequest>(body).ok();
        let reply = match req {
            Some(model::ScheduledRefreshRequest {
                login_id: Some(login_id),
                is_activated: Some(active),
            }) => {
                inner
                    .stats
                    .login_call(&login_id, endpoint::SET_SCHEDULED_REFRESH);
                inner.stats.scheduled_refresh(&login_id, active);
                let scenario = self.config.rules.scenario_for(&login_id);
                let state = inner.logins.entry(login_id.clone()).or_default();
                if scenario == Scenario::InvalidLogin {
                    Reply::error(
                        401,
                        "INVALID_LOGIN",
                        "The LoginId is invalid or does not belong to this customer",
                        None,
                    )
                } else if matches!(scenario, Scenario::AggregationError { failures }
                    if state.scheduled_refresh_failures < failures)
                {
                    state.scheduled_refresh_failures += 1;
                    Reply::error(
                        500,
                        "AGGREGATION_ERROR",
                        "An unexpected error occurred (simulated)",
                        None,
                    )
                } else {
                    inner
                        .logins
                        .entry(login_id.clone())
                        .or_default()
                        .deactivated = !active;
                    let verb = if active { "activated" } else { "deactivated" };
                    Reply::json(
                        200,
                        &format!("LoginId {login_id} has now been {verb} for automatic refresh"),
                    )
                }
            }
            _ => Reply::error(
                400,
                "INVALID_REQUEST",
                "LoginId and IsActivated are required",
                None,
            ),
        };
        inner
            .stats
            .call(endpoint::SET_SCHEDULED_REFRESH, reply.status);
        reply
    }

    fn nightly_refresh_status(&self, headers: &HeaderMap) -> Reply {
        let mut inner = self.lock();
        let authorized = match &self.config.bearer_secret {
            Some(secret) => header_is(headers, "authorization", &format!("Bearer {secret}")),
            None => true,
        };
        let reply = if authorized {
            let rules = &self.config.rules;
            let candidates: BTreeSet<&str> = rules
                .explicit_logins()
                .map(|(l, _)| l)
                .chain(inner.logins.keys().map(String::as_str))
                .collect();
            let last = model::flinks_datetime(
                Utc::now().naive_utc() - chrono::Duration::hours(STALE_AFTER_FAILED_REFRESH_HOURS),
            );
            let cards = candidates
                .into_iter()
                .filter(|l| !inner.logins.get(*l).is_some_and(|s| s.deactivated))
                .filter_map(|l| {
                    let (state, code) = match rules.scenario_for(l) {
                        Scenario::QuestionNotFound => ("AnsweringSecurityChallenge", None),
                        Scenario::InvalidPassword => ("Error", Some("INVALID_PASSWORD")),
                        Scenario::DisabledLogin => ("Error", Some("DISABLED_LOGIN")),
                        _ => return None,
                    };
                    Some(model::IneligibleCard {
                        login_id: l.to_owned(),
                        last_refresh_date: last.clone(),
                        last_refresh_state: state,
                        last_refresh_error_code: code,
                    })
                })
                .collect();
            Reply::json(
                200,
                &model::NightlyRefreshStatus {
                    http_status_code: 200,
                    ineligible_cards: cards,
                },
            )
        } else {
            Reply::error(
                401,
                "ACCESS_DENIED",
                "You must provide a valid Bearer API secret",
                None,
            )
        };
        inner
            .stats
            .call(endpoint::GET_NIGHTLY_REFRESH_STATUS, reply.status);
        reply
    }
}

type Shared = State<Arc<Sim>>;

async fn generate_token(State(sim): Shared, headers: HeaderMap) -> Response {
    sim.sleep(sim.token_latency()).await;
    sim.generate_token(&headers).into_response()
}

async fn authorize(State(sim): Shared, headers: HeaderMap, body: Bytes) -> Response {
    sim.authorize(headers, body).await
}

async fn accounts_detail(State(sim): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let request_id = serde_json::from_slice::<model::DetailRequest>(&body)
        .ok()
        .and_then(|r| r.request_id);
    sim.accounts_detail(endpoint::GET_ACCOUNTS_DETAIL, headers, request_id)
        .await
}

async fn accounts_detail_async(
    State(sim): Shared,
    headers: HeaderMap,
    Path(request_id): Path<String>,
) -> Response {
    sim.accounts_detail(
        endpoint::GET_ACCOUNTS_DETAIL_ASYNC,
        headers,
        Some(request_id),
    )
    .await
}

async fn set_scheduled_refresh(State(sim): Shared, body: Bytes) -> Response {
    sim.set_scheduled_refresh(&body).into_response()
}

async fn nightly_refresh_status(State(sim): Shared, headers: HeaderMap) -> Response {
    sim.nightly_refresh_status(&headers).into_response()
}

async fn stats(State(sim): Shared) -> Json<Stats> {
    Json(sim.stats())
}

async fn reset(State(sim): Shared) -> Json<serde_json::Value> {
    sim.reset();
    Json(serde_json::json!({ "reset": true }))
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Body::from("not found")).into_response()
}

/// The full router for one simulator instance.
pub(crate) fn router(sim: Arc<Sim>) -> Router {
    let banking = Router::new()
        .route("/GenerateAuthorizeToken", post(generate_token))
        .route("/Authorize", post(authorize))
        .route("/GetAccountsDetail", post(accounts_detail))
        .route(
            "/GetAccountsDetailAsync/{request_id}",
            get(accounts_detail_async),
        )
        .route("/SetScheduledRefresh", patch(set_scheduled_refresh))
        .route("/GetNightlyRefreshStatus", get(nightly_refresh_status));
    let prefix = format!("/v3/{}/BankingServices", sim.config().customer_id);
    Router::new()
        .nest(&prefix, banking)
        .route("/_sim/stats", get(stats))
        .route("/_sim/reset", post(reset))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(sim.config().max_body_bytes))
        .with_state(sim)
}
