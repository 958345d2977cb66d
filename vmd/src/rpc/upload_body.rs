//! The body of an upload turned into a staged file: plain bytes or a sparse extent stream
//! ([`vm_proto::upload`]), written at their offsets (holes stay holes), and the declared kind
//! checked on the first [`sniff::HEAD_BYTES`] as soon as they are in. A plain body is hashed
//! as it arrives; a sparse one is not (its holes would cost more to hash than its data to
//! receive): its digest is computed from the staged file afterwards
//! ([`crate::manager::uploads::Digest`]).

use std::io::SeekFrom;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};
use vm_proto::sniff::{self, Refusal, UploadKind};
use vm_proto::upload::ExtentHeader;

/// Holes at least this long are hashed off the async workers.
const BLOCKING_HOLE: u64 = 8 << 20;

/// Why a body was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The declared kind does not match the first bytes.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The extent stream breaks its rules.
    #[error("bad extent stream: {0}")]
    Framing(String),
    /// Writing the staged file failed.
    #[error("cannot write the staged upload")]
    Io(#[from] std::io::Error),
}

/// The staged file being written, its hash and the pending kind check.
pub struct Sink {
    out: BufWriter<tokio::fs::File>,
    /// `None`: not hashed here (a sparse upload).
    hasher: Option<Sha256>,
    /// Logical bytes written so far (the next byte's offset).
    pos: u64,
    /// Logical size of the file.
    size: u64,
    head: Option<(UploadKind, Vec<u8>)>,
}

impl Sink {
    /// A sink for a file of `size` logical bytes, checking the head for `kind` if given, and
    /// hashing what it writes when `hash` is set.
    pub fn new(file: tokio::fs::File, size: u64, kind: Option<UploadKind>, hash: bool) -> Sink {
        Sink {
            out: BufWriter::with_capacity(1 << 20, file),
            hasher: hash.then(Sha256::new),
            pos: 0,
            size,
            head: kind.map(|k| (k, Vec::with_capacity(sniff::HEAD_BYTES))),
        }
    }

    /// Bytes waiting in the write buffer (not yet on disk).
    pub fn buffered(&self) -> u64 {
        self.out.buffer().len() as u64
    }

    /// Writes `data` at logical `offset` (at or after every byte written so far).
    pub async fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BodyError> {
        if offset > self.pos {
            self.hole(offset - self.pos).await?;
            self.out.seek(SeekFrom::Start(offset)).await?;
        }
        self.take_head(data)?;
        if let Some(hasher) = self.hasher.as_mut() {
            hasher.update(data);
        }
        self.out.write_all(data).await?;
        self.pos += data.len() as u64;
        Ok(())
    }

    /// Completes the file: the trailing hole, the length, the flush; returns the hex sha256
    /// if it was hashed here.
    pub async fn finish(mut self) -> Result<Option<String>, BodyError> {
        if self.size > self.pos {
            self.hole(self.size - self.pos).await?;
        }
        self.check_head()?;
        self.out.flush().await?;
        self.out.get_ref().set_len(self.size).await?;
        Ok(self.hasher.map(|h| hex(&h.finalize())))
    }

    /// Hashes `len` zeros (a hole) and feeds them to the head check.
    async fn hole(&mut self, len: u64) -> Result<(), BodyError> {
        let in_head = len.min(sniff::HEAD_BYTES as u64) as usize;
        self.take_head(&vec![0u8; in_head])?;
        self.pos += len;
        let Some(mut hasher) = self.hasher.take() else {
            return Ok(());
        };
        if len < BLOCKING_HOLE {
            hash_zeros(&mut hasher, len);
        } else {
            hasher = tokio::task::spawn_blocking(move || {
                hash_zeros(&mut hasher, len);
                hasher
            })
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        self.hasher = Some(hasher);
        Ok(())
    }

    /// Adds the first bytes of `data` to the head; checks it once complete.
    fn take_head(&mut self, data: &[u8]) -> Result<(), Refusal> {
        let Some((_, head)) = self.head.as_mut() else {
            return Ok(());
        };
        let wanted = sniff::HEAD_BYTES - head.len();
        head.extend_from_slice(&data[..wanted.min(data.len())]);
        match head.len() == sniff::HEAD_BYTES {
            true => self.check_head(),
            false => Ok(()),
        }
    }

    /// Runs the kind check on the head gathered so far (once).
    fn check_head(&mut self) -> Result<(), Refusal> {
        match self.head.take() {
            Some((kind, head)) => sniff::check(kind, &head, None, self.size),
            None => Ok(()),
        }
    }
}

use crate::storage::digest::hash_zeros;

/// Splits a sparse upload's byte stream into extents, whatever the frame boundaries.
pub struct Extents {
    size: u64,
    header: Vec<u8>,
    /// The current extent's next offset and the data bytes it still has.
    current: Option<(u64, u64)>,
    /// Where the previous extent ended.
    end: u64,
}

impl Extents {
    /// A parser for the extents of a file of `size` bytes.
    pub fn new(size: u64) -> Extents {
        Extents {
            size,
            header: Vec::with_capacity(ExtentHeader::BYTES),
            current: None,
            end: 0,
        }
    }

    /// Writes what `data` carries to `sink`.
    pub async fn feed(&mut self, mut data: &[u8], sink: &mut Sink) -> Result<(), BodyError> {
        while !data.is_empty() {
            match self.current {
                Some((offset, left)) => {
                    let n = left.min(data.len() as u64) as usize;
                    sink.write_at(offset, &data[..n]).await?;
                    self.current = (left > n as u64).then(|| (offset + n as u64, left - n as u64));
                    data = &data[n..];
                }
                None => {
                    let n = (ExtentHeader::BYTES - self.header.len()).min(data.len());
                    self.header.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    self.start_extent()?;
                }
            }
        }
        Ok(())
    }

    /// Starts the extent whose header is complete, checking it against the rules.
    fn start_extent(&mut self) -> Result<(), BodyError> {
        let Ok(bytes) = <[u8; ExtentHeader::BYTES]>::try_from(self.header.as_slice()) else {
            return Ok(());
        };
        self.header.clear();
        let h = ExtentHeader::decode(&bytes);
        let end = h.offset.checked_add(h.length);
        if h.length == 0 || h.offset < self.end || end.is_none_or(|e| e > self.size) {
            return Err(BodyError::Framing(format!(
                "extent at {} of {} bytes is empty, overlaps or ends past the file's {} bytes",
                h.offset, h.length, self.size
            )));
        }
        self.end = end.unwrap_or(self.size);
        self.current = Some((h.offset, h.length));
        Ok(())
    }

    /// Whether the stream ended between extents.
    pub fn complete(&self) -> bool {
        self.header.is_empty() && self.current.is_none()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    async fn sink_in(dir: &tempfile::TempDir, size: u64, kind: Option<UploadKind>) -> Sink {
        let file = tokio::fs::File::create(dir.path().join("f"))
            .await
            .expect("create");
        Sink::new(file, size, kind, true)
    }

    fn stream(extents: &[(u64, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (offset, data) in extents {
            let length = data.len() as u64;
            out.extend_from_slice(
                &ExtentHeader {
                    offset: *offset,
                    length,
                }
                .encode(),
            );
            out.extend_from_slice(data);
        }
        out
    }

    #[tokio::test]
    async fn extents_land_at_their_offsets_and_the_hash_is_the_whole_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let size = 64 << 20;
        let mut sink = sink_in(&dir, size, Some(UploadKind::Disk)).await;
        let wire = stream(&[(4096, b"abc"), (32 << 20, &[7u8; 5000])]);
        let mut parser = Extents::new(size);
        for piece in wire.chunks(7) {
            parser.feed(piece, &mut sink).await.expect("feed");
        }
        assert!(parser.complete());
        let sha = sink.finish().await.expect("finish").expect("hashed");
        let mut logical = vec![0u8; size as usize];
        logical[4096..4099].copy_from_slice(b"abc");
        logical[32 << 20..(32 << 20) + 5000].fill(7);
        assert_eq!(sha, hex(&Sha256::digest(&logical)));
        let meta = std::fs::metadata(dir.path().join("f")).expect("meta");
        assert_eq!(meta.len(), size);
        assert!(meta.blocks() * 512 < 1 << 20, "{} blocks", meta.blocks());
        assert_eq!(std::fs::read(dir.path().join("f")).expect("read"), logical);
    }

    #[tokio::test]
    async fn overlapping_or_overlong_extents_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        for bad in [
            stream(&[(100, b"abcd"), (102, b"x")]),
            stream(&[(1000, b"abcd")]),
            stream(&[(0, b"")]),
        ] {
            let mut sink = sink_in(&dir, 1002, None).await;
            let err = Extents::new(1002).feed(&bad, &mut sink).await;
            assert!(matches!(err, Err(BodyError::Framing(_))), "{err:?}");
        }
    }

    #[tokio::test]
    async fn a_wrong_kind_is_refused_once_the_head_is_in() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sink = sink_in(&dir, 1 << 30, Some(UploadKind::Iso)).await;
        let mut qcow2 = vec![0u8; 4096];
        qcow2[..4].copy_from_slice(b"QFI\xfb");
        sink.write_at(0, &qcow2).await.expect("not decided yet");
        let err = sink.write_at(4096, &[0u8; sniff::HEAD_BYTES]).await;
        assert!(
            matches!(err, Err(BodyError::Refused(Refusal::NotIso(_)))),
            "{err:?}"
        );
    }
}
