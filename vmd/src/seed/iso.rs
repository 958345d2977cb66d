//! Writing a seed as an ISO 9660 image labelled `cidata` with `xorriso` (Debian package
//! `xorriso`). The documents are written into a private directory that vmd created, and
//! xorriso gets fixed arguments: nothing in them comes from a user.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::Seed;

/// The volume label cloud-init's NoCloud source looks for.
const LABEL: &str = "cidata";

/// Why a seed could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// Writing the documents failed.
    #[error("cannot write the cloud-init seed in {dir}: {source}")]
    Write {
        /// The directory.
        dir: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// xorriso is not installed.
    #[error("xorriso is not installed; it builds cloud-init seeds (apt-get install xorriso)")]
    NoXorriso,
    /// xorriso failed.
    #[error("xorriso could not build the cloud-init seed: {0}")]
    Xorriso(String),
}

/// Builds `dir/seed.iso` from `seed` (`dir` is the VM's private run directory) and returns
/// its path. The documents' directory is removed again whatever happens.
pub async fn build(seed: &Seed, dir: &Path) -> Result<PathBuf, SeedError> {
    let docs = dir.join("seed.d");
    let iso = dir.join("seed.iso");
    let result = write_and_pack(seed, &docs, &iso).await;
    let _ = tokio::fs::remove_dir_all(&docs).await;
    result.map(|()| iso)
}

async fn write_and_pack(seed: &Seed, docs: &Path, iso: &Path) -> Result<(), SeedError> {
    let write_err = |source| SeedError::Write {
        dir: docs.display().to_string(),
        source,
    };
    tokio::fs::create_dir_all(docs).await.map_err(write_err)?;
    for (name, text) in [
        ("meta-data", seed.meta_data()),
        ("user-data", seed.user_data()),
    ] {
        tokio::fs::write(docs.join(name), text)
            .await
            .map_err(write_err)?;
    }
    let out = Command::new("xorriso")
        // -no_rc first: no start-up files (/etc/xorriso/…, ~/.xorrisorc) are read.
        .args([
            "-no_rc", "-as", "mkisofs", "-quiet", "-volid", LABEL, "-joliet", "-rock",
        ])
        .arg("-output")
        .arg(iso)
        .arg(docs)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SeedError::NoXorriso,
            _ => SeedError::Xorriso(e.to_string()),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(SeedError::Xorriso(
            last.unwrap_or("no message").trim().to_string(),
        ));
    }
    Ok(())
}
