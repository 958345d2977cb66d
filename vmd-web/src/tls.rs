//! HTTPS: the rustls server configuration read from `--tls-cert`/`--tls-key`, and a
//! [`TlsListener`] that [`crate::server`] serves exactly like a `TcpListener`.
//!
//! Handshakes run in their own tasks (bounded by [`HANDSHAKE_TIMEOUT`]), so a slow or silent
//! client never holds up the others; finished connections reach the server through a channel.
//! At most [`MAX_HANDSHAKES`] are in flight, counting finished ones waiting for the server to
//! take them (it stops taking them at its connection cap): beyond that the accept loop waits
//! and newcomers stay in the kernel's listen backlog. Only
//! HTTP/1.1 is offered (ALPN), which is what the WebSocket consoles upgrade from. The crypto
//! provider is rustls' `ring`, chosen explicitly rather than through a process-wide default.
//!
//! SIGHUP reads the certificate and key files again ([`reload_on_hangup`]), so a renewed
//! certificate (certbot, an internal CA) is served without a restart: connections made after
//! the reload get the new one, open ones keep theirs. Files that do not load are logged and
//! the current certificate stays.

use std::fs::File;
use std::io::{self, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Longest a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const BACKLOG: usize = 64;
/// Most handshakes in flight (or done and waiting for room in the [`BACKLOG`]).
const MAX_HANDSHAKES: usize = 64;

/// The server configuration of a PEM certificate chain and a PEM private key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain = read_chain(cert)?;
    let key_der = read_key(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            format!(
                "TLS key {} does not fit certificate {}: {e}",
                key.display(),
                cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Every certificate in the PEM file `path`; an error naming the file when there is none.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let fail = |e: &dyn std::fmt::Display| format!("bad TLS certificate {}: {e}", path.display());
    let reader = BufReader::new(File::open(path).map_err(|e| fail(&e))?);
    let chain = CertificateDer::pem_reader_iter(reader)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(&e))?;
    if chain.is_empty() {
        return Err(fail(&"no PEM certificate in it"));
    }
    Ok(chain)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in the PEM file `path`.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let fail = |e: &dyn std::fmt::Display| format!("bad TLS key {}: {e}", path.display());
    let reader = BufReader::new(File::open(path).map_err(|e| fail(&e))?);
    PrivateKeyDer::from_pem_reader(reader).map_err(|e| fail(&e))
}

/// The server configuration in force; [`reload_on_hangup`] replaces it.
pub type Current = watch::Receiver<Arc<ServerConfig>>;

/// Loads `cert` and `key` now, and again on every SIGHUP for as long as the result is used.
pub fn reload_on_hangup(cert: PathBuf, key: PathBuf) -> Result<Current, String> {
    let (tx, current) = watch::channel(server_config(&cert, &key)?);
    let mut hangups =
        signal(SignalKind::hangup()).map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() && !tx.is_closed() {
            reload(&tx, &cert, &key).await;
        }
    });
    Ok(current)
}

/// Without TLS there is nothing to reload: SIGHUP is logged and otherwise ignored (its
/// default action would end the process, e.g. on `systemctl reload`).
pub fn ignore_hangup() -> Result<(), String> {
    let mut hangups =
        signal(SignalKind::hangup()).map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: nothing to reload without TLS");
        }
    });
    Ok(())
}

/// Reads the files off the async workers; replaces the configuration only if they load.
async fn reload(tx: &watch::Sender<Arc<ServerConfig>>, cert: &Path, key: &Path) {
    let (c, k) = (cert.to_path_buf(), key.to_path_buf());
    let loaded = tokio::task::spawn_blocking(move || server_config(&c, &k))
        .await
        .unwrap_or_else(|e| Err(format!("reading the TLS files failed: {e}")));
    match loaded {
        Ok(config) => {
            tx.send_replace(config);
            tracing::info!(cert = %cert.display(), "TLS certificate reloaded");
        }
        Err(cause) => {
            tracing::warn!(%cause, "TLS certificate not reloaded; still serving the previous one");
        }
    }
}

/// A TCP listener whose connections come out TLS-handshaken.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<Ready>,
}

impl TlsListener {
    /// Starts accepting on `tcp` with the `current` configuration of each moment; the accept
    /// task ends when the listener is dropped.
    pub fn new(tcp: TcpListener, current: Current) -> io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(BACKLOG);
        tokio::spawn(accept_loop(tcp, current, tx));
        Ok(TlsListener { local, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task only ends when this receiver is gone: unreachable while we hold it.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// A handshaken connection on its way to the server.
type Ready = (TlsStream<TcpStream>, SocketAddr);

/// Accepts TCP connections, each once a handshake permit is free, and hands each to its own
/// handshake task (with the configuration in force when it arrived), until `tx` closes.
async fn accept_loop(tcp: TcpListener, current: Current, tx: mpsc::Sender<Ready>) {
    let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let accepted = tokio::select! {
            accepted = accept(&tcp, &permits) => accepted,
            () = tx.closed() => return,
        };
        match accepted {
            Ok((stream, peer, permit)) => {
                let acceptor = TlsAcceptor::from(Arc::clone(&current.borrow()));
                tokio::spawn(handshake(acceptor, stream, peer, tx.clone(), permit));
            }
            Err(err) => {
                // Out of file descriptors and the like: back off as axum's own listener does.
                tracing::warn!(cause = %err, "accept failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The next TCP connection, once a handshake permit is free.
async fn accept(
    tcp: &TcpListener,
    permits: &Arc<Semaphore>,
) -> io::Result<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let permit = Arc::clone(permits).acquire_owned().await;
    let permit = permit.expect("the handshake semaphore is never closed");
    let (stream, peer) = tcp.accept().await?;
    Ok((stream, peer, permit))
}

/// One handshake, holding `_permit` until the connection is handed over; a failed one is
/// logged at debug (port scanners are not news).
async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    tx: mpsc::Sender<Ready>,
    _permit: OwnedSemaphorePermit,
) {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => {
            let _ = tx.send((tls, peer)).await;
        }
        Ok(Err(err)) => tracing::debug!(%peer, cause = %err, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a pem file\n").expect("write");
        let missing = dir.path().join("missing.pem");
        let err = server_config(&missing, &garbage).expect_err("missing cert");
        assert!(err.contains("missing.pem"), "{err}");
        let err = server_config(&garbage, &garbage).expect_err("garbage cert");
        assert!(
            err.contains("certificate") && err.contains("garbage.pem"),
            "{err}"
        );
    }
}
