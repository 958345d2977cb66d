//! `/templates`: warm templates (`template.*`). Clones are made with `POST /vms` and a
//! `template` in the `VmCreate` body. Thin: each handler is one JSON-RPC call.

use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vm_proto::api::VmdApiClient;
use vm_proto::types::{Template, TemplateCreate};

use super::{Body, Path};
use crate::auth::Rpc;
use crate::error::WebError;
use crate::openapi::{Change, Create, Errors, Lookup};
use crate::vmd::Vmd;

type Reply<T> = Result<Json<T>, WebError>;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<Vmd> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, remove))
}

/// The templates the caller may use (`template.list`).
#[utoipa::path(get, path = "/templates", tag = "templates", responses((status = 200, body = Vec<Template>), Errors))]
async fn list(rpc: Rpc) -> Reply<Vec<Template>> {
    Ok(Json(rpc.template_list().await?))
}

/// Takes a template from a running VM, which becomes its first clone (`template.create`).
#[utoipa::path(post, path = "/templates", tag = "templates", request_body = TemplateCreate,
    responses((status = 201, body = Template), Create))]
async fn create(
    rpc: Rpc,
    Body(params): Body<TemplateCreate>,
) -> Result<(StatusCode, Json<Template>), WebError> {
    Ok((
        StatusCode::CREATED,
        Json(rpc.template_create(params).await?),
    ))
}

/// One template with its clones (`template.get`).
#[utoipa::path(get, path = "/templates/{name}", tag = "templates", params(("name" = String, Path)),
    responses((status = 200, body = Template), Lookup))]
async fn show(rpc: Rpc, Path(name): Path<String>) -> Reply<Template> {
    Ok(Json(rpc.template_get(name).await?))
}

/// Removes a template no VM is a clone of (`template.remove`).
#[utoipa::path(delete, path = "/templates/{name}", tag = "templates", params(("name" = String, Path)),
    responses((status = 204, description = "Removed"), Change))]
async fn remove(rpc: Rpc, Path(name): Path<String>) -> Result<StatusCode, WebError> {
    rpc.template_remove(name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use axum::body::Body as HttpBody;
    use axum::http::Request;
    use serde_json::Value;
    use tower::ServiceExt;

    use crate::vmd::Vmd;

    /// The four routes, with a body where one is read.
    const ROUTES: [(&str, &str, &str); 4] = [
        ("GET", "/api/v1/templates", ""),
        ("POST", "/api/v1/templates", r#"{"name":"t","from":"web1"}"#),
        ("GET", "/api/v1/templates/t", ""),
        ("DELETE", "/api/v1/templates/t", ""),
    ];

    #[test]
    fn the_document_lists_the_routes_and_their_schemas() {
        let (_, api) = crate::app::routes().split_for_parts();
        let doc = serde_json::to_value(crate::openapi::finish(api)).expect("json");
        let json_schema = |op: &Value, status: &str| {
            op["responses"][status]["content"]["application/json"]["schema"].clone()
        };
        let list = &doc["paths"]["/api/v1/templates"]["get"];
        assert_eq!(
            json_schema(list, "200")["items"]["$ref"],
            "#/components/schemas/Template"
        );
        let create = &doc["paths"]["/api/v1/templates"]["post"];
        assert_eq!(
            json_schema(create, "201")["$ref"],
            "#/components/schemas/Template"
        );
        let body = &create["requestBody"]["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(body, "#/components/schemas/TemplateCreate");
        assert_eq!(
            json_schema(create, "409")["$ref"],
            "#/components/schemas/ErrorBody"
        );
        let one = &doc["paths"]["/api/v1/templates/{name}"];
        assert_eq!(
            json_schema(&one["get"], "200")["$ref"],
            "#/components/schemas/Template"
        );
        assert!(one["delete"]["responses"]["204"].is_object(), "{one}");
        assert_eq!(
            json_schema(&one["delete"], "423")["$ref"],
            "#/components/schemas/ErrorBody"
        );
        assert_eq!(create["operationId"], "templates_create");
        let schemas = &doc["components"]["schemas"];
        assert!(
            schemas["Template"]["properties"]["clones"].is_object(),
            "{schemas}"
        );
        assert!(
            schemas["TemplateCreate"]["properties"]["from"].is_object(),
            "{schemas}"
        );
        assert!(
            schemas["VmCreate"]["properties"]["template"].is_object(),
            "{schemas}"
        );
        assert!(
            schemas["Vm"]["properties"]["restore_pending"].is_object(),
            "{schemas}"
        );
    }

    /// Each route is served and gets as far as calling vmd: with a token and no vmd behind
    /// the socket, every one answers `unavailable`, never the fallback's "no such route".
    #[tokio::test]
    async fn each_route_calls_vmd() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = crate::app::router(Vmd::new(dir.path().join("none.sock")), false);
        for (method, path, body) in ROUTES {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .header("authorization", "Bearer vmd_test")
                .header("content-type", "application/json")
                .body(HttpBody::from(body))
                .expect("request");
            let response = app.clone().oneshot(request).await.expect("response");
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .expect("body");
            let json: Value = serde_json::from_slice(&bytes).expect("json");
            assert_eq!(
                json["kind"], "unavailable",
                "{method} {path}: {status} {json}"
            );
            assert_eq!(status.as_u16(), 503, "{method} {path}: {json}");
        }
    }
}
