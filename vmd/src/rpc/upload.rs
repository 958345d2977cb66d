//! `PUT /v1/uploads`: streams a request body into `uploads/`, hashing it on the way, and
//! registers it for the uploader's uid. The daemon writes only its own file; it never opens a
//! client-named path.

use std::sync::atomic::{AtomicU64, Ordering};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, StatusCode};
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use vm_proto::names::format_size;
use vm_proto::types::Upload;
use vm_proto::{ApiError, ErrorCode};

use super::Caller;
use crate::manager::Manager;
use crate::storage;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Answers one upload request.
pub async fn handle(
    manager: &Manager,
    caller: Caller,
    req: HttpRequest<Incoming>,
    max_bytes: u64,
) -> HttpResponse {
    manager.uploads().expire();
    match receive(manager, caller, req, max_bytes).await {
        Ok(upload) => json(StatusCode::CREATED, &upload),
        Err((status, err)) => error_response(status, &err),
    }
}

type Failure = (StatusCode, ApiError);

/// A 500 response for a failure of the JSON-RPC service itself (not of a method).
pub fn failed(err: &(dyn std::error::Error + Send + Sync)) -> HttpResponse {
    tracing::warn!(error = %err, "request failed in the transport");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        &ApiError::new(ErrorCode::Internal, err.to_string()),
    )
}

/// An error response in the shape every non-JSON-RPC endpoint uses.
pub fn error_response(status: StatusCode, err: &ApiError) -> HttpResponse {
    let body = serde_json::json!({"error": {"code": err.kind().code(), "message": err.message(), "data": err.data}});
    json(status, &body)
}

fn invalid(status: StatusCode, message: String, hint: &str) -> Failure {
    (
        status,
        ApiError::new(ErrorCode::InvalidArgument, message).with_hint(hint),
    )
}

async fn receive(
    manager: &Manager,
    caller: Caller,
    req: HttpRequest<Incoming>,
    max: u64,
) -> Result<Upload, Failure> {
    if req.method() != Method::PUT && req.method() != Method::POST {
        return Err(invalid(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed here", req.method()),
            "use PUT",
        ));
    }
    let length = content_length(&req).ok_or_else(|| {
        invalid(
            StatusCode::LENGTH_REQUIRED,
            "content-length is required".into(),
            "send the file with its size (curl -T FILE)",
        )
    })?;
    if length > max {
        let msg = format!(
            "upload of {} exceeds the limit of {}",
            format_size(length),
            format_size(max)
        );
        return Err(invalid(
            StatusCode::PAYLOAD_TOO_LARGE,
            msg,
            "raise max_upload_bytes in the vmd config",
        ));
    }
    let free = storage::free_bytes(manager.storage().uploads_dir());
    if length.saturating_mul(2) > free {
        let msg = format!(
            "not enough space: {} upload needs twice that, {} free",
            format_size(length),
            format_size(free)
        );
        return Err((
            StatusCode::INSUFFICIENT_STORAGE,
            ApiError::new(ErrorCode::Internal, msg).with_hint("free space in the state directory"),
        ));
    }
    let id = format!(
        "{:x}-{:x}-{:x}",
        std::process::id(),
        now_nanos(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let path = manager.storage().uploads_dir().join(&id);
    match write_body(&path, req.into_body(), length).await {
        Ok(sha256) => {
            manager
                .uploads()
                .insert(id.clone(), caller.uid, path, length, sha256.clone());
            tracing::debug!(upload = %id, uid = caller.uid, size_bytes = length, "upload staged");
            Ok(Upload {
                upload_id: id,
                size_bytes: length,
                sha256,
            })
        }
        Err(failure) => {
            storage::remove_quietly(&path);
            Err(failure)
        }
    }
}

async fn write_body(
    path: &std::path::Path,
    mut body: Incoming,
    length: u64,
) -> Result<String, Failure> {
    let internal = |e: std::io::Error| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::from_error(ErrorCode::Internal, &e),
        )
    };
    let file = tokio::fs::File::create(path).await.map_err(internal)?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            invalid(
                StatusCode::BAD_REQUEST,
                format!("upload interrupted: {e}"),
                "retry the upload",
            )
        })?;
        if let Ok(data) = frame.into_data() {
            received += data.len() as u64;
            hasher.update(&data);
            out.write_all(&data).await.map_err(internal)?;
        }
    }
    if received != length {
        let msg = format!("upload ended after {received} of {length} bytes");
        return Err(invalid(StatusCode::BAD_REQUEST, msg, "retry the upload"));
    }
    out.flush().await.map_err(internal)?;
    Ok(hex(&hasher.finalize()))
}

fn content_length(req: &HttpRequest<Incoming>) -> Option<u64> {
    req.headers()
        .get(hyper::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

pub(super) fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> HttpResponse {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    let mut resp = HttpResponse::new(HttpBody::from(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
