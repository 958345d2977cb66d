//! `POST /isos?name=NAME` and `POST /images?name=NAME`: the raw file is the request body
//! (`Content-Length` required, no multipart), streamed to vmd's `PUT /v1/uploads` with the
//! caller's credential ([`crate::upload`]), then imported with `iso.import` / `image.import`
//! (which also takes `&os=FAMILY&description=TEXT`).
//!
//! `POST /images` with `Content-Type: application/json` is instead `image.create`: the body is
//! an [`ImageCreate`] (a blank base installed from an ISO by an install VM). Both make an image
//! at the collection's URL, so they share it and the media type tells them apart: a JSON
//! document is never a disk image vmd accepts, and an upload is never sent as JSON. That body
//! is read with axum's default JSON limit (2 MiB).
//!
//! These routes sit outside the 1 MiB body limit and the 60 s timeout of the JSON routes (a
//! large file takes longer): their limit is [`UPLOAD_LIMIT`], checked against
//! `Content-Length` before a byte is read; the body is never buffered. vmd decides who may
//! upload (admins) and refuses what it does not accept; the upload is declared `?kind=iso` or
//! `?kind=disk`, so a wrong file is refused on its first 48 KiB rather than after all of it.

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vm_proto::api::VmdApiClient;
use vm_proto::sniff::UploadKind;
use vm_proto::types::{Image, ImageCreate, ImageImport, Iso, IsoImport, OsFamily, Upload};
use vm_proto::ErrorCode;

use super::{Body, Query};
use crate::auth::{Credential, Rpc};
use crate::error::WebError;
use crate::openapi::Create;
use crate::upload;
use crate::vmd::Vmd;

/// The largest upload accepted (vmd's default `max_upload_bytes`; vmd enforces its own).
pub const UPLOAD_LIMIT: u64 = 100 << 30;

type Created<T> = Result<(StatusCode, Json<T>), WebError>;

/// The routes of this module (full paths: they are merged beside the JSON routes).
pub fn routes() -> OpenApiRouter<Vmd> {
    OpenApiRouter::new()
        .routes(routes!(iso))
        .routes(routes!(image))
}

/// `?name=NAME`: the name to import under.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Named {
    /// The new object's name.
    name: String,
}

/// `?name=NAME&os=FAMILY&description=TEXT`: the name to import an image under and what
/// people read about it (documented on the route: its query is optional with a JSON body).
#[derive(Deserialize)]
struct ImageQuery {
    /// The new image's name.
    name: String,
    /// OS family (default: guessed from the name).
    os: Option<OsFamily>,
    /// Free text for people, at most 200 characters on one line.
    description: Option<String>,
    /// Whether the OS runs cloud-init (default: detected).
    cloud_init: Option<bool>,
}

/// Uploads and imports an ISO (`iso.import`, admins).
#[utoipa::path(post, path = "/api/v1/isos", tag = "isos", params(Named),
    request_body(content_type = "application/octet-stream", description = "The ISO file"),
    responses((status = 201, body = Iso), Create))]
async fn iso(State(vmd): State<Vmd>, Query(q): Query<Named>, request: Request) -> Created<Iso> {
    let (token, upload) = receive(&vmd, UploadKind::Iso, request).await?;
    let rpc = vmd.connect(Some(&token)).await?;
    let params = IsoImport {
        name: q.name,
        upload_id: upload.upload_id,
    };
    Ok((StatusCode::CREATED, Json(rpc.iso_import(params).await?)))
}

/// With a JSON body, creates a blank base and its install VM from an ISO (`image.create`);
/// with any other, uploads and imports a disk image named by `?name=` (`image.import`, admins).
#[utoipa::path(post, path = "/api/v1/images", tag = "images",
    params(("name" = Option<String>, Query, description = "The image name, with a raw body"),
        ("os" = Option<OsFamily>, Query, description = "OS family, with a raw body (default: guessed from the name)"),
        ("description" = Option<String>, Query, description = "Free text, with a raw body"),
        ("cloud_init" = Option<bool>, Query, description = "Whether the OS runs cloud-init, with a raw body (default: detected)")),
    request_body(description = "An `ImageCreate`, or the raw disk image (qcow2, raw, vmdk…)",
        content((ImageCreate = "application/json"), ("application/octet-stream"))),
    responses((status = 201, body = Image), Create))]
async fn image(State(vmd): State<Vmd>, request: Request) -> Created<Image> {
    if is_json(request.headers()) {
        return create(&vmd, request).await;
    }
    let (mut parts, body) = request.into_parts();
    let Query(q) = Query::<ImageQuery>::from_request_parts(&mut parts, &vmd).await?;
    let (token, upload) = receive(&vmd, UploadKind::Disk, Request::from_parts(parts, body)).await?;
    let rpc = vmd.connect(Some(&token)).await?;
    let params = ImageImport {
        name: q.name,
        upload_id: upload.upload_id,
        os: q.os,
        description: q.description,
        cloud_init: q.cloud_init,
    };
    Ok((StatusCode::CREATED, Json(rpc.image_import(params).await?)))
}

/// `image.create` with the JSON body of `request`.
async fn create(vmd: &Vmd, request: Request) -> Created<Image> {
    let (mut parts, body) = request.into_parts();
    let rpc = Rpc::from_request_parts(&mut parts, vmd).await?;
    let request = Request::from_parts(parts, body);
    let Body(params) = Body::<ImageCreate>::from_request(request, vmd).await?;
    Ok((StatusCode::CREATED, Json(rpc.image_create(params).await?)))
}

/// Whether the body is JSON (`application/json`, parameters allowed).
fn is_json(headers: &HeaderMap) -> bool {
    let value = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let media = value.and_then(|v| v.split(';').next()).unwrap_or_default();
    media.trim().eq_ignore_ascii_case("application/json")
}

/// Streams the request body to vmd as a `kind` upload; returns the caller's token and vmd's
/// upload.
async fn receive(
    vmd: &Vmd,
    kind: UploadKind,
    request: Request,
) -> Result<(String, Upload), WebError> {
    let token = Credential::require(request.headers())?.token().to_string();
    let length = content_length(request.headers())?;
    let upload = upload::send(vmd, &token, (kind, length), request.into_body()).await?;
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
    fn only_json_bodies_create_from_an_iso() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        for (value, json) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/octet-stream", false),
            ("application/jsonx", false),
        ] {
            headers.insert(CONTENT_TYPE, value.parse().expect("value"));
            assert_eq!(is_json(&headers), json, "{value}");
        }
    }

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
