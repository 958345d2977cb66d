//! HTTPS over a real vmd: a self-signed certificate made at test time, vmd-web serving it on
//! 127.0.0.1, and curl trusting exactly that certificate: health, bearer auth, a `Secure`
//! login cookie, an SSE stream, a VNC console WebSocket (`wss://`, with a rustls client); then
//! the startup refusals (bad certificate or key files, plain HTTP off loopback).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;

use common::{spawn_web_logging, wait_log, Vmd, Web, DEADLINE};
use futures::StreamExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const PASSWORD: &str = "a long enough password";

/// A self-signed certificate for `127.0.0.1` and `localhost`, as PEM files in a tempdir.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let made = rcgen::generate_simple_self_signed(names).expect("self-signed certificate");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("cert.pem"), made.cert.pem()).expect("write cert");
        let key = made.signing_key.serialize_pem();
        std::fs::write(dir.path().join("key.pem"), key).expect("write key");
        Pki { dir }
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }
}

/// vmd-web serving HTTPS on a free loopback port.
struct TlsWeb {
    /// `https://127.0.0.1:PORT`.
    base: String,
    cacert: PathBuf,
    child: Child,
}

impl TlsWeb {
    fn start(vmd: &Vmd, pki: &Pki) -> TlsWeb {
        TlsWeb::start_logging(vmd, pki, std::process::Stdio::inherit())
    }

    /// [`TlsWeb::start`] with vmd-web's log going to `log`.
    fn start_logging(vmd: &Vmd, pki: &Pki, log: std::process::Stdio) -> TlsWeb {
        TlsWeb::start_with(vmd, pki, &[], log)
    }

    /// [`TlsWeb::start_logging`] with `extra` flags.
    fn start_with(vmd: &Vmd, pki: &Pki, extra: &[&str], log: std::process::Stdio) -> TlsWeb {
        let (cert, key) = (pki.cert(), pki.key());
        let args = [
            "--socket",
            vmd.socket.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
        ];
        let (child, line) = spawn_web_logging(&[&args[..], extra].concat(), log);
        let addr = line
            .trim()
            .strip_prefix("vmd-web listening on https://")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        TlsWeb {
            base: format!("https://{addr}"),
            cacert: cert,
            child,
        }
    }

    /// `curl -i` of `path` with `args`, trusting only our certificate: (status, head, body).
    fn curl(&self, path: &str, args: &[&str]) -> (u16, String, String) {
        let out = Command::new("curl")
            .args(["-sS", "-i", "--max-time", "30", "--cacert"])
            .arg(&self.cacert)
            .args(args)
            .arg(format!("{}{path}", self.base))
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no response from curl: {stderr}"));
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        (status.unwrap_or(0), head.to_string(), body.to_string())
    }

    /// `curl` as `token`, asserting `status`; the body as JSON.
    fn bearer(&self, token: &str, status: u16, path: &str, args: &[&str]) -> Value {
        let auth = format!("authorization: Bearer {token}");
        let (got, head, body) = self.curl(path, &[&["-H", &auth], args].concat());
        assert_eq!(got, status, "{head}\n{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
    }
}

impl Drop for TlsWeb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn https_serves_bearer_and_cookie_auth_and_streams() {
    let vmd = Vmd::start();
    vmd.import_disk("base");
    let ann = vmd.user_token("ann", Some(PASSWORD));
    let pki = Pki::new();
    let web = TlsWeb::start(&vmd, &pki);

    let (status, _, body) = web.curl("/health", &[]);
    assert_eq!((status, body.contains("ok")), (200, true), "{body}");
    let me = web.bearer(&ann, 200, "/api/v1/me", &[]);
    assert_eq!(me["user"], "ann", "{me}");

    let creds = json!({"user": "ann", "password": PASSWORD}).to_string();
    let json = ["-H", "content-type: application/json", "--data", &creds];
    let (status, head, body) = web.curl("/api/v1/login", &json);
    assert_eq!(status, 200, "{head}\n{body}");
    let set_cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no set-cookie: {head}"));
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().expect("pair");
    let (status, _, body) = web.curl("/api/v1/me", &["-H", &format!("cookie: {cookie}")]);
    assert_eq!(status, 200, "{body}");

    // An SSE stream over TLS: the backlog holds the VM just made; curl stops at --max-time.
    let vm = json!({"name": "tls1", "image": "base"}).to_string();
    let create = ["-H", "content-type: application/json", "--data", &vm];
    web.bearer(&ann, 201, "/api/v1/vms", &create);
    let auth = format!("authorization: Bearer {ann}");
    let sse = ["-N", "--max-time", "3", "-H", &auth];
    let (status, _, body) = web.curl("/api/v1/events?since=0", &sse);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("vm_created") && body.contains("tls1"),
        "{body}"
    );
}

/// A TLS connection to `web` trusting only its certificate.
async fn tls_connect(web: &TlsWeb) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    let cert = CertificateDer::from_pem_file(&web.cacert).expect("read cert");
    roots.add(cert).expect("trust cert");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let addr = web.base.strip_prefix("https://").expect("https");
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let connector = TlsConnector::from(Arc::new(config));
    connector.connect(name, tcp).await.expect("TLS handshake")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vnc_console_websocket_works_over_tls() {
    let pki = Pki::new();
    let (_vmd, web, ticket) = tokio::task::block_in_place(|| {
        let vmd = Vmd::start();
        vmd.import_guest("guest");
        let ann = vmd.user_token("ann", None);
        let web = TlsWeb::start(&vmd, &pki);
        let vm = json!({"name": "g", "image": "guest", "memory_mib": 128}).to_string();
        let body = ["-H", "content-type: application/json", "--data"];
        web.bearer(&ann, 201, "/api/v1/vms", &[&body[..], &[&vm]].concat());
        web.bearer(&ann, 200, "/api/v1/vms/g/start", &["-X", "POST"]);
        let kind = json!({"kind": "vnc"}).to_string();
        let path = "/api/v1/vms/g/console-ticket";
        let ticket = web.bearer(&ann, 200, path, &[&body[..], &[&kind]].concat());
        (
            vmd,
            web,
            ticket["ticket"].as_str().expect("ticket").to_string(),
        )
    });
    let url = format!("{}/api/v1/vms/g/vnc?ticket={ticket}", web.base);
    let mut request = url
        .replace("https://", "wss://")
        .into_client_request()
        .expect("url");
    let origin = web.base.parse().expect("origin");
    request.headers_mut().insert("origin", origin);
    let tls = tls_connect(&web).await;
    let (mut ws, _) = tokio_tungstenite::client_async(request, tls)
        .await
        .expect("the VNC WebSocket opens over TLS");
    let mut greeting = Vec::new();
    while greeting.len() < 12 {
        let message = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("RFB greeting in time")
            .expect("a message")
            .expect("not an error");
        greeting.extend_from_slice(&message.into_data());
    }
    assert_eq!(greeting, b"RFB 003.008\n");
}

#[test]
fn responses_over_tls_carry_hsts_and_the_security_headers() {
    let vmd = Vmd::start();
    let pki = Pki::new();
    let web = TlsWeb::start(&vmd, &pki);
    let (status, head, _) = web.curl("/health", &[]);
    assert_eq!(status, 200, "{head}");
    let head = head.to_ascii_lowercase();
    for header in [
        "strict-transport-security: max-age=31536000",
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
        "x-frame-options: deny",
    ] {
        assert!(head.contains(header), "no {header:?} in {head}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_silent_after_the_handshake_is_closed_at_the_header_timeout() {
    use tokio::io::AsyncReadExt;
    let pki = Pki::new();
    let flags = ["--header-timeout-secs", "1"];
    let (_vmd, web) = tokio::task::block_in_place(|| {
        let vmd = Vmd::start();
        let web = TlsWeb::start_with(&vmd, &pki, &flags, std::process::Stdio::inherit());
        (vmd, web)
    });
    let mut tls = tls_connect(&web).await;
    let mut buf = [0u8; 64];
    // EOF, or an error for the missing close_notify: either way vmd-web closed it.
    let read = tokio::time::timeout(DEADLINE, tls.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "still open: {read:?}");
}

#[test]
fn plain_http_is_not_spoken_on_the_tls_port() {
    let vmd = Vmd::start();
    let pki = Pki::new();
    let web = TlsWeb::start(&vmd, &pki);
    let plain = web.base.replace("https://", "http://");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", &format!("{plain}/health")])
        .output()
        .expect("run curl");
    assert!(!out.status.success(), "plain HTTP answered on the TLS port");
}

/// Starts vmd-web with `cert` and `key`; asserts it exits non-zero naming `named`.
fn refused(cert: &Path, key: &Path, named: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_vmd-web"))
        .args(["--socket", "/nonexistent.sock", "--listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .output()
        .expect("run vmd-web");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started anyway: {stderr}");
    assert!(out.stdout.is_empty(), "it listened: {:?}", out.stdout);
    assert!(stderr.contains(named), "{named} not named: {stderr}");
}

#[test]
fn bad_certificate_or_key_files_stop_startup() {
    let pki = Pki::new();
    let garbage = pki.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN NONSENSE-----\nxyz\n").expect("write");
    let missing = pki.dir.path().join("missing-key.pem");
    refused(&pki.cert(), &missing, "missing-key.pem");
    refused(&pki.cert(), &garbage, "garbage.pem");
    refused(&garbage, &pki.key(), "garbage.pem");
    // A well-formed key of another certificate.
    let other = Pki::new();
    refused(&pki.cert(), &other.key(), "does not fit");
}

#[test]
fn plain_http_off_loopback_is_refused_without_tls_or_insecure_http() {
    let out = Command::new(env!("CARGO_BIN_EXE_vmd-web"))
        .args(["--socket", "/nonexistent.sock", "--listen", "0.0.0.0:0"])
        .output()
        .expect("run vmd-web");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started anyway: {stderr}");
    assert!(
        stderr.contains("--tls-cert") && stderr.contains("--insecure-http"),
        "{stderr}"
    );
}

/// Whether a fresh HTTPS connection to `web` verifies with `cacert` as the only trusted root.
fn trusts(web: &TlsWeb, cacert: &Path) -> bool {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--max-time", "30", "--cacert"])
        .arg(cacert)
        .arg(format!("{}/health", web.base))
        .status()
        .expect("run curl");
    out.success()
}

fn hang_up(child: &Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
}

#[test]
fn sighup_serves_a_renewed_certificate_and_keeps_the_old_one_on_bad_files() {
    let vmd = Vmd::start();
    let (old, new) = (Pki::new(), Pki::new());
    let log = vmd.dir.path().join("vmd-web.log");
    let file = std::fs::File::create(&log).expect("log");
    let web = TlsWeb::start_logging(&vmd, &old, file.into());
    let old_cert = old.dir.path().join("old.pem");
    std::fs::copy(old.cert(), &old_cert).expect("keep the old certificate");
    assert!(trusts(&web, &old_cert) && !trusts(&web, &new.cert()));

    // Renewal: new files at the same paths, then SIGHUP.
    std::fs::copy(new.cert(), old.cert()).expect("renew cert");
    std::fs::copy(new.key(), old.key()).expect("renew key");
    hang_up(&web.child);
    wait_log(&log, "TLS certificate reloaded");
    assert!(
        trusts(&web, &new.cert()),
        "the renewed certificate is served"
    );
    assert!(!trusts(&web, &old_cert), "the old one is not");

    // A botched renewal keeps the certificate in force.
    std::fs::write(old.cert(), "not a certificate\n").expect("break cert");
    hang_up(&web.child);
    wait_log(&log, "TLS certificate not reloaded");
    assert!(trusts(&web, &new.cert()), "still the previous certificate");
}

#[test]
fn sighup_without_tls_is_ignored() {
    let vmd = Vmd::start();
    let log = vmd.dir.path().join("vmd-web.log");
    let file = std::fs::File::create(&log).expect("log");
    let mut web = Web::start_logging(&vmd, file.into());
    let pid = nix::unistd::Pid::from_raw(i32::try_from(web.pid()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
    wait_log(&log, "nothing to reload");
    web.request("GET", "/health", &[], None).expect(200);
    assert!(web.is_running(), "vmd-web survives SIGHUP");
}
