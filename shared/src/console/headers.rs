//! The security headers on every console response: a content security policy that admits
//! only the console's own script and stylesheet (no inline script or style, no framing),
//! `nosniff`, no referrer, and no caching of pages that show operational data. When the
//! cookies are `Secure` the browser reaches the console over HTTPS (directly or through a
//! proxy), so `Strict-Transport-Security` keeps it there; over plain HTTP on loopback it is
//! not sent (a browser ignores it there anyway, and it must not pin a host name to HTTPS).

use axum::extract::{Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use super::Console;

/// The content security policy.
pub const CSP: &str =
    "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";

/// `Strict-Transport-Security` when the cookies are `Secure`: one year.
pub const HSTS: &str = "max-age=31536000";

/// Adds the headers to the response of `request` (keeping a `Cache-Control` the handler
/// set, as the static files do).
pub async fn security_headers(
    State(console): State<Console>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if console.inner.secure_cookies {
        headers.insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
