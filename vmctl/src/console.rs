//! The serial console through vmd: attach over HTTP/1.1 Upgrade, then copy bytes both ways.
//!
//! `GET /v1/vms/<name>/console` with `Connection: Upgrade` and `Upgrade: vmd-console` is
//! answered `101 Switching Protocols`, after which the connection is the VM's raw serial byte
//! stream in both directions. Any other status carries vmd's JSON error (404 no such VM, 412 not
//! running, 423 someone else is attached), decoded like RPC errors by [`crate::http`].
//!
//! Stdin is read on a plain thread: a blocking read cannot be cancelled, and on a tokio blocking
//! thread it would hold up the runtime's shutdown until the next key press.

use std::io::{ErrorKind, Read};
use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{CONNECTION, HOST, UPGRADE};
use hyper::upgrade::Upgraded;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use vm_proto::{CONSOLE_PATH_PREFIX, CONSOLE_UPGRADE};

use crate::client::Credential;
use crate::error::CliError;
use crate::http;
use crate::output::stream::Flow;

/// Ctrl-], the byte that detaches an interactive session; never sent to the guest.
pub const ESCAPE: u8 = 0x1d;

/// The prefix of attach failures.
const FAILED: &str = "console attach failed";

/// The console byte stream.
pub type Console = TokioIo<Upgraded>;

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The user pressed Ctrl-] (or stdin of a terminal ended).
    Detached,
    /// vmd closed the console: the VM stopped.
    Closed,
    /// Stdin ended and the linger time passed, or stdout lost its reader.
    Done,
}

/// How input is handled.
#[derive(Debug, Clone, Copy)]
pub enum Input {
    /// A terminal: Ctrl-] detaches.
    Terminal,
    /// A script: bytes are sent as they are; output is printed for `linger` after stdin ends.
    Script {
        /// Time to keep printing after stdin ends.
        linger: Duration,
    },
}

/// Attaches to the console of `vm` through the daemon at `socket`, as `token`'s user; with
/// `force`, takes it over from the client attached now (`?force=1`).
pub async fn attach(
    socket: &Path,
    token: Option<&Credential>,
    vm: &str,
    force: bool,
) -> Result<Console, CliError> {
    let endpoint = if force { "console?force=1" } else { "console" };
    upgrade(socket, token, vm, (endpoint, CONSOLE_UPGRADE)).await
}

/// Opens the byte stream of `vm`'s endpoint (`console` or `vnc`) with its `Upgrade` token.
pub async fn upgrade(
    socket: &Path,
    token: Option<&Credential>,
    vm: &str,
    (endpoint, protocol): (&str, &'static str),
) -> Result<Console, CliError> {
    let request = Request::get(format!("{CONSOLE_PATH_PREFIX}{vm}/{endpoint}"))
        .header(HOST, "localhost")
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, protocol)
        .body(Empty::<Bytes>::new())
        .map_err(|err| CliError::Protocol(format!("{FAILED}: bad request: {err}")))?;
    let response = http::round_trip(socket, token, request, FAILED).await?;
    let status = response.status();
    if status != StatusCode::SWITCHING_PROTOCOLS {
        let body = response.into_body().collect().await.map_err(|err| {
            CliError::Protocol(format!("{FAILED}: HTTP {status}: {}", http::chain(&err)))
        })?;
        return Err(http::decode_error(FAILED, status, &body.to_bytes()));
    }
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(|err| CliError::Protocol(format!("{FAILED}: {}", http::chain(&err))))?;
    Ok(TokioIo::new(upgraded))
}

/// Reads stdin on its own thread, in chunks as they arrive; the channel closes at end of input.
pub fn stdin_chunks() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 4096];
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            if tx.blocking_send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    rx
}

/// Copies `input` to the console and the console to `out` (stdout) until the session ends.
pub async fn pump(
    console: impl AsyncRead + AsyncWrite,
    mut input: mpsc::Receiver<Vec<u8>>,
    mode: Input,
    mut out: impl FnMut(&[u8]) -> Result<Flow, CliError>,
) -> Result<End, CliError> {
    let (mut from_vm, mut to_vm) = tokio::io::split(console);
    let mut buf = vec![0u8; 16 * 1024];
    let linger = tokio::time::sleep(Duration::MAX);
    tokio::pin!(linger);
    let mut lingering = false;
    loop {
        tokio::select! {
            chunk = input.recv(), if !lingering => {
                let Some(chunk) = chunk else {
                    match mode {
                        Input::Terminal => return Ok(End::Detached),
                        Input::Script { linger: time } => {
                            linger.as_mut().reset(tokio::time::Instant::now() + time);
                            lingering = true;
                            continue;
                        }
                    }
                };
                let (send, detach) = match mode {
                    Input::Terminal => split_at_escape(&chunk),
                    Input::Script { .. } => (&chunk[..], false),
                };
                if let Err(err) = to_vm.write_all(send).await {
                    return gone(err);
                }
                if detach {
                    return Ok(End::Detached);
                }
            }
            read = from_vm.read(&mut buf) => match read {
                Ok(0) => return Ok(End::Closed),
                Ok(n) => if out(&buf[..n])? == Flow::Closed {
                    return Ok(End::Done);
                },
                Err(err) => return gone(err),
            },
            () = &mut linger, if lingering => return Ok(End::Done),
        }
    }
}

/// The bytes of `chunk` to send before any Ctrl-], and whether a Ctrl-] was typed (the
/// session detaches; the escape byte and what follows it are dropped).
pub fn split_at_escape(chunk: &[u8]) -> (&[u8], bool) {
    match chunk.iter().position(|&b| b == ESCAPE) {
        Some(at) => (&chunk[..at], true),
        None => (chunk, false),
    }
}

/// A failed read or write on the console: a reset connection means vmd closed it.
fn gone(err: std::io::Error) -> Result<End, CliError> {
    match err.kind() {
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof => {
            Ok(End::Closed)
        }
        _ => Err(CliError::Protocol(format!(
            "console connection to vmd failed: {err}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_detaches_and_is_never_forwarded() {
        assert_eq!(split_at_escape(b"ls -l\r"), (&b"ls -l\r"[..], false));
        assert_eq!(split_at_escape(b"ab\x1dcd"), (&b"ab"[..], true));
        assert_eq!(split_at_escape(b"\x1d"), (&b""[..], true));
        assert_eq!(split_at_escape(b""), (&b""[..], false));
        assert_eq!(
            split_at_escape(b"\x03\x04\x1b[A"),
            (&b"\x03\x04\x1b[A"[..], false)
        );
    }

    #[test]
    fn a_stream_of_chunks_stops_at_the_first_escape() {
        let chunks: [&[u8]; 4] = [b"echo hi\r", b"x", b"y\x1dz", b"never"];
        let mut sent = Vec::new();
        for chunk in chunks {
            let (send, detach) = split_at_escape(chunk);
            sent.extend_from_slice(send);
            if detach {
                break;
            }
        }
        assert_eq!(sent, b"echo hi\rxy");
        assert!(!sent.contains(&ESCAPE));
    }

    /// Runs `pump` against an in-memory console fed by `guest`, with `keys` as stdin.
    async fn session(
        keys: &[&[u8]],
        mode: Input,
        guest: impl FnOnce(tokio::io::DuplexStream) -> tokio::task::JoinHandle<Vec<u8>>,
    ) -> (End, Vec<u8>, Vec<u8>) {
        let (ours, theirs) = tokio::io::duplex(1024);
        let typed = guest(theirs);
        let (tx, rx) = mpsc::channel(8);
        for key in keys {
            tx.send(key.to_vec()).await.expect("queued");
        }
        drop(tx);
        let mut shown = Vec::new();
        let end = pump(ours, rx, mode, |b| {
            shown.extend_from_slice(b);
            Ok(Flow::Open)
        })
        .await
        .expect("pumped");
        (end, shown, typed.await.expect("guest"))
    }

    /// A guest that prints `banner`, then reads until the client goes away.
    fn guest(
        banner: &'static [u8],
    ) -> impl FnOnce(tokio::io::DuplexStream) -> tokio::task::JoinHandle<Vec<u8>> {
        move |mut io| {
            tokio::spawn(async move {
                io.write_all(banner).await.expect("banner");
                let mut typed = Vec::new();
                let _ = io.read_to_end(&mut typed).await;
                typed
            })
        }
    }

    #[tokio::test]
    async fn scripts_send_stdin_and_linger_for_output() {
        let linger = Duration::from_millis(200);
        let (end, shown, typed) = session(
            &[b"uname\n", b"\x1d"],
            Input::Script { linger },
            guest(b"GUEST-READY g1\r\n"),
        )
        .await;
        assert_eq!(end, End::Done);
        assert_eq!(shown, b"GUEST-READY g1\r\n");
        assert_eq!(typed, b"uname\n\x1d", "scripts send every byte");
    }

    #[tokio::test]
    async fn terminal_sessions_detach_on_ctrl_close_bracket() {
        let (end, _, typed) = session(&[b"ls\r", b"q\x1dx"], Input::Terminal, guest(b"")).await;
        assert_eq!(end, End::Detached);
        assert_eq!(typed, b"ls\rq");
    }

    #[tokio::test]
    async fn a_closed_console_ends_the_session() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        theirs
            .write_all(b"reboot: Power down\r\n")
            .await
            .expect("write");
        drop(theirs);
        let (_tx, rx) = mpsc::channel(1);
        let mut shown = Vec::new();
        let end = pump(ours, rx, Input::Terminal, |b| {
            shown.extend_from_slice(b);
            Ok(Flow::Open)
        });
        assert_eq!(end.await.expect("pumped"), End::Closed);
        assert_eq!(shown, b"reboot: Power down\r\n");
    }

    /// A one-connection vmd: refuses attachment with `refusal`, or upgrades and echoes.
    async fn fake_vmd(listener: tokio::net::UnixListener, refusal: Option<StatusCode>) {
        use hyper::body::Incoming;
        use hyper::Response;
        let (stream, _) = listener.accept().await.expect("accept");
        let service = hyper::service::service_fn(move |req: Request<Incoming>| async move {
            assert_eq!(req.uri().path(), "/v1/vms/g1/console");
            assert_eq!(req.headers()[UPGRADE], CONSOLE_UPGRADE);
            let auth = req.headers().get(hyper::header::AUTHORIZATION);
            if let Some(status) = refusal {
                assert!(auth.is_none(), "no token, no header");
                let body = r#"{"error":{"code":423,"message":"busy","data":{"kind":"in_use","chain":["busy"]}}}"#;
                let reply = Response::builder()
                    .status(status)
                    .body(http_body_util::Full::new(Bytes::from(body)));
                return Ok::<_, hyper::Error>(reply.expect("reply"));
            }
            assert_eq!(auth.expect("token sent"), "Bearer t0k");
            tokio::spawn(async move {
                let mut io = TokioIo::new(hyper::upgrade::on(req).await.expect("upgraded"));
                let mut buf = [0u8; 64];
                let n = io.read(&mut buf).await.expect("read");
                io.write_all(&buf[..n]).await.expect("echo");
            });
            let reply = Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(CONNECTION, "upgrade")
                .header(UPGRADE, CONSOLE_UPGRADE)
                .body(http_body_util::Full::new(Bytes::new()));
            Ok(reply.expect("reply"))
        });
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
            .await
            .expect("serve");
    }

    #[tokio::test]
    async fn attach_upgrades_to_a_byte_stream() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("vmd.sock");
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
        let server = tokio::spawn(fake_vmd(listener, None));
        let token = Credential::new(Some("t0k".into()));
        let mut console = attach(&socket, token.as_ref(), "g1", false)
            .await
            .expect("attached");
        console.write_all(b"ping").await.expect("write");
        let mut echoed = [0u8; 4];
        console.read_exact(&mut echoed).await.expect("echo");
        assert_eq!(&echoed, b"ping");
        drop(console);
        server.await.expect("server");
    }

    #[tokio::test]
    async fn a_refused_attach_is_vmds_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("vmd.sock");
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
        let server = tokio::spawn(fake_vmd(listener, Some(StatusCode::LOCKED)));
        let err = attach(&socket, None, "g1", false)
            .await
            .expect_err("refused");
        assert_eq!((err.exit_code(), err.to_string().as_str()), (4, "busy"));
        server.await.expect("server");
    }
}
