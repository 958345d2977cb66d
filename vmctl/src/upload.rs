//! Streaming an image file to the daemon: `PUT /v1/uploads` over HTTP/1.1 on the Unix socket.
//!
//! vmctl opens the file itself (the daemon never opens client paths) and sends it in 256 KiB
//! chunks with a `content-length`, never holding it in memory. The daemon answers 201 with a
//! [`vm_proto::types::Upload`] JSON body, or 4xx/5xx with `{"error": {"code", "message", "data"}}`
//! decoded into the same [`vm_proto::ApiError`] as JSON-RPC errors ([`crate::http`]).

use std::path::Path;

use futures::TryStreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response};
use indicatif::ProgressBar;
use tokio_util::io::ReaderStream;
use vm_proto::types::Upload;

use crate::client::Credential;
use crate::error::CliError;
use crate::http::{chain, decode_error, round_trip};

/// The prefix of upload failures.
const FAILED: &str = "upload failed";

/// Bytes read from the file per body frame.
const CHUNK: usize = 256 * 1024;

/// An opened, regular file ready to upload.
pub struct Source {
    file: tokio::fs::File,
    /// Its size in bytes (the `content-length`).
    pub size: u64,
}

/// Opens `path` for upload. Unreadable or non-regular files are invalid arguments (exit 6).
pub async fn open(path: &Path) -> Result<Source, CliError> {
    let unreadable =
        |err: std::io::Error| CliError::invalid(format!("cannot read {}: {err}", path.display()));
    let file = tokio::fs::File::open(path).await.map_err(unreadable)?;
    let meta = file.metadata().await.map_err(unreadable)?;
    if !meta.is_file() {
        return Err(CliError::invalid(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(Source {
        file,
        size: meta.len(),
    })
}

/// Uploads `source` to the daemon at `socket` as `token`'s user, advancing `bar` as bytes
/// are sent.
pub async fn send(
    socket: &Path,
    token: Option<&Credential>,
    source: Source,
    bar: ProgressBar,
) -> Result<Upload, CliError> {
    let size = source.size;
    let chunks = ReaderStream::with_capacity(source.file, CHUNK)
        .inspect_ok(move |chunk| bar.inc(chunk.len() as u64))
        .map_ok(Frame::data);
    let request = Request::builder()
        .method(Method::PUT)
        .uri(vm_proto::UPLOAD_PATH)
        .header(hyper::header::HOST, "localhost")
        .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
        .header(hyper::header::CONTENT_LENGTH, size)
        .body(StreamBody::new(chunks))
        .map_err(|err| CliError::Protocol(format!("cannot build the upload request: {err}")))?;
    let response = round_trip(socket, token, request, FAILED).await?;
    decode(response).await
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
        let missing = open(&dir.path().join("nope")).await.err().expect("missing");
        assert_eq!(missing.exit_code(), 6);
        assert!(missing.to_string().starts_with("cannot read "), "{missing}");
        let dir_err = open(dir.path()).await.err().expect("a directory");
        assert!(
            dir_err.to_string().ends_with("is not a regular file"),
            "{dir_err}"
        );
        let mut file = tempfile::NamedTempFile::new().expect("file");
        file.write_all(b"abc").expect("write");
        assert_eq!(open(file.path()).await.expect("opens").size, 3);
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
        std::fs::write(&path, vec![7u8; CHUNK * 3 + 5]).expect("write");
        let bar = ProgressBar::hidden();
        let token = Credential::new(Some("up".into()));
        let source = open(&path).await.expect("open");
        let upload = send(&socket, token.as_ref(), source, bar.clone())
            .await
            .expect("upload");
        assert_eq!(upload.size_bytes, (CHUNK * 3 + 5) as u64);
        assert_eq!(bar.position(), upload.size_bytes);
        server.await.expect("server");
    }
}
