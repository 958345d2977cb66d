//! Subscription pumps: following a console log file, and streaming events (stored backlog,
//! then live, skipping anything already sent so the client sees each sequence number once).

use std::path::PathBuf;
use std::time::Duration;

use jsonrpsee::{SubscriptionMessage, SubscriptionSink};
use tokio::sync::broadcast;
use vm_proto::types::{Event, LogChunk};

use crate::manager;

/// How often a followed log is checked for growth.
const POLL: Duration = Duration::from_millis(100);
/// Largest chunk sent at once.
const CHUNK: u64 = 64 << 10;

/// Sends what is appended to `log` from now on, until the client goes away.
pub async fn follow_log(sink: SubscriptionSink, log: PathBuf) {
    let mut offset = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    loop {
        tokio::select! {
            _ = sink.closed() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
        let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
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
                return;
            }
        }
    }
}

/// Sends `backlog`, then live events with a higher sequence number, until the client goes
/// away. A client that falls too far behind gets an error naming the last sequence number it
/// received, so it can resume with `since`.
pub async fn stream_events(
    sink: SubscriptionSink,
    backlog: Vec<Event>,
    mut live: broadcast::Receiver<Event>,
    since: u64,
) -> Result<(), String> {
    let mut last = since;
    for event in backlog {
        last = event.seq;
        if send(&sink, &event).await.is_err() {
            return Ok(());
        }
    }
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
        if event.seq <= last {
            continue;
        }
        last = event.seq;
        if send(&sink, &event).await.is_err() {
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
