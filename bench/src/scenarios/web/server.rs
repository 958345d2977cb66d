//! A vmd-web of the bench's own in front of a bench [`Daemon`]: `--listen 127.0.0.1:0`, its
//! address read from the first stdout line (`vmd-web listening on http://ADDR`), its log in
//! the daemon's directory, killed by pid on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::cleanup;
use crate::daemon::Daemon;

/// How long vmd-web may take to print its address.
const DEADLINE: Duration = Duration::from_secs(30);

/// A running vmd-web.
pub struct Web {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Web {
    /// Starts `bin` on `d`'s socket and waits for its address.
    pub fn start(bin: &Path, d: &Daemon) -> anyhow::Result<Web> {
        let log = std::fs::File::create(d.dir().join("vmd-web.log"))?;
        let mut child = Command::new(bin)
            .arg("--socket")
            .arg(&d.socket)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        cleanup::register_pid(child.id());
        let stdout = child.stdout.take().context("vmd-web stdout")?;
        let mut web = Web {
            child,
            addr: String::new(),
        };
        web.addr = first_line(stdout)?
            .trim()
            .strip_prefix("vmd-web listening on http://")
            .map(str::to_string)
            .context("vmd-web printed no address")?;
        Ok(web)
    }
}

/// The first line of `out`, read on a thread so that a silent vmd-web cannot hang the bench.
fn first_line(out: std::process::ChildStdout) -> anyhow::Result<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(out);
        let mut line = String::new();
        let _ = tx.send(reader.read_line(&mut line).map(|_| line));
        // Keep reading so that vmd-web never blocks on a full pipe.
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(Ok(line)) if !line.is_empty() => Ok(line),
        Ok(Ok(_)) => bail!("vmd-web exited before listening (see vmd-web.log)"),
        Ok(Err(err)) => Err(err).context("reading vmd-web's stdout"),
        Err(_) => bail!("vmd-web printed nothing within {DEADLINE:?}"),
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        cleanup::unregister_pid(self.child.id());
    }
}
