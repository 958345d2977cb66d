//! The serial console's one client per VM: who holds it, since when, and taking it over.
//!
//! A running VM's [`ConsoleSlot`] holds at most one [`Holder`]. Attaching takes the empty slot;
//! with `force` it takes the slot from its holder, whose session is sent a farewell line
//! through its `kick` channel and ends; the new client connects to QEMU once the old one has
//! let go (QEMU serves one console connection at a time). Anyone who may open the console
//! may force it: the owner, or an admin (an owner may displace an admin on their own VM;
//! the admin can take it back). The slot is runtime state: it is never stored.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;
use vm_proto::types::ConsoleClient;

use super::{now_secs, rfc3339, Error, Manager};
use crate::auth::Subject;
use std::sync::Arc;

use super::runtime::Runtime;

/// How long a forced attach waits for the displaced session to let go of QEMU's socket.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// The console client of one running VM, if any.
#[derive(Default)]
pub struct ConsoleSlot {
    /// A std mutex: held only to read or swap the holder, never across `.await`.
    holder: Mutex<Option<Holder>>,
}

/// The client holding a console.
struct Holder {
    /// Distinguishes sessions, so that a displaced one does not free its successor's slot.
    id: u64,
    /// Its account.
    user: String,
    /// Whether it attached as an admin.
    admin: bool,
    /// When it attached, unix seconds.
    since: i64,
    /// Tells its session to say the line and end.
    kick: oneshot::Sender<String>,
    /// Closes when its session has let go of the console.
    released: oneshot::Receiver<()>,
}

/// An exclusive console attachment; frees the slot on drop (unless taken over meanwhile).
pub struct ConsoleAttach {
    runtime: Arc<Runtime>,
    id: u64,
    socket: std::path::PathBuf,
    kicked: Option<oneshot::Receiver<String>>,
    _released: oneshot::Sender<()>,
}

impl ConsoleAttach {
    /// QEMU's console socket.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// Resolves with the farewell line when another client takes the console over.
    pub fn take_kick(&mut self) -> Option<oneshot::Receiver<String>> {
        self.kicked.take()
    }
}

impl Drop for ConsoleAttach {
    fn drop(&mut self) {
        let mut holder = self.runtime.console.lock();
        if holder.as_ref().is_some_and(|h| h.id == self.id) {
            *holder = None;
        }
    }
}

impl ConsoleSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Holder>> {
        self.holder.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The attached client as `viewer` may see it (`None` for vmd's own use: no name).
    pub fn client(&self, viewer: Option<&Subject>) -> Option<ConsoleClient> {
        let holder = self.lock();
        let h = holder.as_ref()?;
        let named = viewer.is_some_and(|v| v.is_admin() || v.name == h.user);
        Some(ConsoleClient {
            since: rfc3339(h.since),
            user: named.then(|| h.user.clone()),
        })
    }
}

/// The line a displaced client reads: the taker is named unless an admin displaces a user
/// (who is told only that an administrator took it).
fn farewell(taker: &Subject, displaced: &Holder) -> String {
    let who = match (taker.is_admin(), displaced.admin) {
        (true, false) if taker.name != displaced.user => "an administrator".to_string(),
        _ => taker.name.clone(),
    };
    format!("\r\n[vmd] console taken over by {who}\r\n")
}

impl Manager {
    /// Takes the console of a running VM for one client; with `force`, from its holder.
    pub async fn console_attach(
        &self,
        subject: &Subject,
        name: &str,
        force: bool,
    ) -> Result<ConsoleAttach, Error> {
        let runtime = self.attachable(subject, name).await?;
        let (attach, displaced) = self.claim(subject, name, runtime, force)?;
        if let Some(old) = displaced {
            tracing::info!(vm = %name, user = %subject.name, displaced = %old.user, "console taken over");
            let line = farewell(subject, &old);
            let _ = old.kick.send(line);
            let _ = tokio::time::timeout(RELEASE_WAIT, old.released).await;
        }
        Ok(attach)
    }

    /// Puts a new holder in the slot; the displaced one, if forced.
    fn claim(
        &self,
        subject: &Subject,
        name: &str,
        runtime: Arc<Runtime>,
        force: bool,
    ) -> Result<(ConsoleAttach, Option<Holder>), Error> {
        let id = self
            .console_ids
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (kick, kicked) = oneshot::channel();
        let (released_tx, released) = oneshot::channel();
        let mut slot = runtime.console.lock();
        if slot.is_some() && !force {
            return Err(Error::ConsoleBusy(name.into()));
        }
        let displaced = slot.replace(Holder {
            id,
            user: subject.name.clone(),
            admin: subject.is_admin(),
            since: now_secs(),
            kick,
            released,
        });
        drop(slot);
        let attach = ConsoleAttach {
            socket: runtime.run_dir.join("console"),
            runtime,
            id,
            kicked: Some(kicked),
            _released: released_tx,
        };
        Ok((attach, displaced))
    }
}
