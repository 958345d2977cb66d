//! The browser UI in a real browser: Debian's chromium, driven by playwright-core
//! (`vmd-web/ui-tests`, installed by `scripts/setup.sh`), against a real vmd, a real vmd-web
//! and the real test guest. The journeys themselves are `ui-tests/dashboard.mjs` (a user's
//! dashboard and consoles) and `ui-tests/admin.mjs` (the admin view); each test here sets a
//! lab up, runs one with a deadline and asserts its exit status. Missing chromium or
//! node_modules fail the test (with what to run), never skip it.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{Vmd, Web};

const CHROMIUM: &str = "/usr/bin/chromium";
const PASSWORD: &str = "a long enough password";
/// The whole journey, boot included (nextest's limit for this binary is longer).
const JOURNEY_DEADLINE: Duration = Duration::from_secs(540);

/// `vmd-web/ui-tests`.
fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ui-tests")
}

const SETUP: &str =
    "run scripts/setup.sh (installs Debian's chromium and runs npm ci in vmd-web/ui-tests)";

/// Panics, saying what to install, unless chromium, playwright-core and node are there.
fn require_tools() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: {SETUP}"
    );
    let module = tests_dir().join("node_modules/playwright-core/package.json");
    assert!(module.exists(), "{} is missing: {SETUP}", module.display());
    require_node();
}

/// Panics unless `node` runs.
fn require_node() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is missing: {SETUP}"
    );
}

/// The node journey in its own process group, killed (chromium included) on drop.
struct Journey(Child);

impl Journey {
    /// Runs `script` with the lab's settings `vars` (image, user, other user, …).
    fn spawn(script: &str, web: &Web, artifacts: &Path, vars: &[(&str, &str)]) -> Journey {
        let child = Command::new("node")
            .arg(script)
            .current_dir(tests_dir())
            .env("VMD_WEB_URL", format!("http://{}/", web.addr))
            .envs(vars.iter().copied())
            .env("UI_PASSWORD", PASSWORD)
            .env("UI_OTHER_PASSWORD", PASSWORD)
            .env("UI_ARTIFACTS", artifacts)
            .env("CHROMIUM", CHROMIUM)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn node");
        Journey(child)
    }

    /// Its exit status; panics past `deadline` (polling, the child cannot be waited on
    /// with a timeout otherwise).
    fn wait(&mut self, deadline: Duration) -> ExitStatus {
        let end = Instant::now() + deadline;
        loop {
            if let Some(status) = self.0.try_wait().expect("wait for node") {
                return status;
            }
            assert!(Instant::now() < end, "the journey ran past {deadline:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Journey {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).expect("pid"));
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// The create form's name check (`ui/js/names.js`) accepts and refuses exactly what
/// vm-proto's `validate_name` does, so the page never contradicts vmd.
#[test]
fn the_pages_name_rule_is_vm_protos() {
    require_node();
    let long = "a".repeat(64);
    let names = [
        "web1",
        "a",
        "0",
        "a-b",
        "a--b",
        "",
        "-a",
        "a-",
        "A",
        "web_1",
        "wéb",
        "a.b",
        "a b",
        &long[..63],
        &long,
    ];
    let script = "import { nameError } from './ui/js/names.js';\n\
                  const names = JSON.parse(process.argv[1]);\n\
                  console.log(JSON.stringify(names.map((n) => nameError(n) === '')));";
    let list = serde_json::to_string(&names).expect("json");
    let out = Command::new("node")
        .args(["--input-type=module", "-e", script, &list])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page: Vec<bool> = serde_json::from_slice(&out.stdout).expect("node's answer");
    for (name, ok) in names.iter().zip(page) {
        let vmd_ok = vm_proto::names::validate_name("VM", name).is_ok();
        assert_eq!(ok, vmd_ok, "the page and vm-proto disagree on {name:?}");
    }
}

#[test]
fn dashboard_and_console_journey_in_chromium() {
    require_tools();
    let vmd = Vmd::start();
    vmd.import_guest("guest");
    vmd.user_token("ann", Some(PASSWORD));
    vmd.user_token("bob", Some(PASSWORD));
    // The journey makes two VMs and sees a third refused.
    vmd.ok(
        "user.set",
        serde_json::json!([{"name": "ann", "max_vms": 2}]),
    );
    let vars = [
        ("UI_IMAGE", "guest"),
        ("UI_USER", "ann"),
        ("UI_OTHER_USER", "bob"),
    ];
    run_journey(&vmd, "dashboard.mjs", &vars);
}

/// The admin view: overview, an ISO uploaded from the page, a base created from it, another
/// user's VM found, filtered and deleted. No guest boots: the image is a blank raw disk.
#[test]
fn admin_journey_in_chromium() {
    require_tools();
    let vmd = Vmd::start();
    vmd.import_disk("disk");
    vmd.ok(
        "user.add",
        serde_json::json!([{"name": "root2", "admin": true, "password": PASSWORD}]),
    );
    let carl = vmd.user_token("carl", Some(PASSWORD));
    let web = Web::start(&vmd);
    let vm = serde_json::json!({"name": "carl1", "image": "disk", "memory_mib": 128});
    web.bearer(&carl, "POST", "/api/v1/vms", Some(&vm))
        .expect(201);
    drop(web);
    let iso = common::guest::guest_iso();
    let iso = iso.to_str().expect("utf-8 path");
    let vars = [
        ("UI_IMAGE", "disk"),
        ("UI_USER", "root2"),
        ("UI_OTHER_USER", "carl"),
        ("UI_ISO", iso),
    ];
    run_journey(&vmd, "admin.mjs", &vars);
}

/// Both roles in two browser contexts, from an empty lab: the admin uploads the installer
/// ISO by drag and drop, installs and seals a base through the browser console and adds a
/// student; the student makes, starts, opens, stops, crashes, wipes and deletes a VM and
/// meets the quota, the admin pages and another user's console closed. Takes the docs'
/// screenshots (`scripts/screenshots.sh`).
#[test]
fn lab_journey_with_both_roles_in_chromium() {
    require_tools();
    let vmd = Vmd::start();
    vmd.ok(
        "user.add",
        serde_json::json!([{"name": "teach", "admin": true, "password": PASSWORD}]),
    );
    // Another account's VM, whose console URL the student tries.
    vmd.import_disk("disk");
    vmd.ok(
        "vm.create",
        serde_json::json!([{"name": "root1", "image": "disk", "memory_mib": 128}]),
    );
    let iso = common::guest::guest_iso();
    let iso = iso.to_str().expect("utf-8 path");
    let vars = [
        ("UI_IMAGE", "labbase"),
        ("UI_USER", "teach"),
        ("UI_OTHER_USER", "stud"),
        ("UI_ISO", iso),
        ("UI_FOREIGN_VM", "root1"),
    ];
    run_journey(&vmd, "lab.mjs", &vars);
}

/// A console tab left idle is detached by vmd and then waits for Reconnect, never holding
/// the VM's one serial console by attaching again on its own.
#[test]
fn an_idle_console_tab_is_detached_and_waits_for_reconnect() {
    require_tools();
    let vmd = Vmd::start_configured("console_idle_secs = 3\n");
    vmd.import_disk("disk");
    let ann = vmd.user_token("ann", Some(PASSWORD));
    vmd.user_token("bob", Some(PASSWORD));
    let web = Web::start(&vmd);
    let vm = serde_json::json!({"name": "idle1", "image": "disk", "memory_mib": 128});
    web.bearer(&ann, "POST", "/api/v1/vms", Some(&vm))
        .expect(201);
    web.bearer(&ann, "POST", "/api/v1/vms/idle1/start", None)
        .expect(200);
    drop(web);
    let vars = [
        ("UI_IMAGE", "disk"),
        ("UI_USER", "ann"),
        ("UI_OTHER_USER", "bob"),
        ("UI_VM", "idle1"),
    ];
    run_journey(&vmd, "console-idle.mjs", &vars);
}

/// A second console tab takes the serial console over from the first, which is told and
/// waits for Reconnect.
#[test]
fn a_second_console_tab_takes_the_serial_console_over() {
    require_tools();
    let vmd = Vmd::start();
    vmd.import_guest("guest");
    let ann = vmd.user_token("ann", Some(PASSWORD));
    vmd.user_token("bob", Some(PASSWORD));
    let web = Web::start(&vmd);
    let vm = serde_json::json!({"name": "take1", "image": "guest", "memory_mib": 128});
    web.bearer(&ann, "POST", "/api/v1/vms", Some(&vm))
        .expect(201);
    web.bearer(&ann, "POST", "/api/v1/vms/take1/start", None)
        .expect(200);
    drop(web);
    wait_ready(&vmd, "take1");
    let vars = [
        ("UI_IMAGE", "guest"),
        ("UI_USER", "ann"),
        ("UI_OTHER_USER", "bob"),
        ("UI_VM", "take1"),
    ];
    run_journey(&vmd, "console-takeover.mjs", &vars);
}

/// Waits until the test guest `vm` has booted (its ready marker in the console log).
fn wait_ready(vmd: &Vmd, vm: &str) {
    let end = Instant::now() + Duration::from_secs(180);
    let marker = format!("GUEST-READY {vm}");
    while !vmd.ok("vm.logs", serde_json::json!([vm]))["text"]
        .as_str()
        .is_some_and(|t| t.contains(&marker))
    {
        assert!(Instant::now() < end, "{vm} never booted");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Starts vmd-web (logging to a file) in front of `vmd`, runs `script` with `vars` and
/// panics, with vmd-web's log, unless it succeeds.
fn run_journey(vmd: &Vmd, script: &str, vars: &[(&str, &str)]) {
    let web_log = vmd.dir.path().join("vmd-web.log");
    let log = std::fs::File::create(&web_log).expect("vmd-web log");
    let web = Web::start_logging(vmd, log.into());
    let stem = script.trim_end_matches(".mjs");
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ui-artifacts-{stem}"));
    let _ = std::fs::remove_dir_all(&artifacts);
    let started = Instant::now();
    let status = Journey::spawn(script, &web, &artifacts, vars).wait(JOURNEY_DEADLINE);
    println!(
        "{script} took {:.0?}; screenshots in {}",
        started.elapsed(),
        artifacts.display()
    );
    if !status.success() {
        let log = std::fs::read_to_string(&web_log).unwrap_or_default();
        panic!(
            "the browser journey {script} failed ({status}); its output is above, screenshots \
             in {}\nvmd-web's log:\n{log}",
            artifacts.display()
        );
    }
}
