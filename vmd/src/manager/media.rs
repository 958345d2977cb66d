//! The CD-ROM drive: `vm.attach_iso` / `vm.detach_iso`, on a stopped VM (stored only) or a
//! running one (QMP media change, then stored).
//!
//! # Live changes
//! vmd opens the ISO itself (read-only) and passes the descriptor to QEMU
//! ([`crate::qemu::Qmp::insert_medium`]): after `-runas` QEMU may be unable to open
//! anything under the state directory. (At boot QEMU opens the ISO by path, as the user that
//! spawned it, before dropping privileges.)
//!
//! # Locking and the store
//! Attach holds the VM's name lock, then the ISO's; `iso.remove` holds only the ISO's, and
//! no holder of an ISO lock ever waits for a VM lock, so the order vm → iso cannot form a
//! cycle. The attachment is recorded in the transaction that re-reads the ISO row, so a
//! vanished ISO is `not_found`, never a foreign-key failure. QEMU is changed first; when
//! recording then fails, the change is undone (the previously inserted ISO goes back in,
//! or the drive is emptied), so QEMU and the store agree again.
//!
//! Detach ejects first and records afterwards: recording first would let `iso.remove`
//! delete an ISO QEMU still holds. If recording fails after the eject, the drive is empty
//! while the store still names the ISO (which only blocks its removal); the error says so
//! and a retried detach completes it.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use vm_proto::types::{IsoAttach, Vm, VmState};

use super::runtime::Runtime;
use super::{Error, Manager};
use crate::auth::policy::Action;
use crate::auth::Subject;
use crate::qemu::argv::CDROM_ID;
use crate::storage::StorageError;
use crate::store::{self, IsoRow, VmRow};

impl Manager {
    /// `vm.attach_iso`.
    pub async fn attach_iso(&self, subject: &Subject, req: IsoAttach) -> Result<Vm, Error> {
        // Lock order vm → iso: see the module docs.
        let (_vm_guard, _) = self
            .lock_vm_for(subject, &req.vm, Action::Operate, "attach iso")
            .await?;
        let _iso_guard = self.lock("iso", &req.iso, "attach").await?;
        let vm = self.existing_vm(&req.vm).await?;
        let iso = self.iso_for(subject, &req.iso, Action::Use).await?;
        let live = self.live_runtime(&req.vm, vm.state)?;
        if live.is_none() {
            super::clones::check_not_pending(&vm, "get an ISO")?;
        }
        if let Some(rt) = &live {
            self.insert_live(rt, &req.vm, &iso.name, &iso.file_name)
                .await?;
        }
        if let Err(err) = self.record_attach(vm.id, &iso).await {
            if let Some(rt) = &live {
                self.undo_insert(rt, &vm).await;
            }
            return Err(err);
        }
        self.note(&req.vm, &format!("ISO {} inserted", req.iso));
        self.vm(&req.vm).await
    }

    /// `vm.detach_iso`.
    pub async fn detach_iso(&self, subject: &Subject, name: &str) -> Result<Vm, Error> {
        let (_guard, _) = self
            .lock_vm_for(subject, name, Action::Operate, "detach iso")
            .await?;
        let vm = self.existing_vm(name).await?;
        if let Some(rt) = self.live_runtime(name, vm.state)? {
            rt.qmp.eject(CDROM_ID).await.map_err(qmp_error(name))?;
        }
        let id = vm.id;
        let recorded = self
            .db(move |s| Ok(s.with_tx(|tx| store::set_iso(tx, id, None))?))
            .await;
        if let Err(err) = &recorded {
            tracing::warn!(vm = %name, error = %err, "ISO ejected but not recorded: the drive is empty, the store still names the ISO");
        }
        recorded?;
        self.note(name, "ISO ejected");
        self.vm(name).await
    }

    /// Records ISO `iso` in VM `vm_id`'s drive, in the transaction that checks the ISO row
    /// is still the one we inserted.
    async fn record_attach(&self, vm_id: i64, iso: &IsoRow) -> Result<(), Error> {
        let (iso_id, name) = (iso.id, iso.name.clone());
        self.db(move |s| {
            s.with_tx(|tx| match store::get_iso(tx, &name)? {
                Some(row) if row.id == iso_id => Ok(store::set_iso(tx, vm_id, Some(iso_id))?),
                _ => Err(Error::IsoNotFound(name)),
            })
        })
        .await
    }

    /// Opens ISO file `file_name` and inserts it into the running VM's drive.
    async fn insert_live(
        &self,
        rt: &Runtime,
        vm: &str,
        iso: &str,
        file_name: &str,
    ) -> Result<(), Error> {
        let medium = open_read_only(&self.storage.iso_path(file_name)).await?;
        rt.qmp
            .insert_medium(CDROM_ID, medium, &format!("vmd iso {iso}"))
            .await
            .map_err(qmp_error(vm))
    }

    /// Puts the drive back as the store has it (`vm` is the row read before the change).
    /// Best effort: a failure is logged, the caller's error is what the client sees.
    async fn undo_insert(&self, rt: &Runtime, vm: &VmRow) {
        let undone = match &vm.iso {
            Some((_, iso, file)) => self.insert_live(rt, &vm.name, iso, file).await,
            None => rt.qmp.eject(CDROM_ID).await.map_err(qmp_error(&vm.name)),
        };
        match undone {
            Ok(()) => tracing::info!(vm = %vm.name, "ISO change undone after a failed commit"),
            Err(err) => {
                tracing::warn!(vm = %vm.name, error = %err, "ISO change not undone: QEMU's drive differs from the store")
            }
        }
    }

    async fn existing_vm(&self, name: &str) -> Result<VmRow, Error> {
        self.find_vm(name)
            .await?
            .ok_or_else(|| Error::VmNotFound(name.into()))
    }

    /// The runtime when the VM has a process (`None` when stopped); an error mid-transition.
    fn live_runtime(&self, name: &str, state: VmState) -> Result<Option<Arc<Runtime>>, Error> {
        match state {
            VmState::Running | VmState::Paused => Ok(Some(
                self.runtime(name)
                    .ok_or_else(|| Error::NoProcess(name.into()))?,
            )),
            VmState::Stopped | VmState::Crashed => Ok(None),
            _ => Err(Error::WrongState {
                name: name.into(),
                state,
                action: "wait until it is running or stopped",
            }),
        }
    }
}

/// Opens `path` read-only on a blocking thread.
async fn open_read_only(path: &Path) -> Result<OwnedFd, Error> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|source| StorageError::Io {
            op: "open",
            path: path.display().to_string(),
            source,
        })?;
    Ok(file.into_std().await.into())
}

fn qmp_error(vm: &str) -> impl FnOnce(crate::qemu::QmpError) -> Error + '_ {
    move |source| Error::Qmp {
        name: vm.to_string(),
        source,
    }
}
