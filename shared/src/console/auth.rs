//! Who is logged in: server-side sessions in Redis, the session cookie, the login rate
//! limit, and the gate in front of every page.
//!
//! A session lives in Redis under the deployment's namespace (`ns:console:session:<sha256
//! of the token>`, with an expiry), so any replica of the console serves any request, a
//! restart logs nobody out, and a Redis dump holds no usable cookie (only its hash). The
//! cookie carries the random token only: `HttpOnly`, `SameSite=Strict`, `Path` = the
//! console's prefix, and `Secure` as [`super::cookies_secure`] decides (off loopback, or
//! with `--secure-cookies` behind a same-host TLS proxy).
//!
//! Login attempts are counted in Redis per user name and per client address over a window,
//! BEFORE the password is checked: each attempt increments both counters atomically and is
//! refused when either new value is past its limit, so parallel attempts cannot all slip in
//! under the limit between a check and a later count. A successful login clears its user's
//! counter and takes its attempt back from the address's. The limit also bounds the argon2
//! work an attacker can cause; [`VERIFY_PERMITS`] bounds how many run at once.
//!
//! The client address is the TCP peer, or behind a `--trusted-proxy` the client it forwards
//! for ([`super::proxy`]). Behind a proxy not declared trusted every peer is the proxy, so
//! the per-address limit applies to everyone at once and the per-user one is what protects
//! an account.
//!
//! Without a session, a page (a GET asking for HTML) redirects to the login; anything else
//! gets 401.

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{ACCEPT, COOKIE, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Console;
use crate::redis_conn::RedisConn;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "nr_console";

/// How many password verifications run at once, across all logins. Each argon2
/// verification holds about 19 MiB, so a burst of logins waits here instead of running the
/// console out of memory.
pub const VERIFY_PERMITS: usize = 2;

static UNCOUNT_ATTEMPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../lua/console/uncount_attempt.lua")));

/// How long a session lasts after login.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// When logins are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Login attempts per user name within `window` (a success clears them).
    pub per_user: u64,
    /// Failed login attempts per client address within `window`.
    pub per_address: u64,
    /// The counting window (from the first attempt).
    pub window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_user: 5,
            per_address: 20,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// A logged-in user, as the gate hands it to handlers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoggedIn {
    /// The user name.
    pub user: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// When the user logged in.
    pub since: DateTime<Utc>,
    /// The digest of the user's line in the users file at login
    /// ([`super::users::Users::line_digest`]); the gate refuses the session once it differs.
    #[serde(default)]
    pub user_digest: String,
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A random token for a cookie or a form: 32 bytes, hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The sessions and login counters of one deployment.
pub struct SessionStore {
    conn: RedisConn,
    keys: crate::KeySpace,
}

impl SessionStore {
    /// The store of `console`'s deployment.
    pub async fn of(console: &Console) -> Result<Self, crate::ops::OpsError> {
        let session = console.session();
        Ok(Self {
            conn: session.connection().await?,
            keys: session.keys().clone(),
        })
    }

    fn session_key(&self, token: &str) -> String {
        self.keys.console_session(&sha256_hex(token))
    }

    fn failures_key(&self, kind: &str, who: &str) -> String {
        self.keys.console_login_failures(kind, &sha256_hex(who))
    }

    /// Starts a session for `user`, whose users file line has `user_digest`; returns its
    /// cookie token.
    pub async fn create(
        &self,
        user: &str,
        user_digest: &str,
    ) -> Result<(String, LoggedIn), redis::RedisError> {
        let token = random_token();
        let session = LoggedIn {
            user: user.to_string(),
            csrf: random_token(),
            since: Utc::now(),
            user_digest: user_digest.to_string(),
        };
        let json = serde_json::to_string(&session).expect("a session encodes");
        let mut conn = self.conn.clone();
        let () = redis::cmd("SET")
            .arg(self.session_key(&token))
            .arg(json)
            .arg("EX")
            .arg(SESSION_TTL.as_secs())
            .query_async(&mut conn)
            .await?;
        Ok((token, session))
    }

    /// The session of `token`, if it exists and has not expired.
    pub async fn get(&self, token: &str) -> Result<Option<LoggedIn>, redis::RedisError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = redis::cmd("GET")
            .arg(self.session_key(token))
            .query_async(&mut conn)
            .await?;
        Ok(raw.and_then(|json| serde_json::from_str(&json).ok()))
    }

    /// Ends the session of `token`.
    pub async fn delete(&self, token: &str) -> Result<(), redis::RedisError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(self.session_key(token))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Counts a login attempt of `user` from `address` (each counter's window starting at
    /// its first attempt); false when either count is now past its limit, so the password
    /// must not be checked. Counting first is what makes the limit hold against parallel
    /// attempts: INCR hands each one its own number.
    pub async fn count_attempt(
        &self,
        limits: LoginLimits,
        user: &str,
        address: &str,
    ) -> Result<bool, redis::RedisError> {
        let (user_key, address_key) = (
            self.failures_key("user", user),
            self.failures_key("address", address),
        );
        let window = limits.window.as_secs().max(1);
        let mut conn = self.conn.clone();
        // EXPIRE NX sets the window on a new counter and keeps it on an existing one.
        let (by_user, _, by_address, _): (u64, i64, u64, i64) = redis::pipe()
            .atomic()
            .incr(&user_key, 1)
            .cmd("EXPIRE")
            .arg(&user_key)
            .arg(window)
            .arg("NX")
            .incr(&address_key, 1)
            .cmd("EXPIRE")
            .arg(&address_key)
            .arg(window)
            .arg("NX")
            .query_async(&mut conn)
            .await?;
        Ok(by_user <= limits.per_user && by_address <= limits.per_address)
    }

    /// After a successful login: forgets `user`'s attempts and takes this one back from
    /// `address`'s count.
    pub async fn login_succeeded(
        &self,
        user: &str,
        address: &str,
    ) -> Result<(), redis::RedisError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(self.failures_key("user", user))
            .query_async(&mut conn)
            .await?;
        let _: i64 = UNCOUNT_ATTEMPT
            .key(self.failures_key("address", address))
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }
}

/// The value of cookie `name` in `headers`.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value for `name=value` under the console's prefix, living `max_age`
/// (0 deletes it).
pub fn set_cookie(console: &Console, name: &str, value: &str, max_age: Duration) -> HeaderValue {
    let path = if console.base().is_empty() {
        "/"
    } else {
        console.base()
    };
    let secure = if console.inner.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        max_age.as_secs()
    );
    HeaderValue::from_str(&text).expect("a cookie of token characters is a header value")
}

/// The client's address: the TCP peer, or behind a trusted proxy the forwarded client
/// ([`super::proxy::client_address`]); `unknown` when the server was not given the peer.
#[derive(Debug, Clone)]
pub struct ClientAddress(pub String);

impl FromRequestParts<Console> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Console,
    ) -> Result<Self, Self::Rejection> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Ok(Self("unknown".to_string()));
        };
        let forwarded_for = parts
            .headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let client =
            super::proxy::client_address(peer.ip(), forwarded_for, &console.inner.trusted_proxies);
        Ok(Self(client.to_string()))
    }
}

/// `X-Forwarded-For`, which `http` has no constant for.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

fn wants_html(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::GET
        && headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
}

/// The session of `token` if its user is still in the users file with the same line;
/// a session whose user was removed or whose password changed is deleted.
async fn current_session(
    console: &Console,
    token: &str,
) -> Result<Option<LoggedIn>, crate::ops::OpsError> {
    let store = SessionStore::of(console).await?;
    let Some(session) = store.get(token).await? else {
        return Ok(None);
    };
    let current = console.inner.users.line_digest(&session.user);
    if current.as_deref() == Some(session.user_digest.as_str()) {
        return Ok(Some(session));
    }
    store.delete(token).await?;
    Ok(None)
}

/// The gate in front of every page but the login, the script, the stylesheet and
/// `/healthz`: hands the [`LoggedIn`] user to the handler, or sends the client to the login
/// (pages) or away with 401 (everything else).
pub async fn require_login(
    State(console): State<Console>,
    mut request: Request,
    next: Next,
) -> Response {
    let found = match cookie(request.headers(), SESSION_COOKIE) {
        None => None,
        Some(token) => match current_session(&console, &token).await {
            Ok(found) => found,
            Err(e) => return super::routes::server_error(&console, &e),
        },
    };
    match found {
        Some(user) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        None if wants_html(request.method(), request.headers()) => {
            let to = console.url("/login");
            let mut response = StatusCode::SEE_OTHER.into_response();
            let location = HeaderValue::from_str(&to).expect("the prefix is a header value");
            response.headers_mut().insert(LOCATION, location);
            response
        }
        None => (StatusCode::UNAUTHORIZED, "401 Unauthorized: log in first\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_found_among_others_and_an_empty_one_is_none() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("a=1; nr_console=tok; b=2"));
        headers.append(COOKIE, HeaderValue::from_static("c=3"));
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("tok"));
        assert_eq!(cookie(&headers, "c").as_deref(), Some("3"));
        assert_eq!(cookie(&headers, "nr"), None);
        headers.insert(COOKIE, HeaderValue::from_static("nr_console="));
        assert_eq!(cookie(&headers, SESSION_COOKIE), None);
    }

    fn console(base: &str, secure: bool) -> Console {
        let settings = crate::config::Settings::load(None).unwrap();
        let session = crate::ops::session::Session::new(settings, "test");
        let hash = super::super::users::hash_password("pw").unwrap();
        let users = super::super::users::Users::parse(
            std::path::Path::new("users"),
            &format!("alice:{hash}"),
        )
        .unwrap();
        Console::new(
            session,
            users,
            base.into(),
            secure,
            LoginLimits::default(),
            Vec::new(),
        )
    }

    #[test]
    fn the_session_cookie_is_http_only_strict_scoped_to_the_prefix_and_secure_off_loopback() {
        let behind_tls = set_cookie(&console("/ops", true), SESSION_COOKIE, "t", SESSION_TTL);
        let loopback = set_cookie(&console("", false), SESSION_COOKIE, "", Duration::ZERO);

        assert_eq!(
            behind_tls,
            "nr_console=t; Path=/ops; Max-Age=28800; HttpOnly; SameSite=Strict; Secure"
        );
        assert_eq!(
            loopback,
            "nr_console=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
        );
    }

    #[test]
    fn tokens_are_long_random_hex() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
