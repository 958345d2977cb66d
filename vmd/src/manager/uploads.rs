//! Staged uploads: bytes streamed by a client into `uploads/`, waiting for `image.import`.
//! An upload belongs to the account that sent it and expires after [`UPLOAD_TTL`]. While staged it
//! holds a [`Reservation`] for its conversion, released when an import takes it and is done
//! with it, or when it expires.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::sync::Arc;

use tokio::sync::{watch, Semaphore};

use super::ledger::Reservation;

/// Background digests of sparse uploads computed at once.
pub const DIGESTS_AT_ONCE: usize = 2;

/// How long a finished upload waits for its import.
pub const UPLOAD_TTL: Duration = Duration::from_secs(3600);

/// A finished upload.
#[derive(Debug)]
pub struct StagedUpload {
    /// Uploader.
    pub owner_id: i64,
    /// File under `uploads/`.
    pub path: PathBuf,
    /// Bytes received.
    pub size_bytes: u64,
    /// SHA-256 of the whole file (known, or being computed).
    pub sha256: Digest,
    /// Space kept free for what an import writes; released with the upload.
    reservation: Reservation,
    finished: Instant,
}

impl StagedUpload {
    /// A finished upload, holding `reservation` until it is imported or expires.
    pub fn new(
        owner_id: i64,
        path: PathBuf,
        size_bytes: u64,
        sha256: Digest,
        reservation: Reservation,
    ) -> StagedUpload {
        StagedUpload {
            owner_id,
            path,
            size_bytes,
            sha256,
            reservation,
            finished: Instant::now(),
        }
    }

    /// Bytes reserved for the import.
    pub fn reserved_bytes(&self) -> u64 {
        self.reservation.bytes()
    }
}

/// The SHA-256 of a staged upload: computed while it was received (a plain upload), or
/// being computed in the background from its file (a sparse upload: hashing gigabytes of
/// holes must not hold up the upload; the import waits for it, beside its own work).
#[derive(Debug, Clone)]
pub enum Digest {
    /// Known, lowercase hex.
    Ready(String),
    /// Being computed: `None` until done, then the hex digest or why it failed.
    Pending(watch::Receiver<Option<Result<String, String>>>),
}

impl Digest {
    /// Starts hashing `file` (already open: the import may rename or delete the path). At
    /// most [`DIGESTS_AT_ONCE`] run at a time, whoever uploads: a client that sends many
    /// small sparse uploads of huge files cannot take every CPU (the others queue).
    pub fn spawn(file: std::fs::File) -> Digest {
        static SLOTS: std::sync::OnceLock<Arc<Semaphore>> = std::sync::OnceLock::new();
        let slots = SLOTS.get_or_init(|| Arc::new(Semaphore::new(DIGESTS_AT_ONCE)));
        let (tx, rx) = watch::channel(None);
        let slots = Arc::clone(slots);
        tokio::spawn(async move {
            let Ok(slot) = slots.acquire_owned().await else {
                return;
            };
            let _ = tokio::task::spawn_blocking(move || {
                let digest =
                    crate::storage::digest::sha256_sparse(&file).map_err(|e| e.to_string());
                let _ = tx.send(Some(digest));
                drop(slot);
            })
            .await;
        });
        Digest::Pending(rx)
    }

    /// The digest if it is known already.
    pub fn known(&self) -> Option<String> {
        match self {
            Digest::Ready(hex) => Some(hex.clone()),
            Digest::Pending(rx) => rx.borrow().clone().and_then(Result::ok),
        }
    }

    /// The digest, once computed.
    pub async fn wait(self) -> Result<String, String> {
        match self {
            Digest::Ready(hex) => Ok(hex),
            Digest::Pending(mut rx) => match rx.wait_for(Option::is_some).await {
                Ok(done) => done.clone().unwrap_or_else(|| Err("no digest".into())),
                Err(_) => Err("the digest task ended without a result".into()),
            },
        }
    }
}

/// The registry of finished uploads.
#[derive(Default)]
pub struct Uploads {
    // std Mutex: map operations only, never held across an await.
    map: Mutex<HashMap<String, StagedUpload>>,
}

impl Uploads {
    /// Registers a finished upload under `id`.
    pub fn insert(&self, id: String, staged: StagedUpload) {
        self.lock().insert(id, staged);
    }

    /// Takes the upload `id` if it belongs to account `owner_id`.
    pub fn take(&self, id: &str, owner_id: i64) -> Option<StagedUpload> {
        let mut map = self.lock();
        match map.get(id) {
            Some(u) if u.owner_id == owner_id => map.remove(id),
            _ => None,
        }
    }

    /// Removes expired uploads, deleting their files and releasing their reservations.
    pub fn expire(&self) {
        let expired: Vec<StagedUpload> = {
            let mut map = self.lock();
            let ids: Vec<String> = map
                .iter()
                .filter(|(_, u)| u.finished.elapsed() > UPLOAD_TTL)
                .map(|(k, _)| k.clone())
                .collect();
            ids.iter().filter_map(|id| map.remove(id)).collect()
        };
        for upload in expired {
            crate::storage::remove_quietly(&upload.path);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, StagedUpload>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::manager::ledger::SpaceLedger;

    #[test]
    fn only_the_owner_takes_an_upload() {
        let space = SpaceLedger::with_probe(PathBuf::from("/"), |_| 100);
        let uploads = Uploads::default();
        let reservation = space.reserve(5).expect("reserve");
        let path = PathBuf::from("/nonexistent");
        let staged = StagedUpload::new(1000, path, 5, Digest::Ready("ab".into()), reservation);
        uploads.insert("u1".into(), staged);
        assert!(uploads.take("u1", 1001).is_none());
        let taken = uploads.take("u1", 1000).expect("owner takes it");
        assert_eq!(space.reserved(), 5, "the reservation moves with the upload");
        drop(taken);
        assert_eq!(space.reserved(), 0, "and is released with it");
        assert!(uploads.take("u1", 1000).is_none(), "taken once");
    }

    #[tokio::test]
    async fn a_pending_digest_is_the_files_hash_even_after_the_path_is_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("up");
        std::fs::write(&path, b"abc").expect("write");
        let digest = Digest::spawn(std::fs::File::open(&path).expect("open"));
        std::fs::remove_file(&path).expect("rm");
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(digest.clone().wait().await.as_deref(), Ok(want));
        assert_eq!(digest.known().as_deref(), Some(want));
    }
}
