//! Streaming an image file to the daemon: `PUT /v1/uploads` over HTTP/1.1 on the Unix socket.
//!
//! vmctl opens the file itself (the daemon never opens client paths), checks its first and last
//! bytes against the declared kind with [`vm_proto::sniff`] (the daemon's own rules) before it
//! connects, and sends it in 256 KiB chunks with a `content-length`, never holding it in
//! memory. A file with holes (`SEEK_DATA`/`SEEK_HOLE`) is sent as its data extents only
//! (`?sparse=SIZE`, [`vm_proto::upload`]); the daemon writes it sparse. The daemon answers 201 with a
//! [`vm_proto::types::Upload`] JSON body, or 4xx/5xx with `{"error": {"code", "message", "data"}}`
//! decoded into the same [`vm_proto::ApiError`] as JSON-RPC errors ([`crate::http`]).

use std::collections::VecDeque;
use std::io::SeekFrom;
use std::os::unix::fs::FileExt;
use std::path::Path;

use futures::TryStreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Method, Request, Response};
use indicatif::ProgressBar;
use nix::errno::Errno;
use nix::unistd::{lseek, Whence};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use vm_proto::sniff::{self, UploadKind};
use vm_proto::types::Upload;
use vm_proto::upload::{ExtentHeader, KIND_PARAM, SPARSE_PARAM};
use vm_proto::{ApiError, ErrorCode};

use crate::client::Credential;
use crate::error::CliError;
use crate::http::{chain, decode_error, round_trip};

/// The prefix of upload failures.
const FAILED: &str = "upload failed";

/// Bytes read from the file per body frame.
const CHUNK: u64 = 256 * 1024;

/// An opened, regular file ready to upload, checked to be of its kind.
pub struct Source {
    file: tokio::fs::File,
    kind: UploadKind,
    /// Its size in bytes.
    pub size: u64,
    /// Its data extents (offset, length) when it has holes; `None` sends it whole.
    extents: Option<Vec<(u64, u64)>>,
}

impl Source {
    /// How many bytes of the file go on the wire (its data, without holes).
    pub fn data_bytes(&self) -> u64 {
        match &self.extents {
            Some(extents) => extents.iter().map(|(_, len)| len).sum(),
            None => self.size,
        }
    }
}

impl Source {
    /// Sends the file whole, holes included (for a daemon without sparse uploads).
    pub fn send_whole(&mut self) {
        self.extents = None;
    }
}

/// Whether a daemon of `api_version` takes sparse uploads (2.4 and later 2.x, any later major).
pub fn knows_sparse(api_version: &str) -> bool {
    let mut parts = api_version
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    major > 2 || (major == 2 && minor >= 4)
}

/// Opens `path` for upload as `kind`. Unreadable or non-regular files, and files whose first
/// (and last) bytes say they are not of `kind` ([`vm_proto::sniff`]), are invalid arguments
/// (exit 6), refused before a byte is sent.
pub async fn open(path: &Path, kind: UploadKind) -> Result<Source, CliError> {
    let unreadable =
        |err: std::io::Error| CliError::invalid(format!("cannot read {}: {err}", path.display()));
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(CliError::invalid(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let size = meta.len();
    sniff_file(&file, size, kind).map_err(|err| match err {
        Sniffed::Io(err) => unreadable(err),
        Sniffed::Refused(refusal) => ApiError::new(
            ErrorCode::InvalidArgument,
            format!("{}: {refusal}", path.display()),
        )
        .with_hint(refusal.hint())
        .into(),
    })?;
    let extents = data_extents(&file, size).map_err(unreadable)?;
    Ok(Source {
        file: tokio::fs::File::from_std(file),
        kind,
        size,
        extents,
    })
}

enum Sniffed {
    Io(std::io::Error),
    Refused(sniff::Refusal),
}

/// Reads the head and tail of `file` and checks them for `kind`.
fn sniff_file(file: &std::fs::File, size: u64, kind: UploadKind) -> Result<(), Sniffed> {
    let read = |offset: u64, len: usize| -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len.min(size.saturating_sub(offset) as usize)];
        file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    };
    let head = read(0, sniff::HEAD_BYTES).map_err(Sniffed::Io)?;
    let tail_at = size.saturating_sub(sniff::TAIL_BYTES as u64);
    let tail = read(tail_at, sniff::TAIL_BYTES).map_err(Sniffed::Io)?;
    sniff::check(kind, &head, Some(&tail), size).map_err(Sniffed::Refused)
}

/// The data extents of `file` (`SEEK_DATA`/`SEEK_HOLE`), or `None` when it has no holes (or
/// the file system cannot tell).
fn data_extents(file: &std::fs::File, size: u64) -> std::io::Result<Option<Vec<(u64, u64)>>> {
    let mut extents = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match lseek(file, pos as i64, Whence::SeekData) {
            Ok(start) => start as u64,
            Err(Errno::ENXIO) => break,
            Err(Errno::EINVAL) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let end = (lseek(file, start as i64, Whence::SeekHole)? as u64).min(size);
        extents.push((start, end - start));
        pos = end;
    }
    let data: u64 = extents.iter().map(|(_, len)| len).sum();
    Ok((data < size).then_some(extents))
}

/// Uploads `source` to the daemon at `socket` as `token`'s user, advancing `bar` as data
/// bytes are sent. A file with holes goes as an extent stream (`?sparse=SIZE`).
pub async fn send(
    socket: &Path,
    token: Option<&Credential>,
    source: Source,
    bar: ProgressBar,
) -> Result<Upload, CliError> {
    let mut uri = format!(
        "{}?{KIND_PARAM}={}",
        vm_proto::UPLOAD_PATH,
        source.kind.as_str()
    );
    let framed = source.extents.is_some();
    if framed {
        uri.push_str(&format!("&{SPARSE_PARAM}={}", source.size));
    }
    let extents = source.extents.unwrap_or_else(|| vec![(0, source.size)]);
    let wire: u64 = extents.iter().map(|(_, len)| len).sum::<u64>()
        + if framed {
            extents.len() as u64 * ExtentHeader::BYTES as u64
        } else {
            0
        };
    let reader = Reader {
        file: source.file,
        extents: extents.into(),
        framed,
        left: 0,
        bar,
    };
    let chunks = futures::stream::try_unfold(reader, Reader::next).map_ok(Frame::data);
    let request = Request::builder()
        .method(Method::PUT)
        .uri(uri)
        .header(hyper::header::HOST, "localhost")
        .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
        .header(hyper::header::CONTENT_LENGTH, wire)
        .body(StreamBody::new(chunks))
        .map_err(|err| CliError::Protocol(format!("cannot build the upload request: {err}")))?;
    let response = round_trip(socket, token, request, FAILED).await?;
    decode(response).await
}

/// Reads the extents of the file in [`CHUNK`]s, each preceded by its header when `framed`.
struct Reader {
    file: tokio::fs::File,
    extents: VecDeque<(u64, u64)>,
    framed: bool,
    /// Data bytes of the current extent still to read.
    left: u64,
    bar: ProgressBar,
}

impl Reader {
    /// The next piece of the body, or `None` at the end.
    async fn next(mut self) -> std::io::Result<Option<(Bytes, Reader)>> {
        if self.left == 0 {
            let Some((offset, length)) = self.extents.pop_front() else {
                return Ok(None);
            };
            self.file.seek(SeekFrom::Start(offset)).await?;
            self.left = length;
            if self.framed {
                let header = ExtentHeader { offset, length }.encode();
                return Ok(Some((Bytes::copy_from_slice(&header), self)));
            }
        }
        let mut buf = vec![0u8; self.left.min(CHUNK) as usize];
        self.file.read_exact(&mut buf).await?;
        self.left -= buf.len() as u64;
        self.bar.inc(buf.len() as u64);
        Ok(Some((Bytes::from(buf), self)))
    }
}

/// Reads the daemon's answer: an [`Upload`] on success, its error otherwise.
async fn decode(response: Response<Incoming>) -> Result<Upload, CliError> {
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|err| {
        CliError::Protocol(format!(
            "upload failed: cannot read the reply: {}",
            chain(&err)
        ))
    })?;
    let body = body.to_bytes();
    if status.is_success() {
        return serde_json::from_slice(&body).map_err(|err| {
            CliError::Protocol(format!("upload failed: unexpected reply from vmd: {err}"))
        });
    }
    Err(decode_error(FAILED, status, &body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;
    use hyper_util::rt::TokioIo;
    use std::io::Write;

    #[tokio::test]
    async fn open_rejects_missing_and_non_regular_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = open(&dir.path().join("nope"), UploadKind::Disk)
            .await
            .err()
            .expect("missing");
        assert_eq!(missing.exit_code(), 6);
        assert!(missing.to_string().starts_with("cannot read "), "{missing}");
        let dir_err = open(dir.path(), UploadKind::Iso)
            .await
            .err()
            .expect("a directory");
        assert!(
            dir_err.to_string().ends_with("is not a regular file"),
            "{dir_err}"
        );
        let mut file = tempfile::NamedTempFile::new().expect("file");
        file.write_all(&mbr_disk(512)).expect("write");
        let source = open(file.path(), UploadKind::Disk).await.expect("opens");
        assert_eq!((source.size, source.data_bytes()), (512, 512));
    }

    /// `len` bytes of 7s with an MBR boot signature: a raw disk.
    fn mbr_disk(len: usize) -> Vec<u8> {
        let mut disk = vec![7u8; len];
        disk[510..512].copy_from_slice(&[0x55, 0xaa]);
        disk
    }

    #[tokio::test]
    async fn wrong_kinds_are_refused_naming_what_was_expected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let iso_path = dir.path().join("cd.iso");
        let mut iso = vec![0u8; 64 << 10];
        iso[32769..32774].copy_from_slice(b"CD001");
        std::fs::write(&iso_path, &iso).expect("write");
        let err = open(&iso_path, UploadKind::Disk)
            .await
            .err()
            .expect("an iso");
        assert_eq!(err.exit_code(), 6);
        assert!(err.to_string().contains("this is an ISO"), "{err}");
        assert!(err.hint().is_some_and(|h| h.contains("vmctl iso upload")));
        let qcow2_path = dir.path().join("disk.qcow2");
        let mut qcow2 = vec![0u8; 64 << 10];
        qcow2[..4].copy_from_slice(b"QFI\xfb");
        std::fs::write(&qcow2_path, &qcow2).expect("write");
        let err = open(&qcow2_path, UploadKind::Iso)
            .await
            .err()
            .expect("a disk");
        assert!(err.to_string().contains("this is not an ISO"), "{err}");
        let hint = err.hint().expect("hint");
        assert!(
            hint.contains("image import") && !hint.contains("qemu-img"),
            "{hint}"
        );
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "hello\n").expect("write");
        let err = open(&text, UploadKind::Disk).await.err().expect("text");
        assert!(
            err.to_string().contains("not a recognised disk image"),
            "{err}"
        );
    }

    #[test]
    fn sparse_uploads_need_api_2_4() {
        assert!(!knows_sparse("2.3"));
        assert!(knows_sparse("2.4"));
        assert!(knows_sparse("2.10"));
        assert!(knows_sparse("3.0"));
        assert!(!knows_sparse("1.9"));
    }

    #[tokio::test]
    async fn holes_are_left_out_of_the_extents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sparse.raw");
        let file = std::fs::File::create(&path).expect("create");
        file.write_all_at(&mbr_disk(4096), 0).expect("head");
        file.write_all_at(&[9u8; 4096], 8 << 20).expect("middle");
        file.set_len(64 << 20).expect("size");
        let source = open(&path, UploadKind::Disk).await.expect("opens");
        assert_eq!(source.size, 64 << 20);
        assert_eq!(
            source.extents,
            Some(vec![(0, 4096), (8 << 20, 4096)]),
            "extents of a file with holes"
        );
    }

    /// A one-request HTTP server standing in for vmd: checks the request, hashes nothing.
    async fn fake_vmd(listener: tokio::net::UnixListener) {
        let (stream, _) = listener.accept().await.expect("accept");
        let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
            assert_eq!(req.method(), Method::PUT);
            assert_eq!(req.uri().path(), vm_proto::UPLOAD_PATH);
            assert_eq!(req.headers()[hyper::header::AUTHORIZATION], "Bearer up");
            let length = req.headers()["content-length"]
                .to_str()
                .expect("ascii")
                .to_string();
            let received = req.into_body().collect().await?.to_bytes().len();
            assert_eq!(length, received.to_string());
            let upload = Upload {
                upload_id: "u1".into(),
                size_bytes: received as u64,
                sha256: "ab".into(),
                sha256_pending: false,
            };
            let json = serde_json::to_vec(&upload).expect("json");
            let reply = Response::builder().status(StatusCode::CREATED);
            Ok::<_, hyper::Error>(
                reply
                    .body(http_body_util::Full::new(hyper::body::Bytes::from(json)))
                    .expect("reply"),
            )
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service);
        conn.await.expect("serve");
    }

    #[tokio::test]
    async fn send_streams_the_whole_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("vmd.sock");
        let server = tokio::spawn(fake_vmd(
            tokio::net::UnixListener::bind(&socket).expect("bind"),
        ));
        let path = dir.path().join("disk.raw");
        let len = CHUNK as usize * 3 + 512;
        std::fs::write(&path, mbr_disk(len)).expect("write");
        let bar = ProgressBar::hidden();
        let token = Credential::new(Some("up".into()));
        let source = open(&path, UploadKind::Disk).await.expect("open");
        let upload = send(&socket, token.as_ref(), source, bar.clone())
            .await
            .expect("upload");
        assert_eq!(upload.size_bytes, len as u64);
        assert_eq!(bar.position(), upload.size_bytes);
        server.await.expect("server");
    }
}
