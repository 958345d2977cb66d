//! Live CD-ROM changes with real QEMU: vmd passes the ISO's descriptor, so a live attach works
//! when QEMU (running as `nobody` under a root vmd) cannot reach the state directory; and
//! `iso.remove` racing a live `vm.attach_iso` (or a `vm.create` with that ISO) always leaves
//! exactly one winner, with the store and QEMU's open files in agreement.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::guest::{Console, BOOT};
use common::{code, path_str, Daemon, DEADLINE};
use serde_json::{json, Value};

/// `nobody`'s uid on Debian, the user a root vmd runs QEMU as by default.
const NOBODY: u32 = 65534;
/// Rounds of the attach / remove race.
const ROUNDS: usize = 100;

#[test]
fn live_attach_works_when_qemu_cannot_reach_the_state_directory() {
    assert_eq!(nix::unistd::getuid().as_raw(), 0, "this test needs root");
    let d = Daemon::start();
    d.import_guest();
    // The image sandbox needed the directory searchable for the import; from now on nobody
    // (QEMU's user) cannot traverse it.
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    d.import_iso("tools");
    let vm = d.boot("private");
    let pid = vm["pid"].as_u64().expect("pid") as u32;
    assert_eq!(uid_of(pid), NOBODY, "QEMU dropped to nobody");
    let top = std::fs::metadata(d.dir.path()).expect("stat");
    assert_eq!(
        (top.uid(), top.mode() & 0o777),
        (0, 0o700),
        "nobody cannot traverse"
    );
    d.wait_log("private", "GUEST-READY private", 1, BOOT);
    let mut con = Console::attach(&d, "private");
    let read = "dd if=/dev/sr0 of=/dev/null bs=2048 count=1 2>/dev/null";
    con.run(&format!("! {read}"));
    let vm = d.ok("vm.attach_iso", json!([{"vm": "private", "iso": "tools"}]));
    assert_eq!(vm["iso"], "tools");
    con.run(&format!(
        "i=0; until {read} || [ $i -ge 100 ]; do sleep 0.2; i=$((i+1)); done; {read}"
    ));
    con.run("mkdir -p /mnt/cd && mount -t iso9660 -o ro /dev/sr0 /mnt/cd && ls /mnt/cd/install && umount /mnt/cd");
    assert!(d.ok("vm.detach_iso", json!(["private"]))["iso"].is_null());
    con.run(&format!(
        "i=0; while {read} && [ $i -lt 100 ]; do sleep 0.2; i=$((i+1)); done; ! {read}"
    ));
    let isos = d.state.join("isos");
    wait_for_isos(pid, &isos, &BTreeSet::new());
    // Paused: QEMU 7.2 defers closing fd-set entries until it runs, but the insert works and
    // the eject after resuming leaves nothing open.
    d.ok("vm.pause", json!(["private"]));
    let vm = d.ok("vm.attach_iso", json!([{"vm": "private", "iso": "tools"}]));
    assert_eq!(vm["iso"], "tools");
    d.ok("vm.resume", json!(["private"]));
    con.run(&format!(
        "i=0; until {read} || [ $i -ge 100 ]; do sleep 0.2; i=$((i+1)); done; {read}"
    ));
    d.ok("vm.detach_iso", json!(["private"]));
    wait_for_isos(pid, &isos, &BTreeSet::new());
    drop(con);
    d.ok("vm.stop", json!([{"name": "private", "force": true}]));
}

#[test]
fn iso_remove_racing_a_live_attach_has_one_winner() {
    let d = Daemon::start();
    d.import_guest();
    let vm = d.boot("race");
    let pid = vm["pid"].as_u64().expect("pid") as u32;
    let isos_dir = d.state.join("isos");
    let tiny = tiny_iso(d.dir.path());
    let mut inserted: Option<String> = None;
    let mut wins = [0usize; 2];
    for round in 0..ROUNDS {
        let name = format!("r{round}");
        let upload = d.upload(&tiny);
        d.ok(
            "iso.import",
            json!([{"name": name, "upload_id": upload["upload_id"]}]),
        );
        let attach_req = json!([{"vm": "race", "iso": name}]);
        let (attach, remove) = race(&d, ("vm.attach_iso", attach_req), &name);
        let context = format!("round {round}: attach {attach}, remove {remove}");
        for resp in [&attach, &remove] {
            if let Some(err) = resp.get("error") {
                assert_ne!(code(err), 500, "{context}");
            }
        }
        let attached = attach.get("result").is_some();
        assert_ne!(
            attached,
            remove.get("result").is_some(),
            "exactly one wins: {context}"
        );
        if attached {
            wins[0] += 1;
            assert_eq!(code(&remove["error"]), 423, "{context}");
            assert_eq!(d.ok("iso.get", json!([name]))["used_by"], json!(["race"]));
            inserted = Some(name);
        } else {
            wins[1] += 1;
            assert_eq!(code(&attach["error"]), 404, "{context}");
            assert_eq!(code(&d.err("iso.get", json!([name]))), 404, "{context}");
        }
        let vm = d.ok("vm.get", json!(["race"]));
        assert_eq!(vm["iso"].as_str(), inserted.as_deref(), "{context}");
        let expected = inserted.iter().map(|n| isos_dir.join(format!("{n}.iso")));
        wait_for_isos(pid, &isos_dir, &expected.collect());
    }
    eprintln!("attach won {} rounds, remove won {}", wins[0], wins[1]);
    d.ok("vm.stop", json!([{"name": "race", "force": true}]));
}

/// Fires `call` and `iso.remove` of `iso` at once; returns both responses.
fn race(d: &Daemon, call: (&str, Value), iso: &str) -> (Value, Value) {
    let start = Barrier::new(2);
    std::thread::scope(|s| {
        let attach = s.spawn(|| {
            start.wait();
            d.call(call.0, call.1)
        });
        let remove = s.spawn(|| {
            start.wait();
            d.call("iso.remove", json!([iso]))
        });
        (
            attach.join().expect("attach thread"),
            remove.join().expect("remove thread"),
        )
    })
}

#[test]
fn iso_remove_racing_a_create_with_that_iso_has_one_winner() {
    let d = Daemon::start();
    d.import_guest();
    let tiny = tiny_iso(d.dir.path());
    for round in 0..ROUNDS / 2 {
        let (iso, vm) = (format!("r{round}"), format!("c{round}"));
        let upload = d.upload(&tiny);
        d.ok(
            "iso.import",
            json!([{"name": iso, "upload_id": upload["upload_id"]}]),
        );
        let create = json!([{"name": vm, "image": "guest", "memory_mib": 128, "iso": iso}]);
        let (created, removed) = race(&d, ("vm.create", create), &iso);
        let context = format!("round {round}: create {created}, remove {removed}");
        let shown = d.call("vm.get", json!([vm]));
        match (created.get("error"), removed.get("error")) {
            (None, Some(err)) => {
                assert_eq!(code(err), 423, "{context}");
                assert_eq!(shown["result"]["iso"], iso, "{context}");
            }
            (Some(err), None) => {
                assert_eq!(code(err), 404, "{context}");
                assert_eq!(code(&shown["error"]), 404, "no vm: {context}");
            }
            _ => panic!("exactly one wins: {context}"),
        }
    }
}

/// A small ISO 9660 image made with xorriso.
fn tiny_iso(dir: &Path) -> PathBuf {
    let src = dir.join("tiny");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("hello.txt"), "hello\n").expect("write");
    let out = dir.join("tiny.iso");
    let status = Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-V", "TINY", "-o"])
        .args([path_str(&out), path_str(&src)])
        .status()
        .expect("xorriso (run scripts/setup.sh)");
    assert!(status.success(), "xorriso failed");
    out
}

/// Polls until the files under `isos` that QEMU `pid` holds open are exactly `expected`
/// (QEMU closes a replaced or ejected medium within the QMP command, but the check does not
/// rely on it); a held file that was removed shows as `… (deleted)` and never matches.
fn wait_for_isos(pid: u32, isos: &Path, expected: &BTreeSet<PathBuf>) {
    let end = Instant::now() + DEADLINE;
    loop {
        let held = isos_held(pid, isos);
        if &held == expected {
            return;
        }
        assert!(
            Instant::now() < end,
            "QEMU holds {held:?}, the store says {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn isos_held(pid: u32, isos: &Path) -> BTreeSet<PathBuf> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("QEMU's fds");
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| target.starts_with(isos))
        .collect()
}

fn uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
        .expect("Uid line")
}
