//! Bases made by installing from an ISO, and bases published from VMs.
//!
//! `image.create` makes an unsealed image row, a blank standalone disk and an install VM of the
//! same name that boots the ISO first with that disk attached writable. `image.seal` (install
//! VM stopped) removes the install VM and moves its disk into `images/` as the read-only base.
//! `image.publish` flattens a stopped VM's overlay and base into a new sealed base; with
//! `generalize` the copy's machine identity is reset offline (see [`storage::generalize`]).

use vm_proto::names::validate_name;
use vm_proto::types::{
    EventKind, Firmware, Image, ImageCreate, ImagePublish, OsFamily, Usage, VmState,
};

use super::access::allow;
use super::events::Draft;
use super::image_set::new_image_info;
use super::{now_secs, Error, Manager};
use crate::auth::policy::{Action, Object};
use crate::auth::Subject;
use crate::storage;
use crate::store::{self, NewImage, NewVm};

impl Manager {
    /// `image.create`.
    pub async fn create_image(&self, subject: &Subject, req: ImageCreate) -> Result<Image, Error> {
        validate_name("image", &req.name).map_err(Error::Invalid)?;
        self.host_allows(subject, Action::Administer)?;
        let (os, description) = new_image_info(req.os, req.description.clone(), || {
            match OsFamily::guess(&req.name) {
                OsFamily::Other => OsFamily::guess(&req.iso),
                known => known,
            }
        })?;
        let firmware = req.firmware.unwrap_or_default();
        let (cpus, memory_mib) = (req.cpus.unwrap_or(1), req.memory_mib.unwrap_or(512));
        self.check_resources(cpus, memory_mib, firmware)?;
        self.check_space_floor("create an image").await?;
        if req.size_bytes < 1 << 20 {
            return Err(Error::Invalid(format!(
                "size_bytes must be at least 1 MiB (got {})",
                req.size_bytes
            )));
        }
        let size = super::vms::check_disk(Some(req.size_bytes), &req.name, 1 << 20)?;
        let _image_guard = self.lock("image", &req.name, "create").await?;
        let _vm_guard = self.lock("vm", &req.name, "create").await?;
        // Order image → vm → iso (see `media`): `iso.remove` waits until the install VM's
        // row references the ISO.
        let _iso_guard = self.lock("iso", &req.iso, "create image").await?;
        if self.find_image(&req.name).await?.is_some() {
            return Err(Error::ImageExists(req.name));
        }
        if self.find_vm(&req.name).await?.is_some() {
            return Err(Error::VmExists(req.name));
        }
        let iso = self
            .find_iso(&req.iso)
            .await?
            .ok_or_else(|| Error::IsoNotFound(req.iso.clone()))?;
        let tmp = self
            .storage
            .new_blank(&req.name, size)
            .await
            .map_err(|source| Error::Overlay {
                name: req.name.clone(),
                source,
            })?;
        let file = format!("{}.qcow2", req.name);
        let image = NewImage {
            id: 0,
            name: req.name.clone(),
            file_name: file.clone(),
            source_format: "install".into(),
            virtual_size_bytes: size,
            sha256: String::new(),
            owner: subject.owner(),
            public: true,
            created_at: now_secs(),
            sealed: false,
            firmware: firmware.as_str().into(),
            os,
            description,
            cloud_init: req.cloud_init.unwrap_or(false),
        };
        let vm = NewVm {
            name: req.name.clone(),
            image_id: 0,
            cpus,
            memory_mib,
            disk_bytes: size,
            state: VmState::Stopped,
            owner_id: subject.user_id,
            expires_at: None,
            on_expiry: None,
            session_id: None,
            created_at: image.created_at,
            overlay_file: file,
            user_net: true,
            iso_id: Some(iso.id),
            firmware: firmware.as_str().into(),
            install: true,
            description: None,
            labels: Default::default(),
            template_id: None,
        };
        let final_path = self.storage.overlay_path(&vm.overlay_file);
        let tmp2 = tmp.clone();
        let auth = self.config.auth.clone();
        let adding = Usage {
            vms: 1,
            disk_bytes: size,
            ..Usage::default()
        };
        let result = self
            .db(move |s| {
                s.with_tx(|tx| {
                    super::quota::admit(tx, &auth, vm.owner_id, &adding)?;
                    let image_id = store::insert_image(tx, &image)?;
                    store::insert_vm(tx, &NewVm { image_id, ..vm })?;
                    storage::rename(&tmp2, &final_path).map_err(Error::from)
                })
            })
            .await;
        if result.is_err() {
            storage::remove_quietly(&tmp);
        }
        result?;
        tracing::info!(image = %req.name, iso = %req.iso, user = %subject.name, "base install created");
        let msg = format!("install vm {} boots iso {}", req.name, req.iso);
        self.events
            .emit(Draft::image(EventKind::ImageImported, &req.name, msg))
            .await?;
        self.image(&req.name).await
    }

    /// `image.seal`.
    pub async fn seal_image(&self, subject: &Subject, name: &str) -> Result<Image, Error> {
        self.host_allows(subject, Action::Administer)?;
        let _image_guard = self.lock("image", name, "seal").await?;
        let _vm_guard = self.lock("vm", name, "seal").await?;
        let image = self
            .find_image(name)
            .await?
            .ok_or_else(|| Error::ImageNotFound(name.into()))?;
        if image.sealed {
            return Err(Error::AlreadySealed(name.into()));
        }
        let vm = self
            .require(
                name,
                &[VmState::Stopped, VmState::Crashed],
                "stop the install vm first (vmctl stop)",
            )
            .await?;
        let disk = self.storage.overlay_path(&vm.overlay_file);
        if !storage::qemu_img::has_data(&disk)
            .await
            .map_err(storage::StorageError::from)?
        {
            return Err(Error::BlankDisk(name.into()));
        }
        let info = storage::qemu_img::info("qcow2", &disk)
            .await
            .map_err(storage::StorageError::from)?;
        let disk2 = disk.clone();
        let sha256 = tokio::task::spawn_blocking(move || storage::sha256_file(&disk2)).await??;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&disk, std::fs::Permissions::from_mode(0o444)).map_err(
            |source| storage::StorageError::Io {
                op: "make read-only",
                path: disk.display().to_string(),
                source,
            },
        )?;
        let final_path = self.storage.image_path(&image.file_name);
        let (vm_id, image_id, size) = (vm.id, image.id, info.virtual_size);
        self.db(move |s| {
            s.with_tx(|tx| {
                store::delete_vm(tx, vm_id)?;
                store::seal_image(tx, image_id, size, &sha256)?;
                storage::rename(&disk, &final_path).map_err(Error::from)
            })
        })
        .await?;
        let _ = std::fs::remove_dir_all(self.logs_dir(name));
        tracing::info!(image = %name, "base sealed");
        self.events
            .emit(Draft::vm(
                EventKind::VmRemoved,
                name,
                "install vm removed by seal",
            ))
            .await?;
        self.events
            .emit(Draft::image(
                EventKind::ImageImported,
                name,
                "sealed: install vm removed, disk is now the base",
            ))
            .await?;
        self.image(name).await
    }

    /// `image.publish`.
    pub async fn publish_image(
        &self,
        subject: &Subject,
        req: ImagePublish,
    ) -> Result<Image, Error> {
        validate_name("image", &req.name).map_err(Error::Invalid)?;
        let public = req.public.unwrap_or(subject.is_admin());
        let new = Object::Image {
            owner: subject.user_id,
            public,
            sealed: true,
        };
        allow(subject, Action::Create, new, || {
            Error::Forbidden("users publish private images")
        })?;
        let description = req.description.clone();
        let (os, description) = new_image_info(req.os, description, || OsFamily::Other)?;
        let (_vm_guard, _) = self
            .lock_vm_for(subject, &req.vm, Action::Read, "publish")
            .await?;
        let _image_guard = self.lock("image", &req.name, "publish").await?;
        let vm = self
            .require(
                &req.vm,
                &[VmState::Stopped, VmState::Crashed],
                "stop it first (vmctl stop)",
            )
            .await?;
        if self.find_image(&req.name).await?.is_some() {
            return Err(Error::ImageExists(req.name));
        }
        self.check_space_floor("publish an image").await?;
        if !public {
            // A first look before the costly flatten (the commit checks again, atomically):
            // a user at their disk quota cannot make vmd copy whole disks to be refused.
            let (auth, owner) = (self.config.auth.clone(), subject.user_id);
            let adding = Usage {
                disk_bytes: vm.disk_bytes,
                ..Usage::default()
            };
            self.db(move |s| s.read(|c| Ok(super::quota::admit(c, &auth, owner, &adding)))?)
                .await?;
        }
        let overlay = self.storage.overlay_path(&vm.overlay_file);
        let prepared = self
            .storage
            .flatten(&overlay, &req.name)
            .await
            .map_err(|source| Error::Import {
                name: req.name.clone(),
                source,
            })?;
        // The copy is as large as the disk: it goes whatever ends the publish.
        let _copy = storage::TempGuard(prepared.tmp_path.clone());
        let generalized = match req.generalize {
            true => Some(self.generalize_copy(&req.vm, &prepared).await?),
            false => None,
        };
        let base = self.base_traits(vm.image_id).await?;
        let tmp = prepared.tmp_path.clone();
        let sha256 = tokio::task::spawn_blocking(move || storage::sha256_file(&tmp)).await??;
        let row = NewImage {
            id: 0,
            name: req.name.clone(),
            file_name: format!("{}.qcow2", req.name),
            source_format: "qcow2".into(),
            virtual_size_bytes: prepared.virtual_size_bytes,
            sha256,
            owner: subject.owner(),
            public,
            created_at: now_secs(),
            sealed: true,
            firmware: Firmware::parse(&vm.firmware)
                .unwrap_or_default()
                .as_str()
                .into(),
            os: match req.os {
                Some(_) => os,
                None => base.os,
            },
            description,
            cloud_init: req.cloud_init.unwrap_or(base.cloud_init),
        };
        self.commit_image(row, prepared).await?;
        tracing::info!(image = %req.name, vm = %req.vm, user = %subject.name, public, "base published");
        // Every user sees a public image's events: the source VM (another account's object,
        // whose name is not theirs to learn) is named only for a private image.
        let mut msg = if public {
            "published from a VM".to_string()
        } else {
            format!("published from vm {}", req.vm)
        };
        if let Some(report) = generalized {
            msg = format!("{msg}; {}", report.summary());
        }
        self.events
            .emit(Draft::image(EventKind::ImageImported, &req.name, msg))
            .await?;
        self.image(&req.name).await
    }

    /// Generalizes the flattened copy of `vm` (see [`storage::generalize`]); on failure the
    /// copy is removed.
    async fn generalize_copy(
        &self,
        vm: &str,
        prepared: &storage::PreparedBase,
    ) -> Result<storage::generalize::Report, Error> {
        // The raw copy and the new qcow2 each take about as much as the flattened copy.
        let need = 2 * storage::disk_usage(&prepared.tmp_path) + self.config.min_free_bytes;
        let free = self.free_bytes().await?;
        if free < need {
            storage::remove_quietly(&prepared.tmp_path);
            return Err(Error::NoSpace {
                action: "generalize the published copy",
                free,
                floor: need,
            });
        }
        let result = self.storage.generalize(prepared).await;
        if result.is_err() {
            storage::remove_quietly(&prepared.tmp_path);
        }
        result.map_err(|source| Error::Generalize {
            vm: vm.to_string(),
            source,
        })
    }

    /// What a published copy inherits from its VM's base: OS family and cloud-init flag.
    async fn base_traits(&self, image_id: i64) -> Result<BaseTraits, Error> {
        let row = self
            .db(move |s| Ok(s.read(|c| store::get_image_by_id(c, image_id))?))
            .await?;
        Ok(row
            .map(|r| BaseTraits {
                os: r.os,
                cloud_init: r.cloud_init,
            })
            .unwrap_or_default())
    }
}

/// What a published image inherits from its VM's base.
#[derive(Default)]
struct BaseTraits {
    os: OsFamily,
    cloud_init: bool,
}
