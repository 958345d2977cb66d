//! Staged uploads: bytes streamed by a client into `uploads/`, waiting for `image.import`.
//! An upload belongs to the uid that sent it and expires after [`UPLOAD_TTL`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a finished upload waits for its import.
pub const UPLOAD_TTL: Duration = Duration::from_secs(3600);

/// A finished upload.
#[derive(Debug, Clone)]
pub struct StagedUpload {
    /// Uploader.
    pub owner_uid: u32,
    /// File under `uploads/`.
    pub path: PathBuf,
    /// Bytes received.
    pub size_bytes: u64,
    /// SHA-256 hex.
    pub sha256: String,
    finished: Instant,
}

/// The registry of finished uploads.
#[derive(Default)]
pub struct Uploads {
    // std Mutex: map operations only, never held across an await.
    map: Mutex<HashMap<String, StagedUpload>>,
}

impl Uploads {
    /// Registers a finished upload under `id`.
    pub fn insert(
        &self,
        id: String,
        owner_uid: u32,
        path: PathBuf,
        size_bytes: u64,
        sha256: String,
    ) {
        let staged = StagedUpload {
            owner_uid,
            path,
            size_bytes,
            sha256,
            finished: Instant::now(),
        };
        self.lock().insert(id, staged);
    }

    /// Takes the upload `id` if it belongs to `uid`.
    pub fn take(&self, id: &str, uid: u32) -> Option<StagedUpload> {
        let mut map = self.lock();
        match map.get(id) {
            Some(u) if u.owner_uid == uid => map.remove(id),
            _ => None,
        }
    }

    /// Removes expired uploads, deleting their files.
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

    #[test]
    fn only_the_owner_takes_an_upload() {
        let uploads = Uploads::default();
        uploads.insert(
            "u1".into(),
            1000,
            PathBuf::from("/nonexistent"),
            5,
            "ab".into(),
        );
        assert!(uploads.take("u1", 1001).is_none());
        assert!(uploads.take("u1", 1000).is_some());
        assert!(uploads.take("u1", 1000).is_none(), "taken once");
    }
}
