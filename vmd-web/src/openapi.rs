//! The OpenAPI document of the REST API, served at `GET /api/v1/openapi.json`.
//!
//! Nothing in it is maintained by hand: every route module registers its handlers through
//! utoipa-axum's `OpenApiRouter` and `routes!()`, so the router and the document come from the
//! one registration and cannot drift; each handler's `#[utoipa::path]` sits on the handler; the
//! schemas are vm-proto's own types (its `openapi` feature derives them) and [`ErrorBody`], the
//! type every error response is serialized from. This module adds what no handler knows alone:
//! - the info ([`vm_proto::API_VERSION`]) and the security schemes: `bearer`
//!   (`Authorization: Bearer vmd_…`), `session` (the `vmd_session` cookie) and `csrf` (the
//!   [`CSRF_HEADER`] header);
//! - each operation's security, derived from its method exactly as [`crate::auth::csrf_guard`]
//!   decides: a bearer token, or the session cookie (with the CSRF header on unsafe methods).
//!   Operations that declare their own (`security(())`: login, health, this document, the
//!   ticket-authorized console WebSockets) keep it;
//! - the sets of error responses ([`Errors`], [`Lookup`], …) that handlers list.

use std::collections::BTreeMap;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Extension;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, License, OpenApi, PathItem, Ref, RefOr, Response, ResponseBuilder,
    SecurityRequirement,
};
use utoipa::{IntoResponses, PartialSchema, ToSchema};
use vm_proto::ErrorCode;

use crate::auth::{CSRF_HEADER, SESSION_COOKIE};

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The HTTP status, which is the kind's stable code.
    pub code: i32,
    /// The kind of failure, stable within an API major version.
    pub kind: ErrorCode,
    /// The error and its causes, joined.
    pub message: String,
    /// What the caller can do about it, when there is something to say.
    pub hint: Option<String>,
}

/// The finished document, as served (a request extension).
#[derive(Clone)]
pub struct Document(pub std::sync::Arc<String>);

/// `GET /api/v1/openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "system", security(()),
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json")))]
pub async fn serve(Extension(doc): Extension<Document>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_owned(),
    )
}

/// Completes the document gathered from the routers: info, schemes, operation security.
pub fn finish(mut api: OpenApi) -> OpenApi {
    api.info = InfoBuilder::new()
        .title("vmd-web")
        .version(vm_proto::API_VERSION)
        .description(Some(
            "REST front end of vmd, the VM-lab daemon. Every error is an `ErrorBody` with the \
             HTTP status of its kind.",
        ))
        .license(Some(License::new("Apache-2.0")))
        .build();
    let components = api.components.get_or_insert_with(Default::default);
    components
        .schemas
        .insert("ErrorBody".into(), ErrorBody::schema());
    components
        .schemas
        .insert("ErrorCode".into(), ErrorCode::schema());
    for (name, scheme) in schemes() {
        components.add_security_scheme(name, scheme);
    }
    for item in api.paths.paths.values_mut() {
        secure(item);
        tidy(item);
    }
    api
}

/// Makes operation ids unique (the handler's name prefixed by its tag: `vms_list`), and gives
/// success responses declared without a description their status's reason phrase.
fn tidy(item: &mut PathItem) {
    let ops = [
        &mut item.get,
        &mut item.head,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ];
    for op in ops.into_iter().flatten() {
        let tag = op.tags.as_ref().and_then(|t| t.first()).cloned();
        if let (Some(tag), Some(id)) = (tag, op.operation_id.as_mut()) {
            *id = format!("{tag}_{id}");
        }
        for (status, response) in op.responses.responses.iter_mut() {
            if let RefOr::T(response) = response {
                if response.description.is_empty() {
                    response.description = reason(status);
                }
            }
        }
    }
}

/// `OK` for `200` and so on.
fn reason(status: &str) -> String {
    let code = status.parse().ok();
    let code = code.and_then(|c| axum::http::StatusCode::from_u16(c).ok());
    let reason = code.and_then(|c| c.canonical_reason());
    reason.unwrap_or(status).to_string()
}

/// The three ways a request proves who it is.
fn schemes() -> [(&'static str, SecurityScheme); 3] {
    let bearer = Http::builder()
        .scheme(HttpAuthScheme::Bearer)
        .bearer_format("vmd_…")
        .description(Some("An API token (POST /api/v1/tokens) or session token"))
        .build();
    let session = ApiKeyValue::with_description(
        SESSION_COOKIE,
        "The session cookie set by POST /api/v1/login",
    );
    let csrf = ApiKeyValue::with_description(
        CSRF_HEADER,
        "The `csrf` value of the login reply; required with the cookie on POST, PUT, PATCH, DELETE",
    );
    [
        ("bearer", SecurityScheme::Http(bearer)),
        ("session", SecurityScheme::ApiKey(ApiKey::Cookie(session))),
        ("csrf", SecurityScheme::ApiKey(ApiKey::Header(csrf))),
    ]
}

/// Gives each operation of `item` without its own security the default of its method.
fn secure(item: &mut PathItem) {
    let safe = [&mut item.get, &mut item.head, &mut item.options];
    for op in safe.into_iter().flatten() {
        op.security.get_or_insert_with(|| credentials(false));
    }
    let unsafe_ = [
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ];
    for op in unsafe_.into_iter().flatten() {
        op.security.get_or_insert_with(|| credentials(true));
    }
}

/// A bearer token, or the session cookie (with the CSRF header when `csrf`).
fn credentials(csrf: bool) -> Vec<SecurityRequirement> {
    let none: [&str; 0] = [];
    let mut cookie = SecurityRequirement::new("session", none);
    if csrf {
        cookie = cookie.add("csrf", none);
    }
    vec![SecurityRequirement::new("bearer", none), cookie]
}

/// One error response per kind, each with an [`ErrorBody`].
fn error_responses(kinds: &[ErrorCode]) -> BTreeMap<String, RefOr<Response>> {
    kinds
        .iter()
        .map(|kind| {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build();
            let response = ResponseBuilder::new()
                .description(format!("`{}`", kind.as_str()))
                .content("application/json", content)
                .build();
            (kind.code().to_string(), RefOr::T(response))
        })
        .collect()
}

/// Declares a set of error responses to list in `responses(...)`.
macro_rules! error_set {
    ($(#[doc = $doc:literal])* $name:ident = [$($kind:ident),+ $(,)?]) => {
        $(#[doc = $doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                error_responses(&[$(ErrorCode::$kind),+])
            }
        }
    };
}

error_set!(
    /// What any route that calls vmd can answer: a bad request, no or a refused credential, a
    /// refusal (or a failed CSRF/Origin check), a failure, vmd unreachable or too slow.
    Errors = [InvalidArgument, Unauthenticated, PermissionDenied, Internal, Unavailable]
);
error_set!(
    /// [`Errors`], and 404 for a name that does not exist (or that the caller may not see).
    Lookup = [InvalidArgument, Unauthenticated, PermissionDenied, NotFound, Internal, Unavailable]
);
error_set!(
    /// [`Lookup`], and the object's state (412) or use by others (423) refusing the change.
    Change = [
        InvalidArgument, Unauthenticated, PermissionDenied, NotFound, WrongState, InUse,
        Internal, Unavailable
    ]
);
error_set!(
    /// [`Change`], and the limits of making something new: name taken, quota, disk space.
    Create = [
        InvalidArgument, Unauthenticated, PermissionDenied, NotFound, AlreadyExists, WrongState,
        InUse, QuotaExceeded, NoSpace, Internal, Unavailable
    ]
);
error_set!(
    /// What `/health` answers when vmd does not.
    Down = [Unavailable]
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_methods_need_the_csrf_header_with_the_cookie() {
        let json = |reqs: Vec<SecurityRequirement>| serde_json::to_value(reqs).expect("json");
        let safe = json(credentials(false));
        assert_eq!(safe, serde_json::json!([{"bearer": []}, {"session": []}]));
        let unsafe_ = json(credentials(true));
        assert_eq!(unsafe_[1], serde_json::json!({"session": [], "csrf": []}));
    }

    #[test]
    fn bare_successes_get_their_reason_phrase() {
        assert_eq!(reason("201"), "Created");
        assert_eq!(reason("2XX"), "2XX");
    }

    #[test]
    fn error_sets_answer_each_kind_with_its_code() {
        let codes: Vec<String> = Create::responses().into_keys().collect();
        for kind in ["400", "404", "409", "412", "423", "429", "507", "503"] {
            assert!(codes.iter().any(|c| c == kind), "{codes:?}");
        }
        assert_eq!(Down::responses().into_keys().collect::<Vec<_>>(), ["503"]);
    }
}
