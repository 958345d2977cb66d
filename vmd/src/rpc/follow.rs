//! Subscription pumps: following a console log file, and streaming events (stored backlog in
//! bounded pages, then live, skipping anything already sent so the client sees each sequence
//! number once).
//!
//! Memory per subscriber is bounded whatever the client does: the backlog is read one page
//! at a time, and the next page only after the sink accepted the last event of the previous
//! one. The sink waits while the connection's message buffer (`rpc::MESSAGE_BUFFER`
//! messages) is full, which it stays while the client does not read.

use std::path::PathBuf;
use std::time::Duration;

use jsonrpsee::{SubscriptionMessage, SubscriptionSink};
use tokio::sync::broadcast;
use vm_proto::types::LogChunk;

use crate::manager;
use crate::manager::events::{Events, Recorded};
use crate::store::Viewer;

/// How often a followed log is checked for growth.
const POLL: Duration = Duration::from_millis(100);
/// Largest chunk sent at once.
const CHUNK: u64 = 64 << 10;
/// Stored events read from the store at once for a subscriber.
const BACKLOG_PAGE: u64 = 256;

/// Why a follower or subscriber was let go (sent to the client as the subscription's close).
const ACCESS_ENDED: &str = "access ended: the VM is gone or the credentials no longer allow this";

/// Idle polls between checks that the follower may still read the VM's log.
const RECHECK_POLLS: u32 = 10;

/// Sends what is appended to `log` from now on, until the client goes away or `allowed`
/// says no. `allowed` is asked before any new output is sent and every second otherwise, so
/// a follower never reads the log of a VM that took the name after theirs was removed, and
/// one whose access ended (token revoked, VM gone) is let go.
pub async fn follow_log<F, Fut>(
    sink: SubscriptionSink,
    log: PathBuf,
    allowed: F,
) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut offset = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let mut idle = 0;
    loop {
        tokio::select! {
            _ = sink.closed() => return Ok(()),
            _ = tokio::time::sleep(POLL) => {}
        }
        let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        idle += 1;
        if (size != offset || idle >= RECHECK_POLLS) && !allowed().await {
            return Err(ACCESS_ENDED.into());
        }
        if size != offset {
            idle = 0;
        }
        if size < offset {
            offset = 0; // rotated or recreated: start over from the top of the new file
        }
        while size > offset {
            let bytes = manager::logs::read_range(&log, offset, (size - offset).min(CHUNK));
            if bytes.is_empty() {
                break;
            }
            offset += bytes.len() as u64;
            let chunk = LogChunk {
                text: String::from_utf8_lossy(&bytes).into_owned(),
            };
            if send(&sink, &chunk).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// Where an event stream starts.
pub enum EventsFrom {
    /// Live events only, from a receiver joined before the subscription was accepted (so an
    /// event caused after the client saw the subscription id is never missed).
    Now(broadcast::Receiver<Recorded>),
    /// Stored events with a higher sequence number, then live ones.
    After(u64),
}

/// Sends the events the subscriber may see from `from` until the client goes away. Who the
/// subscriber is, and so what they see, is asked of `viewer` before every page of stored
/// events and every live event (a demoted admin stops seeing others' events at once); `None`
/// (account gone, token revoked) ends the stream. A client that falls too far behind the
/// live channel gets an error naming the last sequence number it received, so it can resume
/// with `since`.
pub async fn stream_events<V, Fut>(
    sink: SubscriptionSink,
    events: &Events,
    from: EventsFrom,
    viewer: V,
) -> Result<(), String>
where
    V: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<Viewer>>,
{
    match from {
        EventsFrom::Now(live) => send_live(&sink, live, 0, &viewer).await,
        EventsFrom::After(mut last) => {
            match send_backlog(&sink, events, &mut last, &viewer).await? {
                Some(live) => send_live(&sink, live, last, &viewer).await,
                None => Ok(()),
            }
        }
    }
}

/// Sends the stored events after `*last` a page at a time, reading the next page only once
/// the sink took the previous one, so a client that does not read holds at most one page and
/// the connection's message buffer. When a page comes back short the live channel is joined,
/// then one more page is read: an event stored before joining is in that page, one stored
/// after is on the channel (both when it raced the join; `send_live` skips it). Returns the
/// live receiver, or `None` when the client went away.
async fn send_backlog<V, Fut>(
    sink: &SubscriptionSink,
    events: &Events,
    last: &mut u64,
    viewer: &V,
) -> Result<Option<broadcast::Receiver<Recorded>>, String>
where
    V: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<Viewer>>,
{
    let mut live = None;
    loop {
        let Some(viewer) = viewer().await else {
            return Err(ACCESS_ENDED.into());
        };
        let page = events
            .list(viewer, *last, BACKLOG_PAGE)
            .await
            .map_err(|e| format!("cannot read stored events: {e}"))?;
        let full = page.len() as u64 == BACKLOG_PAGE;
        for event in page {
            *last = event.seq;
            if send(sink, &event).await.is_err() {
                return Ok(None);
            }
        }
        match (full, live.is_some()) {
            (true, _) => continue,
            (false, false) => live = Some(events.subscribe()),
            (false, true) => return Ok(live),
        }
    }
}

/// Sends live events `viewer` may see with `seq > last` until the client goes away or lags.
async fn send_live<V, Fut>(
    sink: &SubscriptionSink,
    mut live: broadcast::Receiver<Recorded>,
    mut last: u64,
    viewer: &V,
) -> Result<(), String>
where
    V: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<Viewer>>,
{
    loop {
        let event = tokio::select! {
            _ = sink.closed() => return Ok(()),
            received = live.recv() => match received {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(skipped = n, "event subscriber lagged; closing it");
                    return Err(format!("subscriber fell {n} events behind; resubscribe with since = {last}"));
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
        };
        if event.event.seq <= last {
            continue;
        }
        match viewer().await {
            None => return Err(ACCESS_ENDED.into()),
            Some(v) if !v.sees(event.audience) => continue,
            Some(_) => {}
        }
        let event = event.event;
        last = event.seq;
        if send(sink, &event).await.is_err() {
            return Ok(());
        }
    }
}

async fn send<T: serde::Serialize>(sink: &SubscriptionSink, item: &T) -> Result<(), ()> {
    let msg: SubscriptionMessage = serde_json::value::to_raw_value(item)
        .map_err(|_| ())?
        .into();
    sink.send(msg).await.map_err(|_| ())
}
