//! A guest's serial console through vmd (`GET /v1/vms/NAME/console`, `Upgrade: vmd-console`),
//! read until a marker appears: the test guest's ready line, or the answer of its shell.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

/// How long one read may block before the deadline is checked again.
const POLL: Duration = Duration::from_millis(20);

/// The command typed to see that the shell answers; the marker it prints is output-only
/// (the echoed command line shows `AN""SWER-$((6*7))`).
const QUESTION: &str = "echo AN\"\"SWER-$((6*7))\n";
/// What the shell prints in answer.
const ANSWER: &str = "ANSWER-42";

/// An attached console.
pub struct Console {
    stream: UnixStream,
    seen: Vec<u8>,
}

impl Console {
    /// Attaches to `vm`'s console on the daemon at `socket`.
    pub fn attach(socket: &Path, vm: &str) -> anyhow::Result<Console> {
        let mut stream = UnixStream::connect(socket).context("connecting to vmd")?;
        stream.set_read_timeout(Some(POLL))?;
        let req = format!(
            "GET /v1/vms/{vm}/console HTTP/1.1\r\nhost: vmd\r\nconnection: Upgrade\r\nupgrade: vmd-console\r\n\r\n"
        );
        stream.write_all(req.as_bytes())?;
        let head = read_head(&mut stream, Instant::now() + Duration::from_secs(30))?;
        ensure!(
            head.starts_with("HTTP/1.1 101"),
            "console attach to {vm} refused: {head}"
        );
        Ok(Console {
            stream,
            seen: Vec::new(),
        })
    }

    /// Reads until the output contains `needle` (then forgets what it read), or fails at
    /// `deadline`.
    pub fn wait_for(&mut self, needle: &str, deadline: Instant) -> anyhow::Result<()> {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&self.seen).contains(needle) {
            if Instant::now() > deadline {
                bail!(
                    "no {needle:?} on the console; saw:\n{}",
                    String::from_utf8_lossy(&self.seen)
                );
            }
            match self.stream.read(&mut buf) {
                Ok(0) => bail!("the console closed before {needle:?}"),
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e).context("reading the console"),
            }
        }
        self.seen.clear();
        Ok(())
    }

    /// Types a command the guest's shell computes and waits for its answer.
    pub fn ask(&mut self, deadline: Instant) -> anyhow::Result<()> {
        self.stream.write_all(QUESTION.as_bytes())?;
        self.wait_for(ANSWER, deadline)
    }
}

fn read_head(stream: &mut UnixStream, deadline: Instant) -> anyhow::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        ensure!(Instant::now() < deadline, "no answer to the console attach");
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => head.push(byte[0]),
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e).context("reading the attach response"),
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
