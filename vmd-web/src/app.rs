//! The router, its OpenAPI document, and the cross-cutting policy, declared once: request
//! tracing ([`crate::trace`]: method, path, status, duration, user; never headers, so never
//! cookies or tokens), a 1 MiB body limit (enforced
//! by the body extractors, so a larger body is a JSON 400), a 60 s timeout (a JSON 503), and
//! the CSRF/Origin guard of [`crate::auth`] on every `/api/v1` route, and the security headers
//! on every response ([`security_headers`]).
//!
//! The upload routes ([`uploads`]) keep the tracing and the CSRF guard but not the body limit
//! or the timeout: they stream bodies of up to [`uploads::UPLOAD_LIMIT`] bytes for as long as
//! that takes. The SSE streams ([`crate::routes::streams`]) are not cut by the timeout, which
//! only bounds the time to the response head.
//!
//! Every route is registered through utoipa-axum's `OpenApiRouter`, which builds the OpenAPI
//! document ([`crate::openapi`]) from the same registrations; it is served at
//! `GET /api/v1/openapi.json`.
//!
//! Connections themselves (timeouts, the connection cap, shutdown) are [`crate::server`]'s.

use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::header::{
    REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue};
use axum::routing::get;
use axum::{middleware, BoxError, Extension, Router};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vm_proto::ErrorCode;

use crate::auth::SessionCookie;
use crate::cli::Args;
use crate::error::WebError;
use crate::openapi::{self, Document};
use crate::routes::{
    consoles, events, images, isos, networks, streams, system, templates, tokens, uploads, users,
    vms,
};
use crate::server;
use crate::tls::{self, TlsListener};
use crate::vmd::Vmd;

/// Largest request body of the JSON routes.
pub const BODY_LIMIT: usize = 1 << 20;
/// Longest a request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads the TLS files if any (again on SIGHUP), binds the listener and serves until SIGTERM
/// or SIGINT.
pub async fn serve(args: Args) -> Result<(), String> {
    args.check_listen()?;
    let limits = args.limits();
    server::raise_nofile_limit(limits.max_connections);
    let tls = match args.tls() {
        Some((cert, key)) => Some(tls::reload_on_hangup(cert.into(), key.into())?),
        None => tls::ignore_hangup().map(|()| None)?,
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Tests and scripts read the bound address (port 0 picks one) from this line.
    println!("vmd-web listening on {scheme}://{addr}");
    tracing::info!(%addr, %scheme, socket = %args.socket_path().display(), "vmd-web listening");
    let app = router(
        Vmd::new(args.socket_path()).limited(args.caps()),
        tls.is_some(),
    );
    match tls {
        Some(config) => {
            let listener = TlsListener::new(listener, config).map_err(|e| e.to_string())?;
            server::run(listener, app, limits, shutdown()).await;
        }
        None => server::run(listener, app, limits, shutdown()).await,
    }
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Every route, with the layers; `tls` says whether vmd-web serves HTTPS itself (the session
/// cookie is then `Secure`, and responses carry HSTS).
pub fn router(vmd: Vmd, tls: bool) -> Router {
    let (router, api) = routes().split_for_parts();
    let doc = serde_json::to_string(&openapi::finish(api)).expect("the document serializes");
    let router = router
        .with_state(vmd)
        .layer(Extension(Document(doc.into())))
        .layer(Extension(SessionCookie { secure: tls }))
        .layer(middleware::from_fn(crate::trace::record_user))
        .layer(crate::trace::layer());
    security_headers(router, tls)
}

/// Sets, on every response: `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`
/// (URLs may carry console tickets), `X-Frame-Options: DENY`, and with `tls`
/// `Strict-Transport-Security` for a year (a proxy terminating TLS sets its own).
fn security_headers(router: Router, tls: bool) -> Router {
    let set = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
    };
    let router = router
        .layer(set(X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(REFERRER_POLICY, "no-referrer"))
        .layer(set(X_FRAME_OPTIONS, "DENY"));
    if tls {
        router.layer(set(STRICT_TRANSPORT_SECURITY, "max-age=31536000"))
    } else {
        router
    }
}

/// Every route and its layers, with the OpenAPI paths of each.
pub fn routes() -> OpenApiRouter<Vmd> {
    let api = OpenApiRouter::new()
        .merge(vms::routes())
        .merge(consoles::routes())
        .merge(images::routes())
        .merge(isos::routes())
        .merge(networks::routes())
        .merge(templates::routes())
        .merge(users::routes())
        .merge(tokens::routes())
        .merge(system::routes())
        .merge(streams::routes())
        .merge(events::routes())
        .routes(routes!(openapi::serve))
        .layer(middleware::from_fn(crate::auth::csrf_guard))
        .layer(middleware::from_fn(crate::limits::read_body_first));
    let uploads = uploads::routes().layer(middleware::from_fn(crate::auth::csrf_guard));
    OpenApiRouter::new()
        .nest("/api/v1", api)
        .routes(routes!(system::health))
        // The same check for probes that know no API version; left out of the document.
        .route("/health", get(system::health))
        // The browser UI: pages and assets, not part of the API document.
        .merge(OpenApiRouter::from(crate::ui::routes()))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(timed_out))
                .timeout(REQUEST_TIMEOUT),
        )
        .merge(uploads)
}

/// The answer to a request that took longer than [`REQUEST_TIMEOUT`].
async fn timed_out(_: BoxError) -> WebError {
    let secs = REQUEST_TIMEOUT.as_secs();
    WebError::new(
        ErrorCode::Unavailable,
        format!("the request took longer than {secs} s"),
    )
}

/// Routes that do not exist.
async fn not_found() -> WebError {
    WebError::new(ErrorCode::NotFound, "no such route")
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_body_over_the_limit_is_a_json_400() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = router(Vmd::new(dir.path().join("none.sock")), false);
        let body = format!(r#"{{"user":"a","password":"{}"}}"#, "x".repeat(BODY_LIMIT));
        let request = Request::post("/api/v1/login")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("request");
        let response = app.oneshot(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(json["kind"], "invalid_argument", "{json}");
    }

    /// The security headers on `GET /nope` (a 404, so no vmd is needed).
    async fn headers_of(tls: bool) -> axum::http::HeaderMap {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = router(Vmd::new(dir.path().join("none.sock")), tls);
        let request = Request::get("/nope").body(Body::empty()).expect("request");
        let response = app.oneshot(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        response.headers().clone()
    }

    #[tokio::test]
    async fn security_headers_are_set_and_hsts_only_with_tls() {
        for tls in [false, true] {
            let headers = headers_of(tls).await;
            assert_eq!(headers["x-content-type-options"], "nosniff");
            assert_eq!(headers["referrer-policy"], "no-referrer");
            assert_eq!(headers["x-frame-options"], "DENY");
            let hsts = headers.get("strict-transport-security");
            assert_eq!(hsts.is_some(), tls, "{headers:?}");
        }
    }
}
