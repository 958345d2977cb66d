//! Free space in the state directory: the floor below which new work is refused, the watcher
//! that reports crossing it (`space_low` / `space_ok` events), and the space reserve that
//! keeps deletes and state records possible on a full file system.
//!
//! Policy: creates, starts and imports are refused below `min_free_bytes` with `no_space`;
//! everything that frees space or records what QEMU is doing (stop, rm, wipe, state
//! changes, events) is never refused for space, and gets the reserve when the file system
//! is full (see [`crate::storage::reserve`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vm_proto::names::format_size;
use vm_proto::types::EventKind;

use super::events::Draft;
use super::{Error, Manager};
use crate::storage::reserve::SpaceReserve;
use crate::storage::{self};
use crate::store::WriteGuard;

/// How often the watcher looks at free space.
const WATCH_EVERY: Duration = Duration::from_secs(5);

impl WriteGuard for SpaceReserve {
    fn before_write(&self) {
        SpaceReserve::before_write(self);
    }

    fn on_full(&self) {
        self.release("a database write failed: no space left");
    }
}

impl Manager {
    /// Refuses `action` when free space is below the floor.
    pub(super) async fn check_space_floor(&self, action: &'static str) -> Result<(), Error> {
        let floor = self.config.min_free_bytes;
        let free = self.free_bytes().await?;
        if free < floor {
            return Err(Error::NoSpace {
                action,
                free,
                floor,
            });
        }
        Ok(())
    }

    pub(super) async fn free_bytes(&self) -> Result<u64, Error> {
        let dir = self.config.state_dir.clone();
        Ok(tokio::task::spawn_blocking(move || storage::free_bytes(&dir)).await?)
    }

    /// Watches free space until `shutdown` (start-up makes its own first check).
    pub fn watch_space(self: &Arc<Self>, shutdown: CancellationToken) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(WATCH_EVERY) => {}
                }
                me.check_space().await;
            }
        });
    }

    /// One look at free space: events on crossing the floor, the reserve made again when
    /// there is room.
    pub async fn check_space(&self) {
        let Ok(free) = self.free_bytes().await else {
            return;
        };
        let floor = self.config.min_free_bytes;
        let low = free < floor;
        if self.space_low.swap(low, Ordering::AcqRel) != low {
            self.report_space(low, free, floor).await;
        }
        if !low {
            let reserve = self.reserve.clone();
            let _ = tokio::task::spawn_blocking(move || reserve.ensure(floor)).await;
        }
    }

    async fn report_space(&self, low: bool, free: u64, floor: u64) {
        let (kind, msg) = match low {
            true => (
                EventKind::SpaceLow,
                format!(
                    "{} free in the state directory, below the floor of {}: creates and starts are refused",
                    format_size(free),
                    format_size(floor)
                ),
            ),
            false => (
                EventKind::SpaceOk,
                format!("{} free in the state directory", format_size(free)),
            ),
        };
        match low {
            true => tracing::warn!(
                free_bytes = free,
                floor_bytes = floor,
                "state file system low on space"
            ),
            false => tracing::info!(free_bytes = free, "state file system has space again"),
        }
        let draft = Draft {
            kind,
            vm: None,
            image: None,
            iso: None,
            state: None,
            message: msg,
            owner: None,
            public: None,
        };
        if let Err(err) = self.events.emit(draft).await {
            tracing::warn!(error = %err, "cannot record a space event");
        }
    }

    /// The free-space floor (`min_free_bytes`).
    pub fn min_free_bytes(&self) -> u64 {
        self.config.min_free_bytes
    }

    /// Whether free space is below the floor (as last seen).
    pub fn space_is_low(&self) -> bool {
        self.space_low.load(Ordering::Acquire)
    }

    /// Bytes of the reserve currently held.
    pub fn reserve_held(&self) -> u64 {
        match self.reserve.is_held() {
            true => self.reserve.bytes(),
            false => 0,
        }
    }
}
