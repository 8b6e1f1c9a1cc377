//! `FlinksClient`: one async method per Flinks endpoint the nightly routine calls.
//!
//! Every call goes through one private path (`FlinksClient::execute`): build the request
//! with the configured headers (each sent only when its secret is set, marked sensitive),
//! send it with the endpoint's timeout, read at most `max_body_bytes` of the body in
//! chunks, classify the answer ([`classify`]), decode a success, then emit the call's one
//! trace event and metrics (`call_log::record`) and map failures to [`Error`]. The client
//! is an `Arc` around one `reqwest::Client` (rustls, pooled connections, no redirects so
//! no key is ever forwarded to another host), so clones are cheap and share the pool.
//! It does not retry, poll or sleep: the caller decides from the classification.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tracing::field::Empty;
use url::Url;

use super::call_log::{self, scrub_login_ids, ApiCall, Endpoint};
use super::classify::{classify_answer, classify_transport, Answer, Classification, TransportKind};
use super::config::{FlinksConfig, TraceLoginIds};
use super::error::{Error, Failure};
use super::model::{
    AccountsDetailBody, AuthorizeBody, AuthorizeOk, AuthorizeOutcome, AuthorizeTokenBody,
    DetailOutcome, Envelope, IneligibleCard, Institution, NightlyRefreshStatusBody,
};
use crate::domain::{cap_text, FlinksCode, LoginId, RequestId, MAX_FLINKS_TEXT_BYTES};

const FLINKS_AUTH_KEY: HeaderName = HeaderName::from_static("flinks-auth-key");
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// A single-use authorize token from `/GenerateAuthorizeToken` (valid 30 min unused).
/// `Debug` does not print it.
pub struct AuthorizeToken(SecretString);

impl AuthorizeToken {
    /// The token value, for the `flinks-auth-key` header. Never log it.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for AuthorizeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthorizeToken(<redacted>)")
    }
}

/// The typed Flinks client. Cheap to clone (clones share one connection pool).
#[derive(Clone)]
pub struct FlinksClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: FlinksConfig,
    secret_key: Option<HeaderValue>,
    api_key: Option<HeaderValue>,
    bearer: Option<HeaderValue>,
}

impl std::fmt::Debug for FlinksClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlinksClient")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// One request, before it is sent.
struct Call<'a> {
    endpoint: Endpoint,
    method: Method,
    url: Url,
    body: Option<Value>,
    auth: Option<(HeaderName, HeaderValue)>,
    timeout: Duration,
    /// The login the call is about, named in the trace as `TRACE_LOGIN_IDS` says.
    login: Option<&'a LoginId>,
    /// A 202 is an answer (detail endpoints) rather than a failure.
    accepts_pending: bool,
    /// Record the answer's RequestId on the current span (its `request_id` field is
    /// `Empty` until the answer names it).
    records_request_id: bool,
}

enum Reply<T> {
    Ready(T),
    Pending {
        request_id: Option<RequestId>,
        code: Option<FlinksCode>,
    },
}

fn secret_header(
    name: &str,
    value: Option<&SecretString>,
    prefix: &str,
) -> Result<Option<HeaderValue>, Error> {
    value
        .map(|secret| {
            let mut header = HeaderValue::from_str(&format!("{prefix}{}", secret.expose_secret()))
                .map_err(|_| {
                    Error::Config(format!(
                        "flinks {name} contains characters not allowed in an HTTP header"
                    ))
                })?;
            header.set_sensitive(true);
            Ok(header)
        })
        .transpose()
}

fn transport_kind(error: &reqwest::Error) -> TransportKind {
    if error.is_timeout() {
        TransportKind::Timeout
    } else if error.is_connect() {
        TransportKind::Connect
    } else {
        TransportKind::Other
    }
}

/// Reads the body in chunks, stopping as soon as it would exceed `cap` bytes.
async fn read_capped(
    response: &mut reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, TransportKind> {
    if response
        .content_length()
        .is_some_and(|len| len > cap as u64)
    {
        return Err(TransportKind::BodyTooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_kind(&e))? {
        if body.len() + chunk.len() > cap {
            return Err(TransportKind::BodyTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl FlinksClient {
    /// Builds a client after validating `config` (see [`FlinksConfig::validate`]).
    pub fn new(config: FlinksConfig) -> Result<Self, Error> {
        config.validate().map_err(Error::Config)?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.default_timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("nightly-refresh/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                secret_key: secret_header("secret_key", config.secret_key.as_ref(), "")?,
                api_key: secret_header("api_key", config.api_key.as_ref(), "")?,
                bearer: secret_header("bearer_secret", config.bearer_secret.as_ref(), "Bearer ")?,
                http,
                config,
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &FlinksConfig {
        &self.inner.config
    }

    /// `POST /GenerateAuthorizeToken` with `flinks-auth-key: <secret key>` (if configured):
    /// a fresh single-use token for one `/Authorize`.
    #[tracing::instrument(
        skip_all,
        name = "flinks.generate_authorize_token",
        err(level = "debug")
    )]
    pub async fn generate_authorize_token(&self) -> Result<AuthorizeToken, Error> {
        let call = Call {
            endpoint: Endpoint::GenerateAuthorizeToken,
            method: Method::POST,
            url: self.url(Endpoint::GenerateAuthorizeToken, None),
            body: Some(json!({})),
            auth: self.inner.secret_key.clone().map(|v| (FLINKS_AUTH_KEY, v)),
            timeout: self.inner.config.authorize_timeout,
            login: None,
            accepts_pending: false,
            records_request_id: false,
        };
        let reply = self
            .execute(call, |_, json, _| {
                let body: AuthorizeTokenBody = serde_json::from_value(json?).ok()?;
                let token = body.token.filter(|t| !t.is_empty())?;
                HeaderValue::from_str(&token).ok()?;
                Some(AuthorizeToken(SecretString::from(token)))
            })
            .await?;
        ready(reply, Endpoint::GenerateAuthorizeToken)
    }

    /// Cached `POST /Authorize` `{"LoginId":..,"MostRecentCached":true}` for callers that
    /// need an open session now: mints the token [`FlinksClient::prepare_authorize`] gives,
    /// then calls [`FlinksClient::authorize_with`]; a 202 is an error. A caller under a
    /// rate limit takes its permit between the two instead.
    pub async fn authorize(&self, login: &LoginId) -> Result<AuthorizeOk, Error> {
        let token = self.prepare_authorize().await?;
        match self.authorize_with(login, token).await? {
            AuthorizeOutcome::Authorized(ok) => Ok(ok),
            AuthorizeOutcome::Pending { request_id, code } => ready(
                Reply::<AuthorizeOk>::Pending {
                    request_id: Some(request_id),
                    code,
                },
                Endpoint::Authorize,
            ),
        }
    }

    /// What `/Authorize` needs before it can be sent: with a secret key configured, a fresh
    /// single-use token from `/GenerateAuthorizeToken`; without one, nothing (`None`).
    pub async fn prepare_authorize(&self) -> Result<Option<AuthorizeToken>, Error> {
        match self.inner.secret_key {
            Some(_) => self.generate_authorize_token().await.map(Some),
            None => Ok(None),
        }
    }

    /// Cached `POST /Authorize`, sending `token` (from [`FlinksClient::prepare_authorize`])
    /// as `flinks-auth-key`; no auth header when it is `None`. Makes exactly one call, so a
    /// rate-limit permit taken right before it covers it. A 200 means a session is open:
    /// check `login.last_refresh` for staleness. A 202 with a RequestId is
    /// [`AuthorizeOutcome::Pending`]: the routine polls it; a 202 without one is a
    /// retryable error.
    #[tracing::instrument(
        skip_all,
        name = "flinks.authorize",
        fields(login = %self.traced(login), request_id = Empty),
        err(level = "debug")
    )]
    pub async fn authorize_with(
        &self,
        login: &LoginId,
        token: Option<AuthorizeToken>,
    ) -> Result<AuthorizeOutcome, Error> {
        let auth = match token {
            Some(token) => {
                let mut value = HeaderValue::from_str(token.expose_secret()).map_err(|_| {
                    Error::Config("authorize token is not a valid header value".into())
                })?;
                value.set_sensitive(true);
                Some((FLINKS_AUTH_KEY, value))
            }
            None => None,
        };
        let call = Call {
            endpoint: Endpoint::Authorize,
            method: Method::POST,
            url: self.url(Endpoint::Authorize, None),
            body: Some(json!({ "LoginId": login.as_str(), "MostRecentCached": true })),
            auth,
            timeout: self.inner.config.authorize_timeout,
            login: Some(login),
            accepts_pending: true,
            records_request_id: true,
        };
        let reply = self
            .execute(call, |_, json, _| {
                let body: AuthorizeBody = serde_json::from_value(json?).ok()?;
                Some(AuthorizeOk {
                    request_id: body.request_id?,
                    login: body.login,
                    institution: Institution::new(
                        body.institution,
                        body.institution_name,
                        body.institution_id,
                    ),
                })
            })
            .await?;
        match reply {
            Reply::Ready(ok) => Ok(AuthorizeOutcome::Authorized(ok)),
            Reply::Pending {
                request_id: Some(request_id),
                code,
            } => Ok(AuthorizeOutcome::Pending { request_id, code }),
            Reply::Pending {
                request_id: None,
                code,
            } => ready(
                Reply::Pending {
                    request_id: None,
                    code,
                },
                Endpoint::Authorize,
            ),
        }
    }

    /// `POST /GetAccountsDetail` `{"RequestId":..}` with `x-api-key` (if configured) and the
    /// long `detail_timeout`. A 202 is [`DetailOutcome::Pending`]: poll
    /// [`FlinksClient::get_accounts_detail_async`].
    pub async fn get_accounts_detail(
        &self,
        request_id: &RequestId,
    ) -> Result<DetailOutcome, Error> {
        self.accounts_detail(None, request_id).await
    }

    /// [`FlinksClient::get_accounts_detail`] on behalf of `login`: the call is traced with
    /// the login's fingerprint and a raw LoginId that Flinks echoes in a `Message` is
    /// replaced by it (what the worker uses).
    pub async fn get_accounts_detail_for(
        &self,
        login: &LoginId,
        request_id: &RequestId,
    ) -> Result<DetailOutcome, Error> {
        self.accounts_detail(Some(login), request_id).await
    }

    #[tracing::instrument(
        skip_all,
        name = "flinks.get_accounts_detail",
        fields(request_id = %request_id),
        err(level = "debug")
    )]
    async fn accounts_detail(
        &self,
        login: Option<&LoginId>,
        request_id: &RequestId,
    ) -> Result<DetailOutcome, Error> {
        let call = Call {
            endpoint: Endpoint::GetAccountsDetail,
            method: Method::POST,
            url: self.url(Endpoint::GetAccountsDetail, None),
            body: Some(json!({ "RequestId": request_id.as_str() })),
            auth: self.api_key_header(),
            timeout: self.inner.config.detail_timeout,
            login,
            accepts_pending: true,
            records_request_id: false,
        };
        self.detail(call, request_id).await
    }

    /// `GET /GetAccountsDetailAsync/{RequestId}` (no body) with `x-api-key` (if configured):
    /// one poll; [`DetailOutcome::Pending`] while Flinks is still processing.
    pub async fn get_accounts_detail_async(
        &self,
        request_id: &RequestId,
    ) -> Result<DetailOutcome, Error> {
        self.accounts_detail_async(None, request_id).await
    }

    /// [`FlinksClient::get_accounts_detail_async`] on behalf of `login` (see
    /// [`FlinksClient::get_accounts_detail_for`]).
    pub async fn get_accounts_detail_async_for(
        &self,
        login: &LoginId,
        request_id: &RequestId,
    ) -> Result<DetailOutcome, Error> {
        self.accounts_detail_async(Some(login), request_id).await
    }

    #[tracing::instrument(
        skip_all,
        name = "flinks.get_accounts_detail_async",
        fields(request_id = %request_id),
        err(level = "debug")
    )]
    async fn accounts_detail_async(
        &self,
        login: Option<&LoginId>,
        request_id: &RequestId,
    ) -> Result<DetailOutcome, Error> {
        let call = Call {
            endpoint: Endpoint::GetAccountsDetailAsync,
            method: Method::GET,
            url: self.url(Endpoint::GetAccountsDetailAsync, Some(request_id.as_str())),
            body: None,
            auth: self.api_key_header(),
            timeout: self.inner.config.default_timeout,
            login,
            accepts_pending: true,
            records_request_id: false,
        };
        self.detail(call, request_id).await
    }

    /// `PATCH /SetScheduledRefresh` `{"LoginId":..,"IsActivated":..}` with `x-api-key` (if
    /// configured). Returns Flinks' bare-string answer (e.g. "LoginId … has now been
    /// activated for automatic refresh"), or the raw body text if it is not a JSON string.
    /// The answer echoes the raw LoginId: do not log it as is.
    #[tracing::instrument(
        skip_all,
        name = "flinks.set_scheduled_refresh",
        fields(login = %self.traced(login), activated = activated),
        err(level = "debug")
    )]
    pub async fn set_scheduled_refresh(
        &self,
        login: &LoginId,
        activated: bool,
    ) -> Result<String, Error> {
        let call = Call {
            endpoint: Endpoint::SetScheduledRefresh,
            method: Method::PATCH,
            url: self.url(Endpoint::SetScheduledRefresh, None),
            body: Some(json!({ "LoginId": login.as_str(), "IsActivated": activated })),
            auth: self.api_key_header(),
            timeout: self.inner.config.default_timeout,
            login: Some(login),
            accepts_pending: false,
            records_request_id: false,
        };
        let reply = self
            .execute(call, |bytes, json, _| match json {
                Some(serde_json::Value::String(text)) => Some(text),
                _ => std::str::from_utf8(bytes).ok().map(str::to_owned),
            })
            .await?;
        let answer = ready(reply, Endpoint::SetScheduledRefresh)?;
        // Flinks answers a bare string, the only record of what it did: it joins the call
        // trace, its LoginIds fingerprinted as in any Flinks text, and cut.
        let keep_login_ids = self.inner.config.trace_login_ids == TraceLoginIds::Full;
        tracing::info!(
            target: call_log::ANSWER_TARGET,
            login = %self.traced(login),
            activated,
            answer = %cap_text(&scrub_login_ids(&answer, keep_login_ids), MAX_FLINKS_TEXT_BYTES),
            "SetScheduledRefresh answer"
        );
        Ok(answer)
    }

    /// `GET /GetNightlyRefreshStatus` with `Authorization: Bearer <bearer_secret>` (if
    /// configured): the cards with nightly refresh on that are no longer eligible.
    #[tracing::instrument(
        skip_all,
        name = "flinks.get_nightly_refresh_status",
        err(level = "debug")
    )]
    pub async fn get_nightly_refresh_status(&self) -> Result<Vec<IneligibleCard>, Error> {
        let call = Call {
            endpoint: Endpoint::GetNightlyRefreshStatus,
            method: Method::GET,
            url: self.url(Endpoint::GetNightlyRefreshStatus, None),
            body: None,
            auth: self.inner.bearer.clone().map(|v| (AUTHORIZATION, v)),
            timeout: self.inner.config.default_timeout,
            login: None,
            accepts_pending: false,
            records_request_id: false,
        };
        let reply = self
            .execute(call, |_, json, _| {
                serde_json::from_value::<NightlyRefreshStatusBody>(json?)
                    .ok()
                    .map(|body| body.ineligible_cards)
            })
            .await?;
        ready(reply, Endpoint::GetNightlyRefreshStatus)
    }

    /// How the trace names `login` (`TRACE_LOGIN_IDS`).
    fn traced(&self, login: &LoginId) -> String {
        call_log::traced_login(
            login,
            self.inner.config.trace_login_ids == TraceLoginIds::Full,
        )
    }

    fn api_key_header(&self) -> Option<(HeaderName, HeaderValue)> {
        self.inner.api_key.clone().map(|v| (X_API_KEY, v))
    }

    /// `base_url` + `/{endpoint}` (+ `/{segment}`, percent-encoded).
    fn url(&self, endpoint: Endpoint, segment: Option<&str>) -> Url {
        let mut url = self.inner.config.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push(endpoint.path());
            if let Some(segment) = segment {
                path.push(segment);
            }
        }
        url
    }

    async fn detail(&self, call: Call<'_>, asked: &RequestId) -> Result<DetailOutcome, Error> {
        let reply = self
            .execute(call, |_, json, accounts| {
                AccountsDetailBody::decode(json?, accounts, asked)
            })
            .await?;
        Ok(match reply {
            Reply::Ready(detail) => DetailOutcome::Ready(Box::new(detail)),
            Reply::Pending { request_id, code } => DetailOutcome::Pending {
                request_id: request_id.unwrap_or_else(|| asked.clone()),
                code,
            },
        })
    }

    /// Sends one call, classifies, decodes, logs and counts it. The body is parsed as JSON
    /// once: the envelope is read from it, then `decode` turns a success body (its bytes,
    /// that JSON, `None` when it is not JSON, and the field kept as text, see
    /// [`kept_as_text`]) into the result; `None` from `decode` means the body is unusable
    /// (`decode` transport failure).
    async fn execute<T>(
        &self,
        call: Call<'_>,
        decode: impl FnOnce(&[u8], Option<Value>, Option<Box<RawValue>>) -> Option<T>,
    ) -> Result<Reply<T>, Error> {
        let started = Instant::now();
        let keep_login_ids = self.inner.config.trace_login_ids == TraceLoginIds::Full;
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), call.url.clone())
            .timeout(call.timeout)
            .header(ACCEPT, "application/json");
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        if let Some((name, value)) = call.auth {
            request = request.header(name, value);
        }

        let answer = match request.send().await {
            Ok(mut response) => {
                let status = response.status().as_u16();
                (
                    status,
                    read_capped(&mut response, self.inner.config.max_body_bytes).await,
                )
            }
            Err(error) => (0, Err(transport_kind(&error))),
        };

        let mut failure = Failure {
            endpoint: call.endpoint,
            status: (answer.0 != 0).then_some(answer.0),
            code: None,
            message: None,
            request_id: None,
            transport: None,
        };
        let (class, result) = match answer {
            (_, Err(kind)) => {
                failure.transport = Some(kind);
                let class = classify_transport(kind);
                (class, Err(class))
            }
            (line_status, Ok(bytes)) => {
                let (json, kept) = match parse_body(&bytes, kept_as_text(call.endpoint)) {
                    Some((json, kept)) => (Some(json), kept),
                    None => (None, None),
                };
                if json.is_none() && starts_as_json(&bytes) {
                    // JSON that stops short lost whatever FlinksCode it carried: it may have
                    // been SESSION_NONEXISTENT as well as INVALID_REQUEST, so whatever the
                    // status, it is an unusable answer to retry, never a verdict on the login.
                    failure.status = Some(line_status);
                    failure.transport = Some(TransportKind::Decode);
                    let class = classify_transport(TransportKind::Decode);
                    (class, Err(class))
                } else {
                    let envelope = Envelope::of(json.as_ref());
                    // The body's HttpStatusCode wins over the status line (contract §5).
                    let status = envelope.http_status_code.unwrap_or(line_status);
                    if status != line_status {
                        tracing::warn!(
                            endpoint = call.endpoint.as_str(),
                            http_status_line = line_status,
                            http_status_body = status,
                            "Flinks' status line and body disagree; classifying on the body"
                        );
                    }
                    failure.status = Some(status);
                    failure.code = envelope.flinks_code;
                    failure.message = envelope.message.map(|m| {
                        cap_text(&scrub_login_ids(&m, keep_login_ids), MAX_FLINKS_TEXT_BYTES)
                            .to_owned()
                    });
                    failure.request_id = envelope.request_id;
                    let class = classify_answer(&Answer {
                        status,
                        code: failure.code.as_ref(),
                        message: failure.message.as_deref(),
                        json_body: envelope.is_object,
                        cached_authorize: call.endpoint == Endpoint::Authorize,
                    });
                    match class {
                        Classification::Success => match decode(&bytes, json, kept) {
                            Some(value) => (class, Ok(Reply::Ready(value))),
                            None => {
                                failure.transport = Some(TransportKind::Decode);
                                let class = classify_transport(TransportKind::Decode);
                                (class, Err(class))
                            }
                        },
                        Classification::Pending if call.accepts_pending => (
                            class,
                            Ok(Reply::Pending {
                                request_id: failure.request_id.clone(),
                                code: failure.code.clone(),
                            }),
                        ),
                        other => (class, Err(other)),
                    }
                }
            }
        };

        if let (true, Some(request_id)) = (call.records_request_id, &failure.request_id) {
            tracing::Span::current().record("request_id", tracing::field::display(request_id));
        }
        call_log::record(&ApiCall {
            endpoint: call.endpoint,
            method: call.method.as_str(),
            url: &call.url,
            login: call.login,
            request_body: call.body.as_ref(),
            keep_login_ids,
            status: failure.status,
            code: failure.code.as_ref(),
            message: failure.message.as_deref(),
            request_id: failure.request_id.as_ref(),
            transport: failure.transport,
            latency: started.elapsed(),
            class,
        });
        result.map_err(|class| Error::from_classification(class, failure))
    }
}

/// The top-level field of an endpoint's answer that is stored as sent and never read:
/// GetAccountsDetail's `Accounts`, most of its bytes. It is kept as its JSON text, so no
/// tree of it is built only to be written out again.
fn kept_as_text(endpoint: Endpoint) -> Option<&'static str> {
    match endpoint {
        Endpoint::GetAccountsDetail | Endpoint::GetAccountsDetailAsync => Some("Accounts"),
        _ => None,
    }
}

/// Parses `body` as JSON, `None` when it is not. With a `kept` field name and a body that
/// is an object, that field (the last one of the name, as a parse into a tree keeps) is
/// returned as its text and left out of the tree; it is checked to be JSON all the same.
pub(super) fn parse_body(
    body: &[u8],
    kept: Option<&'static str>,
) -> Option<(Value, Option<Box<RawValue>>)> {
    let Some(field) = kept.filter(|_| first_token(body) == Some(b'{')) else {
        return serde_json::from_slice(body).ok().map(|json| (json, None));
    };
    let mut parser = serde_json::Deserializer::from_slice(body);
    let (rest, kept) = SplitField { field }.deserialize(&mut parser).ok()?;
    parser.end().ok()?;
    // Taking a value as text only skips over it: a lone surrogate escape or nesting past
    // serde_json's depth limit would pass, and then fail every later read of the stored
    // text. So the text is read once more, fully, keeping nothing; and text naming
    // serde_json's own private keys, which a tree reads in a way of its own, is read into
    // a tree, as the stream's readers will.
    if let Some(text) = &kept {
        serde_json::from_str::<Checked>(text.get()).ok()?;
        if text.get().contains("$serde_json::private::") {
            serde_json::from_str::<Value>(text.get()).ok()?;
        }
    }
    Some((Value::Object(rest), kept))
}

/// A JSON value read in full, as a parse into a tree reads it (every string unescaped,
/// the depth limit kept), but not stored.
struct Checked;

impl<'de> serde::Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(parser: D) -> Result<Self, D::Error> {
        parser.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_none<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<Checked, D::Error> {
        <Checked as serde::Deserialize>::deserialize(inner)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

/// Reads a JSON object into a tree of every field but `field`, and that one as text.
struct SplitField {
    field: &'static str,
}

impl<'de> DeserializeSeed<'de> for SplitField {
    type Value = (serde_json::Map<String, Value>, Option<Box<RawValue>>);

    fn deserialize<D: Deserializer<'de>>(self, parser: D) -> Result<Self::Value, D::Error> {
        parser.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SplitField {
    type Value = (serde_json::Map<String, Value>, Option<Box<RawValue>>);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut rest = serde_json::Map::new();
        let mut kept = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == self.field {
                kept = Some(map.next_value::<Box<RawValue>>()?);
            } else {
                rest.insert(key, map.next_value::<Value>()?);
            }
        }
        Ok((rest, kept))
    }
}

/// True when `body` opens as a JSON object or array: one that then fails to parse was cut
/// off in transit (or by a faulty proxy), as opposed to HTML, plain text or nothing.
fn starts_as_json(body: &[u8]) -> bool {
    matches!(first_token(body), Some(b'{' | b'['))
}

/// The first byte of `body` that is not whitespace.
fn first_token(body: &[u8]) -> Option<u8> {
    body.iter()
        .copied()
        .find(|byte| !byte.is_ascii_whitespace())
}

/// Unwraps a reply of an endpoint that does not accept pending. `execute` already turns a
/// 202 into an error for those; should one get here anyway, it is an error too, not a panic.
fn ready<T>(reply: Reply<T>, endpoint: Endpoint) -> Result<T, Error> {
    match reply {
        Reply::Ready(value) => Ok(value),
        Reply::Pending { request_id, code } => Err(Error::from_classification(
            Classification::Pending,
            Failure {
                endpoint,
                status: Some(202),
                code,
                message: None,
                request_id,
                transport: None,
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_body;

    #[test]
    fn the_kept_field_is_text_and_the_rest_a_tree() {
        let body = br#" {"RequestId":"r","Accounts":[{"Balance":5105.50}],"Login":{"Id":"x"}} "#;
        let (json, kept) = parse_body(body, Some("Accounts")).unwrap();
        assert_eq!(kept.unwrap().get(), r#"[{"Balance":5105.50}]"#);
        assert_eq!(
            json,
            serde_json::json!({"RequestId": "r", "Login": {"Id": "x"}})
        );
        // Not asked to keep anything: the whole tree.
        let (json, kept) = parse_body(body, None).unwrap();
        assert!(kept.is_none());
        assert_eq!(json["Accounts"][0]["Balance"].to_string(), "5105.50");
    }

    #[test]
    fn a_body_parses_as_json_or_not_at_all_whatever_is_kept() {
        // The last of two fields of one name, as a tree keeps.
        let (_, kept) =
            parse_body(br#"{"Accounts":[1],"Accounts":[2]}"#, Some("Accounts")).unwrap();
        assert_eq!(kept.unwrap().get(), "[2]");
        // Broken JSON inside the kept field, or after the object, is no JSON.
        assert!(parse_body(br#"{"Accounts":[1,}"#, Some("Accounts")).is_none());
        assert!(parse_body(br#"{"Accounts":[1]} x"#, Some("Accounts")).is_none());
        assert!(parse_body(br#"{"Accounts":[1]"#, Some("Accounts")).is_none());
        // What a tree would refuse inside the kept field is refused too: a lone surrogate
        // (a text cut inside an emoji), nesting past the depth limit.
        for body in [
            br#"{"Accounts":[{"Description":"\ud83d"}]}"#.to_vec(),
            format!(r#"{{"Accounts":{}{}}}"#, "[".repeat(200), "]".repeat(200)).into_bytes(),
        ] {
            assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
            assert!(parse_body(&body, Some("Accounts")).is_none());
        }
        let private = br#"{"Accounts":[{"$serde_json::private::Number":"abc"}]}"#;
        assert!(serde_json::from_slice::<serde_json::Value>(private).is_err());
        assert!(parse_body(private, Some("Accounts")).is_none());
        // And what a tree takes, it takes: deep but within the limit, escapes, numbers.
        let fine = format!(
            r#"{{"Accounts":[{}{}, "\ud83d\ude00 \u00e9", 1E5, -0.10, null, true]}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(serde_json::from_slice::<serde_json::Value>(fine.as_bytes()).is_ok());
        assert!(parse_body(fine.as_bytes(), Some("Accounts")).is_some());
        // A body that is no object, or lacks the field, is a plain tree.
        let (json, kept) = parse_body(br#""pending""#, Some("Accounts")).unwrap();
        assert_eq!((json, kept.is_none()), (serde_json::json!("pending"), true));
        let (json, kept) = parse_body(br#"{"FlinksCode":"X"}"#, Some("Accounts")).unwrap();
        assert_eq!(
            (json["FlinksCode"].as_str(), kept.is_none()),
            (Some("X"), true)
        );
        assert!(parse_body(b"<html>", Some("Accounts")).is_none());
    }
}
