//! Server-Sent Events relayed from vmd's subscriptions: `GET /events` (`events.subscribe`)
//! and `GET /vms/{name}/logs?follow=1` (`vm.follow_logs`, see [`super::vms`]).
//!
//! Each stream owns its JSON-RPC connection to vmd, made with the caller's credential, so vmd
//! filters what the caller may see. The stream ends when vmd ends the subscription, or when
//! the client goes away: the response body is dropped, which drops the subscription (an
//! unsubscribe) and the connection. A keep-alive comment goes out every 15 s.
//!
//! Each stream holds a [`StreamPermit`] of [`crate::limits`] (taken before vmd is reached)
//! until its body is dropped. A client that reads more slowly than vmd sends lags: vmd-web
//! buffers at most 16 notifications for it ([`crate::vmd`]), then jsonrpsee drops the
//! subscription, and the stream sends what was buffered and ends. An events client resumes
//! with `Last-Event-ID`; a log follower starts again from the log's end (what was written
//! meanwhile is in `GET /vms/{name}/logs`).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use jsonrpsee::core::client::{Subscription, SubscriptionCloseReason};
use jsonrpsee::ws_client::WsClient;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vm_proto::api::VmdApiClient;
use vm_proto::types::{Event, LogChunk};
use vm_proto::ErrorCode;

use super::Query;
use crate::auth::{Credential, Rpc};
use crate::error::WebError;
use crate::limits::StreamPermit;
use crate::openapi::Errors;
use crate::vmd::Vmd;

/// How often an idle stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The routes of this module.
pub fn routes() -> OpenApiRouter<Vmd> {
    OpenApiRouter::new().routes(routes!(events))
}

/// `?since=N` of `GET /events`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Replay the events after this seq first.
    since: Option<u64>,
}

/// Events with `seq > since` (`Last-Event-ID` wins over `?since`), then live ones, as SSE:
/// `id: <seq>`, `data: <Event JSON>` (`events.subscribe`).
#[utoipa::path(get, path = "/events", tag = "events",
    params(EventsQuery, ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this seq")),
    responses((status = 200, description = "An endless SSE stream", body = Event,
        content_type = "text/event-stream"), Errors))]
async fn events(
    Slot(slot): Slot,
    rpc: Rpc,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Response, WebError> {
    let since = last_event_id(&headers)?.or(q.since);
    let subscription = rpc.events_subscribe(since).await?;
    Ok(relay((rpc.0, slot), subscription, event))
}

/// Follows `name`'s console log from its current end; each chunk's text is a JSON string.
pub async fn follow_logs(slot: Slot, rpc: Rpc, name: String) -> Result<Response, WebError> {
    let subscription = rpc.vm_follow_logs(name).await?;
    Ok(relay((rpc.0, slot.0), subscription, log_chunk))
}

/// A stream's slot under [`crate::limits`], for the request's credential (401 without one).
pub struct Slot(StreamPermit);

impl FromRequestParts<Vmd> for Slot {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, vmd: &Vmd) -> Result<Slot, WebError> {
        Slot::take(vmd, &parts.headers)
    }
}

impl Slot {
    /// A slot for the credential in `headers`, or 401 without one, or 429 over a cap.
    pub fn take(vmd: &Vmd, headers: &HeaderMap) -> Result<Slot, WebError> {
        let credential = Credential::require(headers)?;
        Ok(Slot(vmd.limits().stream(Some(credential.token()))?))
    }
}

/// The `Last-Event-ID` header, if any; a non-number is a 400.
fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, WebError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let seq = value.to_str().ok().and_then(|v| v.trim().parse().ok());
    seq.map(Some).ok_or_else(|| {
        WebError::new(
            ErrorCode::InvalidArgument,
            "Last-Event-ID must be an event seq",
        )
    })
}

/// `id: <seq>` and `data: <Event JSON>`.
fn event(event: Event) -> sse::Event {
    let seq = event.seq.to_string();
    json_event(&event).id(seq)
}

/// `data: <chunk text as a JSON string>`.
fn log_chunk(chunk: LogChunk) -> sse::Event {
    json_event(&chunk.text)
}

/// `data: <JSON>` (serializing these types cannot fail; if it did, a comment says so).
fn json_event<T: serde::Serialize>(value: &T) -> sse::Event {
    sse::Event::default()
        .json_data(value)
        .unwrap_or_else(|_| sse::Event::default().comment("unencodable item"))
}

/// The SSE response relaying `subscription`, which lives (with `client` and `slot`) as long
/// as the body.
fn relay<T>(
    (client, slot): (Arc<WsClient>, StreamPermit),
    subscription: Subscription<T>,
    to_event: fn(T) -> sse::Event,
) -> Response
where
    T: DeserializeOwned + Send + Unpin + 'static,
{
    let stream = Relay {
        _client: client,
        _slot: slot,
        subscription,
        to_event,
    };
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // Reverse proxies (nginx) must pass events through as they come.
    let headers = response.headers_mut();
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// A vmd subscription as a stream of SSE events, holding its connection open.
struct Relay<T> {
    _client: Arc<WsClient>,
    _slot: StreamPermit,
    subscription: Subscription<T>,
    to_event: fn(T) -> sse::Event,
}

impl<T: DeserializeOwned + Unpin> Stream for Relay<T> {
    type Item = Result<sse::Event, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match ready!(Pin::new(&mut this.subscription).poll_next(cx)) {
            Some(Ok(item)) => Poll::Ready(Some(Ok((this.to_event)(item)))),
            Some(Err(err)) => {
                tracing::warn!(error = %err, "undecodable item from vmd: ending the stream");
                Poll::Ready(None)
            }
            None => {
                if let Some(SubscriptionCloseReason::Lagged) = this.subscription.close_reason() {
                    tracing::info!("the client reads too slowly: ending its stream");
                }
                Poll::Ready(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_id_is_a_seq() {
        let mut headers = HeaderMap::new();
        assert_eq!(last_event_id(&headers).expect("none"), None);
        headers.insert("last-event-id", HeaderValue::from_static("42"));
        assert_eq!(last_event_id(&headers).expect("seq"), Some(42));
        headers.insert("last-event-id", HeaderValue::from_static("x"));
        assert!(last_event_id(&headers).is_err());
    }
}
