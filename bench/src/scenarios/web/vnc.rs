//! The VM's screen read two ways: the RFB stream over vmd-web's WebSocket
//! (`GET /api/v1/vms/NAME/vnc?ticket=`, `binary` subprotocol) and over vmd's own socket relay
//! (`GET /v1/vms/NAME/vnc`, `Upgrade: vmd-vnc`), the floor. Both end at the same QEMU VNC
//! server. The client completes the RFB 3.8 handshake (security None, shared), then asks for
//! the whole screen, not incremental, one round at a time, in Raw encoding (no SetEncodings
//! is sent), and counts the bytes of each update.

use std::collections::VecDeque;
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

/// How long any read may block.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A viewer past the RFB handshake.
pub struct Viewer<S> {
    s: S,
    /// The FramebufferUpdateRequest sent each round.
    request: Vec<u8>,
    bytes_per_pixel: u64,
    /// Screen size.
    pub width: u16,
    /// Screen size.
    pub height: u16,
}

impl<S: Read + Write> Viewer<S> {
    fn new(mut s: S) -> anyhow::Result<Viewer<S>> {
        let (width, height, bytes_per_pixel) = handshake(&mut s)?;
        let mut request = vec![3u8, 0, 0, 0, 0, 0];
        request.extend_from_slice(&width.to_be_bytes());
        request.extend_from_slice(&height.to_be_bytes());
        Ok(Viewer {
            s,
            request,
            bytes_per_pixel,
            width,
            height,
        })
    }

    /// Asks for the whole screen (not incremental) and reads the update; returns its bytes.
    pub fn round(&mut self) -> anyhow::Result<u64> {
        send(&mut self.s, &self.request)?;
        read_update(&mut self.s, self.bytes_per_pixel)
    }
}

/// Through vmd-web at `addr`, opened with `ticket`.
pub fn via_web(addr: &str, vm: &str, ticket: &str) -> anyhow::Result<Viewer<WsBytes>> {
    let url = format!("ws://{addr}/api/v1/vms/{vm}/vnc?ticket={ticket}");
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "binary".parse()?);
    let tcp = TcpStream::connect(addr).context("connecting to vmd-web")?;
    tcp.set_read_timeout(Some(TIMEOUT))?;
    tcp.set_nodelay(true)?;
    let (ws, _) = tungstenite::client(request, tcp).context("WebSocket handshake")?;
    Viewer::new(WsBytes::new(ws))
}

/// Through vmd's socket relay at `socket`.
pub fn via_socket(socket: &Path, vm: &str) -> anyhow::Result<Viewer<Buffered>> {
    let mut s = UnixStream::connect(socket).context("connecting to vmd")?;
    s.set_read_timeout(Some(TIMEOUT))?;
    let req = format!(
        "GET /v1/vms/{vm}/vnc HTTP/1.1\r\nhost: vmd\r\nconnection: Upgrade\r\nupgrade: vmd-vnc\r\n\r\n"
    );
    s.write_all(req.as_bytes())?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(read_u8(&mut s)?);
    }
    let head = String::from_utf8_lossy(&head);
    ensure!(
        head.starts_with("HTTP/1.1 101"),
        "VNC upgrade refused: {head}"
    );
    Viewer::new(Buffered(BufReader::with_capacity(1 << 16, s)))
}

/// RFB 3.8 up to ServerInit; returns the screen size and bytes per pixel.
fn handshake(s: &mut (impl Read + Write)) -> anyhow::Result<(u16, u16, u64)> {
    let mut banner = [0u8; 12];
    s.read_exact(&mut banner)?;
    ensure!(banner.starts_with(b"RFB 003."), "not RFB: {banner:?}");
    send(s, b"RFB 003.008\n")?;
    let mut types = vec![0u8; usize::from(read_u8(s)?)];
    ensure!(!types.is_empty(), "the VNC server refused the connection");
    s.read_exact(&mut types)?;
    ensure!(types.contains(&1), "no security type None: {types:?}");
    send(s, &[1])?;
    ensure!(read_u32(s)? == 0, "security handshake failed");
    send(s, &[1])?; // ClientInit, shared
    let (width, height) = (read_u16(s)?, read_u16(s)?);
    let mut pixel_format = [0u8; 16];
    s.read_exact(&mut pixel_format)?;
    let name_len = u64::from(read_u32(s)?);
    skip(s, name_len)?; // desktop name
    Ok((width, height, u64::from(pixel_format[0] / 8)))
}

/// Reads one FramebufferUpdate of Raw rectangles; returns its size in bytes.
fn read_update(s: &mut impl Read, bytes_pp: u64) -> anyhow::Result<u64> {
    let kind = read_u8(s)?;
    ensure!(
        kind == 0,
        "server message {kind}, expected a FramebufferUpdate"
    );
    read_u8(s)?;
    let rects = read_u16(s)?;
    let mut bytes = 4;
    for _ in 0..rects {
        let mut rect = [0u8; 12];
        s.read_exact(&mut rect)?;
        let w = u64::from(u16::from_be_bytes([rect[4], rect[5]]));
        let h = u64::from(u16::from_be_bytes([rect[6], rect[7]]));
        let encoding = i32::from_be_bytes([rect[8], rect[9], rect[10], rect[11]]);
        if encoding != 0 {
            bail!("rectangle encoding {encoding}, expected Raw (0)");
        }
        skip(s, w * h * bytes_pp)?;
        bytes += 12 + w * h * bytes_pp;
    }
    Ok(bytes)
}

fn send(s: &mut impl Write, bytes: &[u8]) -> anyhow::Result<()> {
    s.write_all(bytes)?;
    Ok(s.flush()?)
}

fn skip(s: &mut impl Read, n: u64) -> anyhow::Result<()> {
    let copied = std::io::copy(&mut s.take(n), &mut std::io::sink())?;
    ensure!(copied == n, "stream ended {} bytes early", n - copied);
    Ok(())
}

fn read_u8(s: &mut impl Read) -> anyhow::Result<u8> {
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    Ok(b[0])
}

fn read_u16(s: &mut impl Read) -> anyhow::Result<u16> {
    let mut b = [0u8; 2];
    s.read_exact(&mut b)?;
    Ok(u16::from_be_bytes(b))
}

fn read_u32(s: &mut impl Read) -> anyhow::Result<u32> {
    let mut b = [0u8; 4];
    s.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

/// vmd's relay, read through a buffer and written straight through.
pub struct Buffered(BufReader<UnixStream>);

impl Read for Buffered {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Buffered {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.get_mut().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.get_mut().flush()
    }
}

/// The WebSocket as a byte stream: binary messages in, one binary message per write out.
pub struct WsBytes {
    ws: WebSocket<TcpStream>,
    buf: VecDeque<u8>,
}

impl WsBytes {
    fn new(ws: WebSocket<TcpStream>) -> WsBytes {
        WsBytes {
            ws,
            buf: VecDeque::new(),
        }
    }
}

impl Read for WsBytes {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.ws.read().map_err(std::io::Error::other)? {
                Message::Binary(bytes) => self.buf.extend(bytes.iter()),
                Message::Close(_) => return Ok(0),
                _ => {}
            }
        }
        self.buf.read(out)
    }
}

impl Write for WsBytes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let message = Message::Binary(buf.to_vec().into());
        self.ws.send(message).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.ws.flush().map_err(std::io::Error::other)
    }
}
