//! A real `vmd` on a temporary socket (readiness from a real sd_notify socket), and JSON-RPC
//! calls to it as root over the socket's peer credentials, for setting up fixtures.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use testkit::procs::{kill_guests_under, wait_notify, NotifyError};

use super::{parse_response, DEADLINE};

/// A running vmd and its directory.
pub struct Vmd {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The API socket.
    pub socket: PathBuf,
    child: Option<Child>,
}

impl Vmd {
    /// Starts vmd in a fresh directory and waits for READY=1.
    pub fn start() -> Vmd {
        Vmd::start_configured("")
    }

    /// Starts vmd with `config` as its config file and waits for READY=1.
    pub fn start_configured(config: &str) -> Vmd {
        let dir = tempfile::tempdir().expect("tempdir");
        // Searchable like /var/lib: the image sandbox user must reach the state directory.
        std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o711)).expect("chmod");
        let notify_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let config_text = config;
        let config = dir.path().join("vmd.toml");
        std::fs::write(&config, config_text).expect("config");
        let log = std::fs::File::create(dir.path().join("vmd.log")).expect("log");
        let socket = dir.path().join("run/vmd.sock");
        let child = Command::new(vmd_bin())
            .arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--config")
            .arg(&config)
            .args(["--log-format", "text", "--log-level", "debug"])
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn vmd");
        let mut vmd = Vmd {
            dir,
            socket,
            child: Some(child),
        };
        vmd.wait_ready(&notify);
        vmd
    }

    fn wait_ready(&mut self, notify: &UnixDatagram) {
        let deadline = Instant::now() + DEADLINE;
        match wait_notify(notify, self.child.as_mut(), "READY=1", deadline) {
            Ok(()) => {}
            Err(NotifyError::Exited(status)) => {
                panic!("vmd exited ({status}); log:\n{}", self.log())
            }
            Err(NotifyError::Timeout) => {
                panic!("vmd not ready within {DEADLINE:?}; log:\n{}", self.log())
            }
        }
    }

    /// vmd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("vmd.log")).unwrap_or_default()
    }

    /// vmd's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("vmd runs").id()
    }

    /// Kills vmd (by its pid) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One HTTP/1.1 request on the socket as root; returns status and body.
    fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let mut stream = UnixStream::connect(&self.socket).expect("connect to vmd");
        stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("write head");
        stream.write_all(body).expect("write body");
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        parse_response(&raw)
    }

    /// A JSON-RPC call as root that must succeed; returns `result`.
    pub fn ok(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let (_, text) = self.http("POST", "/", body.to_string().as_bytes());
        let resp: Value = serde_json::from_str(&text).expect("JSON from vmd");
        assert!(resp.get("error").is_none(), "{method} failed: {resp}");
        resp["result"].clone()
    }

    /// Uploads and imports a 16 MiB raw disk with an MBR signature as image `name`.
    pub fn import_disk(&self, name: &str) {
        self.import_bytes(&raw_disk(), name);
    }

    /// Uploads and imports the test guest (scripts/build-test-guest.sh) as image `name`.
    pub fn import_guest(&self, name: &str) {
        let bytes = std::fs::read(super::guest::guest_qcow2()).expect("read the guest");
        self.import_bytes(&bytes, name);
    }

    /// Uploads `bytes` and imports them as image `name`.
    pub fn import_bytes(&self, bytes: &[u8], name: &str) {
        let upload_id = self.upload(bytes);
        self.ok(
            "image.import",
            json!([{"name": name, "upload_id": upload_id}]),
        );
    }

    /// Uploads and imports the test guest's installer ISO as ISO `name`.
    pub fn import_iso(&self, name: &str) {
        let bytes = std::fs::read(super::guest::guest_iso()).expect("read the guest ISO");
        let upload_id = self.upload(&bytes);
        self.ok(
            "iso.import",
            json!([{"name": name, "upload_id": upload_id}]),
        );
    }

    /// Uploads `bytes` as root; returns the upload id.
    fn upload(&self, bytes: &[u8]) -> Value {
        let (status, text) = self.http("PUT", vm_proto_upload_path(), bytes);
        assert_eq!(status, 201, "upload failed: {text}");
        let upload: Value = serde_json::from_str(&text).expect("upload json");
        upload["upload_id"].clone()
    }

    /// An admin token (root over the socket is an admin).
    pub fn admin_token(&self) -> String {
        self.ok("token.create", json!([{"name": "web-test"}]))["token"]
            .as_str()
            .expect("token")
            .to_string()
    }

    /// Creates user `name` (with `password` if given) and returns an API token of theirs.
    pub fn user_token(&self, name: &str, password: Option<&str>) -> String {
        self.ok("user.add", json!([{"name": name, "password": password}]));
        self.ok("token.create", json!([{"user": name}]))["token"]
            .as_str()
            .expect("token")
            .to_string()
    }
}

impl Drop for Vmd {
    fn drop(&mut self) {
        self.kill();
        kill_guests_under(self.dir.path());
    }
}

/// The upload path of vmd's socket.
fn vm_proto_upload_path() -> &'static str {
    "/v1/uploads"
}

/// 16 MiB of zeros with an MBR boot signature: a raw disk QEMU can start (no OS boots).
fn raw_disk() -> Vec<u8> {
    let mut bytes = vec![0u8; 16 << 20];
    bytes[510] = 0x55;
    bytes[511] = 0xaa;
    bytes
}

/// The built daemon, next to vmd-web (`cargo build --workspace --bins` builds both).
pub fn vmd_bin() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_vmd-web")).with_file_name("vmd");
    assert!(
        path.exists(),
        "{} missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}
