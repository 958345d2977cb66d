//! Start-up consistency check: rows without files and files without rows are reported (log
//! warning + `system.info`), never silently dropped or deleted.

use vm_proto::types::{ConsistencyIssue, ConsistencyIssueKind};

use super::{Error, Manager};
use crate::storage::Storage;
use crate::store::{self, StoreError};

impl Manager {
    /// Removes hidden leftovers of interrupted operations, then compares rows with files.
    pub async fn reconcile(&self) -> Result<Vec<ConsistencyIssue>, Error> {
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
        let (images, vms) = self
            .db(|s| {
                Ok(s.read(|c| Ok::<_, StoreError>((store::list_images(c)?, store::list_vms(c)?)))?)
            })
            .await?;
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
