//! The browser UI: static files from `vmd-web/ui/`, embedded in the binary at build time by
//! `build.rs` (a sorted table of `include_bytes!`), so the running system needs nothing
//! besides the executable. See docs/ui.md.
//!
//! Routes: `/` is `index.html` (login and dashboard), `/console` is `console.html` (one VM's
//! VNC and serial consoles), `/ui/{path}` any other file (ES modules, CSS, vendored noVNC and
//! xterm.js). A path not in the table falls through to the JSON 404 like every unknown route.
//!
//! Every answer carries a strict Content-Security-Policy (scripts only from this origin, no
//! inline script; WebSockets only to this host), `X-Content-Type-Options: nosniff`,
//! `Referrer-Policy: no-referrer` (console tickets travel in WebSocket URLs),
//! `X-Frame-Options: DENY`, an ETag (a hash of the file) and `Cache-Control: no-cache`: the
//! browser revalidates each time and gets a 304 while the file is unchanged, so an upgraded
//! vmd-web is never mixed with stale modules.

use axum::extract::Path;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use vm_proto::ErrorCode;

use crate::error::WebError;

/// `(path under ui/, quoted ETag, bytes)`, sorted by path.
static ASSETS: &[(&str, &str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// The UI's routes; merged into the app's router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|h: HeaderMap| async move { serve("index.html", &h) }),
        )
        .route(
            "/console",
            get(|h: HeaderMap| async move { serve("console.html", &h) }),
        )
        .route("/ui/{*path}", get(asset))
}

/// `GET /ui/{path}`.
async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

/// The embedded file at `path`, or 304 if the browser's copy is current, or the JSON 404.
fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some((etag, bytes)) = find(path) else {
        return WebError::new(ErrorCode::NotFound, "no such route").into_response();
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        bytes.into_response()
    };
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    out.insert(header::ETAG, HeaderValue::from_static(etag));
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out.extend(security_headers(headers));
    response
}

/// The ETag and bytes of the file at `path`.
fn find(path: &str) -> Option<(&'static str, &'static [u8])> {
    let i = ASSETS.binary_search_by(|(p, _, _)| (*p).cmp(path)).ok()?;
    let (_, etag, bytes) = ASSETS[i];
    Some((etag, bytes))
}

/// The Content-Type of a file, from its name.
fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map_or("", |(_, ext)| ext);
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "map" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ if !path.contains('.') || path.ends_with("VERSION") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The CSP and friends. `connect-src` names this host's `ws:`/`wss:` explicitly (as the
/// browser sent it in `Host`) besides `'self'`, for browsers where `'self'` does not cover
/// WebSockets. `style-src` allows inline styles because xterm.js's DOM renderer injects
/// `<style>` elements; scripts stay `'self'` only.
fn security_headers(request: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    let host = request
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        });
    let sockets = host.map_or(String::new(), |h| format!(" ws://{h} wss://{h}"));
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: blob:; connect-src 'self'{sockets}; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    let csp = HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static("default-src 'self'"));
    vec![
        (header::CONTENT_SECURITY_POLICY, csp),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ]
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, Response};
    use tower::ServiceExt;

    use super::*;
    use crate::vmd::Vmd;

    /// `GET path` with `headers` through the whole app (no vmd needed for static files).
    async fn get(path: &str, headers: &[(&str, &str)]) -> Response<Body> {
        let app = crate::app::router(Vmd::new("/nonexistent/vmd.sock".into()), false);
        let mut request = Request::get(path).header("host", "lab.example:8080");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        app.oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("response")
    }

    fn header<'a>(response: &'a Response<Body>, name: &str) -> &'a str {
        let value = response.headers().get(name);
        value
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name}"))
    }

    #[tokio::test]
    async fn the_index_is_served_at_the_root_with_a_strict_policy() {
        let response = get("/", &[]).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "content-type"),
            "text/html; charset=utf-8"
        );
        let csp = header(&response, "content-security-policy");
        assert!(
            csp.starts_with("default-src 'self'; script-src 'self';"),
            "{csp}"
        );
        assert!(
            csp.contains("connect-src 'self' ws://lab.example:8080 wss://lab.example:8080;"),
            "{csp}"
        );
        assert!(!csp.contains("script-src 'self' 'unsafe"), "{csp}");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert_eq!(header(&response, "referrer-policy"), "no-referrer");
        assert_eq!(header(&response, "cache-control"), "no-cache");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        assert!(String::from_utf8_lossy(&body).contains("/ui/js/main.js"));
    }

    #[tokio::test]
    async fn modules_vendored_files_and_the_console_page_have_their_types() {
        let cases = [
            ("/console", "text/html; charset=utf-8"),
            ("/ui/js/main.js", "text/javascript; charset=utf-8"),
            ("/ui/app.css", "text/css; charset=utf-8"),
            ("/ui/favicon.svg", "image/svg+xml"),
            (
                "/ui/vendor/novnc/core/rfb.js",
                "text/javascript; charset=utf-8",
            ),
            (
                "/ui/vendor/xterm/xterm.mjs",
                "text/javascript; charset=utf-8",
            ),
            ("/ui/vendor/novnc/LICENSE.txt", "text/plain; charset=utf-8"),
            ("/ui/vendor/xterm/VERSION", "text/plain; charset=utf-8"),
        ];
        for (path, kind) in cases {
            let response = get(path, &[]).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&response, "content-type"), kind, "{path}");
        }
    }

    #[tokio::test]
    async fn an_unchanged_file_is_a_304() {
        let first = get("/ui/js/api.js", &[]).await;
        let etag = header(&first, "etag").to_string();
        let again = get("/ui/js/api.js", &[("if-none-match", &etag)]).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let stale = get("/ui/js/api.js", &[("if-none-match", "\"0\"")]).await;
        assert_eq!(stale.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn unknown_paths_are_the_json_404() {
        for path in ["/api/v1/nope", "/ui/nope.js", "/ui/../Cargo.toml", "/nope"] {
            let response = get(path, &[]).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(
                header(&response, "content-type"),
                "application/json",
                "{path}"
            );
        }
    }
}
