//! The runtime through the built `vmctl`: start, the ready marker via `vmctl logs`, a piped
//! console session, `wait`, stop, `events --since` resuming, and the timeout exit code.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::guest::{guest_qcow2, BOOT};
use common::{path_str, vmctl_bin, Daemon};
use serde_json::Value;

fn run(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    let out = d.vmctl(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(d: &Daemon, args: &[&str]) -> String {
    let (code, stdout, stderr) = run(d, args);
    assert_eq!(code, 0, "vmctl {args:?}: {stderr}");
    stdout
}

fn events(d: &Daemon, since: u64) -> Vec<Value> {
    ok(d, &["events", "--since", &since.to_string()])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

#[test]
fn start_logs_console_wait_stop_and_events_through_vmctl() {
    let d = Daemon::start();
    ok(
        &d,
        &[
            "-q",
            "image",
            "import",
            path_str(&guest_qcow2()),
            "--name",
            "guest",
        ],
    );
    ok(
        &d,
        &["-q", "create", "g1", "--image", "guest", "--memory", "128M"],
    );
    let (code, _, stderr) = run(&d, &["wait", "g1", "--for", "running", "--timeout", "1"]);
    assert_eq!(code, 8, "timeout exit code: {stderr}");
    assert!(
        stderr.contains("timed out after 1 s waiting for vm g1 to be running (it is stopped)"),
        "{stderr}"
    );
    let started: Value =
        serde_json::from_str(&ok(&d, &["--output", "json", "start", "g1"])).expect("json");
    assert_eq!(
        (started["state"].as_str(), started["accelerator"].as_str()),
        (Some("running"), Some("tcg"))
    );
    ok(&d, &["wait", "g1", "--for", "running", "--timeout", "30"]);
    let end = Instant::now() + BOOT;
    while !ok(&d, &["logs", "g1"]).contains("GUEST-READY g1") {
        assert!(Instant::now() < end, "no ready marker through vmctl logs");
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut console = Command::new(vmctl_bin())
        .args([
            "--socket",
            path_str(&d.socket),
            "console",
            "g1",
            "--linger",
            "5",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vmctl console");
    console
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"echo console-$((40+2))\n")
        .expect("type");
    let out = console
        .wait_with_output()
        .expect("console exits after --linger");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("console-42"),
        "{out:?}"
    );
    let seq_before_stop = events(&d, 0)
        .last()
        .and_then(|e| e["seq"].as_u64())
        .expect("events so far");
    ok(&d, &["-q", "stop", "g1", "--timeout", "60"]);
    ok(&d, &["wait", "g1", "--for", "stopped", "--timeout", "5"]);
    let all = events(&d, 0);
    let seqs: Vec<u64> = all
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "increasing: {seqs:?}");
    let resumed = events(&d, seq_before_stop);
    assert_eq!(
        resumed.first().and_then(|e| e["seq"].as_u64()),
        Some(seq_before_stop + 1),
        "--since resumes right after"
    );
    let states: Vec<&str> = resumed.iter().filter_map(|e| e["state"].as_str()).collect();
    assert_eq!(states, vec!["stopping", "stopped"], "{resumed:?}");
    assert!(
        resumed.iter().any(|e| e["kind"] == "powerdown_sent"),
        "{resumed:?}"
    );
    assert!(ok(&d, &["logs", "g1"]).contains("GUEST-POWEROFF"));
}
