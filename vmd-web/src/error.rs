//! The one mapping of failures to HTTP responses.
//!
//! Every failure is a [`WebError`] wrapping vm-proto's [`ApiError`]; the HTTP status is the
//! error kind's stable code ([`ErrorCode::code`], which mirrors HTTP) and the body is
//! `{"code", "kind", "message", "hint"}` ([`ErrorBody`], also the schema in the OpenAPI
//! document). vmd's JSON-RPC errors are decoded with
//! [`ApiError::from_parts`]; a vmd that cannot be reached is `unavailable` (503).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use jsonrpsee::core::ClientError;
use vm_proto::{ApiError, ErrorCode};

use crate::openapi::ErrorBody;

/// A failed request, as the client will see it.
#[derive(Debug)]
pub struct WebError(pub ApiError);

impl WebError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorCode, message: impl Into<String>) -> WebError {
        WebError(ApiError::new(kind, message))
    }

    /// Adds a hint.
    pub fn hint(self, hint: impl Into<String>) -> WebError {
        WebError(self.0.with_hint(hint))
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let kind = self.0.kind();
        let status =
            StatusCode::from_u16(kind.code() as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            code: kind.code(),
            kind,
            message: self.0.full_message(),
            hint: self.0.data.hint,
        };
        (status, Json(body)).into_response()
    }
}

impl From<ClientError> for WebError {
    fn from(err: ClientError) -> WebError {
        let ClientError::Call(obj) = err else {
            return WebError::new(
                ErrorCode::Unavailable,
                format!("lost the connection to vmd: {err}"),
            );
        };
        let data = obj.data().map(|d| d.get());
        if let Some(api) = ApiError::from_parts(obj.code(), obj.message(), data) {
            return WebError(api);
        }
        // jsonrpsee's own codes: parse error, invalid request/params, request too big.
        let kind = match obj.code() {
            -32700 | -32600 | -32602 | -32007 => ErrorCode::InvalidArgument,
            _ => ErrorCode::Internal,
        };
        WebError::new(kind, obj.message())
    }
}

impl From<JsonRejection> for WebError {
    fn from(err: JsonRejection) -> WebError {
        WebError::new(ErrorCode::InvalidArgument, err.body_text())
    }
}

impl From<QueryRejection> for WebError {
    fn from(err: QueryRejection) -> WebError {
        WebError::new(ErrorCode::InvalidArgument, err.body_text())
    }
}

impl From<PathRejection> for WebError {
    fn from(err: PathRejection) -> WebError {
        WebError::new(ErrorCode::InvalidArgument, err.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_the_kind_code() {
        for kind in ErrorCode::ALL {
            let response = WebError::new(kind, "x").into_response();
            assert_eq!(response.status().as_u16() as i32, kind.code());
        }
    }

    #[test]
    fn vmd_errors_keep_kind_and_hint() {
        let data = r#"{"kind":"in_use","chain":["image base in use","by vm a"],"hint":"remove a"}"#;
        let raw = serde_json::value::RawValue::from_string(data.into()).expect("raw");
        let obj = jsonrpsee::types::ErrorObject::owned(423, "image base in use", Some(raw));
        let err = WebError::from(ClientError::Call(obj));
        assert_eq!(err.0.kind(), ErrorCode::InUse);
        assert_eq!(err.0.data.hint.as_deref(), Some("remove a"));
        let obj = jsonrpsee::types::ErrorObject::owned(-32602, "bad params", None::<()>);
        assert_eq!(
            WebError::from(ClientError::Call(obj)).0.kind(),
            ErrorCode::InvalidArgument
        );
    }
}
