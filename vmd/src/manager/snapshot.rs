//! Taking a warm template from a running VM (`template.create`):
//! 1. pause the guest (recorded `paused` first, like `vm.pause`);
//! 2. QEMU saves its device state into the staging directory (migration with
//!    `x-ignore-shared`: the RAM, a shared memfd, stays out of the stream), and vmd copies the
//!    RAM from the memfd (`/proc/PID/fd`) into a sparse file;
//! 3. QEMU quits (the monitor records `stopped`);
//! 4. the VM's overlay moves into the template as its frozen disk layer, the staging directory
//!    becomes the template's, the VM gets a fresh overlay on that layer, and one transaction
//!    records the template and makes the VM its first clone (next start restores).
//!
//! A failure before 3 resumes the guest as it was and removes the staging directory; a failure
//! after it moves the overlay back, so the VM is stopped with its disk as it was.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use vm_proto::types::{TemplateCreate, Usage, VmState};

use super::runtime::Runtime;
use super::template_error::TemplateError;
use super::{now_secs, Error, Manager};
use crate::auth::Subject;
use crate::qemu::qmp::{MigrationEnd, Qmp};
use crate::storage::{self, templates as files};
use crate::store::{self, TemplateRow, VmRow};

/// How long QEMU may take to save a guest's device state.
const SAVE_LIMIT: Duration = Duration::from_secs(120);

impl Manager {
    /// Saves running `row` as template `req.name`; returns the VM row, now its first clone.
    pub(super) async fn snapshot(
        &self,
        subject: &Subject,
        req: &TemplateCreate,
        row: VmRow,
    ) -> Result<VmRow, Error> {
        check_templatable(&row)?;
        // Before the guest is touched (the recording transaction checks again).
        let (auth, owner, adding) = (self.config.auth.clone(), subject.user_id, ram_usage(&row));
        self.db(move |s| s.read(|c| Ok(super::quota::admit(c, &auth, owner, &adding)))?)
            .await?;
        let rt = self
            .runtime(&row.name)
            .ok_or_else(|| Error::NoProcess(row.name.clone()))?;
        let ram = find_ram(rt.pid, row.memory_mib).ok_or_else(|| no_shared_ram(&row))?;
        let staging = self.storage.new_template_dir(&req.name)?;
        if let Err(err) = files::note_source(&staging, &row.overlay_file) {
            discard(staging).await;
            return Err(err.into());
        }
        let was_running = row.state == VmState::Running;
        if let Err(reason) = self.save(&row, &rt, &ram, &staging, was_running).await {
            discard(staging).await;
            if was_running {
                self.resume_after_save(&row.name, &rt).await;
            }
            return Err(TemplateError::Save {
                vm: row.name.clone(),
                reason,
            }
            .into());
        }
        let template = template_row(subject, req, &row, &rt.qmp);
        self.note(
            &row.name,
            &format!("saved as template {}; stopping", req.name),
        );
        if let Err(err) = self.end_saved(&row.name, &rt).await {
            discard(staging).await;
            return Err(err);
        }
        self.freeze(&row, template, &staging).await?;
        let vm = self.find_vm(&row.name).await?;
        vm.ok_or_else(|| Error::VmNotFound(row.name.clone()))
    }

    /// Pauses the guest, saves its device state and copies its RAM into `staging`.
    async fn save(
        &self,
        row: &VmRow,
        rt: &Runtime,
        ram: &Path,
        staging: &Path,
        was_running: bool,
    ) -> Result<(), String> {
        if was_running {
            self.transition_from(&row.name, VmState::Running, VmState::Paused, "template")
                .await
                .map_err(|e| e.to_string())?;
            rt.qmp.stop().await.map_err(|e| format!("QMP stop: {e}"))?;
        }
        save_device_state(&rt.qmp, &staging.join(files::STATE)).await?;
        let (src, dst) = (ram.to_path_buf(), staging.join(files::RAM));
        let len = row.memory_mib * 1024 * 1024;
        tokio::task::spawn_blocking(move || files::copy_ram(&src, &dst, len))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| {
                format!(
                    "{e}: {}",
                    std::error::Error::source(&e).map_or(String::new(), |s| s.to_string())
                )
            })?;
        Ok(())
    }

    /// Lets a guest whose save failed run on (QEMU resumes after a completed or failed
    /// migration alike).
    async fn resume_after_save(&self, name: &str, rt: &Runtime) {
        match rt.qmp.cont().await {
            Ok(()) => {
                let _ = self
                    .transition_from(name, VmState::Paused, VmState::Running, "template")
                    .await;
            }
            Err(err) => {
                tracing::warn!(vm = %name, error = %err, "cannot resume after a failed save")
            }
        }
    }

    /// Ends the saved QEMU; the monitor records `stopped`.
    async fn end_saved(&self, name: &str, rt: &Runtime) -> Result<(), Error> {
        if self.begin_stop(name).await? {
            self.force_stop(name, rt).await?;
        }
        self.settle_if_gone(name).await?;
        Ok(())
    }

    /// Moves the VM's overlay into the template and makes the VM the template's first
    /// clone; undone (overlay back in place) if any step fails.
    async fn freeze(
        &self,
        row: &VmRow,
        mut template: TemplateRow,
        staging: &Path,
    ) -> Result<(), Error> {
        let overlay = self.storage.overlay_path(&row.overlay_file);
        let dir = self.storage.templates_dir().join(&template.dir);
        let mode = std::fs::metadata(&overlay)
            .map(|m| m.permissions().mode())
            .unwrap_or(0o640);
        let (from, staged, to) = (overlay.clone(), staging.to_path_buf(), dir.clone());
        let moved = tokio::task::spawn_blocking(move || move_disk(&from, &staged, &to)).await?;
        match moved {
            Ok(seal) => template.ram_seal = seal,
            Err(err) => {
                unfreeze(overlay, staging.to_path_buf(), mode).await;
                return Err(err);
            }
        }
        let result = self.first_clone(row, template, &dir, &overlay).await;
        if result.is_err() {
            unfreeze(overlay, dir, mode).await;
        }
        result
    }

    /// A fresh overlay on the template's disk for the source VM, and the rows, together.
    async fn first_clone(
        &self,
        row: &VmRow,
        template: TemplateRow,
        dir: &Path,
        overlay: &Path,
    ) -> Result<(), Error> {
        let tmp = self
            .overlay_on(&dir.join(files::DISK), &row.name, row.disk_bytes)
            .await?;
        let (vm_id, tmp2, overlay) = (row.id, tmp.clone(), overlay.to_path_buf());
        let (auth, adding) = (self.config.auth.clone(), ram_usage(row));
        let result = self
            .db(move |s| {
                s.with_tx(|tx| {
                    super::quota::admit(tx, &auth, template.owner.id, &adding)?;
                    let id = store::insert_template(tx, &template)?;
                    store::set_restore_pending(tx, vm_id, Some(id), true)?;
                    storage::rename(&tmp2, &overlay).map_err(Error::from)
                })
            })
            .await;
        if result.is_err() {
            storage::remove_quietly(&tmp);
        }
        result
    }
}

/// The row of a template of `row` as `subject` asks for it (its seal is filled in when the
/// files are in place).
fn template_row(subject: &Subject, req: &TemplateCreate, row: &VmRow, qmp: &Qmp) -> TemplateRow {
    TemplateRow {
        id: 0,
        name: req.name.clone(),
        owner: store::Owner {
            id: subject.user_id,
            name: subject.name.clone(),
            uid: None,
        },
        shared: req.shared,
        image_id: row.image_id,
        image_name: row.image_name.clone(),
        source_vm: row.name.clone(),
        cpus: row.cpus,
        memory_mib: row.memory_mib,
        disk_bytes: row.disk_bytes,
        firmware: row.firmware.clone(),
        user_net: row.user_net,
        seed: row.cloud_init.is_some(),
        accelerator: row
            .runtime
            .as_ref()
            .map_or_else(|| "tcg".to_string(), |r| r.accelerator.clone()),
        qemu_version: qemu_version(qmp),
        dir: format!("{}.{:x}", req.name, now_nanos()),
        ram_seal: String::new(),
        created_at: now_secs(),
    }
}

/// What a template of `row` adds to its owner's use: its RAM, on disk.
fn ram_usage(row: &VmRow) -> Usage {
    Usage {
        disk_bytes: row.memory_mib * 1024 * 1024,
        ..Usage::default()
    }
}

fn no_shared_ram(row: &VmRow) -> TemplateError {
    TemplateError::NotTemplatable {
        vm: row.name.clone(),
        why: "its QEMU was started without shareable RAM (by a vmd older than 2.7)".into(),
        hint: format!(
            "stop and start it (vmctl stop {0}; vmctl start {0}), then try again",
            row.name
        ),
    }
}

/// Why a VM cannot become a template, if it cannot.
fn check_templatable(row: &VmRow) -> Result<(), Error> {
    if !row.state.can_template() {
        return Err(Error::WrongState {
            name: row.name.clone(),
            state: row.state,
            action: "a template is taken from a running VM: start it and let it settle",
        });
    }
    check_devices(row).map_err(Error::from)
}

/// Whether the VM's devices can be reproduced by its clones.
fn check_devices(row: &VmRow) -> Result<(), TemplateError> {
    let refuse = |why: &str, hint: String| {
        Err(TemplateError::NotTemplatable {
            vm: row.name.clone(),
            why: why.into(),
            hint,
        })
    };
    let name = &row.name;
    if row.install {
        return refuse(
            "it is an install VM",
            "seal its image first (vmctl image seal)".into(),
        );
    }
    if row.template.is_some() {
        return refuse(
            "it is a clone of another template (templates of clones are not supported)",
            "create the template from a VM made from an image".into(),
        );
    }
    if row.iso.is_some() {
        return refuse(
            "it has an ISO inserted",
            format!("eject it first: vmctl iso detach {name}"),
        );
    }
    if !row.nics.is_empty() {
        return refuse(
            "it has NICs on lab networks (clones would share their MAC addresses)",
            "create the template from a VM without --net; clones may join networks after their first start".into(),
        );
    }
    Ok(())
}

/// QMP `stop`ped QEMU saves its devices' state into a new file `path`.
async fn save_device_state(qmp: &Qmp, path: &Path) -> Result<(), String> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    qmp.ignore_shared_ram()
        .await
        .map_err(|e| format!("QMP migrate-set-capabilities: {e}"))?;
    qmp.migrate_to(file.into())
        .await
        .map_err(|e| format!("QMP migrate: {e}"))?;
    match qmp.wait_migrated(SAVE_LIMIT).await {
        Ok(MigrationEnd::Completed) => Ok(()),
        Ok(MigrationEnd::Failed(why)) => Err(why),
        Err(e) => Err(format!("QMP query-migrate: {e}")),
    }
}

/// `/proc/PID/fd/N` of the QEMU's guest RAM: its memfd of `memory_mib`.
fn find_ram(pid: u32, memory_mib: u64) -> Option<PathBuf> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    fds.flatten().map(|e| e.path()).find(|path| {
        let is_memfd = std::fs::read_link(path).is_ok_and(|l| {
            l.to_string_lossy()
                .starts_with("/memfd:memory-backend-memfd")
        });
        is_memfd && std::fs::metadata(path).is_ok_and(|m| m.len() == memory_mib * 1024 * 1024)
    })
}

/// QEMU's version from its QMP greeting (`7.2.0 (Debian 1:7.2+dfsg-7)`).
fn qemu_version(qmp: &Qmp) -> String {
    let v = &qmp.greeting()["version"];
    let q = &v["qemu"];
    let package = v["package"].as_str().unwrap_or("").trim();
    let number = format!("{}.{}.{}", q["major"], q["minor"], q["micro"]);
    match package.is_empty() {
        true => number,
        false => format!("{number} ({package})"),
    }
}

/// The overlay into `staging` as the disk layer, the files sealed, `staging` renamed to
/// `dir`; returns the RAM file's seal.
fn move_disk(overlay: &Path, staging: &Path, dir: &Path) -> Result<String, Error> {
    storage::rename(overlay, &staging.join(files::DISK))?;
    files::seal(staging)?;
    let seal = files::ram_seal(&staging.join(files::RAM))?;
    storage::rename(staging, dir)?;
    Ok(seal)
}

/// Puts the disk layer in `dir` back as the VM's overlay with its former `mode`, and
/// removes `dir`.
async fn unfreeze(overlay: PathBuf, dir: PathBuf, mode: u32) {
    let _ = tokio::task::spawn_blocking(move || {
        let disk = dir.join(files::DISK);
        if disk.exists() {
            if let Err(err) = std::fs::rename(&disk, &overlay) {
                // Never delete what is the VM's only disk: start-up recovery retries.
                tracing::error!(path = %disk.display(), error = %err, "cannot give a vm its disk back");
                return;
            }
            let _ = std::fs::set_permissions(&overlay, std::fs::Permissions::from_mode(mode));
        }
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

/// Removes a template directory that will not be recorded (its RAM file may be large).
pub(super) async fn discard(dir: PathBuf) {
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(err) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(path = %dir.display(), error = %err, "cannot remove template files");
        }
    })
    .await;
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
