//! Start-up consistency check: rows without files and files without rows are reported (log
//! warning + `system.info`), never silently dropped or deleted.

use vm_proto::types::{ConsistencyIssue, ConsistencyIssueKind};

use super::{Error, Manager};
use crate::storage::Storage;
use crate::store::{self, StoreError};

impl Manager {
    /// Template directories without a row: an interrupted `template.create` gives the VM its
    /// disk back, an interrupted `template.remove` finishes.
    async fn recover_templates(&self) -> Result<(), Error> {
        let recorded = self
            .db(|s| Ok(s.read(store::list_templates)?))
            .await?
            .into_iter()
            .map(|t| t.dir)
            .collect();
        let storage = self.storage.clone();
        let done =
            tokio::task::spawn_blocking(move || storage.recover_unrecorded(&recorded)).await?;
        for (dir, overlay) in done {
            match overlay {
                Some(overlay) => {
                    tracing::warn!(dir = %dir.display(), overlay = %overlay.display(), "template never recorded: its disk went back to its vm")
                }
                None => {
                    tracing::info!(dir = %dir.display(), "removed leftover of an interrupted template operation")
                }
            }
        }
        Ok(())
    }

    /// Removes hidden leftovers of interrupted operations, then compares rows with files.
    pub async fn reconcile(&self) -> Result<Vec<ConsistencyIssue>, Error> {
        let (images, vms, isos) = self
            .db(|s| {
                Ok(s.read(|c| {
                    Ok::<_, StoreError>((
                        store::list_images(c)?,
                        store::list_vms(c, None)?,
                        store::list_isos(c)?,
                    ))
                })?)
            })
            .await?;
        self.restore_interrupted_removals(
            images.iter().map(|r| r.file_name.clone()).collect(),
            vms.iter().map(|r| r.overlay_file.clone()).collect(),
            isos.into_iter().map(|r| r.file_name).collect(),
        )
        .await?;
        self.recover_templates().await?;
        let storage = self.storage.clone();
        let removed = tokio::task::spawn_blocking(move || storage.remove_leftovers()).await?;
        // Best effort: on a full disk even a delete may not fit, and vmd must still start.
        match self.events.prune().await {
            Ok(0) => {}
            Ok(pruned) => tracing::debug!(pruned, "old events pruned"),
            Err(err) => tracing::warn!(error = %err, "cannot prune old events"),
        }
        for path in removed {
            tracing::info!(path = %path.display(), "removed leftover of an interrupted operation");
        }
        // An unsealed image's disk lives with its install VM in overlays/ until it is sealed.
        let image_files: Vec<(String, String)> = images
            .into_iter()
            .filter(|r| r.sealed)
            .map(|r| (r.name, r.file_name))
            .collect();
        let vm_files: Vec<(String, String)> =
            vms.into_iter().map(|r| (r.name, r.overlay_file)).collect();
        let mut issues = compare(
            &image_files,
            &Storage::qcow2_files(self.storage.images_dir()),
            self.storage.images_dir(),
            (
                ConsistencyIssueKind::MissingImage,
                ConsistencyIssueKind::OrphanImage,
            ),
        );
        issues.extend(compare(
            &vm_files,
            &Storage::qcow2_files(self.storage.overlays_dir()),
            self.storage.overlays_dir(),
            (
                ConsistencyIssueKind::MissingOverlay,
                ConsistencyIssueKind::OrphanOverlay,
            ),
        ));
        for issue in &issues {
            tracing::warn!(kind = ?issue.kind, name = %issue.name, path = %issue.path, "store and disk disagree");
        }
        *self.issues.lock().unwrap_or_else(|p| p.into_inner()) = issues.clone();
        Ok(issues)
    }
}

impl Manager {
    /// A removal moves the file aside (`.trash-<name>-…`) before it commits the row's
    /// deletion. If vmd died in between, the row is still there: the file is moved back
    /// before leftovers are cleaned, so an interrupted removal never loses a disk.
    async fn restore_interrupted_removals(
        &self,
        images: Vec<String>,
        vms: Vec<String>,
        isos: Vec<String>,
    ) -> Result<(), Error> {
        let storage = self.storage.clone();
        tokio::task::spawn_blocking(move || {
            let dirs: [(&std::path::Path, &Vec<String>); 4] = [
                (storage.images_dir(), &images),
                (storage.overlays_dir(), &vms),
                (storage.overlays_dir(), &images),
                (storage.isos_dir(), &isos),
            ];
            for (dir, files) in dirs {
                restore_trash(dir, files);
            }
        })
        .await?;
        Ok(())
    }
}

/// Moves `.trash-<stem>-<pid>-<n>.qcow2` in `dir` back to the row's file when a row still
/// names a file with that stem and the file itself is missing.
fn restore_trash(dir: &std::path::Path, files: &[String]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.flatten().map(|e| e.path()) {
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(trash_stem)
        else {
            continue;
        };
        let target = files
            .iter()
            .find(|f| f.rsplit_once('.').map(|(s, _)| s) == Some(stem))
            .map(|f| dir.join(f));
        if let Some(target) = target.filter(|t| !t.exists()) {
            match std::fs::rename(&path, &target) {
                Ok(()) => {
                    tracing::warn!(path = %target.display(), "restored the file of an interrupted removal")
                }
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "cannot restore the file of an interrupted removal")
                }
            }
        }
    }
}

/// `<stem>` of a `.trash-<stem>-<pid>-<n>.qcow2` name.
fn trash_stem(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(".trash-")?.strip_suffix(".qcow2")?;
    let mut parts = rest.rsplitn(3, '-');
    let (_n, _pid, stem) = (parts.next()?, parts.next()?, parts.next()?);
    Some(stem)
}

/// Rows `(name, file)` against the visible files of `dir`.
fn compare(
    rows: &[(String, String)],
    files: &[String],
    dir: &std::path::Path,
    (missing, orphan): (ConsistencyIssueKind, ConsistencyIssueKind),
) -> Vec<ConsistencyIssue> {
    let path = |f: &str| dir.join(f).display().to_string();
    let mut issues: Vec<ConsistencyIssue> = rows
        .iter()
        .filter(|(_, file)| !files.contains(file))
        .map(|(name, file)| ConsistencyIssue {
            kind: missing,
            name: name.clone(),
            path: path(file),
        })
        .collect();
    issues.extend(
        files
            .iter()
            .filter(|f| !rows.iter().any(|(_, file)| file == *f))
            .map(|f| ConsistencyIssue {
                kind: orphan,
                name: f.trim_end_matches(".qcow2").to_string(),
                path: path(f),
            }),
    );
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_removal_gets_its_file_back() {
        assert_eq!(trash_stem(".trash-web-1-4242-7.qcow2"), Some("web-1"));
        assert_eq!(trash_stem(".tmp-web-4242-7.qcow2"), None);
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join(".trash-web-1-4242-7.qcow2"), b"disk").expect("trash");
        std::fs::write(dir.path().join(".trash-gone-4242-8.qcow2"), b"old").expect("trash");
        restore_trash(dir.path(), &["web-1.qcow2".to_string()]);
        assert_eq!(
            std::fs::read(dir.path().join("web-1.qcow2")).ok(),
            Some(b"disk".to_vec())
        );
        assert!(
            dir.path().join(".trash-gone-4242-8.qcow2").exists(),
            "no row: left for cleanup"
        );
    }

    #[test]
    fn reports_both_directions() {
        let rows = vec![
            ("a".to_string(), "a.qcow2".to_string()),
            ("b".to_string(), "b.qcow2".to_string()),
        ];
        let files = vec!["a.qcow2".to_string(), "c.qcow2".to_string()];
        let kinds = (
            ConsistencyIssueKind::MissingOverlay,
            ConsistencyIssueKind::OrphanOverlay,
        );
        let issues = compare(&rows, &files, std::path::Path::new("/o"), kinds);
        assert_eq!(issues.len(), 2);
        assert_eq!(
            (issues[0].kind, issues[0].name.as_str()),
            (ConsistencyIssueKind::MissingOverlay, "b")
        );
        assert_eq!(
            (issues[1].kind, issues[1].path.as_str()),
            (ConsistencyIssueKind::OrphanOverlay, "/o/c.qcow2")
        );
    }
}
