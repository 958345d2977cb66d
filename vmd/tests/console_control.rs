//! Console control with the real daemon, vmctl and the test guest: `vmctl console --force`
//! takes the serial console over (the holder reads why and is disconnected, the new client
//! runs a command), `show` / `vm.get` report the attached client, and `vmctl stop` reports
//! its progress, including a forced stop of a guest that ignores the power button.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::guest::{Console, BOOT};
use common::{path_str, vmctl_bin, Daemon, DEADLINE};
use serde_json::{json, Value};

/// Runs vmctl with `input` on stdin.
fn vmctl_with_input(d: &Daemon, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(vmctl_bin())
        .args(["--socket", path_str(&d.socket)])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vmctl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("type");
    child.wait_with_output().expect("vmctl exits")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Polls `vm.get` until its `console` field satisfies `done`.
fn wait_console(d: &Daemon, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + DEADLINE;
    loop {
        let vm = d.ok("vm.get", json!([name]));
        if done(&vm["console"]) {
            return vm["console"].clone();
        }
        assert!(
            Instant::now() < end,
            "console of {name} never as expected: {vm}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn force_takes_the_console_over_and_show_reports_the_client() {
    let d = Daemon::start();
    d.import_guest();
    d.boot("c1");
    d.wait_log("c1", "GUEST-READY c1", 1, BOOT);
    assert_eq!(d.ok("vm.get", json!(["c1"]))["console"], Value::Null);
    let mut holder = Console::attach(&d, "c1");
    let client = wait_console(&d, "c1", |c| !c.is_null());
    assert!(
        client["since"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{client}"
    );
    let shown = text(&d.vmctl(&["show", "c1"]).stdout);
    let line = shown
        .lines()
        .find(|l| l.starts_with("console "))
        .unwrap_or_default();
    let who = client["user"].as_str().expect("an admin sees who");
    assert!(line.contains(&format!("{who} since ")), "{shown}");

    let refused = vmctl_with_input(&d, &["console", "c1"], "");
    assert_eq!(refused.status.code(), Some(4), "{refused:?}");
    assert!(
        text(&refused.stderr).contains("already attached by another client"),
        "{refused:?}"
    );
    holder.send("echo still-$((20+1))");
    holder.expect("still-21", DEADLINE);

    let forced = vmctl_with_input(
        &d,
        &["console", "c1", "--force", "--linger", "5"],
        "echo forced-$((40+2))\n",
    );
    assert!(forced.status.success(), "{forced:?}");
    assert!(text(&forced.stdout).contains("forced-42"), "{forced:?}");
    holder.expect(&format!("[vmd] console taken over by {who}"), DEADLINE);
    common::wait_closed(
        &mut holder.into_stream(),
        "the displaced client stays connected",
    );
    wait_console(&d, "c1", Value::is_null);
    let shown = text(&d.vmctl(&["show", "c1"]).stdout);
    assert!(
        shown.lines().any(|l| l.trim_end() == "console        -"),
        "{shown}"
    );
    Console::attach(&d, "c1");
}

/// Boots (or restarts) `name` and makes its guest ignore the ACPI power button.
fn deaf_to_acpi(d: &Daemon, name: &str, boots: usize) {
    d.wait_log(name, &format!("GUEST-READY {name}"), boots, BOOT);
    let mut con = Console::attach(d, name);
    con.run("kill $(cat /run/acpid.pid)");
    drop(con);
    wait_console(d, name, Value::is_null);
}

#[test]
fn stop_reports_its_progress_and_forces_a_guest_that_ignores_acpi() {
    let d = Daemon::start();
    d.import_guest();
    d.boot("s1");
    d.wait_log("s1", "GUEST-READY s1", 1, BOOT);
    let out = d.vmctl(&["stop", "s1", "--timeout", "60"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stderr.contains("waiting for the guest to power off, forcing in 60 s"),
        "{stderr}"
    );
    assert!(stderr.contains("powered off after "), "{stderr}");
    assert!(!stderr.contains("forced off"), "{stderr}");

    d.ok("vm.start", json!(["s1"]));
    deaf_to_acpi(&d, "s1", 2);
    let out = d.vmctl(&["--output", "json", "stop", "s1", "--timeout", "2"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stderr), "", "json output prints no progress");
    let vm: Value = serde_json::from_slice(&out.stdout).expect("json only on stdout");
    assert_eq!(vm["state"], "stopped");

    d.ok("vm.start", json!(["s1"]));
    deaf_to_acpi(&d, "s1", 3);
    let out = d.vmctl(&["stop", "s1", "--timeout", "3"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stderr.contains("waiting for the guest to power off, forcing in 3 s"),
        "{stderr}"
    );
    assert!(stderr.contains("forced off after "), "{stderr}");
    assert_eq!(d.ok("vm.get", json!(["s1"]))["state"], "stopped");
    let log = d.ok("vm.logs", json!(["s1", 1 << 20]))["text"].to_string();
    assert_eq!(
        log.matches("GUEST-POWEROFF").count(),
        1,
        "only the first stop was graceful"
    );
}
