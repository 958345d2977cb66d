//! The first start of a warm template's clone: QEMU maps the template's RAM privately from a
//! sealed memfd that vmd fills from the template's RAM file once per template and run of vmd
//! (`-incoming defer`; nothing can write the memfd any more, so no clone can change what
//! another maps), loads the saved device state from the template's `state` file (vmd opens
//! it and passes the descriptor), and stays paused; vmd records that the clone has left the
//! template moment, then lets it run. Any failure leaves QEMU's words to the caller, which
//! ends the process: a clone is never half-started, and its next start tries again.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::template_error::TemplateError;
use super::{Error, Manager};
use crate::qemu::argv::GuestRam;
use crate::qemu::qmp::{Qmp, QmpError, RunState};
use crate::storage::templates as files;
use crate::store::{self, VmRow};

/// How long loading a template's device state may take.
const RESTORE_LIMIT: Duration = Duration::from_secs(60);

impl Manager {
    /// Where the next QEMU of `row` gets its RAM: for a clone whose start restores, the
    /// template's sealed memfd (prepared by [`Manager::check_template_ram`]) through
    /// `/proc/<vmd>/fd/N`, which QEMU opens before it drops privileges; else a fresh memfd.
    pub(super) fn guest_ram(&self, row: &VmRow) -> GuestRam {
        match &row.template {
            Some(t) if row.restore_pending => {
                let sealed = self.sealed_fds().get(&t.id).map(|fd| fd.as_raw_fd());
                GuestRam::Restore(match sealed {
                    Some(fd) => PathBuf::from(format!("/proc/{}/fd/{fd}", std::process::id())),
                    None => self.storage.template_file(&t.dir, files::RAM),
                })
            }
            _ => GuestRam::Memfd,
        }
    }

    fn sealed_fds(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<OwnedFd>>> {
        self.template_ram.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the sealed RAM of a removed template (running clones keep their mappings).
    pub(super) fn forget_template_ram(&self, template_id: i64) {
        self.sealed_fds().remove(&template_id);
    }

    /// Loads the template's state into the waiting QEMU of `row` and lets the guest run.
    pub(super) async fn restore(&self, row: &VmRow, qmp: Qmp) -> Result<Qmp, String> {
        let template = row.template.as_ref().ok_or("not a clone")?;
        let path = self.storage.template_file(&template.dir, files::STATE);
        let file = std::fs::File::open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        qmp.ignore_shared_ram()
            .await
            .map_err(|e| format!("QMP migrate-set-capabilities: {e}"))?;
        qmp.migrate_from(file.into())
            .await
            .map_err(|e| format!("QMP migrate-incoming: {e}"))?;
        match qmp.wait_restored(RESTORE_LIMIT).await {
            Ok(RunState::Paused) => {}
            Ok(other) => return Err(format!("QEMU run state {} after loading", other.as_str())),
            Err(e) => return Err(format!("QEMU ended while loading the saved state ({e})")),
        }
        let (id, template_id) = (row.id, template.id);
        self.db(move |s| {
            Ok(s.with_tx_retry(|tx| store::set_restore_pending(tx, id, Some(template_id), false))?)
        })
        .await
        .map_err(|e| e.to_string())?;
        self.note(&row.name, &format!("restored template {}", template.name));
        if let Err(why) = self.attach_taps(row).await {
            self.keep_pending(id, template_id).await;
            return Err(why);
        }
        match qmp.cont().await {
            Ok(()) => Ok(qmp),
            Err(err) => {
                // Only a refusal proves the guest never ran; after a time-out it may have
                // (its disk is then the clone's own, and restoring over it would corrupt it).
                if matches!(err, QmpError::Command { .. }) {
                    self.keep_pending(id, template_id).await;
                }
                Err(format!("QMP cont failed: {err}"))
            }
        }
    }

    /// The guest never ran: its next start restores again.
    async fn keep_pending(&self, id: i64, template_id: i64) {
        let _ = self
            .db(move |s| {
                Ok(s.with_tx_retry(|tx| {
                    store::set_restore_pending(tx, id, Some(template_id), true)
                })?)
            })
            .await;
    }

    /// Makes sure the template's RAM is in a sealed memfd, checking first that the RAM file
    /// is the one saved (its seal: size and modification time) and refusing it otherwise.
    pub(super) async fn check_template_ram(&self, row: &VmRow) -> Result<(), Error> {
        let Some(t) = row.template.as_ref().filter(|_| row.restore_pending) else {
            return Ok(());
        };
        // Checked at every restore, although a cached memfd cannot have changed: a changed
        // file means something wrote it, which the admin must hear of.
        let path = self.storage.template_file(&t.dir, files::RAM);
        let file = path.clone();
        match tokio::task::spawn_blocking(move || files::ram_seal(&file)).await? {
            Ok(seal) if seal == t.ram_seal => {}
            Ok(_) => {
                let why = "the template's RAM file changed since it was saved";
                return Err(self.restore_failed(row, why.into()));
            }
            Err(err) => return Err(self.restore_failed(row, err.to_string())),
        }
        if self.sealed_fds().contains_key(&t.id) {
            return Ok(());
        }
        let (len, name) = (
            row.memory_mib * 1024 * 1024,
            format!("vmd-template-{}", t.name),
        );
        let sealed = tokio::task::spawn_blocking(move || files::sealed_ram(&path, len, &name))
            .await?
            .map_err(|err| self.restore_failed(row, err.to_string()))?;
        self.sealed_fds().insert(t.id, Arc::new(sealed));
        Ok(())
    }

    /// The error of a clone's start whose restore failed.
    pub(super) fn restore_failed(&self, row: &VmRow, reason: String) -> Error {
        TemplateError::Restore {
            vm: row.name.clone(),
            template: row
                .template
                .as_ref()
                .map_or_else(String::new, |t| t.name.clone()),
            reason,
        }
        .into()
    }
}
