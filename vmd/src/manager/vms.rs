//! VM definition operations: create, list, get, remove, wipe.

use vm_proto::names::{format_size, validate_name};
use vm_proto::types::{
    validate_description, validate_labels, ExpiryAction, Firmware, LabelSelector, Usage, Vm,
    VmCreate, VmFilter, VmState, CPUS_MAX, DISK_BYTES_MAX, MEMORY_MIB_MIN, UEFI_MEMORY_MIB_MIN,
};

use vm_proto::types::EventKind;

use super::access::allow;
use super::events::Draft;
use super::images::remove_with_file;
use super::quota;
use super::{now_secs, rfc3339, Error, Manager};
use crate::auth::policy::{Action, Object};
use crate::auth::Subject;
use crate::storage;
use crate::store::{self, NewVm, VmRow};

/// Memory a VM gets when the request does not say.
const DEFAULT_MEMORY_MIB: u64 = 512;

impl Manager {
    /// `vm.create`: a fresh overlay on the base, and a row, or neither.
    pub async fn create_vm(&self, subject: &Subject, req: VmCreate) -> Result<Vm, Error> {
        validate_name("vm", &req.name).map_err(Error::Invalid)?;
        allow(
            subject,
            Action::Create,
            Object::Vm {
                owner: subject.user_id,
            },
            || Error::Forbidden("this account may not create VMs"),
        )?;
        if let Some(template) = req.template.clone() {
            return self.create_clone(subject, req, &template).await;
        }
        if req.image.is_empty() {
            return Err(Error::Invalid(
                "image: required (or template, for a clone)".into(),
            ));
        }
        let expiry = self.expiry_for(subject, &req)?;
        let description = check_description(req.description.as_deref())?;
        validate_labels(&req.labels).map_err(Error::Invalid)?;
        let cpus = req.cpus.unwrap_or(1);
        let memory_mib = req.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB);
        self.check_resources(cpus, memory_mib, Firmware::Bios)?;
        // A taken name is refused before its lock is touched (waiting on another user's
        // lock would tell what they are doing); checked again under the lock.
        if self.find_vm(&req.name).await?.is_some() {
            return Err(Error::VmExists(req.name));
        }
        let _guard = self.lock("vm", &req.name, "create").await?;
        self.check_space_floor("create a vm").await?;
        // Lock order vm → iso (see `media`): `iso.remove` cannot slip in before the new row
        // references the ISO.
        let _iso_guard = match &req.iso {
            Some(iso) => Some(self.lock("iso", iso, "create vm").await?),
            None => None,
        };
        // Lock order vm → iso → net: `net.remove` cannot slip in before the NICs exist.
        let _net_guards = self.lock_networks(&req.networks, "create vm").await?;
        if self.find_vm(&req.name).await?.is_some() {
            return Err(Error::VmExists(req.name));
        }
        let image = self.image_for(subject, &req.image, Action::Use).await?;
        if !image.sealed {
            return Err(Error::NotSealed(image.name));
        }
        let firmware = req
            .firmware
            .unwrap_or(Firmware::parse(&image.firmware).unwrap_or_default());
        self.check_resources(cpus, memory_mib, firmware)?;
        let links = self.plan_links(subject, &req).await?;
        let iso_id = match &req.iso {
            Some(iso) => Some(self.iso_for(subject, iso, Action::Use).await?.id),
            None => None,
        };
        let disk_bytes = check_disk(req.disk_bytes, &image.name, image.virtual_size_bytes)?;
        let cloud_init = self
            .plan_cloud_init(subject, &req.name, &image, req.cloud_init.clone())
            .await?;
        let base = self.storage.image_path(&image.file_name);
        let tmp = self.overlay_on(&base, &req.name, disk_bytes).await?;
        let row = NewVm {
            name: req.name.clone(),
            image_id: image.id,
            cpus,
            memory_mib,
            disk_bytes,
            state: VmState::Stopped,
            owner_id: subject.user_id,
            created_at: now_secs(),
            overlay_file: format!("{}.qcow2", req.name),
            user_net: !req.no_user_net,
            expires_at: expiry.deadline,
            on_expiry: expiry.action.map(|a| a.as_str().to_string()),
            session_id: expiry.session_id,
            iso_id,
            firmware: firmware.as_str().into(),
            install: false,
            description,
            labels: req.labels.clone(),
            template_id: None,
        };
        let timed = row.expires_at.is_some() || row.session_id.is_some();
        self.commit_vm(row, cloud_init, links, tmp, image.name.clone())
            .await?;
        tracing::info!(vm = %req.name, image = %image.name, user = %subject.name, "vm created");
        let msg = format!("created from image {}", image.name);
        self.created(&req.name, timed, msg).await
    }

    /// A hidden overlay for VM `vm` on `base`, to be renamed into place.
    pub(super) async fn overlay_on(
        &self,
        base: &std::path::Path,
        vm: &str,
        size_bytes: u64,
    ) -> Result<std::path::PathBuf, Error> {
        self.storage
            .new_overlay(base, vm, size_bytes)
            .await
            .map_err(|source| Error::Overlay {
                name: vm.to_string(),
                source,
            })
    }

    /// After a VM's row is committed: the expiry timer learns of it, the event, the view.
    pub(super) async fn created(&self, name: &str, timed: bool, msg: String) -> Result<Vm, Error> {
        if timed {
            self.expiry_changed();
        }
        self.events
            .emit(Draft::vm(EventKind::VmCreated, name, msg))
            .await?;
        self.vm(name).await
    }

    pub(super) fn check_resources(
        &self,
        cpus: u32,
        memory_mib: u64,
        firmware: Firmware,
    ) -> Result<(), Error> {
        if firmware == Firmware::Uefi && memory_mib < UEFI_MEMORY_MIB_MIN {
            return Err(Error::Invalid(format!(
                "UEFI firmware (OVMF) needs at least {UEFI_MEMORY_MIB_MIN} MiB of guest memory (got {memory_mib})"
            )));
        }
        if !(1..=CPUS_MAX).contains(&cpus) {
            return Err(Error::Invalid(format!(
                "cpus must be between 1 and {CPUS_MAX} (got {cpus})"
            )));
        }
        let max = self.config.host_memory_mib;
        if !(MEMORY_MIB_MIN..=max).contains(&memory_mib) {
            return Err(Error::Invalid(format!(
                "memory_mib must be between {MEMORY_MIB_MIN} and {max} (the host's memory) (got {memory_mib})"
            )));
        }
        Ok(())
    }

    pub(super) async fn commit_vm(
        &self,
        row: NewVm,
        cloud_init: Option<store::CloudInitRow>,
        links: super::nics::Links,
        tmp: std::path::PathBuf,
        image_name: String,
    ) -> Result<(), Error> {
        let final_path = self.storage.overlay_path(&row.overlay_file);
        let tmp2 = tmp.clone();
        let auth = self.config.auth.clone();
        let adding = Usage {
            vms: 1,
            disk_bytes: row.disk_bytes,
            ..Usage::default()
        };
        let result = self
            .db(move |s| {
                s.with_tx(|tx| {
                    check_image_usable(tx, row.image_id, &image_name)?;
                    quota::admit(tx, &auth, row.owner_id, &adding)?;
                    let id = store::insert_vm(tx, &row)?;
                    if let Some(ci) = &cloud_init {
                        store::set_cloud_init(tx, id, ci)?;
                    }
                    links.insert(tx, id)?;
                    storage::rename(&tmp2, &final_path).map_err(Error::from)
                })
            })
            .await;
        if result.is_err() {
            storage::remove_quietly(&tmp);
        }
        result
    }

    /// `vm.list`: the caller's VMs, or (admins) everyone's or one user's.
    pub async fn list_vms(&self, subject: &Subject, filter: VmFilter) -> Result<Vec<Vm>, Error> {
        let selectors = filter
            .labels
            .iter()
            .map(|s| LabelSelector::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::Invalid)?;
        let owner = self.list_owner(subject, filter).await?;
        let mut rows = self
            .db(move |s| Ok(s.read(|c| store::list_vms(c, owner))?))
            .await?;
        rows.retain(|r| selectors.iter().all(|s| s.matches(&r.labels)));
        // One stat per overlay: off the async threads when there are many.
        let me = self
            .me
            .upgrade()
            .ok_or_else(|| Error::Invalid("daemon is shutting down".into()))?;
        let vms: Vec<Vm> =
            tokio::task::spawn_blocking(move || rows.into_iter().map(|r| me.vm_view(r)).collect())
                .await?;
        Ok(vms
            .into_iter()
            .map(|vm| self.for_viewer(subject, vm))
            .collect())
    }

    /// `vm.get`.
    pub async fn get_vm(&self, subject: &Subject, name: &str) -> Result<Vm, Error> {
        let row = self.vm_for(subject, name, Action::Read).await?;
        Ok(self.for_viewer(subject, self.vm_view(row)))
    }

    /// Whose VMs a listing shows: `None` for everyone's.
    async fn list_owner(&self, subject: &Subject, filter: VmFilter) -> Result<Option<i64>, Error> {
        let wants_others = filter.all || filter.user.as_deref().is_some_and(|u| u != subject.name);
        if wants_others && !subject.is_admin() {
            return Err(Error::Forbidden("only admins list other users' VMs"));
        }
        match filter.user {
            Some(name) => Ok(Some(self.account(&name).await?.id)),
            None if filter.all => Ok(None),
            None => Ok(Some(subject.user_id)),
        }
    }

    /// The VM called `name`, whoever owns it (internal use: the caller was authorized).
    pub(super) async fn vm(&self, name: &str) -> Result<Vm, Error> {
        let row = self
            .find_vm(name)
            .await?
            .ok_or_else(|| Error::VmNotFound(name.into()))?;
        Ok(self.vm_view(row))
    }

    /// `vm.remove`: only without a QEMU process.
    pub async fn remove_vm(&self, subject: &Subject, name: &str) -> Result<(), Error> {
        let (_guard, _) = self
            .lock_vm_for(subject, name, Action::Modify, "remove")
            .await?;
        self.remove_locked(name).await
    }

    /// Removes VM `name`, whose lock the caller holds.
    pub(super) async fn remove_locked(&self, name: &str) -> Result<(), Error> {
        let row = self.stopped_vm(name, "stop it first (vmctl stop)").await?;
        let owner = row.owner.clone();
        let path = self.storage.overlay_path(&row.overlay_file);
        self.check_disk_free(name, &path).await?;
        let trash = self
            .storage
            .hidden_path(self.storage.overlays_dir(), "trash", name);
        let (id, trash2) = (row.id, trash.clone());
        self.db(move |s| remove_with_file(s, &path, &trash2, |tx| Ok(store::delete_vm(tx, id)?)))
            .await?;
        storage::remove_quietly(&trash);
        let _ = std::fs::remove_dir_all(self.logs_dir(name));
        tracing::info!(vm = %name, "vm removed");
        self.events
            .emit(Draft::vm(EventKind::VmRemoved, name, "removed").owned_by(&owner))
            .await?;
        Ok(())
    }

    /// Refuses to touch a disk that a QEMU holds open (one vmd may not know about).
    pub(super) async fn check_disk_free(
        &self,
        name: &str,
        disk: &std::path::Path,
    ) -> Result<(), Error> {
        let path = disk.to_path_buf();
        let held = tokio::task::spawn_blocking(move || storage::inuse::in_use(&path)).await?;
        match held {
            Ok(false) => Ok(()),
            Ok(true) => Err(Error::DiskInUse(name.into())),
            Err(source) => Err(Error::Storage(storage::StorageError::Io {
                op: "check locks on",
                path: disk.display().to_string(),
                source,
            })),
        }
    }

    /// The VM row when it has no QEMU process (disk and NIC changes happen only then).
    pub(super) async fn stopped_vm(
        &self,
        name: &str,
        action: &'static str,
    ) -> Result<VmRow, Error> {
        self.settle_if_gone(name).await?;
        let row = self
            .find_vm(name)
            .await?
            .ok_or_else(|| Error::VmNotFound(name.into()))?;
        if !row.state.can_modify_disk() {
            return Err(Error::WrongState {
                name: name.into(),
                state: row.state,
                action,
            });
        }
        Ok(row)
    }

    pub(super) async fn find_vm(&self, name: &str) -> Result<Option<VmRow>, Error> {
        let name = name.to_string();
        self.db(move |s| Ok(s.read(|c| store::get_vm(c, &name))?))
            .await
    }

    pub(super) fn vm_view(&self, row: VmRow) -> Vm {
        let path = self.storage.overlay_path(&row.overlay_file);
        let console = self
            .runtime(&row.name)
            .and_then(|rt| rt.console.client(None));
        let guest = self.runtime(&row.name).map(|rt| rt.guest.view());
        let (ssh_port, nics, ports) = (row.ssh_port(), self.nic_views(&row), row.ports.clone());
        Vm {
            state: row.state,
            image: row.image_name,
            cpus: row.cpus,
            memory_mib: row.memory_mib,
            disk_bytes: row.disk_bytes,
            disk_usage_bytes: storage::disk_usage(&path),
            owner: row.owner.name.clone(),
            owner_uid: row.owner.uid,
            expires_at: row.expiry.ends_at(now_secs()).map(rfc3339),
            on_expiry: row.expiry.action.as_deref().and_then(ExpiryAction::parse),
            session: row.expiry.session.is_some(),
            created_at: rfc3339(row.created_at),
            overlay_path: path.display().to_string(),
            name: row.name,
            ssh_port,
            user_net: row.user_net,
            nics,
            ports,
            accelerator: row.runtime.as_ref().map(|r| r.accelerator.clone()),
            pid: row.runtime.as_ref().map(|r| r.pid).filter(|p| *p != 0),
            started_at: row.runtime.as_ref().map(|r| rfc3339(r.started_at)),
            vnc_socket: row.runtime.as_ref().map(|r| format!("{}/vnc", r.run_dir)),
            reason: row.reason,
            iso: row.iso.as_ref().map(|(_, name, _)| name.clone()),
            firmware: Firmware::parse(&row.firmware).unwrap_or_default(),
            install: row.install,
            console,
            description: row.description,
            labels: row.labels,
            cloud_init: row
                .cloud_init
                .as_ref()
                .map(super::provision::cloud_init_info),
            guest,
            template: row.template.map(|t| t.name),
            restore_pending: row.restore_pending,
        }
    }

    /// `vm` with the console client's name filled in where `subject` may see it.
    fn for_viewer(&self, subject: &Subject, mut vm: Vm) -> Vm {
        if vm.console.is_some() {
            vm.console = self
                .runtime(&vm.name)
                .and_then(|rt| rt.console.client(Some(subject)));
        }
        vm
    }
}

/// Inside the creating transaction: the base still exists and is sealed (a concurrent
/// `image.remove` loses or wins as a whole, never with a foreign-key error).
fn check_image_usable(tx: &rusqlite::Connection, image_id: i64, name: &str) -> Result<(), Error> {
    match store::get_image_by_id(tx, image_id)? {
        Some(image) if image.sealed => Ok(()),
        Some(image) => Err(Error::NotSealed(image.name)),
        None => Err(Error::ImageNotFound(name.into())),
    }
}

/// A description as stored: checked, and `None` for none or an empty one.
pub(super) fn check_description(text: Option<&str>) -> Result<Option<String>, Error> {
    let Some(text) = text else { return Ok(None) };
    validate_description(text).map_err(Error::Invalid)?;
    Ok((!text.is_empty()).then(|| text.to_string()))
}

/// The disk size for a new VM: default the base's size; never smaller; bounded.
pub(super) fn check_disk(
    requested: Option<u64>,
    image: &str,
    base_bytes: u64,
) -> Result<u64, Error> {
    let bytes = requested.unwrap_or(base_bytes);
    if bytes < base_bytes {
        return Err(Error::Invalid(format!(
            "disk size {} is smaller than image {image}'s virtual size {}; a VM disk can grow its base, not shrink it",
            format_size(bytes),
            format_size(base_bytes)
        )));
    }
    if bytes > DISK_BYTES_MAX {
        return Err(Error::Invalid(format!(
            "disk size {} exceeds the limit of {}",
            format_size(bytes),
            format_size(DISK_BYTES_MAX)
        )));
    }
    if !bytes.is_multiple_of(512) {
        return Err(Error::Invalid(format!(
            "disk size {bytes} bytes is not a multiple of 512"
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_defaults_to_base_and_never_shrinks() {
        assert_eq!(check_disk(None, "b", 1 << 30).ok(), Some(1 << 30));
        assert_eq!(check_disk(Some(2 << 30), "b", 1 << 30).ok(), Some(2 << 30));
        let err = check_disk(Some(1 << 20), "b", 1 << 30)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("smaller than image b"), "{err}");
        assert!(check_disk(Some(u64::MAX - 511), "b", 1).is_err());
        assert!(check_disk(Some((1 << 30) + 1), "b", 1 << 30).is_err());
    }
}
