//! The writing side of a QMP connection: one task owns it and sends queued requests in order.
//!
//! A request may carry a file descriptor ([`Outgoing::fd`]): it is sent as `SCM_RIGHTS`
//! ancillary data in the same `sendmsg` as the request's first byte, which is how QEMU ties
//! a descriptor to the command that consumes it (`add-fd`, `getfd`). Only a real Unix socket
//! can carry one; over any other stream such a request fails with `Unsupported`.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use tokio::io::{AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;

use super::Shared;

/// A queued request: its id (to fail just this one if it cannot be sent), its line, and
/// the descriptor to pass with it, if any (closed on our side once sent).
pub(super) struct Outgoing {
    pub(super) id: u64,
    pub(super) line: String,
    pub(super) fd: Option<OwnedFd>,
}

/// A stream the writer task can send requests on.
pub(super) trait QmpWrite: AsyncWrite + Unpin + Send + 'static {
    /// Writes all of `line`, its first bytes in one `sendmsg` with `fd` attached.
    fn write_with_fd(
        &mut self,
        line: &[u8],
        fd: &OwnedFd,
    ) -> impl std::future::Future<Output = io::Result<()>> + Send;
}

impl QmpWrite for OwnedWriteHalf {
    async fn write_with_fd(&mut self, line: &[u8], fd: &OwnedFd) -> io::Result<()> {
        let stream: &tokio::net::UnixStream = self.as_ref();
        let sent = stream
            .async_io(tokio::io::Interest::WRITABLE, || {
                send_fd(stream.as_raw_fd(), line, fd)
            })
            .await?;
        // The kernel may take only part of a long line; the descriptor went with the first
        // part, the rest is plain data.
        self.write_all(&line[sent..]).await
    }
}

impl<S: tokio::io::AsyncRead + AsyncWrite + Send + 'static> QmpWrite for WriteHalf<S> {
    async fn write_with_fd(&mut self, _line: &[u8], _fd: &OwnedFd) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "descriptors need a Unix socket",
        ))
    }
}

/// One non-blocking `sendmsg` of `line` with `fd` as `SCM_RIGHTS`; returns the bytes sent.
fn send_fd(socket: std::os::fd::RawFd, line: &[u8], fd: &OwnedFd) -> io::Result<usize> {
    let fds = [fd.as_raw_fd()];
    let cmsgs = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(line)];
    // MSG_NOSIGNAL: a closed peer is an EPIPE error, not a SIGPIPE.
    sendmsg::<()>(socket, &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None).map_err(io::Error::from)
}

/// Sends queued requests until every handle is gone (then half-closes, so QEMU ends the
/// session) or a write fails (then the connection counts as closed).
pub(super) async fn write_loop<W: QmpWrite>(
    mut writer: W,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<Shared>,
) {
    while let Some(request) = queue.recv().await {
        if let Err(err) = write_one(&mut writer, &request).await {
            tracing::debug!(error = %err, "QMP write failed");
            if err.kind() == io::ErrorKind::Unsupported {
                // Nothing was sent: only this request fails, at once.
                shared.resolve(request.id, Err(super::QmpError::Io(err)));
                continue;
            }
            shared.close();
            return;
        }
    }
    let _ = writer.shutdown().await;
}

async fn write_one<W: QmpWrite>(writer: &mut W, request: &Outgoing) -> io::Result<()> {
    match &request.fd {
        None => writer.write_all(request.line.as_bytes()).await?,
        Some(fd) => writer.write_with_fd(request.line.as_bytes(), fd).await?,
    }
    writer.flush().await
}
