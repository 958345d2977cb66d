//! Test harness: a real `vmd` process in a temporary directory on a temporary socket, readiness
//! taken from a real sd_notify socket (no sleeps), raw HTTP/JSON-RPC over the Unix socket, the
//! built `vmctl` binary, and real qemu-img to make fixture images.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub mod accounts;
pub mod guest;
pub mod guest_disk;
pub mod lab;
pub mod matrix;
pub mod templates;

pub use testkit::http::parse_response;
pub use testkit::procs::kill_guests_under;
use testkit::procs::NotifyError;

/// How long any wait in these tests may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A running daemon and its directory.
pub struct Daemon {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The socket.
    pub socket: PathBuf,
    /// The state directory.
    pub state: PathBuf,
    child: Option<Child>,
    notify: UnixDatagram,
    config: String,
    wrapper: Vec<String>,
}

impl Daemon {
    /// Starts a daemon in a fresh directory and waits until it reports READY=1.
    pub fn start() -> Daemon {
        Daemon::start_in(tempfile::tempdir().expect("tempdir"))
    }

    /// Starts a daemon in `dir` (reusing its state) and waits for READY=1.
    pub fn start_in(dir: tempfile::TempDir) -> Daemon {
        Daemon::launch(dir, "", &[], &[])
    }

    /// Starts a daemon in `dir` with `config` (TOML) as its config file, and waits for READY=1.
    pub fn start_configured(dir: tempfile::TempDir, config: &str) -> Daemon {
        Daemon::launch(dir, config, &[], &[])
    }

    /// Starts a daemon in `dir` with extra environment variables (e.g. a reduced `PATH`).
    pub fn start_with_env(dir: tempfile::TempDir, vars: &[(&str, &Path)]) -> Daemon {
        Daemon::launch(dir, "", &[], vars)
    }

    /// Starts a daemon in `dir` (reusing its state) with `config` and `wrapper` (see
    /// [`Daemon::start_with`]), and waits for READY=1.
    pub fn start_in_with(dir: tempfile::TempDir, config: &str, wrapper: &[&str]) -> Daemon {
        Daemon::launch(dir, config, wrapper, &[])
    }

    /// Starts a daemon in a fresh directory with `config` as its config file, its command
    /// prefixed by `wrapper` (e.g. `["prlimit", "--nofile=128:128", "--"]`), and waits for
    /// READY=1.
    pub fn start_with(config: &str, wrapper: &[&str]) -> Daemon {
        Daemon::launch(tempfile::tempdir().expect("tempdir"), config, wrapper, &[])
    }

    fn launch(
        dir: tempfile::TempDir,
        config: &str,
        wrapper: &[&str],
        vars: &[(&str, &Path)],
    ) -> Daemon {
        // Searchable like /var/lib: the image sandbox user must reach the state directory.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .expect("chmod tempdir");
        let notify_path = dir.path().join("notify.sock");
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut d = Daemon {
            socket: dir.path().join("run/vmd.sock"),
            state: dir.path().join("state"),
            dir,
            child: None,
            notify,
            config: config.to_string(),
            wrapper: wrapper.iter().map(|w| w.to_string()).collect(),
        };
        d.child = Some(d.spawn(&notify_path, vars));
        d.wait_notify("READY=1");
        d
    }

    fn spawn(&self, notify_path: &Path, vars: &[(&str, &Path)]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log");
        // Always a config file (empty by default): a host's /etc/vmd/vmd.toml must not change
        // what tests see.
        let config = self.dir.path().join("vmd.toml");
        std::fs::write(&config, &self.config).expect("config");
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(vmd_bin());
                c
            }
            None => Command::new(vmd_bin()),
        };
        command
            .args([
                "--socket",
                path_str(&self.socket),
                "--state-dir",
                path_str(&self.state),
            ])
            .args([
                "--log-format",
                "text",
                "--log-level",
                "debug",
                "--config",
                path_str(&config),
            ])
            .env("NOTIFY_SOCKET", notify_path)
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn vmd (and its wrapper)")
    }

    /// The daemon's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("vmd.log")
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits for an sd_notify datagram containing `what`.
    pub fn wait_notify(&mut self, what: &str) {
        let deadline = Instant::now() + DEADLINE;
        let child = self.child.as_mut();
        match testkit::procs::wait_notify(&self.notify, child, what, deadline) {
            Ok(()) => {}
            Err(NotifyError::Exited(status)) => {
                panic!("vmd exited ({status}) before {what}; log:\n{}", self.log())
            }
            Err(NotifyError::Timeout) => panic!(
                "no {what} from vmd within {DEADLINE:?}; log:\n{}",
                self.log()
            ),
        }
    }

    /// The daemon's pid (a wrapper like `prlimit` execs vmd, keeping the pid).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The daemon's exit status if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().expect("wait")
    }

    /// SIGKILLs the daemon and reaps it, returning the directory for a restart.
    pub fn kill9(mut self) -> tempfile::TempDir {
        let mut child = self.child.take().expect("running");
        child.kill().expect("kill -9");
        child.wait().expect("reap");
        self.take_dir()
    }

    /// SIGTERMs the daemon and waits for it to exit (with a deadline), returning its status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "vmd did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn take_dir(mut self) -> tempfile::TempDir {
        let placeholder = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, placeholder)
    }

    /// A JSON-RPC call over HTTP POST; returns the whole response object.
    pub fn call(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let (_, text) = self.http("POST", "/", "application/json", body.to_string().as_bytes());
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON from vmd ({e}): {text}"))
    }

    /// A call that must succeed; returns `result`.
    pub fn ok(&self, method: &str, params: Value) -> Value {
        let resp = self.call(method, params);
        assert!(resp.get("error").is_none(), "{method} failed: {resp}");
        resp["result"].clone()
    }

    /// A call that must fail; returns `error`.
    pub fn err(&self, method: &str, params: Value) -> Value {
        let resp = self.call(method, params);
        assert!(
            resp.get("result").is_none(),
            "{method} unexpectedly succeeded: {resp}"
        );
        resp["error"].clone()
    }

    /// One HTTP/1.1 request on the socket; returns status and body.
    pub fn http(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
        let mut stream = UnixStream::connect(&self.socket).expect("connect to vmd");
        stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("write head");
        let _ = stream.write_all(body);
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        parse_response(&raw)
    }

    /// Uploads a file's bytes; returns the upload object.
    pub fn upload(&self, file: &Path) -> Value {
        let bytes = std::fs::read(file).expect("read fixture");
        let (status, text) = self.http("PUT", "/v1/uploads", "application/octet-stream", &bytes);
        assert_eq!(status, 201, "upload failed: {text}");
        serde_json::from_str(&text).expect("upload json")
    }

    /// Uploads and imports `file` as image `name`; returns the image.
    pub fn import(&self, file: &Path, name: &str) -> Value {
        let upload = self.upload(file);
        self.ok(
            "image.import",
            json!([{"name": name, "upload_id": upload["upload_id"]}]),
        )
    }

    /// Runs the built `vmctl` against this daemon.
    pub fn vmctl(&self, args: &[&str]) -> Output {
        Command::new(vmctl_bin())
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run vmctl")
    }

    /// Everything a failed request must leave unchanged: lists and files (hidden ones too).
    pub fn snapshot(&self) -> (Value, Value, Vec<String>) {
        let mut files = Vec::new();
        for sub in ["images", "overlays", "uploads"] {
            for entry in std::fs::read_dir(self.state.join(sub))
                .expect("read state dir")
                .flatten()
            {
                files.push(format!("{sub}/{}", entry.file_name().to_string_lossy()));
            }
        }
        files.sort();
        (
            self.ok("image.list", json!([])),
            self.ok("vm.list", json!([])),
            files,
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Guests outlive vmd by design, so the daemon's death does not end them: kill every
        // QEMU whose command line names this test's directory (even after a panic).
        kill_guests_under(self.dir.path());
    }
}

/// Whether `pid` is a live process (a zombie is not: an orphaned QEMU is reaped by init,
/// which may be slow here).
pub fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// Live QEMU processes whose command line names `needle` (a run directory, an overlay).
pub fn qemus_naming(needle: &str) -> Vec<u64> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.starts_with("qemu-system") && cmd.contains(needle) && alive(*pid)
        })
        .collect()
}

/// A tmpfs mounted for one test, unmounted on drop (also after a panic).
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `64m`) at `path`, creating it.
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mount point");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .expect("run mount (tests run as root)");
        assert!(
            out.status.success(),
            "mount tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { path: path.into() }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut cmd = Command::new("umount");
            if lazy {
                cmd.arg("-l");
            }
            cmd.arg(&self.path).status().is_ok_and(|s| s.success())
        };
        if !umount(false) {
            umount(true);
        }
        let _ = std::fs::remove_dir(&self.path);
        if let Some(parent) = self.path.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}

/// The built daemon.
pub fn vmd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vmd"))
}

/// The built CLI, next to the daemon (`cargo build --workspace --bins` builds both).
pub fn vmctl_bin() -> PathBuf {
    let path = vmd_bin().with_file_name("vmctl");
    assert!(
        path.exists(),
        "{} missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// `Path` as `&str` for argv.
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs qemu-img with `args`, panicking with its stderr on failure.
pub fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img (run scripts/setup.sh)");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A raw disk of `size` (e.g. "64M") with an MBR boot signature.
pub fn raw_disk(dir: &Path, name: &str, size: &str) -> PathBuf {
    let path = dir.join(name);
    qemu_img(&["create", "-q", "-f", "raw", path_str(&path), size]);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open raw");
    use std::io::{Seek, SeekFrom};
    f.seek(SeekFrom::Start(510)).expect("seek");
    f.write_all(&[0x55, 0xaa]).expect("mbr signature");
    path
}

/// Converts `src` (raw) into `format` next to it.
pub fn convert(src: &Path, format: &str) -> PathBuf {
    let dst = src.with_extension(format);
    qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        format,
        path_str(src),
        path_str(&dst),
    ]);
    dst
}

/// The `error.code` of an error object.
pub fn code(err: &Value) -> i64 {
    err["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no code in {err}"))
}

/// Reads from `console` until the daemon closes it (EOF or reset); past the deadline, fails
/// saying `stuck` (what staying connected would mean).
pub fn wait_closed(console: &mut UnixStream, stuck: &str) {
    let deadline = std::time::Instant::now() + DEADLINE;
    let mut buf = [0u8; 4096];
    loop {
        match console.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
        assert!(std::time::Instant::now() < deadline, "{stuck}");
    }
}
