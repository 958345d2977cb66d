//! The event hub: every event is written to the store (which assigns its sequence number) and
//! then broadcast to live subscribers, both under one lock, so broadcast order is sequence
//! order. Subscribers replay stored events first, a bounded page at a time, and then switch to
//! the live channel, skipping what they have already sent: no gap and no duplicate.

use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use vm_proto::types::{Event, EventKind, VmState};

use super::Error;
use crate::store::{self, EventRow, NewEvent, Store};

/// Stored events kept; older ones are pruned at start-up.
pub const EVENTS_KEPT: u64 = 100_000;

/// Most stored events one `list` returns, whatever the caller asks for (and the default
/// page of `events.list`): a caller pages on with `since` = the last sequence number seen.
pub const LIST_MAX: u64 = 1000;

/// Live events kept for slow subscribers before they lag (and must resume with `since`).
const CHANNEL_CAPACITY: usize = 4096;

/// Persists and broadcasts events.
pub struct Events {
    store: Arc<Store>,
    tx: broadcast::Sender<Event>,
    // std Mutex: held inside a blocking task across insert + send, never across an await.
    order: Arc<Mutex<()>>,
}

/// An event about to be recorded.
#[derive(Debug, Clone)]
pub struct Draft {
    /// What happened.
    pub kind: EventKind,
    /// VM involved.
    pub vm: Option<String>,
    /// Image involved.
    pub image: Option<String>,
    /// ISO involved.
    pub iso: Option<String>,
    /// New state.
    pub state: Option<VmState>,
    /// Detail.
    pub message: String,
}

impl Draft {
    /// An event about VM `vm`.
    pub fn vm(kind: EventKind, vm: &str, message: impl Into<String>) -> Draft {
        Draft {
            kind,
            vm: Some(vm.into()),
            image: None,
            iso: None,
            state: None,
            message: message.into(),
        }
    }

    /// An event about image `image`.
    pub fn image(kind: EventKind, image: &str, message: impl Into<String>) -> Draft {
        Draft {
            kind,
            vm: None,
            image: Some(image.into()),
            iso: None,
            state: None,
            message: message.into(),
        }
    }

    /// An event about ISO `iso`.
    pub fn iso(kind: EventKind, iso: &str, message: impl Into<String>) -> Draft {
        Draft {
            kind,
            vm: None,
            image: None,
            iso: Some(iso.into()),
            state: None,
            message: message.into(),
        }
    }
}

impl Events {
    /// A hub writing to `store`.
    pub fn new(store: Arc<Store>) -> Events {
        Events {
            store,
            tx: broadcast::channel(CHANNEL_CAPACITY).0,
            order: Arc::new(Mutex::new(())),
        }
    }

    /// Records and broadcasts `draft`, returning the event.
    pub async fn emit(&self, draft: Draft) -> Result<Event, Error> {
        let (store, tx, order) = (self.store.clone(), self.tx.clone(), self.order.clone());
        tokio::task::spawn_blocking(move || {
            let _order = order.lock().unwrap_or_else(|p| p.into_inner());
            let row = NewEvent {
                at_ms: now_ms(),
                kind: kind_str(draft.kind),
                vm: draft.vm,
                // The store has one object column for images and ISOs; the kind tells which.
                image: draft.image.or(draft.iso),
                state: draft.state.map(|s| s.as_str().to_string()),
                message: draft.message,
            };
            let seq = store.with_tx_retry(|tx| store::insert_event(tx, &row))?;
            let event = to_event(EventRow {
                seq,
                at_ms: row.at_ms,
                kind: row.kind,
                vm: row.vm,
                image: row.image,
                state: row.state,
                message: row.message,
            });
            let _ = tx.send(event.clone());
            Ok(event)
        })
        .await?
    }

    /// Drops stored events beyond [`EVENTS_KEPT`].
    pub async fn prune(&self) -> Result<u64, Error> {
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || {
            store.with_tx(|tx| store::prune_events(tx, EVENTS_KEPT))
        })
        .await??)
    }

    /// A live receiver (subscribe before reading stored events).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Stored events after `since`, at most `limit` capped at [`LIST_MAX`].
    pub async fn list(&self, since: u64, limit: u64) -> Result<Vec<Event>, Error> {
        let store = self.store.clone();
        let limit = limit.min(LIST_MAX);
        let rows = tokio::task::spawn_blocking(move || {
            store.read(|c| store::list_events(c, since, limit))
        })
        .await??;
        Ok(rows.into_iter().map(to_event).collect())
    }
}

fn kind_str(kind: EventKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "other".into())
}

fn to_event(row: EventRow) -> Event {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(row.at_ms.max(0) as u64);
    let kind =
        serde_json::from_value(serde_json::Value::String(row.kind)).unwrap_or(EventKind::Other);
    let (image, iso) = match kind {
        EventKind::IsoImported | EventKind::IsoRemoved => (None, row.image),
        _ => (row.image, None),
    };
    Event {
        seq: row.seq,
        at: humantime::format_rfc3339_millis(t).to_string(),
        kind,
        vm: row.vm,
        image,
        iso,
        state: row.state.as_deref().and_then(VmState::parse),
        message: row.message,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sequence_is_persisted_and_broadcast_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Arc::new(Store::open(&dir.path().join("db")).expect("store"));
        let events = Events::new(store.clone());
        let mut rx = events.subscribe();
        for i in 0..5 {
            events
                .emit(Draft::vm(EventKind::VmCreated, &format!("v{i}"), "created"))
                .await
                .expect("emit");
        }
        let mut last = 0;
        for _ in 0..5 {
            let e = rx.recv().await.expect("live");
            assert!(e.seq > last, "{} after {last}", e.seq);
            last = e.seq;
        }
        let stored = events.list(2, 100).await.expect("list");
        assert_eq!(
            stored.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(stored[0].vm.as_deref(), Some("v2"));
        assert_eq!(stored[0].kind, EventKind::VmCreated);
        let reopened = Events::new(Arc::new(
            Store::open(&dir.path().join("db")).expect("reopen"),
        ));
        let e = reopened
            .emit(Draft::vm(EventKind::VmRemoved, "v0", "gone"))
            .await
            .expect("emit");
        assert_eq!(e.seq, 6, "sequence survives a restart");
    }

    #[tokio::test]
    async fn iso_events_name_the_iso_live_and_stored() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Arc::new(Store::open(&dir.path().join("db")).expect("store"));
        let events = Events::new(store);
        let live = events
            .emit(Draft::iso(EventKind::IsoImported, "tools", "imported"))
            .await
            .expect("emit");
        events
            .emit(Draft::image(EventKind::ImageRemoved, "base", "removed"))
            .await
            .expect("emit");
        let stored = events.list(0, 10).await.expect("list");
        assert_eq!(stored[0], live, "stored as broadcast");
        let names = |e: &Event| (e.kind, e.image.clone(), e.iso.clone());
        assert_eq!(
            stored.iter().map(names).collect::<Vec<_>>(),
            vec![
                (EventKind::IsoImported, None, Some("tools".into())),
                (EventKind::ImageRemoved, Some("base".into()), None),
            ]
        );
    }
}
