//! The image-making routes over a real vmd, with no guest booted: a base created from an ISO
//! (`POST /images` with JSON), sealed once its disk holds data, an ISO inserted into and
//! ejected from a stopped VM, and a stopped VM published as a new base.

mod common;

use std::process::Command;

use common::{Vmd, Web};
use serde_json::{json, Value};

/// Writes data into an unsealed base's disk, as its installer would (the install VM is
/// stopped, so nothing else has the file open).
fn install_without_booting(image: &Value) {
    let disk = image["path"]
        .as_str()
        .expect("the disk's path (admins see it)");
    let out = Command::new("qemu-io")
        .args(["-f", "qcow2", "-c", "write -P 0x5a 0 64k", disk])
        .output()
        .expect("run qemu-io");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn create_from_iso_then_seal() {
    let vmd = Vmd::start();
    vmd.import_iso("installer");
    let web = Web::start(&vmd);
    let t = vmd.admin_token();

    let create =
        json!({"name": "lab", "size_bytes": 1u64 << 30, "iso": "installer", "memory_mib": 256});
    let base = web
        .bearer(&t, "POST", "/api/v1/images", Some(&create))
        .expect(201);
    assert_eq!(
        (base["sealed"].as_bool(), base["used_by"].clone()),
        (Some(false), json!(["lab"])),
        "{base}"
    );
    let vm = web.bearer(&t, "GET", "/api/v1/vms/lab", None).expect(200);
    assert_eq!(
        (vm["install"].as_bool(), vm["iso"].as_str()),
        (Some(true), Some("installer"))
    );
    web.bearer(&t, "POST", "/api/v1/images", Some(&create))
        .expect_error(409, "already_exists");
    let typo = json!({"name": "lab2", "size_bytes": 1u64 << 30, "iso": "installer", "colour": 1});
    web.bearer(&t, "POST", "/api/v1/images", Some(&typo))
        .expect_error(400, "invalid_argument");
    let no_iso = json!({"name": "lab3", "size_bytes": 1u64 << 30, "iso": "nope"});
    web.bearer(&t, "POST", "/api/v1/images", Some(&no_iso))
        .expect_error(404, "not_found");

    // Until sealed, the base and its install VM are the admin's own.
    let bob = vmd.user_token("bob", None);
    for path in ["/api/v1/images/lab", "/api/v1/vms/lab"] {
        web.bearer(&bob, "GET", path, None)
            .expect_error(404, "not_found");
    }
    web.bearer(&bob, "DELETE", "/api/v1/vms/lab/iso", None)
        .expect_error(404, "not_found");

    web.bearer(&t, "POST", "/api/v1/images/lab/seal", None)
        .expect_error(412, "wrong_state");
    install_without_booting(&base);
    let sealed = web
        .bearer(&t, "POST", "/api/v1/images/lab/seal", None)
        .expect(200);
    assert_eq!(
        (sealed["sealed"].as_bool(), sealed["used_by"].clone()),
        (Some(true), json!([])),
        "{sealed}"
    );
    web.bearer(&t, "GET", "/api/v1/vms/lab", None)
        .expect_error(404, "not_found");
    web.bearer(&t, "POST", "/api/v1/images/lab/seal", None)
        .expect_error(412, "wrong_state");
    web.bearer(&t, "POST", "/api/v1/images/none/seal", None)
        .expect_error(404, "not_found");
}

#[test]
fn iso_swap_and_publish_on_a_stopped_vm() {
    let vmd = Vmd::start();
    vmd.import_disk("base");
    vmd.import_iso("tools");
    let web = Web::start(&vmd);
    let t = vmd.admin_token();
    let vm = json!({"name": "v1", "image": "base"});
    web.bearer(&t, "POST", "/api/v1/vms", Some(&vm)).expect(201);

    let attach = json!({"iso": "tools"});
    let vm = web
        .bearer(&t, "PUT", "/api/v1/vms/v1/iso", Some(&attach))
        .expect(200);
    assert_eq!(vm["iso"], "tools", "{vm}");
    let iso = web
        .bearer(&t, "GET", "/api/v1/isos/tools", None)
        .expect(200);
    assert_eq!(iso["used_by"], json!(["v1"]));
    web.bearer(
        &t,
        "PUT",
        "/api/v1/vms/v1/iso",
        Some(&json!({"iso": "nope"})),
    )
    .expect_error(404, "not_found");
    web.bearer(
        &t,
        "PUT",
        "/api/v1/vms/v1/iso",
        Some(&json!({"vm": "v2", "iso": "tools"})),
    )
    .expect_error(400, "invalid_argument");
    let vm = web
        .bearer(&t, "DELETE", "/api/v1/vms/v1/iso", None)
        .expect(200);
    assert!(vm["iso"].is_null(), "{vm}");
    assert_eq!(
        web.bearer(&t, "GET", "/api/v1/isos/tools", None)
            .expect(200)["used_by"],
        json!([])
    );

    let image = web
        .bearer(
            &t,
            "POST",
            "/api/v1/vms/v1/publish",
            Some(&json!({"name": "golden"})),
        )
        .expect(201);
    assert_eq!(
        (
            image["name"].as_str(),
            image["sealed"].as_bool(),
            image["public"].as_bool()
        ),
        (Some("golden"), Some(true), Some(true)),
        "{image}"
    );
    let private = json!({"name": "mine", "public": false});
    let image = web
        .bearer(&t, "POST", "/api/v1/vms/v1/publish", Some(&private))
        .expect(201);
    assert_eq!(image["public"], false, "{image}");
    web.bearer(
        &t,
        "POST",
        "/api/v1/vms/v1/publish",
        Some(&json!({"name": "golden"})),
    )
    .expect_error(409, "already_exists");
    web.bearer(
        &t,
        "POST",
        "/api/v1/vms/none/publish",
        Some(&json!({"name": "x"})),
    )
    .expect_error(404, "not_found");
    let from_golden = json!({"name": "v2", "image": "golden"});
    web.bearer(&t, "POST", "/api/v1/vms", Some(&from_golden))
        .expect(201);
}
