//! The project's test guest (scripts/build-test-guest.sh) and helpers to drive real guests:
//! waiting for console markers, attaching to the console, waiting for states.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::json;

use super::Daemon;

pub use testkit::guest::{guest_iso, guest_qcow2, BOOT};

impl Daemon {
    /// Uploads the test guest ISO as ISO `name`.
    pub fn import_iso(&self, name: &str) -> serde_json::Value {
        let upload = self.upload(&guest_iso());
        self.ok(
            "iso.import",
            json!([{"name": name, "upload_id": upload["upload_id"]}]),
        )
    }

    /// Imports the test guest as image `guest`.
    pub fn import_guest(&self) {
        self.import(&guest_qcow2(), "guest");
    }

    /// Creates and starts VM `name` from the guest image; returns the Vm.
    pub fn boot(&self, name: &str) -> serde_json::Value {
        self.ok(
            "vm.create",
            json!([{"name": name, "image": "guest", "memory_mib": 128}]),
        );
        self.ok("vm.start", json!([name]))
    }

    /// Waits until the VM's console log contains `needle` at least `count` times.
    pub fn wait_log(&self, name: &str, needle: &str, count: usize, deadline: Duration) -> String {
        let end = Instant::now() + deadline;
        loop {
            let text = self.ok("vm.logs", json!([name, 1 << 20]))["text"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if text.matches(needle).count() >= count {
                return text;
            }
            assert!(
                Instant::now() < end,
                "no {needle:?} (x{count}) from {name} in {deadline:?}; log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Polls `vm.get` until the VM is in `state`.
    pub fn wait_state(&self, name: &str, state: &str, deadline: Duration) -> serde_json::Value {
        let end = Instant::now() + deadline;
        loop {
            let vm = self.ok("vm.get", json!([name]));
            if vm["state"] == state {
                return vm;
            }
            assert!(
                Instant::now() < end,
                "{name} not {state} within {deadline:?}: {vm}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// An attached serial console (HTTP upgrade on the daemon socket).
pub struct Console {
    stream: UnixStream,
    seen: Vec<u8>,
}

impl Console {
    /// Attaches to `name`'s console; panics unless the daemon answers 101.
    pub fn attach(d: &Daemon, name: &str) -> Console {
        match Console::try_attach(d, name) {
            Ok(c) => c,
            Err(head) => panic!("console attach refused: {head}"),
        }
    }

    /// Attaches, returning the daemon's response head and body on refusal.
    pub fn try_attach(d: &Daemon, name: &str) -> Result<Console, String> {
        let mut stream = UnixStream::connect(&d.socket).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let req = format!(
            "GET /v1/vms/{name}/console HTTP/1.1\r\nhost: localhost\r\nconnection: Upgrade\r\nupgrade: vmd-console\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).expect("write");
        let mut head = Vec::new();
        let end = Instant::now() + super::DEADLINE;
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut buf = [0u8; 1];
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => head.push(buf[0]),
                Err(_) => assert!(Instant::now() < end, "no response to console attach"),
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        if !text.starts_with("HTTP/1.1 101") {
            let mut rest = String::new();
            let _ = stream.read_to_string(&mut rest);
            return Err(format!("{text}{rest}"));
        }
        Ok(Console {
            stream,
            seen: Vec::new(),
        })
    }

    /// The raw connection (read timeout 200 ms).
    pub fn into_stream(self) -> UnixStream {
        self.stream
    }

    /// Types a line.
    pub fn send(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .expect("console write");
    }

    /// Reads until the output contains `needle`.
    pub fn expect(&mut self, needle: &str, deadline: Duration) {
        let end = Instant::now() + deadline;
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&self.seen).contains(needle) {
            assert!(
                Instant::now() < end,
                "no {needle:?} on the console; saw:\n{}",
                String::from_utf8_lossy(&self.seen)
            );
            if let Ok(n) = self.stream.read(&mut buf) {
                self.seen.extend_from_slice(&buf[..n]);
            }
        }
        self.seen.clear();
    }

    /// Runs a shell command; returns its exit status and what the console showed meanwhile
    /// (the echoed command line included). The marker is output-only: the shell echoes.
    pub fn capture(&mut self, command: &str, deadline: Duration) -> (i32, String) {
        self.send(&format!("{command}; echo RC\"\"=$?=END"));
        let end = Instant::now() + deadline;
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&self.seen).into_owned();
            if let Some(at) = text.find("RC=") {
                let rest = &text[at + 3..];
                if let Some(stop) = rest.find("=END") {
                    let rc = rest[..stop].trim().parse().unwrap_or(-1);
                    self.seen.clear();
                    return (rc, text[..at].to_string());
                }
            }
            assert!(
                Instant::now() < end,
                "{command:?} did not finish; saw:\n{text}"
            );
            if let Ok(n) = self.stream.read(&mut buf) {
                self.seen.extend_from_slice(&buf[..n]);
            }
        }
    }

    /// Runs a shell command and waits for it to finish (output-only marker: the shell echoes).
    pub fn run(&mut self, command: &str) {
        self.send(&format!("{command}; echo DONE\"\"-$?"));
        self.expect("DONE-0", Duration::from_secs(60));
    }
}
