//! The event hub: every event is written to the store (which assigns its sequence number) and
//! then broadcast to live subscribers, both under one lock, so broadcast order is sequence
//! order. Subscribers replay stored events first, a bounded page at a time, and then switch to
//! the live channel, skipping what they have already sent: no gap and no duplicate.
//!
//! Every event records its actor (the account whose request caused it, from
//! [`crate::auth::actor`]) and its owner and audience (who besides admins may see it, by
//! [`crate::auth::policy::audience`]); listings and subscriptions show each caller only what
//! they may see.

use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use vm_proto::types::{Event, EventKind, VmState};

use super::Error;
use crate::auth::{actor, policy};
use crate::store::{self, Audience, EventRow, NewEvent, Owner, Store, Viewer};

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
    tx: broadcast::Sender<Recorded>,
    // std Mutex: held inside a blocking task across insert + send, never across an await.
    order: Arc<Mutex<()>>,
}

/// An event as broadcast: the event and who may see it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The event.
    pub event: Event,
    /// Who besides admins may see it.
    pub audience: Audience,
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
    /// The owner of the object, when it cannot be looked up at emit time (it was removed).
    pub owner: Option<Owner>,
    /// Whether the object is visible to every user (images), when it cannot be looked up.
    pub public: Option<bool>,
}

impl Draft {
    /// The same draft, about an object owned by `owner`.
    pub fn owned_by(mut self, owner: &Owner) -> Draft {
        self.owner = Some(owner.clone());
        self
    }

    /// The same draft, about an object every user sees (`true`) or not.
    pub fn public(mut self, public: bool) -> Draft {
        self.public = Some(public);
        self
    }

    /// An event about VM `vm`.
    pub fn vm(kind: EventKind, vm: &str, message: impl Into<String>) -> Draft {
        Draft {
            kind,
            vm: Some(vm.into()),
            image: None,
            iso: None,
            state: None,
            message: message.into(),
            owner: None,
            public: None,
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
            owner: None,
            public: None,
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
            owner: None,
            public: None,
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
        let actor = actor::current();
        tokio::task::spawn_blocking(move || {
            let (owner, public) = resolve_owner(&store, &draft)?;
            let audience = policy::audience(draft.kind, owner.as_ref().map(|o| o.id), public);
            let _order = order.lock().unwrap_or_else(|p| p.into_inner());
            let row = NewEvent {
                actor,
                owner: owner.map(|o| o.name),
                audience,
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
                actor: row.actor,
                owner: row.owner,
                audience: row.audience,
            });
            let _ = tx.send(Recorded {
                event: event.clone(),
                audience,
            });
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

    /// A live receiver (subscribe before reading stored events); filter with
    /// [`Viewer::sees`].
    pub fn subscribe(&self) -> broadcast::Receiver<Recorded> {
        self.tx.subscribe()
    }

    /// Stored events `viewer` may see after `since`, at most `limit` capped at [`LIST_MAX`].
    pub async fn list(&self, viewer: Viewer, since: u64, limit: u64) -> Result<Vec<Event>, Error> {
        let store = self.store.clone();
        let limit = limit.min(LIST_MAX);
        let rows = tokio::task::spawn_blocking(move || {
            store.read(|c| store::list_events(c, viewer, since, limit))
        })
        .await??;
        Ok(rows.into_iter().map(to_event).collect())
    }
}

/// The owner of the draft's object and whether every user sees it: as the draft says, else
/// looked up by name (VM, then image).
fn resolve_owner(store: &Store, draft: &Draft) -> Result<(Option<Owner>, bool), Error> {
    if let Some(owner) = &draft.owner {
        return Ok((Some(owner.clone()), draft.public.unwrap_or(false)));
    }
    if let Some(vm) = draft.vm.as_deref().filter(|v| !v.is_empty()) {
        let row = store.read(|c| store::get_vm(c, vm))?;
        return Ok((row.map(|r| r.owner), false));
    }
    if let Some(image) = &draft.image {
        let row = store.read(|c| store::get_image(c, image))?;
        return Ok(match row {
            Some(r) => (Some(r.owner), r.public),
            None => (None, draft.public.unwrap_or(false)),
        });
    }
    Ok((None, draft.public.unwrap_or(false)))
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
        actor: row.actor,
        owner: row.owner,
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
            let e = rx.recv().await.expect("live").event;
            assert!(e.seq > last, "{} after {last}", e.seq);
            last = e.seq;
        }
        let stored = events.list(Viewer::Admin, 2, 100).await.expect("list");
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
        let stored = events.list(Viewer::Admin, 0, 10).await.expect("list");
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
