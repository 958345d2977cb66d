//! `POST /isos?name=NAME` and `POST /images?name=NAME`: the raw file is the request body
//! (`Content-Length` required, no multipart), streamed to vmd's `PUT /v1/uploads` with the
//! caller's credential ([`crate::upload`]), then imported with `iso.import` / `image.import`.
//!
//! These routes sit outside the 1 MiB body limit and the 60 s timeout of the JSON routes (a
//! large file takes longer): their limit is [`UPLOAD_LIMIT`], checked against
//! `Content-Length` before a byte is read; the body is never buffered. vmd decides who may
//! upload (admins) and refuses what it does not accept.

use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use vm_proto::api::VmdApiClient;
use vm_proto::types::{Image, ImageImport, Iso, IsoImport, Upload};
use vm_proto::ErrorCode;

use super::Query;
use crate::auth::Credential;
use crate::error::WebError;
use crate::upload;
use crate::vmd::Vmd;

/// The largest upload accepted (vmd's default `max_upload_bytes`; vmd enforces its own).
pub const UPLOAD_LIMIT: u64 = 100 << 30;

type Created<T> = Result<(StatusCode, Json<T>), WebError>;

/// The routes of this module (full paths: they are merged beside the JSON routes).
pub fn routes() -> Router<Vmd> {
    Router::new()
        .route("/api/v1/isos", post(iso))
        .route("/api/v1/images", post(image))
}

/// `?name=NAME`: the name to import under.
#[derive(Deserialize)]
struct Named {
    name: String,
}

async fn iso(State(vmd): State<Vmd>, Query(q): Query<Named>, request: Request) -> Created<Iso> {
    let (token, upload) = receive(&vmd, request).await?;
    let rpc = vmd.connect(Some(&token)).await?;
    let params = IsoImport {
        name: q.name,
        upload_id: upload.upload_id,
    };
    Ok((StatusCode::CREATED, Json(rpc.iso_import(params).await?)))
}

async fn image(State(vmd): State<Vmd>, Query(q): Query<Named>, request: Request) -> Created<Image> {
    let (token, upload) = receive(&vmd, request).await?;
    let rpc = vmd.connect(Some(&token)).await?;
    let params = ImageImport {
        name: q.name,
        upload_id: upload.upload_id,
    };
    Ok((StatusCode::CREATED, Json(rpc.image_import(params).await?)))
}

/// Streams the request body to vmd; returns the caller's token and vmd's upload.
async fn receive(vmd: &Vmd, request: Request) -> Result<(String, Upload), WebError> {
    let token = Credential::require(request.headers())?.token().to_string();
    let length = content_length(request.headers())?;
    let upload = upload::send(vmd, &token, length, request.into_body()).await?;
    Ok((token, upload))
}

/// The request's `Content-Length`, required and at most [`UPLOAD_LIMIT`].
fn content_length(headers: &HeaderMap) -> Result<u64, WebError> {
    let length = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            WebError::new(ErrorCode::InvalidArgument, "content-length is required")
                .hint("send the raw file as the body, not chunked or multipart")
        })?;
    if length > UPLOAD_LIMIT {
        return Err(WebError::new(
            ErrorCode::InvalidArgument,
            format!("the upload is larger than {UPLOAD_LIMIT} bytes"),
        ));
    }
    Ok(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_is_required_and_bounded() {
        let mut headers = HeaderMap::new();
        assert!(content_length(&headers).is_err());
        headers.insert(CONTENT_LENGTH, "42".parse().expect("value"));
        assert_eq!(content_length(&headers).expect("ok"), 42);
        let over = (UPLOAD_LIMIT + 1).to_string();
        headers.insert(CONTENT_LENGTH, over.parse().expect("value"));
        assert!(content_length(&headers).is_err());
    }
}
