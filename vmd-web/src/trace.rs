//! Request tracing: one span per request (method, path, user) and one info line when the
//! response starts (status, latency), from tower-http's `TraceLayer`.
//!
//! vmd-web never decides who a caller is, so it asks vmd: when a request connects to vmd with
//! a credential ([`learn_user`]), an `auth.whoami` call goes out on the same connection, beside
//! the request's own call rather than before it, and its answer fills the span's `user` field.
//! [`record_user`] waits for that answer (it is normally in before the request's own reply)
//! before the response line is logged, so the line carries the user. A credential vmd refuses
//! leaves the field empty. Secrets never enter the span: tokens, cookies and tickets are not
//! fields, and the path (never the query string) is logged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use jsonrpsee::ws_client::WsClient;
use tokio::task::JoinHandle;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnResponse, MakeSpan, TraceLayer};
use tracing::{Level, Span};
use vm_proto::api::VmdApiClient;

/// How long the response line waits for vmd to name the user.
const USER_WAIT: Duration = Duration::from_secs(2);

tokio::task_local! {
    /// The request's pending `auth.whoami`, if one was sent.
    static PENDING: Pending;
}

/// A request's pending user lookup.
#[derive(Clone, Default)]
struct Pending(Arc<Mutex<Option<JoinHandle<()>>>>);

/// Makes the request span: method, path, and an empty `user` filled in later.
#[derive(Clone, Copy)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, req: &axum::http::Request<B>) -> Span {
        tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            user = tracing::field::Empty,
        )
    }
}

/// The tracing layer of every route.
pub fn layer() -> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, RequestSpan> {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_response(DefaultOnResponse::new().level(Level::INFO))
}

/// Runs the request with a slot for its user lookup, and waits for the lookup (briefly) once
/// the response is ready, so that the response line names the user. Inside [`layer`].
pub async fn record_user(request: Request, next: Next) -> Response {
    let pending = Pending::default();
    let response = PENDING.scope(pending.clone(), next.run(request)).await;
    let lookup = pending.0.lock().ok().and_then(|mut slot| slot.take());
    if let Some(lookup) = lookup {
        let _ = tokio::time::timeout(USER_WAIT, lookup).await;
    }
    response
}

/// Sends `auth.whoami` on `client` (the request's connection with its credential) and
/// records the answer in the current request span; once per request, nothing outside one.
pub fn learn_user(client: &Arc<WsClient>) {
    let _ = PENDING.try_with(|pending| {
        let Ok(mut slot) = pending.0.lock() else {
            return;
        };
        if slot.is_some() {
            return;
        }
        let (span, client) = (Span::current(), Arc::clone(client));
        *slot = Some(tokio::spawn(async move {
            if let Ok(me) = client.auth_whoami().await {
                span.record("user", tracing::field::display(&me.user));
            }
        }));
    });
}

/// Records `user` in the current request span (login, where vmd named the user already).
pub fn name_user(user: &str) {
    Span::current().record("user", tracing::field::display(user));
}
