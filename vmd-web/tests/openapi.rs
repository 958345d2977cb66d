//! The OpenAPI document served by a real vmd-web: a real validator accepts it (and rejects a
//! broken copy), it lists exactly the routes the router serves, and every operation declares
//! its error responses and how it is authenticated.

mod common;

use std::process::Command;

use common::{Vmd, Web};
use serde_json::Value;

/// Every route of the router, as the document must list it.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/openapi.json"),
    ("POST", "/api/v1/login"),
    ("POST", "/api/v1/logout"),
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/system"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/events/history"),
    ("GET", "/api/v1/vms"),
    ("POST", "/api/v1/vms"),
    ("GET", "/api/v1/vms/{name}"),
    ("DELETE", "/api/v1/vms/{name}"),
    ("PATCH", "/api/v1/vms/{name}"),
    ("POST", "/api/v1/vms/{name}/start"),
    ("POST", "/api/v1/vms/{name}/stop"),
    ("POST", "/api/v1/vms/{name}/reboot"),
    ("POST", "/api/v1/vms/{name}/pause"),
    ("POST", "/api/v1/vms/{name}/resume"),
    ("POST", "/api/v1/vms/{name}/wipe"),
    ("POST", "/api/v1/vms/{name}/extend"),
    ("GET", "/api/v1/vms/{name}/logs"),
    ("PUT", "/api/v1/vms/{name}/iso"),
    ("DELETE", "/api/v1/vms/{name}/iso"),
    ("POST", "/api/v1/vms/{name}/publish"),
    ("POST", "/api/v1/vms/{name}/console-ticket"),
    ("GET", "/api/v1/vms/{name}/vnc"),
    ("GET", "/api/v1/vms/{name}/serial"),
    ("GET", "/api/v1/images"),
    ("POST", "/api/v1/images"),
    ("GET", "/api/v1/images/{name}"),
    ("PATCH", "/api/v1/images/{name}"),
    ("DELETE", "/api/v1/images/{name}"),
    ("POST", "/api/v1/images/{name}/seal"),
    ("GET", "/api/v1/isos"),
    ("POST", "/api/v1/isos"),
    ("GET", "/api/v1/isos/{name}"),
    ("DELETE", "/api/v1/isos/{name}"),
    ("GET", "/api/v1/networks"),
    ("POST", "/api/v1/networks"),
    ("GET", "/api/v1/networks/{name}"),
    ("DELETE", "/api/v1/networks/{name}"),
    ("POST", "/api/v1/vms/{name}/nics"),
    ("DELETE", "/api/v1/vms/{name}/nics/{network}"),
    ("GET", "/api/v1/vms/{name}/ports"),
    ("POST", "/api/v1/vms/{name}/ports"),
    ("DELETE", "/api/v1/vms/{name}/ports/{protocol}/{host_port}"),
    ("GET", "/api/v1/templates"),
    ("POST", "/api/v1/templates"),
    ("GET", "/api/v1/templates/{name}"),
    ("DELETE", "/api/v1/templates/{name}"),
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("GET", "/api/v1/users/{name}"),
    ("DELETE", "/api/v1/users/{name}"),
    ("PATCH", "/api/v1/users/{name}"),
    ("POST", "/api/v1/users/{name}/password"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{id}"),
];

/// The routes that take no bearer token or session cookie.
const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/openapi.json"),
    ("POST", "/api/v1/login"),
    ("GET", "/api/v1/vms/{name}/vnc"),
    ("GET", "/api/v1/vms/{name}/serial"),
];

/// Fetches the document without credentials.
fn fetch(web: &Web) -> Value {
    web.request("GET", "/api/v1/openapi.json", &[], None)
        .expect(200)
}

/// Runs openapi-spec-validator (scripts/setup.sh installs it) on `doc`; its verdict and output.
fn validate(doc: &Value) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, doc.to_string()).expect("write the document");
    let out = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&path)
        .output()
        .expect("run python3 (scripts/setup.sh installs openapi-spec-validator)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("No module named"),
        "openapi-spec-validator is missing: run scripts/setup.sh\n{text}"
    );
    (out.status.success(), text)
}

#[test]
fn the_served_document_passes_a_real_validator() {
    let vmd = Vmd::start();
    let web = Web::start(&vmd);
    let doc = fetch(&web);
    let (valid, text) = validate(&doc);
    assert!(valid, "{text}");
    assert_eq!(
        doc["info"]["version"],
        vm_proto::API_VERSION,
        "{}",
        doc["info"]
    );
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));

    // The validator does judge: a path parameter without its declaration is refused.
    let mut broken = doc.clone();
    let show = &mut broken["paths"]["/api/v1/vms/{name}"]["get"];
    show.as_object_mut()
        .expect("operation")
        .remove("parameters");
    let (valid, text) = validate(&broken);
    assert!(!valid, "a broken document passed: {text}");
}

#[test]
fn every_route_is_documented_and_served() {
    let vmd = Vmd::start();
    let web = Web::start(&vmd);
    let doc = fetch(&web);
    let mut documented = operations(&doc);
    documented.sort();
    let mut expected: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    assert_eq!(documented, expected);
    // Each listed route is really routed: never the fallback's "no such route".
    for (method, path) in ROUTES {
        let resp = web.request(
            method,
            &path.replace("{name}", "x").replace("{id}", "1"),
            &[],
            None,
        );
        assert!(
            resp.json["message"] != "no such route" && resp.status != 405,
            "{method} {path}: {} {}",
            resp.status,
            resp.json
        );
    }
}

#[test]
fn every_operation_declares_errors_and_security() {
    let vmd = Vmd::start();
    let web = Web::start(&vmd);
    let doc = fetch(&web);
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer", "{schemes}");
    assert_eq!(
        (
            schemes["session"]["in"].as_str(),
            schemes["session"]["name"].as_str()
        ),
        (Some("cookie"), Some("vmd_session"))
    );
    assert_eq!(
        (
            schemes["csrf"]["in"].as_str(),
            schemes["csrf"]["name"].as_str()
        ),
        (Some("header"), Some("x-csrf-token"))
    );
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][method.to_lowercase()];
        let what = format!("{method} {path}");
        if path == "/api/v1/openapi.json" {
            // A constant document: the one route that cannot fail says only 200.
            assert_eq!(
                op["responses"].as_object().map(|r| r.len()),
                Some(1),
                "{what}"
            );
        } else {
            assert!(error_responses(op) > 0, "{what} declares no error response");
        }
        let security = op["security"].as_array().expect("security");
        if PUBLIC.contains(&(method.as_str(), path.as_str())) {
            assert_eq!(security, &[serde_json::json!({})], "{what}");
            continue;
        }
        assert!(security.iter().any(|r| r.get("bearer").is_some()), "{what}");
        let cookie = security.iter().find(|r| r.get("session").is_some());
        let cookie = cookie.unwrap_or_else(|| panic!("{what}: no cookie auth"));
        let unsafe_method = !matches!(method.as_str(), "GET" | "HEAD");
        assert_eq!(
            cookie.get("csrf").is_some(),
            unsafe_method,
            "{what}: {cookie}"
        );
        assert_eq!(
            error_status(op, "401"),
            Some("ErrorBody"),
            "{what}: a credential can be refused"
        );
    }
}

/// `(METHOD, path)` of every operation in `doc`.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut ops = Vec::new();
    for (path, item) in paths {
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            if item.get(method).is_some() {
                ops.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// How many 4xx/5xx responses of `op` carry an `ErrorBody`.
fn error_responses(op: &Value) -> usize {
    let responses = op["responses"].as_object().expect("responses");
    responses
        .keys()
        .filter(|status| status.starts_with('4') || status.starts_with('5'))
        .filter(|status| error_status(op, status) == Some("ErrorBody"))
        .count()
}

/// The schema name of `op`'s JSON response for `status`.
fn error_status<'a>(op: &'a Value, status: &str) -> Option<&'a str> {
    let schema = &op["responses"][status]["content"]["application/json"]["schema"]["$ref"];
    schema
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
}
