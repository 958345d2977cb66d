//! Console logs: `<state>/logs/<vm>/console.log` receives everything the guest prints on its
//! serial port (QEMU appends it itself, so nothing is lost while vmd is down) and vmd's own
//! lines about the VM (`[vmd <time>] …`), appended in between. When the log passes its cap it
//! is rotated to `console.log.1` (copy, then truncate: QEMU keeps appending to the same file).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use vm_proto::types::VmLogs;

use super::{Error, Manager};
use crate::auth::policy::Action;
use crate::auth::Subject;

/// Default bytes returned by `vm.logs`.
const DEFAULT_TAIL_BYTES: u64 = 64 << 10;

impl Manager {
    /// `<state>/logs/<vm>/`.
    pub fn logs_dir(&self, vm: &str) -> PathBuf {
        self.config.state_dir.join("logs").join(vm)
    }

    /// The VM's console log file.
    pub fn console_log(&self, vm: &str) -> PathBuf {
        self.logs_dir(vm).join("console.log")
    }

    /// Appends a vmd line about `vm` to its console log.
    pub(super) fn note(&self, vm: &str, text: &str) {
        let dir = self.logs_dir(vm);
        let line = format!(
            "\r\n[vmd {}] {text}\r\n",
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        );
        let result = std::fs::create_dir_all(&dir).and_then(|()| {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("console.log"))?;
            f.write_all(line.as_bytes())
        });
        if let Err(err) = result {
            tracing::warn!(vm = %vm, error = %err, "cannot write console log");
        }
        self.rotate_console_log(vm);
    }

    /// Rotates the console log when it is over the cap.
    pub(super) fn rotate_console_log(&self, vm: &str) {
        let log = self.console_log(vm);
        let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        if size <= self.config.console_log_max_bytes {
            return;
        }
        let rotated = log.with_extension("log.1");
        let result = std::fs::copy(&log, &rotated)
            .and_then(|_| std::fs::OpenOptions::new().write(true).open(&log))
            .and_then(|f| f.set_len(0));
        if let Err(err) = result {
            tracing::warn!(vm = %vm, error = %err, "cannot rotate console log");
        }
    }

    /// `vm.logs`: the last `tail_bytes` of the console log (from the rotated file too).
    pub async fn vm_logs(
        &self,
        subject: &Subject,
        name: &str,
        tail_bytes: Option<u64>,
    ) -> Result<VmLogs, Error> {
        self.vm_for(subject, name, Action::Read).await?;
        let want = tail_bytes.unwrap_or(DEFAULT_TAIL_BYTES);
        let log = self.console_log(name);
        tokio::task::spawn_blocking(move || read_tail(&log, want)).await?
    }
}

fn read_tail(log: &std::path::Path, want: u64) -> Result<VmLogs, Error> {
    let size = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let rotated = log.with_extension("log.1");
    let rotated_size = std::fs::metadata(&rotated).map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::new();
    if want > size && rotated_size > 0 {
        let from_old = (want - size).min(rotated_size);
        bytes.extend(read_range(&rotated, rotated_size - from_old, from_old));
    }
    let from_new = want.min(size);
    bytes.extend(read_range(log, size - from_new, from_new));
    let truncated = (bytes.len() as u64) < size + rotated_size;
    Ok(VmLogs {
        text: String::from_utf8_lossy(&bytes).into_owned(),
        size_bytes: size,
        truncated,
    })
}

/// Reads `len` bytes at `offset` (fewer if the file shrank meanwhile).
pub fn read_range(path: &std::path::Path, offset: u64, len: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        if f.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = f.take(len).read_to_end(&mut buf);
        }
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_spans_rotated_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("console.log");
        std::fs::write(log.with_extension("log.1"), "old-part\n").expect("write");
        std::fs::write(&log, "new-part\n").expect("write");
        let all = read_tail(&log, 1000).expect("tail");
        assert_eq!(
            (all.text.as_str(), all.truncated),
            ("old-part\nnew-part\n", false)
        );
        let end = read_tail(&log, 5).expect("tail");
        assert_eq!((end.text.as_str(), end.truncated), ("part\n", true));
    }
}
