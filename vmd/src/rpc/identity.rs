//! Authentication of each HTTP request on the socket (JSON-RPC calls, WebSocket upgrades,
//! uploads, consoles). A WebSocket keeps the identity of its upgrade request.
//!
//! - `Authorization: Bearer TOKEN`: the token's account. Any other `Authorization` value, a
//!   bad, expired or revoked token: HTTP 401 with a JSON error, logged at debug with the
//!   reason (never the token). No fallback to the peer's identity.
//! - No `Authorization`: the account of the peer uid. If there is none (auto-registration
//!   off, or the login name is taken), the request still goes on so that `auth.login` works;
//!   every other method answers the reason.

use hyper::header::{HeaderMap, AUTHORIZATION, UPGRADE};
use hyper::StatusCode;
use jsonrpsee::server::HttpResponse;
use vm_proto::{ApiError, ErrorCode};

use super::upload::error_response;
use super::Caller;
use crate::auth::identity::AuthError;
use crate::auth::Subject;
use crate::manager::Manager;

/// Who a request acts as, or why it has no account.
#[derive(Debug, Clone)]
pub struct Identity {
    subject: Result<Subject, ApiError>,
    /// Whether it outlives this request (a WebSocket upgrade): calls made later on the
    /// connection must read the caller again; a plain request was just authenticated.
    lasting: bool,
}

impl Identity {
    /// The subject, or the error a method answers without one.
    pub fn subject(&self) -> Result<&Subject, ApiError> {
        self.subject.as_ref().map_err(Clone::clone)
    }

    /// Whether the identity outlives the request it was made for.
    pub fn lasting(&self) -> bool {
        self.lasting
    }
}

/// The identity of a request, or the 401 response that refuses it.
pub async fn authenticate(
    manager: &Manager,
    caller: Caller,
    headers: &HeaderMap,
) -> Result<Identity, HttpResponse> {
    let bearer = match bearer(headers) {
        Ok(b) => b,
        Err(why) => return Err(refuse(caller, why)),
    };
    let with_token = bearer.is_some();
    let lasting = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let identity = |subject| Identity { subject, lasting };
    match manager.authenticate(caller.uid, bearer).await {
        Ok(subject) => Ok(identity(Ok(subject))),
        Err(AuthError::BadToken(why)) => Err(refuse(caller, why)),
        Err(err) if with_token => {
            tracing::warn!(error = %err, uid = caller.uid, "token check failed");
            Err(refuse(caller, "store failure"))
        }
        Err(err) => Ok(identity(Err(no_account(&err)))),
    }
}

/// The bearer token of the request, if it has an `Authorization` header.
fn bearer(headers: &HeaderMap) -> Result<Option<String>, &'static str> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("several Authorization headers");
    }
    let text = value.to_str().map_err(|_| "Authorization is not text")?;
    let token = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .ok_or("Authorization is not a Bearer token")?;
    Ok(Some(token.trim().to_string()))
}

fn refuse(caller: Caller, why: &'static str) -> HttpResponse {
    tracing::debug!(
        uid = caller.uid,
        reason = why,
        "request refused: bad credentials"
    );
    let err = ApiError::new(ErrorCode::Unauthenticated, "invalid or expired token")
        .with_hint("log in again (`vmctl login`) or create a new token (`vmctl token create`)");
    error_response(StatusCode::UNAUTHORIZED, &err)
}

fn no_account(err: &AuthError) -> ApiError {
    let hint = match err {
        AuthError::NameTaken { name, uid } => {
            format!("an admin can link it: vmctl user set {name} --uid {uid}")
        }
        AuthError::NoAccount(uid) => format!("ask an admin: vmctl user add NAME --uid {uid}"),
        _ => "see the daemon log".into(),
    };
    let kind = match err {
        AuthError::Store(_) | AuthError::BadToken(_) => ErrorCode::Internal,
        _ => ErrorCode::PermissionDenied,
    };
    ApiError::new(kind, err.to_string()).with_hint(hint)
}
