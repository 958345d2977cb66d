//! Stable error codes of the API and the structured `data` every error carries.
//!
//! Codes are plain integers outside the JSON-RPC reserved range and mirror HTTP status codes so
//! they are easy to remember. They never change meaning within a major [`crate::API_VERSION`].
//! jsonrpsee's own codes (`-32700` parse error, `-32600` invalid request, `-32601` method not
//! found, `-32602` invalid params, `-32007` request too big) keep their JSON-RPC meaning.

use serde::{Deserialize, Serialize};

/// The kinds of failure a client can act on. One code per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request was well-formed JSON-RPC but a value is not acceptable (name, size, format…).
    InvalidArgument,
    /// The named image or VM does not exist.
    NotFound,
    /// An object with that name already exists.
    AlreadyExists,
    /// The object is used by another object (a base by VMs) and cannot be removed.
    InUse,
    /// The object is in a state that does not allow the operation (e.g. running).
    WrongState,
    /// The caller may not do this.
    PermissionDenied,
    /// The host's state file system is full, or below the configured free-space floor.
    NoSpace,
    /// vmd is at a connection limit, or the host cannot take more (memory of running VMs at
    /// `host_memory_limit`); retry later.
    Unavailable,
    /// The request carried no valid credentials: a bad, expired or revoked token, a failed
    /// login, or too many failed logins.
    Unauthenticated,
    /// The request would take the caller over one of their quotas (which one, the use and the
    /// limit are in the message).
    QuotaExceeded,
    /// Something failed inside the daemon or on the host; the chain says what.
    Internal,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::InvalidArgument,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::InUse,
        ErrorCode::WrongState,
        ErrorCode::PermissionDenied,
        ErrorCode::NoSpace,
        ErrorCode::Unavailable,
        ErrorCode::Unauthenticated,
        ErrorCode::QuotaExceeded,
        ErrorCode::Internal,
    ];

    /// The JSON-RPC `error.code` for this kind.
    pub const fn code(self) -> i32 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::QuotaExceeded => 429,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::AlreadyExists => 409,
            ErrorCode::WrongState => 412,
            ErrorCode::InUse => 423,
            ErrorCode::Internal => 500,
            ErrorCode::NoSpace => 507,
            ErrorCode::Unavailable => 503,
        }
    }

    /// The kind for a JSON-RPC `error.code`, if it is one of ours.
    pub fn from_code(code: i32) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The snake_case name used in `data.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::InUse => "in_use",
            ErrorCode::WrongState => "wrong_state",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::NoSpace => "no_space",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::Internal => "internal",
        }
    }
}

/// The `error.data` object of every vmd error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorData {
    /// [`ErrorCode::as_str`] of the code, so a reader need not know the numbers.
    pub kind: ErrorCode,
    /// The error and its causes, outermost first (the first entry is `error.message`).
    pub chain: Vec<String>,
    /// What the user can do about it, when there is something to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// A failure as the API reports it: a code, a message chain and a hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.data.chain.first().map(String::as_str).unwrap_or("error"))]
pub struct ApiError {
    /// The structured payload (kind, chain, hint).
    pub data: ErrorData,
}

impl ApiError {
    /// An error of `kind` with a message and no hint.
    pub fn new(kind: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            data: ErrorData {
                kind,
                chain: vec![message.into()],
                hint: None,
            },
        }
    }

    /// Builds the chain from a std error and its sources.
    pub fn from_error(kind: ErrorCode, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = vec![err.to_string()];
        let mut source = err.source();
        while let Some(s) = source {
            chain.push(s.to_string());
            source = s.source();
        }
        ApiError {
            data: ErrorData {
                kind,
                chain,
                hint: None,
            },
        }
    }

    /// Adds a hint saying what to do.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.data.hint = Some(hint.into());
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorCode {
        self.data.kind
    }

    /// The outermost message.
    pub fn message(&self) -> &str {
        self.data
            .chain
            .first()
            .map(String::as_str)
            .unwrap_or("error")
    }

    /// The error chain joined the way a CLI prints it: `outer: cause: root`.
    pub fn full_message(&self) -> String {
        self.data.chain.join(": ")
    }

    /// Decodes a JSON-RPC error object returned by the daemon. `None` when the object is not a
    /// vmd error (a jsonrpsee protocol error such as invalid params).
    pub fn from_parts(code: i32, message: &str, data: Option<&str>) -> Option<ApiError> {
        let kind = ErrorCode::from_code(code)?;
        let data = data
            .and_then(|d| serde_json::from_str::<ErrorData>(d).ok())
            .unwrap_or_else(|| ErrorData {
                kind,
                chain: vec![message.to_string()],
                hint: None,
            });
        Some(ApiError { data })
    }

    /// Decodes the body of an error reply of vmd's plain HTTP endpoints (uploads, console and
    /// VNC upgrades): `{"error": {"code", "message", "data"}}`. `None` when it is not one.
    pub fn from_http_body(body: &[u8]) -> Option<ApiError> {
        let json: serde_json::Value = serde_json::from_slice(body).ok()?;
        let error = &json["error"];
        let code = error["code"].as_i64().and_then(|c| i32::try_from(c).ok())?;
        let message = error["message"].as_str().unwrap_or_default();
        let data = (!error["data"].is_null()).then(|| error["data"].to_string());
        ApiError::from_parts(code, message, data.as_deref())
    }
}

#[cfg(feature = "server")]
impl From<ApiError> for jsonrpsee::types::ErrorObjectOwned {
    fn from(err: ApiError) -> Self {
        let message = err.message().to_string();
        jsonrpsee::types::ErrorObject::owned(err.kind().code(), message, Some(err.data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_error_bodies_decode() {
        let body = br#"{"error":{"code":403,"message":"admins only","data":null}}"#;
        let err = ApiError::from_http_body(body).expect("vmd's error");
        assert_eq!(
            (err.kind(), err.message()),
            (ErrorCode::PermissionDenied, "admins only")
        );
        assert!(ApiError::from_http_body(b"<html>").is_none());
        assert!(ApiError::from_http_body(br#"{"error":{"code":-32602}}"#).is_none());
    }

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for kind in ErrorCode::ALL {
            assert!(seen.insert(kind.code()), "duplicate code {}", kind.code());
            assert_eq!(ErrorCode::from_code(kind.code()), Some(kind));
            let json = serde_json::to_value(kind).expect("serialize");
            assert_eq!(json, kind.as_str());
        }
        assert_eq!(ErrorCode::from_code(-32602), None);
    }

    #[test]
    fn chain_follows_sources() {
        let io = std::io::Error::other("disk full");
        let err = ApiError::from_error(ErrorCode::Internal, &io).with_hint("free space");
        assert_eq!(err.full_message(), "disk full");
        assert_eq!(err.data.hint.as_deref(), Some("free space"));
    }

    #[test]
    fn decodes_error_object_parts() {
        let data = r#"{"kind":"not_found","chain":["vm web1 not found"],"hint":"see vmctl ls"}"#;
        let err = ApiError::from_parts(404, "vm web1 not found", Some(data)).expect("ours");
        assert_eq!(err.kind(), ErrorCode::NotFound);
        assert_eq!(err.data.hint.as_deref(), Some("see vmctl ls"));
        assert!(ApiError::from_parts(-32602, "bad", None).is_none());
    }
}
