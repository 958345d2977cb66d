//! Credentials, the session cookie, and the CSRF and Origin checks.
//!
//! A request is authenticated by `Authorization: Bearer TOKEN` (scripts) or, failing that, by
//! the `vmd_session` cookie set at login (browsers). vmd-web only forwards the token to vmd,
//! which decides; a request with neither is refused with 401 here, so that an anonymous request
//! never reaches vmd as vmd-web's own uid.
//!
//! CSRF: the token is `hex(SHA-256("vmd-web-csrf:" + session token))`, returned by login and
//! derived again on each request, so vmd-web keeps no state. An unsafe request (POST, PUT,
//! PATCH, DELETE) authenticated by the cookie must carry it in `X-CSRF-Token`, and any unsafe
//! request not carrying a bearer token (login included) is refused when its `Origin` header is
//! present and names another host. A bearer token needs neither: a browser never attaches one
//! on its own.

use axum::extract::{FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonrpsee::ws_client::WsClient;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use vm_proto::ErrorCode;

use crate::error::WebError;
use crate::vmd::Vmd;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "vmd_session";
/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Where a request's credential came from.
#[derive(PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer`.
    Bearer(String),
    /// The session cookie.
    Cookie(String),
}

impl Credential {
    /// The request's credential: the bearer token first, else the session cookie.
    pub fn of(headers: &HeaderMap) -> Option<Credential> {
        let bearer = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty());
        if let Some(token) = bearer {
            return Some(Credential::Bearer(token.to_string()));
        }
        session_cookie(headers).map(Credential::Cookie)
    }

    /// The request's credential, or 401.
    pub fn require(headers: &HeaderMap) -> Result<Credential, WebError> {
        Credential::of(headers).ok_or_else(|| {
            WebError::new(ErrorCode::Unauthenticated, "no credentials")
                .hint("log in (POST /api/v1/login) or send Authorization: Bearer TOKEN")
        })
    }

    /// The token itself.
    pub fn token(&self) -> &str {
        match self {
            Credential::Bearer(t) | Credential::Cookie(t) => t,
        }
    }
}

/// The value of the `vmd_session` cookie, if any.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_string())
}

/// The CSRF token of a session: `hex(SHA-256("vmd-web-csrf:" + token))`.
pub fn csrf_token(session: &str) -> String {
    let digest = Sha256::digest(format!("vmd-web-csrf:{session}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// How the session cookie is set: `Secure` when vmd-web serves HTTPS itself. (Behind a TLS
/// reverse proxy vmd-web serves plain HTTP, and a browser would not send a `Secure` cookie back
/// over it; the proxy is then the place to add the attribute.) A request extension.
#[derive(Clone, Copy, Debug)]
pub struct SessionCookie {
    /// Add `Secure`.
    pub secure: bool,
}

impl SessionCookie {
    /// `Set-Cookie` for a new session.
    pub fn set(self, token: &str) -> Result<HeaderValue, WebError> {
        let cookie = format!("{SESSION_COOKIE}={token}{}", self.attributes());
        HeaderValue::try_from(cookie)
            .map_err(|_| WebError::new(ErrorCode::Internal, "vmd returned an unusable token"))
    }

    /// `Set-Cookie` that removes the session cookie.
    pub fn clear(self) -> HeaderValue {
        let cookie = format!("{SESSION_COOKIE}={}; Max-Age=0", self.attributes());
        HeaderValue::try_from(cookie).expect("a static cookie is a valid header")
    }

    fn attributes(self) -> &'static str {
        match self.secure {
            true => "; HttpOnly; SameSite=Strict; Path=/; Secure",
            false => "; HttpOnly; SameSite=Strict; Path=/",
        }
    }
}

/// A JSON-RPC client to vmd carrying the request's credential; 401 without one.
pub struct Rpc(pub std::sync::Arc<WsClient>);

impl std::ops::Deref for Rpc {
    type Target = WsClient;
    fn deref(&self) -> &WsClient {
        &self.0
    }
}

impl FromRequestParts<Vmd> for Rpc {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, vmd: &Vmd) -> Result<Rpc, WebError> {
        let credential = Credential::require(&parts.headers)?;
        Ok(Rpc(vmd.connect(Some(credential.token())).await?))
    }
}

/// The CSRF and Origin layer (see the module docs).
pub async fn csrf_guard(request: Request, next: Next) -> Response {
    match check_csrf(request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}

/// Whether an unsafe request may proceed.
fn check_csrf(method: &Method, headers: &HeaderMap) -> Result<(), WebError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let credential = Credential::of(headers);
    if let Some(Credential::Bearer(_)) = credential {
        return Ok(());
    }
    check_origin(headers)?;
    let Some(Credential::Cookie(session)) = credential else {
        return Ok(());
    };
    let sent = headers.get(CSRF_HEADER).map(HeaderValue::as_bytes);
    let expected = csrf_token(&session);
    match sent {
        Some(sent) if bool::from(sent.ct_eq(expected.as_bytes())) => Ok(()),
        _ => Err(
            WebError::new(ErrorCode::PermissionDenied, "missing or wrong CSRF token")
                .hint("send the csrf value returned by login in the X-CSRF-Token header"),
        ),
    }
}

/// Refuses a present `Origin` whose host is not the request's `Host`.
pub fn check_origin(headers: &HeaderMap) -> Result<(), WebError> {
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin_host = origin.to_str().ok().and_then(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
    });
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(WebError::new(
            ErrorCode::PermissionDenied,
            "cross-origin request refused",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).expect("value"));
        }
        map
    }

    #[test]
    fn cookie_is_secure_under_tls() {
        let plain = SessionCookie { secure: false };
        let tls = SessionCookie { secure: true };
        let set = plain.set("T").expect("cookie");
        assert_eq!(set, "vmd_session=T; HttpOnly; SameSite=Strict; Path=/");
        let set = tls.set("T").expect("cookie");
        assert_eq!(
            set,
            "vmd_session=T; HttpOnly; SameSite=Strict; Path=/; Secure"
        );
        assert_eq!(
            tls.clear(),
            "vmd_session=; HttpOnly; SameSite=Strict; Path=/; Secure; Max-Age=0"
        );
        assert!(!plain.clear().to_str().expect("ascii").contains("Secure"));
    }

    #[test]
    fn bearer_wins_over_cookie() {
        let h = headers(&[
            ("cookie", "a=b; vmd_session=S1"),
            ("authorization", "Bearer T1"),
        ]);
        assert!(Credential::of(&h) == Some(Credential::Bearer("T1".into())));
        let h = headers(&[("authorization", "bearer T2")]);
        assert!(Credential::of(&h) == Some(Credential::Bearer("T2".into())));
        let h = headers(&[("cookie", "a=b"), ("cookie", "vmd_session=S1")]);
        assert!(Credential::of(&h) == Some(Credential::Cookie("S1".into())));
        assert!(Credential::of(&headers(&[("cookie", "vmd_session=")])).is_none());
    }

    #[test]
    fn cookie_posts_need_csrf_and_same_origin() {
        let csrf = csrf_token("S1");
        assert_eq!(csrf.len(), 64);
        let base = [("cookie", "vmd_session=S1"), ("host", "h:8080")];
        assert!(check_csrf(&Method::GET, &headers(&base)).is_ok());
        assert!(check_csrf(&Method::POST, &headers(&base)).is_err());
        let good = [base[0], base[1], ("x-csrf-token", csrf.as_str())];
        assert!(check_csrf(&Method::DELETE, &headers(&good)).is_ok());
        let foreign = [good[0], good[1], good[2], ("origin", "http://evil:8080")];
        assert!(check_csrf(&Method::POST, &headers(&foreign)).is_err());
        let same = [good[0], good[1], good[2], ("origin", "http://h:8080")];
        assert!(check_csrf(&Method::POST, &headers(&same)).is_ok());
        let bearer = [("authorization", "Bearer T"), ("origin", "http://evil")];
        assert!(check_csrf(&Method::POST, &headers(&bearer)).is_ok());
    }
}
