//! REST routes under `/api/v1`, one module per resource. Each handler extracts, calls one
//! vm-proto client method with the caller's credential ([`crate::auth::Rpc`]) and maps the
//! result; failures become responses in [`crate::error::WebError`].

pub mod consoles;
pub mod events;
pub mod images;
pub mod isos;
pub mod networks;
pub mod streams;
pub mod system;
pub mod templates;
pub mod tokens;
pub mod uploads;
pub mod users;
pub mod vms;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};
use vm_proto::ErrorCode;

use crate::error::WebError;

/// A JSON request body whose rejections are JSON errors.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(WebError))]
pub struct Body<T>(pub T);

/// A query string whose rejections are JSON errors.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(WebError))]
pub struct Query<T>(pub T);

/// A path whose rejections are JSON errors.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(WebError))]
pub struct Path<T>(pub T);

/// A query flag: `1`, `true` or `yes` is set.
#[derive(Debug, Default, Deserialize)]
#[serde(from = "String")]
pub struct Flag(pub bool);

impl From<String> for Flag {
    fn from(value: String) -> Flag {
        Flag(matches!(value.as_str(), "1" | "true" | "yes"))
    }
}

/// A request object made of a JSON body (an object, or empty for `{}`) plus the path's name.
pub fn named<T: DeserializeOwned>(
    name: String,
    body: Option<Map<String, Value>>,
) -> Result<T, WebError> {
    let mut object = body.unwrap_or_default();
    object.insert("name".into(), Value::String(name));
    serde_json::from_value(Value::Object(object)).map_err(|e| {
        WebError::new(
            ErrorCode::InvalidArgument,
            format!("invalid request body: {e}"),
        )
    })
}

/// An optional JSON object body: an empty body is `None`.
pub struct OptionalObject(pub Option<Map<String, Value>>);

impl<S: Send + Sync> FromRequest<S> for OptionalObject {
    type Rejection = WebError;

    async fn from_request(request: Request, state: &S) -> Result<OptionalObject, WebError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| WebError::new(ErrorCode::InvalidArgument, e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalObject(None));
        }
        let object = serde_json::from_slice(&bytes).map_err(|e| {
            WebError::new(
                ErrorCode::InvalidArgument,
                format!("invalid JSON body: {e}"),
            )
        })?;
        Ok(OptionalObject(Some(object)))
    }
}
