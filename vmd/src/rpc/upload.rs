//! `PUT /v1/uploads`: streams a request body into `uploads/`, hashing it on the way, and
//! registers it for the uploader's uid. The daemon writes only its own file; it never opens a
//! client-named path.
//!
//! The query may declare the kind (`?kind=iso|disk`): the first bytes are then checked with
//! [`vm_proto::sniff`] as soon as they are in, and a wrong file is refused at once (after at
//! most [`vm_proto::sniff::HEAD_BYTES`] of it), closing the connection. `?sparse=SIZE` makes the
//! body an extent stream of a sparse file ([`vm_proto::upload`], [`super::upload_body`]).
//!
//! Space: before reading the body, an upload reserves twice its declared length in the
//! manager's space ledger (the staged bytes, then what an import converts them into), and a
//! request that does not fit beside the uploads already in flight gets 507 at once. The
//! reservation shrinks as bytes land on disk, moves into the staged upload once complete
//! (holding room for the import), and is released at once if the upload fails or the client
//! goes away, together with the partial file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, StatusCode};
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use vm_proto::names::format_size;
use vm_proto::sniff::UploadKind;
use vm_proto::types::Upload;
use vm_proto::upload;
use vm_proto::{ApiError, ErrorCode};

use super::upload_body::{BodyError, Extents, Sink};
use super::Identity;
use crate::auth::Subject;
use crate::manager::ledger::Reservation;
use crate::manager::uploads::{Digest, StagedUpload};
use crate::manager::Manager;
use crate::storage;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Answers one upload request.
pub async fn handle(
    manager: &Manager,
    who: Identity,
    req: HttpRequest<Incoming>,
    max_bytes: u64,
    idle: std::time::Duration,
) -> HttpResponse {
    manager.uploads().expire();
    let subject = match who.subject().and_then(|s| {
        manager.may_upload(s).map_err(ApiError::from)?;
        Ok(s.clone())
    }) {
        Ok(s) => s,
        Err(err) => return error_response(status_of(&err), &err),
    };
    match receive(manager, &subject, req, (max_bytes, idle)).await {
        Ok(upload) => json(StatusCode::CREATED, &upload),
        Err((status, err)) => closing(error_response(status, &err)),
    }
}

/// `response` with `connection: close`: after a refusal the rest of the body is not read.
fn closing(mut response: HttpResponse) -> HttpResponse {
    response.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    response
}

type Failure = (StatusCode, ApiError);

/// The response when the JSON-RPC service could not take the request at all: its body could
/// not be read (cut short, or broken chunked framing). That is the client's doing, so it is a
/// 400, logged at debug only (a client must not be able to flood the log with it).
pub fn failed(err: &(dyn std::error::Error + Send + Sync)) -> HttpResponse {
    tracing::debug!(error = %err, "request body could not be read");
    let err = ApiError::new(
        ErrorCode::InvalidArgument,
        format!("cannot read the request body: {err}"),
    )
    .with_hint("send a complete body with a matching content-length");
    error_response(StatusCode::BAD_REQUEST, &err)
}

/// The HTTP status matching an API error's kind.
pub fn status_of(err: &ApiError) -> StatusCode {
    StatusCode::from_u16(err.kind().code() as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
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
    caller: &Subject,
    req: HttpRequest<Incoming>,
    (max, idle): (u64, std::time::Duration),
) -> Result<Upload, Failure> {
    if req.method() != Method::PUT && req.method() != Method::POST {
        return Err(invalid(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed here", req.method()),
            "use PUT",
        ));
    }
    let shape = Shape::of(&req)?;
    let length = checked_length(&req, max)?;
    let size = shape.sparse.unwrap_or(length);
    if size > max {
        return Err(too_large(size, max));
    }
    let reservation = reserve(manager, length)?;
    let id = format!(
        "{:x}-{:x}-{:x}",
        std::process::id(),
        now_nanos(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut in_flight = InFlight {
        path: manager.storage().uploads_dir().join(&id),
        length,
        reservation: Some(reservation),
    };
    let sha256 = write_body(&mut in_flight, req.into_body(), shape, idle).await?;
    let digest = match sha256 {
        Some(hex) => Digest::Ready(hex),
        None => Digest::spawn(open_staged(&in_flight.path)?),
    };
    let (path, reservation) = in_flight.staged();
    let sha256 = digest.known();
    let staged = StagedUpload::new(caller.user_id, path, size, digest, reservation);
    manager.uploads().insert(id.clone(), staged);
    tracing::debug!(upload = %id, user = %caller.name, size_bytes = size, wire_bytes = length, "upload staged");
    Ok(Upload {
        upload_id: id,
        size_bytes: size,
        sha256_pending: sha256.is_none(),
        sha256: sha256.unwrap_or_default(),
    })
}

/// The staged file, opened for its background digest.
fn open_staged(path: &std::path::Path) -> Result<std::fs::File, Failure> {
    std::fs::File::open(path).map_err(|e| body_failure(e.into()))
}

/// The declared length, if there is one within `max`.
fn checked_length(req: &HttpRequest<Incoming>, max: u64) -> Result<u64, Failure> {
    let length = content_length(req).ok_or_else(|| {
        invalid(
            StatusCode::LENGTH_REQUIRED,
            "content-length is required".into(),
            "send the file with its size (curl -T FILE)",
        )
    })?;
    if length > max {
        return Err(too_large(length, max));
    }
    Ok(length)
}

fn too_large(length: u64, max: u64) -> Failure {
    let msg = format!(
        "upload of {} exceeds the limit of {}",
        format_size(length),
        format_size(max)
    );
    invalid(
        StatusCode::PAYLOAD_TOO_LARGE,
        msg,
        "raise max_upload_bytes in the vmd config",
    )
}

/// What the query says about the body: the declared kind, and the logical size if the body
/// is a sparse extent stream ([`vm_proto::upload`]).
#[derive(Debug, Clone, Copy, Default)]
struct Shape {
    kind: Option<UploadKind>,
    sparse: Option<u64>,
}

impl Shape {
    fn of(req: &HttpRequest<Incoming>) -> Result<Shape, Failure> {
        let mut shape = Shape::default();
        for pair in req.uri().query().unwrap_or_default().split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                upload::KIND_PARAM => shape.kind = Some(value.parse().map_err(bad_query)?),
                upload::SPARSE_PARAM => {
                    let size = value.parse().map_err(|_| {
                        bad_query(format!("sparse={value:?} is not a size in bytes"))
                    })?;
                    shape.sparse = Some(size);
                }
                "" => {}
                other => return Err(bad_query(format!("unknown query parameter {other:?}"))),
            }
        }
        Ok(shape)
    }
}

fn bad_query(msg: String) -> Failure {
    invalid(
        StatusCode::BAD_REQUEST,
        msg,
        "see the upload section of docs/api.md",
    )
}

/// Reserves twice `length` (the staged bytes, then what an import converts them into), or
/// refuses with 507 saying how much other uploads in flight hold.
fn reserve(manager: &Manager, length: u64) -> Result<Reservation, Failure> {
    manager
        .space_ledger()
        .reserve_keeping(length.saturating_mul(2), manager.min_free_bytes())
        .map_err(|refused| {
            tracing::debug!(size_bytes = length, free_bytes = refused.free, reserved_bytes = refused.reserved, "upload refused: no space");
            let msg = format!(
                "not enough space: a {} upload needs twice that; {} free, of which {} is reserved by uploads in flight",
                format_size(length),
                format_size(refused.free),
                format_size(refused.reserved)
            );
            let hint = "free space in the state directory, or retry when other uploads finish (vmd also keeps min_free_bytes free)";
            let err = ApiError::new(ErrorCode::NoSpace, msg).with_hint(hint);
            (StatusCode::INSUFFICIENT_STORAGE, err)
        })
}

/// An upload being received: its partial file and its reservation. Dropped before it is
/// staged (failure, disconnect, or the request future dropped), it releases the space and
/// removes the file at once.
struct InFlight {
    path: PathBuf,
    length: u64,
    reservation: Option<Reservation>,
}

impl InFlight {
    /// `on_disk` bytes are written: the file system's free space counts them now, so the
    /// reservation shrinks to what is still to come (the rest of the body, then the import).
    fn landed(&mut self, on_disk: u64) {
        let to_come = self.length.saturating_mul(2).saturating_sub(on_disk);
        if let Some(r) = self.reservation.as_mut() {
            r.shrink_to(to_come);
        }
    }

    /// The body is on disk: keeps room for the import and hands over file and reservation.
    fn staged(mut self) -> (PathBuf, Reservation) {
        self.landed(self.length);
        let reservation = self.reservation.take().expect("reserved until staged");
        (std::mem::take(&mut self.path), reservation)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(reservation) = self.reservation.take() {
            // Released first: until the unlink the partial file still counts against the
            // free space, so the ledger errs on the safe side.
            drop(reservation);
            storage::remove_quietly(&self.path);
        }
    }
}

async fn write_body(
    upload: &mut InFlight,
    mut body: Incoming,
    shape: Shape,
    idle: std::time::Duration,
) -> Result<Option<String>, Failure> {
    let file = tokio::fs::File::create(&upload.path)
        .await
        .map_err(|e| body_failure(e.into()))?;
    // A sparse body is hashed from the staged file afterwards, not while it arrives.
    let size = shape.sparse.unwrap_or(upload.length);
    let mut sink = Sink::new(file, size, shape.kind, shape.sparse.is_none());
    let mut extents = shape.sparse.map(Extents::new);
    let mut received: u64 = 0;
    while let Some(frame) = next_frame(&mut body, idle).await? {
        let frame = frame.map_err(|e| {
            invalid(
                StatusCode::BAD_REQUEST,
                format!("upload interrupted: {e}"),
                "retry the upload",
            )
        })?;
        if let Ok(data) = frame.into_data() {
            match extents.as_mut() {
                Some(parser) => parser.feed(&data, &mut sink).await,
                None => sink.write_at(received, &data).await,
            }
            .map_err(body_failure)?;
            received += data.len() as u64;
            upload.landed(received.saturating_sub(sink.buffered()));
        }
    }
    let length = upload.length;
    let cut = extents.as_ref().is_some_and(|p| !p.complete());
    if received != length || cut {
        let msg = format!("upload ended after {received} of {length} bytes");
        return Err(invalid(StatusCode::BAD_REQUEST, msg, "retry the upload"));
    }
    sink.finish().await.map_err(body_failure)
}

/// The response for a body that was refused or could not be written. A refusal closes the
/// connection (`connection: close`), so the rest of the body is never read.
fn body_failure(err: BodyError) -> Failure {
    match err {
        BodyError::Refused(refusal) => {
            tracing::debug!(error = %refusal, "upload refused on its first bytes");
            invalid(StatusCode::BAD_REQUEST, refusal.to_string(), refusal.hint())
        }
        BodyError::Framing(_) => invalid(
            StatusCode::BAD_REQUEST,
            err.to_string(),
            "see the upload section of docs/api.md",
        ),
        BodyError::Io(io) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::from_error(ErrorCode::Internal, &io),
        ),
    }
}

/// The next piece of the body; an upload that sends nothing for `idle` is dropped (its space
/// reservation and partial file go with it): a stalled client must not hold them forever.
async fn next_frame(
    body: &mut Incoming,
    idle: std::time::Duration,
) -> Result<Option<Result<hyper::body::Frame<hyper::body::Bytes>, hyper::Error>>, Failure> {
    tokio::time::timeout(idle, body.frame()).await.map_err(|_| {
        invalid(
            StatusCode::REQUEST_TIMEOUT,
            format!("upload stalled: no data for {} s", idle.as_secs()),
            "retry the upload (upload_idle_secs in the vmd config)",
        )
    })
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

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
