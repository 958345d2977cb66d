//! The ISO library: import from an upload, list, get, remove (refused while inserted). The
//! CD-ROM drive of a VM is in [`super::media`].

use vm_proto::names::validate_name;
use vm_proto::types::{EventKind, Iso, IsoImport};

use super::events::Draft;
use super::images::remove_with_file;
use super::{now_secs, rfc3339, Error, Manager};
use crate::auth::policy::Action;
use crate::auth::Subject;
use crate::storage;
use crate::store::{self, IsoRow};

impl Manager {
    /// `iso.import`.
    pub async fn import_iso(&self, subject: &Subject, req: IsoImport) -> Result<Iso, Error> {
        validate_name("iso", &req.name).map_err(Error::Invalid)?;
        self.host_allows(subject, Action::Administer)?;
        let _guard = self.lock("iso", &req.name, "import").await?;
        if self.find_iso(&req.name).await?.is_some() {
            return Err(Error::IsoExists(req.name));
        }
        let upload = self
            .uploads
            .take(&req.upload_id, subject.user_id)
            .ok_or(Error::UploadNotFound(req.upload_id))?;
        let tmp = match self.storage.prepare_iso(&upload.path, &req.name).await {
            Ok(tmp) => tmp,
            Err(source) => {
                storage::remove_quietly(&upload.path);
                return Err(Error::IsoImport {
                    name: req.name,
                    source,
                });
            }
        };
        let sha256 = match super::images::upload_digest(&upload).await {
            Ok(hex) => hex,
            Err(err) => {
                storage::remove_quietly(&tmp);
                return Err(err);
            }
        };
        let row = IsoRow {
            id: 0,
            name: req.name.clone(),
            file_name: format!("{}.iso", req.name),
            size_bytes: upload.size_bytes,
            sha256,
            owner: subject.owner(),
            created_at: now_secs(),
        };
        let final_path = self.storage.iso_path(&row.file_name);
        let tmp2 = tmp.clone();
        let result = self
            .db(move |s| {
                s.with_tx(|tx| {
                    store::insert_iso(tx, &row)?;
                    storage::rename(&tmp2, &final_path).map_err(Error::from)
                })
            })
            .await;
        if result.is_err() {
            storage::remove_quietly(&tmp);
        }
        result?;
        tracing::info!(iso = %req.name, user = %subject.name, "iso imported");
        self.events
            .emit(Draft::iso(EventKind::IsoImported, &req.name, "imported"))
            .await?;
        self.iso(&req.name).await
    }

    /// `iso.list` (every caller may list ISOs).
    pub async fn list_isos(&self, subject: &Subject) -> Result<Vec<Iso>, Error> {
        let rows = self
            .db(|s| {
                Ok(s.read(|c| {
                    store::list_isos(c)?
                        .into_iter()
                        .map(|r| Ok((store::iso_users(c, r.id)?, r)))
                        .collect::<Result<Vec<_>, store::StoreError>>()
                })?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(users, row)| self.iso_view(subject, row, users))
            .collect())
    }

    /// `iso.get`.
    pub async fn get_iso(&self, subject: &Subject, name: &str) -> Result<Iso, Error> {
        let row = self.iso_for(subject, name, Action::Read).await?;
        let id = row.id;
        let users = self
            .db(move |s| Ok(s.read(|c| store::iso_users(c, id))?))
            .await?;
        Ok(self.iso_view(subject, row, users))
    }

    /// The ISO called `name` (internal use: the caller was authorized).
    pub(super) async fn iso(&self, name: &str) -> Result<Iso, Error> {
        let row = self
            .find_iso(name)
            .await?
            .ok_or_else(|| Error::IsoNotFound(name.into()))?;
        let id = row.id;
        let users = self
            .db(move |s| Ok(s.read(|c| store::iso_users(c, id))?))
            .await?;
        Ok(self.iso_view(&Subject::daemon(), row, users))
    }

    /// `iso.remove`: refused while any VM has it inserted.
    pub async fn remove_iso(&self, subject: &Subject, name: &str) -> Result<(), Error> {
        let _guard = self.lock("iso", name, "remove").await?;
        let row = self.iso_for(subject, name, Action::Modify).await?;
        let path = self.storage.iso_path(&row.file_name);
        let trash = self
            .storage
            .hidden_path(self.storage.isos_dir(), "trash", name);
        let (id, iso_name, trash2) = (row.id, row.name.clone(), trash.clone());
        self.db(move |s| {
            remove_with_file(s, &path, &trash2, |tx| {
                let users = store::iso_users(tx, id)?;
                if !users.is_empty() {
                    return Err(Error::IsoInUse {
                        name: iso_name,
                        users,
                    });
                }
                Ok(store::delete_iso(tx, id)?)
            })
        })
        .await?;
        storage::remove_quietly(&trash);
        tracing::info!(iso = %name, "iso removed");
        self.events
            .emit(Draft::iso(EventKind::IsoRemoved, name, "removed"))
            .await?;
        Ok(())
    }

    pub(super) async fn find_iso(&self, name: &str) -> Result<Option<IsoRow>, Error> {
        let name = name.to_string();
        self.db(move |s| Ok(s.read(|c| store::get_iso(c, &name))?))
            .await
    }

    fn iso_view(&self, subject: &Subject, row: IsoRow, mut used_by: Vec<String>) -> Iso {
        if !subject.is_admin() {
            // Other users' VM names are theirs to know.
            used_by.clear();
        }
        Iso {
            path: self.storage.iso_path(&row.file_name).display().to_string(),
            name: row.name,
            size_bytes: row.size_bytes,
            sha256: row.sha256,
            owner: row.owner.name,
            created_at: rfc3339(row.created_at),
            used_by,
        }
    }
}
