//! `vm.set`: changing a VM after creation. vCPUs, memory and disk size change only while the
//! VM has no process ([`VmState::can_reconfigure`]); its description any time.
//!
//! All or nothing: the whole request is checked first (the bounds of `vm.create`, the state,
//! a disk that only grows, the owner's disk quota), then the disk is grown (`qemu-img
//! resize`), then the row is written in one transaction that checks the quota again. If that
//! write fails after a grow, the grow is undone with `qemu-img resize --shrink` back to the
//! old size, which loses nothing: no QEMU can have had the disk while the VM's lock is held.
//! Should the undo fail too, the error says the disk is larger than recorded, and so does
//! the log; repeating the request records the size.
//!
//! vCPUs and memory count against quotas only while a VM has a process, so, as for
//! `vm.create`, they are checked against the owner's limits at `vm.start`; here only the
//! host's bounds apply. A larger disk is admitted against `max_disk_bytes` like a new VM.

use std::path::Path;

use vm_proto::names::format_size;
use vm_proto::types::{
    validate_label_key, validate_labels, EventKind, Firmware, Labels, Usage, Vm, VmSet, VmState,
};

use super::events::Draft;
use super::quota;
use super::vms::{check_description, check_disk};
use super::{Error, Manager};
use crate::auth::policy::Action;
use crate::auth::Subject;
use crate::store::{self, Settings, VmRow};

/// Bytes in a MiB, to show memory with [`format_size`].
const MIB: u64 = 1 << 20;

/// A checked `vm.set`: the settings the VM will have and what differs from now.
#[derive(Debug)]
struct Plan {
    settings: Settings,
    /// The disk size now, when the disk grows.
    grow_from: Option<u64>,
    /// What changes, e.g. `cpus 1 → 2`, for the event and the log.
    changes: Vec<String>,
}

impl Plan {
    /// What the change adds to the owner's use.
    fn adding(&self) -> Usage {
        let grown = self
            .grow_from
            .map_or(0, |old| self.settings.disk_bytes - old);
        Usage {
            disk_bytes: grown,
            ..Usage::default()
        }
    }
}

impl Manager {
    /// `vm.set`: changes what the request names, all or nothing; returns the VM afterwards.
    pub async fn set_vm(&self, subject: &Subject, req: VmSet) -> Result<Vm, Error> {
        if req.is_empty() {
            return Err(Error::Invalid(
                "nothing to change: give cpus, memory_mib, disk_bytes or description".into(),
            ));
        }
        let description = check_description(req.description.as_deref())?;
        let (_guard, row) = self
            .lock_vm_for(subject, &req.name, Action::Modify, "set")
            .await?;
        let row = self.reconfigurable(row, &req).await?;
        let plan = self.plan(&row, &req, description)?;
        if plan.changes.is_empty() {
            return self.vm(&req.name).await;
        }
        self.precheck_quota(&row, &plan).await?;
        self.apply(&row, &plan).await?;
        let changes = plan.changes.join(", ");
        tracing::info!(vm = %req.name, by = %subject.name, %changes, "vm settings changed");
        self.events
            .emit(Draft::vm(EventKind::VmChanged, &req.name, changes))
            .await?;
        self.vm(&req.name).await
    }

    /// `row`, read again after settling a vanished process, if `req` may change it now:
    /// hardware only without a process, and its disk not held by a QEMU vmd does not know.
    async fn reconfigurable(&self, row: VmRow, req: &VmSet) -> Result<VmRow, Error> {
        if !req.changes_hardware() {
            return Ok(row);
        }
        self.settle_if_gone(&row.name).await?;
        let row = self
            .find_vm(&row.name)
            .await?
            .ok_or_else(|| Error::VmNotFound(row.name.clone()))?;
        if !row.state.can_reconfigure() {
            return Err(wrong_state(&row.name, row.state));
        }
        super::clones::check_not_pending(&row, "change its hardware")?;
        if req.disk_bytes.is_some_and(|b| b > row.disk_bytes) {
            let path = self.storage.overlay_path(&row.overlay_file);
            self.check_disk_free(&row.name, &path).await?;
        }
        Ok(row)
    }

    /// The settings `req` gives `row`, checked as `vm.create` checks them.
    fn plan(&self, row: &VmRow, req: &VmSet, description: Option<String>) -> Result<Plan, Error> {
        let cpus = req.cpus.unwrap_or(row.cpus);
        let memory_mib = req.memory_mib.unwrap_or(row.memory_mib);
        if req.cpus.is_some() || req.memory_mib.is_some() {
            let firmware = Firmware::parse(&row.firmware).unwrap_or_default();
            self.check_resources(cpus, memory_mib, firmware)?;
        }
        let disk_bytes = match req.disk_bytes {
            Some(bytes) => check_grow(row, bytes)?,
            None => row.disk_bytes,
        };
        let description = match &req.description {
            Some(_) => description,
            None => row.description.clone(),
        };
        let settings = Settings {
            cpus,
            memory_mib,
            disk_bytes,
            description,
            labels: merged_labels(row, req)?,
        };
        Ok(Plan {
            changes: changes(row, &settings),
            grow_from: (disk_bytes > row.disk_bytes).then_some(row.disk_bytes),
            settings,
        })
    }

    /// Refuses a grow over the owner's disk quota before the disk is touched (checked again
    /// when the row is written).
    async fn precheck_quota(&self, row: &VmRow, plan: &Plan) -> Result<(), Error> {
        let (auth, owner, adding) = (self.config.auth.clone(), row.owner.id, plan.adding());
        self.db(move |s| s.read(|c| Ok(quota::admit(c, &auth, owner, &adding)))?)
            .await
    }

    /// Grows the disk if the plan says so, then writes the row; undoes the grow if the write
    /// fails.
    async fn apply(&self, row: &VmRow, plan: &Plan) -> Result<(), Error> {
        let path = self.storage.overlay_path(&row.overlay_file);
        if plan.grow_from.is_some() {
            let size = plan.settings.disk_bytes;
            self.storage
                .grow_disk(&path, size)
                .await
                .map_err(|source| Error::Resize {
                    name: row.name.clone(),
                    source,
                })?;
        }
        let written = self.write_settings(row, plan).await;
        match (written, plan.grow_from) {
            (Err(err), Some(old)) => Err(self.undo_grow(&row.name, &path, old, err).await),
            (result, _) => result,
        }
    }

    /// Writes the new settings in one transaction that admits the grow against the quota.
    async fn write_settings(&self, row: &VmRow, plan: &Plan) -> Result<(), Error> {
        let (id, owner, adding) = (row.id, row.owner.id, plan.adding());
        let (auth, settings) = (self.config.auth.clone(), plan.settings.clone());
        self.db(move |s| {
            s.with_tx(|tx| {
                quota::admit(tx, &auth, owner, &adding)?;
                Ok(store::set_settings(tx, id, &settings)?)
            })
        })
        .await
    }

    /// Shrinks the disk at `path` back to `old` bytes after the row write failed with `err`;
    /// the error to return.
    async fn undo_grow(&self, name: &str, path: &Path, old: u64, err: Error) -> Error {
        match self.storage.shrink_back(path, old).await {
            Ok(()) => {
                tracing::warn!(vm = %name, error = %err, "vm settings not recorded; disk grow undone");
                err
            }
            Err(undo) => {
                tracing::warn!(vm = %name, error = %err, undo_error = %undo,
                    "vm disk grown but not recorded, and the grow could not be undone");
                Error::GrownNotRecorded {
                    name: name.into(),
                    source: Box::new(err),
                }
            }
        }
    }
}

/// The refusal of a hardware change while a process exists.
fn wrong_state(name: &str, state: VmState) -> Error {
    Error::WrongState {
        name: name.into(),
        state,
        action: "stop it first (vmctl stop) to change cpus, memory or disk",
    }
}

/// The new disk size: never smaller than now, within the bounds of `vm.create`.
fn check_grow(row: &VmRow, bytes: u64) -> Result<u64, Error> {
    if bytes < row.disk_bytes {
        return Err(Error::DiskShrink {
            name: row.name.clone(),
            size: row.disk_bytes,
            requested: bytes,
        });
    }
    check_disk(Some(bytes), &row.image_name, row.disk_bytes)
}

/// What differs between `row` and `new`, one phrase each.
fn changes(row: &VmRow, new: &Settings) -> Vec<String> {
    let mib = |m: u64| format_size(m.saturating_mul(MIB));
    let mut out = Vec::new();
    if new.cpus != row.cpus {
        out.push(format!("cpus {} → {}", row.cpus, new.cpus));
    }
    if new.memory_mib != row.memory_mib {
        out.push(format!(
            "memory {} → {}",
            mib(row.memory_mib),
            mib(new.memory_mib)
        ));
    }
    if new.disk_bytes != row.disk_bytes {
        let (old, size) = (format_size(row.disk_bytes), format_size(new.disk_bytes));
        out.push(format!("disk {old} → {size}"));
    }
    if new.description != row.description {
        let what = match new.description {
            Some(_) => "description set",
            None => "description cleared",
        };
        out.push(what.into());
    }
    if new.labels != row.labels {
        out.push(label_changes(&row.labels, &new.labels));
    }
    out
}

/// The VM's labels after `req`: removals, then additions; the result checked.
fn merged_labels(row: &VmRow, req: &VmSet) -> Result<Labels, Error> {
    let mut labels = row.labels.clone();
    for key in &req.remove_labels {
        validate_label_key(key).map_err(Error::Invalid)?;
        labels.remove(key);
    }
    labels.extend(req.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    validate_labels(&labels).map_err(Error::Invalid)?;
    Ok(labels)
}

/// `labels course=net101, -team` for the event.
fn label_changes(old: &Labels, new: &Labels) -> String {
    let set = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}={v}"));
    let removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .map(|k| format!("-{k}"));
    format!(
        "labels {}",
        set.chain(removed).collect::<Vec<_>>().join(", ")
    )
}

#[cfg(test)]
mod tests {
    use vm_proto::ErrorCode;

    use super::*;
    use crate::store::{Expiry, Owner};

    fn row() -> VmRow {
        VmRow {
            id: 1,
            name: "web1".into(),
            image_id: 1,
            image_name: "base".into(),
            image_file: "base.qcow2".into(),
            cpus: 1,
            memory_mib: 512,
            disk_bytes: 1 << 30,
            state: VmState::Stopped,
            owner: Owner {
                id: 2,
                name: "ann".into(),
                uid: None,
            },
            created_at: 0,
            overlay_file: "web1.qcow2".into(),
            user_net: true,
            expiry: Expiry::default(),
            reason: None,
            runtime: None,
            iso: None,
            firmware: "bios".into(),
            install: false,
            description: Some("old".into()),
            labels: [("course".to_string(), "net101".to_string())].into(),
            cloud_init: None,
            nics: Vec::new(),
            ports: Vec::new(),
            template: None,
            restore_pending: false,
        }
    }

    fn settings(cpus: u32, memory_mib: u64, disk_bytes: u64, text: Option<&str>) -> Settings {
        Settings {
            cpus,
            memory_mib,
            disk_bytes,
            description: text.map(String::from),
            labels: row().labels,
        }
    }

    #[test]
    fn disks_only_grow_within_the_bounds_of_create() {
        let row = row();
        assert_eq!(check_grow(&row, 2 << 30).ok(), Some(2 << 30));
        assert_eq!(check_grow(&row, 1 << 30).ok(), Some(1 << 30), "same size");
        let err = check_grow(&row, 1 << 29).expect_err("shrink");
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
        assert_eq!(
            err.to_string(),
            "vm web1's disk is 1 GiB; it cannot shrink to 512 MiB"
        );
        assert!(err.hint().is_some_and(|h| h.contains("can only grow")));
        assert!(
            check_grow(&row, (1 << 30) + 1).is_err(),
            "not a multiple of 512"
        );
        assert!(check_grow(&row, u64::MAX - 511).is_err(), "over 64 TiB");
    }

    #[test]
    fn changes_name_what_differs_and_nothing_else() {
        let row = row();
        assert!(changes(&row, &settings(1, 512, 1 << 30, Some("old"))).is_empty());
        let all = settings(4, 4096, 2 << 30, Some("new"));
        assert_eq!(
            changes(&row, &all),
            [
                "cpus 1 → 4",
                "memory 512 MiB → 4 GiB",
                "disk 1 GiB → 2 GiB",
                "description set"
            ]
        );
        let cleared = settings(1, 512, 1 << 30, None);
        assert_eq!(changes(&row, &cleared), ["description cleared"]);
    }

    #[test]
    fn labels_merge_removals_first_and_stay_valid() {
        let row = row();
        let req = VmSet {
            name: "web1".into(),
            labels: [("team".to_string(), "red".to_string())].into(),
            remove_labels: vec!["course".into(), "absent".into()],
            ..VmSet::default()
        };
        let merged = merged_labels(&row, &req).expect("valid");
        assert_eq!(merged, [("team".to_string(), "red".to_string())].into());
        assert_eq!(
            label_changes(&row.labels, &merged),
            "labels team=red, -course"
        );
        let bad = VmSet {
            labels: [("Bad Key".to_string(), String::new())].into(),
            ..req
        };
        assert!(merged_labels(&row, &bad).is_err());
    }

    #[test]
    fn only_a_grow_adds_to_the_disk_quota() {
        let grow = Plan {
            settings: settings(1, 512, 3 << 30, None),
            grow_from: Some(1 << 30),
            changes: Vec::new(),
        };
        assert_eq!(grow.adding().disk_bytes, 2 << 30);
        assert_eq!((grow.adding().vcpus, grow.adding().memory_mib), (0, 0));
        let cpus_only = Plan {
            grow_from: None,
            ..grow
        };
        assert_eq!(cpus_only.adding(), Usage::default());
    }
}
