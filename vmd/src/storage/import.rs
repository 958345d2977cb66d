//! Import of an uploaded disk image: vmd's own header checks, then qemu-img in the sandbox.
//!
//! 1. [`detect`](super::detect) reads the magic bytes and, per format, the headers that can
//!    reference other files (qcow2 backing and data files, the whole VMDK header and descriptor)
//!    or declare an absurd size; the detected format is passed to qemu-img explicitly.
//! 2. The upload moves into a sandbox job; `qemu-img info` and `check` run there and
//!    [`check_info`] refuses what only qemu-img reports.
//! 3. `qemu-img convert` writes a standalone qcow2 inside the sandbox; that output is checked
//!    the same way (by qemu-img in the sandbox and by our qcow2 header check) before it is taken
//!    out, given to vmd's user, made 0444 and renamed to a hidden name in `images/`.
//! 4. Unless the client said, cloud-init is detected on the converted image (see
//!    [`super::generalize`]) before it is taken out.

use std::path::{Path, PathBuf};

use super::detect::{self, Format};
use super::qemu_img::{self, ImageInfo};
use super::sandbox::{Job, INPUT, OUTPUT};
use super::{remove_quietly, PreparedBase, Storage, StorageError};

impl Storage {
    /// Checks and converts a staged upload into a hidden read-only qcow2 in `images/`. The
    /// upload is consumed (moved into the sandbox and deleted with it).
    /// With `detect_cloud_init`, the result says whether the image has cloud-init.
    pub async fn prepare_base(
        &self,
        upload: &Path,
        name: &str,
        detect_cloud_init: bool,
    ) -> Result<PreparedBase, StorageError> {
        let staged = upload.to_path_buf();
        let format = blocking(move || detect_file(&staged)).await?;
        let job = self.new_job(upload).await?;
        let info = qemu_img::info_untrusted(&job, format.as_str(), INPUT).await?;
        check_info(&info)?;
        qemu_img::check_untrusted(&job, format.as_str(), INPUT).await?;
        qemu_img::convert_untrusted(&job, format.as_str(), INPUT).await?;
        let converted = qemu_img::info_untrusted(&job, "qcow2", OUTPUT).await?;
        check_info(&converted)?;
        let cloud_init = match detect_cloud_init {
            // Detection is best effort: an image it cannot read is still a valid disk.
            true => Some(self.detect_cloud_init(&job).await.unwrap_or_else(|error| {
                tracing::warn!(%error, "cannot detect cloud-init; taken as absent");
                false
            })),
            false => None,
        };
        let tmp_path = self.hidden_path(&self.images_dir, "tmp", name);
        let taken = take_output(job, tmp_path.clone()).await;
        if taken.is_err() {
            remove_quietly(&tmp_path);
        }
        taken?;
        Ok(PreparedBase {
            tmp_path,
            source_format: format,
            virtual_size_bytes: converted.virtual_size,
            cloud_init,
        })
    }

    pub(super) async fn new_job(&self, upload: &Path) -> Result<Job, StorageError> {
        let (sandbox, upload) = (self.sandbox.clone(), upload.to_path_buf());
        blocking(move || Ok(sandbox.job(&upload)?)).await
    }
}

/// Takes the sandbox's output to `dst` and checks its qcow2 header, off the async workers.
pub(super) async fn take_output(job: Job, dst: PathBuf) -> Result<(), StorageError> {
    blocking(move || {
        job.take_output(&dst)?;
        match detect_file(&dst)? {
            Format::Qcow2 => Ok(()),
            _ => Err(StorageError::Refused(
                "converted image is not a qcow2".into(),
            )),
        }
    })
    .await
}

fn detect_file(path: &Path) -> Result<Format, StorageError> {
    let mut f = std::fs::File::open(path).map_err(StorageError::io("open", path))?;
    Ok(detect::detect(&mut f)?)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StorageError::Refused(format!("image check panicked: {e}")))?
}

/// Refuses what only qemu-img can see: backing files of non-qcow2 formats, external data files,
/// extents in other files, encryption, and sizes of 0 or above the limit.
pub(super) fn check_info(info: &ImageInfo) -> Result<(), StorageError> {
    if info.backing_filename.is_some() {
        return Err(refused("image has a backing file"));
    }
    if info.encrypted == Some(true) {
        return Err(StorageError::Refused(
            "image is encrypted; encrypted images are not supported".into(),
        ));
    }
    let data = info.format_specific.as_ref().and_then(|f| f.get("data"));
    if data.and_then(|d| d.get("data-file")).is_some() {
        return Err(refused("image uses an external data file"));
    }
    let extents = data
        .and_then(|d| d.get("extents"))
        .and_then(|e| e.as_array());
    if extents.is_some_and(|e| e.len() > 1) {
        return Err(refused("VMDK image has several extents"));
    }
    if info.virtual_size == 0 {
        return Err(StorageError::Refused(
            "image has a virtual size of 0 bytes".into(),
        ));
    }
    Ok(detect::check_size(info.virtual_size)?)
}

fn refused(what: &str) -> StorageError {
    StorageError::Refused(format!(
        "{what}; refusing images that reference other files"
    ))
}
