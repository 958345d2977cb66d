//! `vm.create` with a template: a clone is a VM whose overlay sits on the template's frozen
//! disk layer and whose first start restores the template's saved moment. Until then its
//! hardware is the template's (the saved devices must match), so requests for other hardware
//! are refused, and so are changes while a restore is pending ([`Manager::check_not_pending`]).

use vm_proto::names::format_size;
use vm_proto::types::{validate_labels, Vm, VmCreate, VmState};

use super::template_error::TemplateError;
use super::vms::check_description;
use super::{now_secs, Error, Manager};
use crate::auth::policy::Action;
use crate::auth::Subject;
use crate::storage::templates as files;
use crate::store::{CloudInitRow, NewVm, TemplateRow, VmRow};

impl Manager {
    /// Creates clone `req.name` of template `template`.
    pub(super) async fn create_clone(
        &self,
        subject: &Subject,
        req: VmCreate,
        template: &str,
    ) -> Result<Vm, Error> {
        let expiry = self.expiry_for(subject, &req)?;
        let description = check_description(req.description.as_deref())?;
        validate_labels(&req.labels).map_err(Error::Invalid)?;
        let t = self.template_for(subject, template, Action::Use).await?;
        check_request(&req, &t)?;
        if self.find_vm(&req.name).await?.is_some() {
            return Err(Error::VmExists(req.name));
        }
        let _guard = self.lock("vm", &req.name, "create").await?;
        self.check_space_floor("create a vm").await?;
        if self.find_vm(&req.name).await?.is_some() {
            return Err(Error::VmExists(req.name));
        }
        let links = self.plan_links(subject, &req).await?;
        let cloud_init = match t.seed {
            true => Some(CloudInitRow {
                user: super::provision::default_user(&subject.name),
                ssh_keys: Vec::new(),
                password_hash: None,
                user_data: None,
                instance_id: super::provision::new_instance_id(&req.name)?,
            }),
            false => None,
        };
        let disk = self.storage.template_file(&t.dir, files::DISK);
        let tmp = self.overlay_on(&disk, &req.name, t.disk_bytes).await?;
        let row = NewVm {
            name: req.name.clone(),
            image_id: t.image_id,
            cpus: t.cpus,
            memory_mib: t.memory_mib,
            disk_bytes: t.disk_bytes,
            state: VmState::Stopped,
            owner_id: subject.user_id,
            created_at: now_secs(),
            overlay_file: format!("{}.qcow2", req.name),
            user_net: t.user_net,
            expires_at: expiry.deadline,
            on_expiry: expiry.action.map(|a| a.as_str().to_string()),
            session_id: expiry.session_id,
            iso_id: None,
            firmware: t.firmware.clone(),
            install: false,
            description,
            labels: req.labels.clone(),
            template_id: Some(t.id),
        };
        let timed = row.expires_at.is_some() || row.session_id.is_some();
        // No template lock (a class creates clones at once): a `template.remove` that got
        // there first makes the insert fail on the key, which is reported as not found.
        let committed = self
            .commit_vm(row, cloud_init, links, tmp, t.image_name.clone())
            .await;
        if let Err(err) = committed {
            return Err(match self.find_template(&t.name).await? {
                None => TemplateError::NotFound(t.name).into(),
                Some(_) => err,
            });
        }
        tracing::info!(vm = %req.name, template = %t.name, user = %subject.name, "vm created");
        let msg = format!("created as a clone of template {}", t.name);
        self.created(&req.name, timed, msg).await
    }
}

/// Refuses to change the hardware of a clone whose next start restores its template.
pub(super) fn check_not_pending(row: &VmRow, what: &str) -> Result<(), Error> {
    match &row.template {
        Some(t) if row.restore_pending => Err(TemplateError::Fixed(format!(
            "vm {} cannot {what} before its first start: that start restores template {}, whose devices must match",
            row.name, t.name
        ))
        .into()),
        _ => Ok(()),
    }
}

/// What a clone request may not ask for: other hardware than the template's.
fn check_request(req: &VmCreate, t: &TemplateRow) -> Result<(), TemplateError> {
    let fixed = |what: String| {
        Err(TemplateError::Fixed(format!(
            "a clone of template {} has {what}",
            t.name
        )))
    };
    if !req.image.is_empty() && req.image != t.image_name {
        return fixed(format!("the template's image {}", t.image_name));
    }
    if req.cpus.is_some_and(|c| c != t.cpus) {
        return fixed(format!("its {} vCPU(s)", t.cpus));
    }
    if req.memory_mib.is_some_and(|m| m != t.memory_mib) {
        return fixed(format!("its memory, {} MiB", t.memory_mib));
    }
    if req.disk_bytes.is_some_and(|d| d != t.disk_bytes) {
        return fixed(format!("its disk size, {}", format_size(t.disk_bytes)));
    }
    if req.firmware.is_some_and(|f| f.as_str() != t.firmware) {
        return fixed(format!("its firmware, {}", t.firmware));
    }
    if req.iso.is_some() {
        return fixed("an empty CD-ROM drive at its first start (insert ISOs later)".into());
    }
    if !req.networks.is_empty() {
        return fixed("no lab NICs at its first start (add them later: vmctl nic add)".into());
    }
    if req.no_user_net && t.user_net {
        return fixed("the template's user-mode NIC".into());
    }
    if req.cloud_init.is_some() {
        return fixed("the template's guest setup (cloud-init settings cannot be given)".into());
    }
    Ok(())
}
