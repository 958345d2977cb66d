//! The guest-agent poller: one task per QEMU process, next to its monitor. It talks to the
//! guest's qemu-guest-agent over the VM's virtio-serial channel (`<run dir>/agent`, see
//! [`crate::qemu::qga`]) and keeps the latest answer in the runtime ([`GuestSlot`]), in memory
//! only: a restarted vmd asks again.
//!
//! Until the agent first answers it probes every [`PROBE_FIRST`]…[`PROBE_MAX`] (backing off);
//! afterwards it refreshes every [`REFRESH`]. Any failure drops the session; the next poll
//! connects and syncs afresh. It stops when the process is gone. The first answer is written
//! to the console log as a `[vmd …]` note and logged at info; nothing else is.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use vm_proto::types::{GuestAddress, GuestInfo};

use super::runtime::Runtime;
use super::Manager;
use crate::qemu::qga::{GuestReport, Qga};

/// First pause between probes while the agent has not answered.
const PROBE_FIRST: Duration = Duration::from_secs(1);
/// Longest pause between probes while the agent has not answered.
const PROBE_MAX: Duration = Duration::from_secs(8);
/// Pause between polls once the agent has answered.
const REFRESH: Duration = Duration::from_secs(15);

/// The latest agent answer of one QEMU process.
#[derive(Default)]
pub struct GuestSlot {
    /// std Mutex: held only to copy in or out, never across `.await`.
    latest: Mutex<Option<GuestInfo>>,
}

impl GuestSlot {
    /// What `vm.get` shows while the process runs: `agent: false` until the first answer.
    pub fn view(&self) -> GuestInfo {
        let latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        latest.clone().unwrap_or(GuestInfo {
            agent: false,
            os: None,
            kernel: None,
            hostname: None,
            addresses: Vec::new(),
            updated_at: None,
        })
    }

    /// Stores `info`; `true` if it is the first answer.
    fn store(&self, info: GuestInfo) -> bool {
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        latest.replace(info).is_none()
    }

    fn answered(&self) -> bool {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }
}

impl Manager {
    /// Spawns the poller of the VM `name`'s process `rt`.
    pub(super) fn spawn_guest_poller(self: Arc<Self>, name: String, rt: Arc<Runtime>) {
        tokio::spawn(async move {
            let mut gone = rt.gone.clone();
            tokio::select! {
                _ = gone.wait_for(|g| *g) => {}
                _ = self.poll_guest(&name, &rt) => {}
            }
        });
    }

    async fn poll_guest(&self, name: &str, rt: &Runtime) {
        let path = rt.run_dir.join("agent");
        let mut session: Option<Qga> = None;
        let mut probe = PROBE_FIRST;
        loop {
            match poll_once(&mut session, &path).await {
                Ok(report) => self.on_report(name, rt, report),
                Err(err) => {
                    tracing::debug!(vm = %name, error = %err, "guest agent poll failed");
                    session = None;
                }
            }
            let pause = match rt.guest.answered() {
                true => REFRESH,
                false => {
                    let next = (probe * 2).min(PROBE_MAX);
                    std::mem::replace(&mut probe, next)
                }
            };
            tokio::time::sleep(pause).await;
        }
    }

    fn on_report(&self, name: &str, rt: &Runtime, report: GuestReport) {
        let info = guest_info(report);
        let summary = summary(&info);
        if rt.guest.store(info) {
            tracing::info!(vm = %name, guest = %summary, "guest agent connected");
            let Some(me) = self.me.upgrade() else { return };
            let (name, text) = (
                name.to_string(),
                format!("guest agent connected: {summary}"),
            );
            // The note appends to the console log: file work, off the async workers.
            tokio::task::spawn_blocking(move || me.note(&name, &text));
        }
    }
}

/// One poll: connects and syncs if needed, then asks.
async fn poll_once(
    session: &mut Option<Qga>,
    path: &std::path::Path,
) -> Result<GuestReport, crate::qemu::qga::QgaError> {
    if session.is_none() {
        *session = Some(Qga::connect(path).await?);
    }
    match session.as_mut() {
        Some(qga) => qga.report().await,
        None => unreachable!("connected above"),
    }
}

/// The API's view of one report, stamped now.
fn guest_info(report: GuestReport) -> GuestInfo {
    let addresses = report
        .addresses
        .into_iter()
        .map(|ip| GuestAddress {
            interface: ip.interface,
            address: ip.address.to_string(),
            prefix: ip.prefix,
            mac: ip.mac,
        })
        .collect();
    GuestInfo {
        agent: true,
        os: report.os,
        kernel: report.kernel,
        hostname: report.hostname,
        addresses,
        updated_at: Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string()),
    }
}

/// `Debian GNU/Linux 12 (bookworm), 10.0.2.15` for the console note.
fn summary(info: &GuestInfo) -> String {
    let os = info.os.as_deref().unwrap_or("unknown OS");
    let ips: Vec<&str> = info
        .addresses
        .iter()
        .take(4)
        .map(|a| a.address.as_str())
        .collect();
    match ips.is_empty() {
        true => format!("{os}, no address yet"),
        false => format!("{os}, {}", ips.join(" ")),
    }
}
