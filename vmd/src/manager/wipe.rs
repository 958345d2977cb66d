//! `vm.wipe`: a fresh disk replaces the VM's, atomically. For a clone of a warm template the
//! fresh overlay sits on the template's disk layer and, in the same transaction, its next
//! start is marked to restore the template's moment; a clone whose hardware no longer
//! matches its template's is refused (that restore could not succeed).

use vm_proto::types::{EventKind, Vm};

use super::events::Draft;
use super::template_error::TemplateError;
use super::{Error, Manager};
use crate::auth::policy::Action;
use crate::auth::Subject;
use crate::storage;
use crate::store::{self, DiskFull as _, TemplateRow, VmRow};

impl Manager {
    /// `vm.wipe`: a fresh overlay on the same base replaces the old one atomically.
    pub async fn wipe_vm(&self, subject: &Subject, name: &str) -> Result<Vm, Error> {
        let (_guard, _) = self
            .lock_vm_for(subject, name, Action::Modify, "wipe")
            .await?;
        self.wipe_locked(name).await
    }

    /// Wipes VM `name`, whose lock the caller holds.
    pub(super) async fn wipe_locked(&self, name: &str) -> Result<Vm, Error> {
        let row = self.stopped_vm(name, "stop it first (vmctl stop)").await?;
        if let Some(t) = &row.template {
            let template = self.find_template(&t.name).await?;
            check_clone_wipe(&row, template.as_ref())?;
        }
        let final_path = self.storage.overlay_path(&row.overlay_file);
        self.check_disk_free(name, &final_path).await?;
        let tmp = match self.fresh_disk(&row).await {
            Err(err)
                if err.is_disk_full()
                    && self.reserve.release("wipe needs room for a fresh overlay") =>
            {
                self.fresh_disk(&row).await?
            }
            other => other?,
        };
        // A new instance-id first: if the swap then fails, the guest merely provisions again.
        if let Err(err) = self.renew_instance_id(&row).await {
            storage::remove_quietly(&tmp);
            return Err(err);
        }
        if let Err(err) = self.swap_overlay(&row, &tmp, &final_path).await {
            storage::remove_quietly(&tmp);
            return Err(err);
        }
        tracing::info!(vm = %name, "vm wiped");
        self.note(name, "disk wiped: fresh overlay on the base");
        self.events
            .emit(Draft::vm(
                EventKind::VmWiped,
                name,
                "disk reset to its base",
            ))
            .await?;
        let row = self.find_vm(name).await?.unwrap_or(row);
        Ok(self.vm_view(row))
    }

    /// A fresh hidden disk for `row`: an overlay on its base, or a blank disk for an install
    /// VM.
    async fn fresh_disk(&self, row: &VmRow) -> Result<std::path::PathBuf, Error> {
        let base = match &row.template {
            Some(t) => self.storage.template_file(&t.dir, storage::templates::DISK),
            None => self.storage.image_path(&row.image_file),
        };
        let fresh = match row.install {
            true => self.storage.new_blank(&row.name, row.disk_bytes).await,
            false => {
                self.storage
                    .new_overlay(&base, &row.name, row.disk_bytes)
                    .await
            }
        };
        fresh.map_err(|source| Error::Overlay {
            name: row.name.clone(),
            source,
        })
    }

    /// Puts `tmp` in place as `row`'s disk; for a clone, together with marking its next
    /// start to restore (a restore is only ever pending on an untouched overlay).
    async fn swap_overlay(
        &self,
        row: &VmRow,
        tmp: &std::path::Path,
        final_path: &std::path::Path,
    ) -> Result<(), Error> {
        let Some(template) = &row.template else {
            return storage::rename(tmp, final_path).map_err(Error::from);
        };
        let (id, template_id) = (row.id, template.id);
        let (tmp, final_path) = (tmp.to_path_buf(), final_path.to_path_buf());
        self.db(move |s| {
            s.with_tx(|tx| {
                store::set_restore_pending(tx, id, Some(template_id), true)?;
                storage::rename(&tmp, &final_path).map_err(Error::from)
            })
        })
        .await
    }
}

/// A clone is wiped back to its template's moment only with the template's hardware.
fn check_clone_wipe(row: &VmRow, template: Option<&TemplateRow>) -> Result<(), Error> {
    let Some(t) = template else {
        return Ok(());
    };
    let name = &row.name;
    let differs = if row.cpus != t.cpus {
        format!(
            "{} vCPUs, template {} {}: set them back first (vmctl set {name} --cpus {})",
            row.cpus, t.name, t.cpus, t.cpus
        )
    } else if row.memory_mib != t.memory_mib {
        format!("{} MiB of memory, template {} {} MiB: set it back first (vmctl set {name} --memory {}M)", row.memory_mib, t.name, t.memory_mib, t.memory_mib)
    } else if row.disk_bytes != t.disk_bytes {
        format!("a grown disk, which cannot shrink back to template {}'s: remove it and create a new clone", t.name)
    } else if !row.nics.is_empty() {
        "NICs on lab networks: remove them first (vmctl nic rm)".to_string()
    } else if row.iso.is_some() {
        "an ISO inserted: eject it first (vmctl iso detach)".to_string()
    } else {
        return Ok(());
    };
    Err(TemplateError::Fixed(format!(
        "vm {name} has {differs}; a wipe returns a clone to its template's saved moment, whose devices must match"
    ))
    .into())
}
