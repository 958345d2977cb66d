//! `template.create|list|get|remove`: warm templates, owned and authorized like lab networks
//! (a user's are private, an admin's are shared). Taking the snapshot is in `snapshot`,
//! creating clones in `clones`, restoring at start in `restore`; `docs/templates.md` has the
//! model.

use std::collections::HashMap;

use vm_proto::names::validate_name;
use vm_proto::types::{Firmware, Template, TemplateCreate};

use super::access::allow;
use super::images::remove_with_file;
use super::template_error::TemplateError;
use super::{rfc3339, Error, Manager};
use crate::auth::policy::{self, Action, Object};
use crate::auth::Subject;
use crate::store::{self, TemplateRow};

/// The policy's view of a template row.
pub(super) fn template_object(row: &TemplateRow) -> Object {
    Object::Template {
        owner: row.owner.id,
        shared: row.shared,
    }
}

impl Manager {
    /// `template.create`.
    pub async fn create_template(
        &self,
        subject: &Subject,
        req: TemplateCreate,
    ) -> Result<Template, Error> {
        validate_name("template", &req.name).map_err(Error::Invalid)?;
        let mine = Object::Template {
            owner: subject.user_id,
            shared: req.shared,
        };
        allow(subject, Action::Create, mine, || {
            Error::Forbidden("this account may not create templates")
        })?;
        if self.find_template(&req.name).await?.is_some() {
            return Err(TemplateError::Exists(req.name).into());
        }
        let _name_guard = self.lock("template", &req.name, "create").await?;
        let (_vm_guard, row) = self
            .lock_vm_for(subject, &req.from, Action::Modify, "template")
            .await?;
        if self.find_template(&req.name).await?.is_some() {
            return Err(TemplateError::Exists(req.name).into());
        }
        self.check_space_floor("create a template").await?;
        let row = self.snapshot(subject, &req, row).await?;
        tracing::info!(template = %req.name, vm = %row.name, user = %subject.name, "template created");
        self.get_template(subject, &req.name).await
    }

    /// `template.list`: the caller's own and shared templates (admins: all).
    pub async fn list_templates(&self, subject: &Subject) -> Result<Vec<Template>, Error> {
        let (rows, clones) = self
            .db(|s| {
                Ok(s.read(|c| {
                    Ok::<_, store::StoreError>((store::list_templates(c)?, store::all_clones(c)?))
                })?)
            })
            .await?;
        let mut by_template: HashMap<i64, Vec<(String, i64)>> = HashMap::new();
        for (template, name, owner) in clones {
            by_template.entry(template).or_default().push((name, owner));
        }
        Ok(rows
            .into_iter()
            .filter(|row| policy::authorize(subject, Action::Read, template_object(row)).is_ok())
            .map(|row| {
                let clones = by_template.remove(&row.id).unwrap_or_default();
                self.template_view(subject, row, clones)
            })
            .collect())
    }

    /// `template.get`.
    pub async fn get_template(&self, subject: &Subject, name: &str) -> Result<Template, Error> {
        let row = self.template_for(subject, name, Action::Read).await?;
        let id = row.id;
        let clones = self
            .db(move |s| Ok(s.read(|c| store::clones_of(c, id))?))
            .await?;
        Ok(self.template_view(subject, row, clones))
    }

    /// `template.remove`: refused while clones exist; then the row and the files go.
    pub async fn remove_template(&self, subject: &Subject, name: &str) -> Result<(), Error> {
        self.template_for(subject, name, Action::Modify).await?;
        let _guard = self.lock("template", name, "remove").await?;
        let row = self.template_for(subject, name, Action::Modify).await?;
        let dir = self.storage.templates_dir().join(&row.dir);
        let trash = self
            .storage
            .templates_dir()
            .join(format!(".trash-{}", row.dir));
        let (id, name2, trash2, who) = (row.id, name.to_string(), trash.clone(), subject.clone());
        // The directory goes aside in the transaction that checks for clones and deletes the
        // row, and comes back if the commit fails.
        self.db(move |s| {
            remove_with_file(s, &dir, &trash2, |tx| {
                let clones = store::clones_of(tx, id)?;
                if !clones.is_empty() {
                    let visible = |owner: i64| who.is_admin() || who.owns(owner);
                    return Err(in_use(&name2, &clones, visible).into());
                }
                Ok(store::delete_template(tx, id)?)
            })
        })
        .await?;
        self.forget_template_ram(id);
        super::snapshot::discard(trash).await;
        tracing::info!(template = %name, user = %subject.name, "template removed");
        Ok(())
    }

    /// The template `name` if `subject` may take `action` on it; `not_found` otherwise.
    pub(super) async fn template_for(
        &self,
        subject: &Subject,
        name: &str,
        action: Action,
    ) -> Result<TemplateRow, Error> {
        let row = self.find_template(name).await?;
        let row = row.ok_or_else(|| TemplateError::NotFound(name.into()))?;
        allow(subject, action, template_object(&row), || {
            TemplateError::NotFound(name.into()).into()
        })?;
        Ok(row)
    }

    pub(super) async fn find_template(&self, name: &str) -> Result<Option<TemplateRow>, Error> {
        let name = name.to_string();
        self.db(move |s| Ok(s.read(|c| store::get_template(c, &name))?))
            .await
    }

    /// The API view of `row` with its `clones` (name, owner) that `subject` may see.
    fn template_view(
        &self,
        subject: &Subject,
        row: TemplateRow,
        clones: Vec<(String, i64)>,
    ) -> Template {
        let clones = clones
            .into_iter()
            .filter(|(_, owner)| subject.is_admin() || subject.owns(*owner))
            .map(|(name, _)| name)
            .collect();
        Template {
            usage_bytes: self.storage.template_usage(&row.dir),
            name: row.name,
            owner: row.owner.name,
            shared: row.shared,
            source_vm: row.source_vm,
            image: row.image_name,
            cpus: row.cpus,
            memory_mib: row.memory_mib,
            disk_bytes: row.disk_bytes,
            firmware: Firmware::parse(&row.firmware).unwrap_or_default(),
            user_net: row.user_net,
            accelerator: row.accelerator,
            qemu_version: row.qemu_version,
            clones,
            created_at: rfc3339(row.created_at),
        }
    }
}

/// `in_use` naming the clones the caller may see and counting the others.
fn in_use(name: &str, clones: &[(String, i64)], visible: impl Fn(i64) -> bool) -> TemplateError {
    let names: Vec<String> = clones
        .iter()
        .filter(|(_, owner)| visible(*owner))
        .map(|(n, _)| n.clone())
        .collect();
    TemplateError::InUse {
        name: name.into(),
        hidden: clones.len() - names.len(),
        clones: names,
    }
}
