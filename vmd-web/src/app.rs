//! The router and the cross-cutting policy, declared once: request tracing (method, path,
//! status, duration; never headers, so never cookies or tokens), a 1 MiB body limit, a 60 s
//! timeout, and the CSRF/Origin guard of [`crate::auth`] on every `/api/v1` route.

use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{middleware, Router};
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use vm_proto::ErrorCode;

use crate::cli::Args;
use crate::error::WebError;
use crate::routes::{images, isos, system, tokens, users, vms};
use crate::vmd::Vmd;

/// Largest request body of the JSON routes.
const BODY_LIMIT: usize = 1 << 20;
/// Longest a request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Binds the listener and serves until SIGTERM or SIGINT.
pub async fn serve(args: Args) -> Result<(), String> {
    args.check_listen()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Tests and scripts read the bound address (port 0 picks one) from this line.
    println!("vmd-web listening on http://{addr}");
    tracing::info!(%addr, socket = %args.socket_path().display(), "vmd-web listening");
    let app = router(Vmd::new(args.socket_path()));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| format!("server failed: {e}"))
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

/// Every route, with the layers.
pub fn router(vmd: Vmd) -> Router {
    let api = Router::new()
        .merge(vms::routes())
        .merge(images::routes())
        .merge(isos::routes())
        .merge(users::routes())
        .merge(tokens::routes())
        .merge(system::routes())
        .layer(middleware::from_fn(crate::auth::csrf_guard));
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &Request| {
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
        })
        .on_response(DefaultOnResponse::new().level(Level::INFO));
    Router::new()
        .nest("/api/v1", api)
        .route("/api/v1/health", get(system::health))
        .route("/health", get(system::health))
        .fallback(not_found)
        .with_state(vmd)
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(trace)
}

/// Routes that do not exist.
async fn not_found() -> WebError {
    WebError::new(ErrorCode::NotFound, "no such route")
}
