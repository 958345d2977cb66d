//! Command-line flags of `vmd-web`.
//!
//! vmd-web serves plain HTTP only (no TLS yet), so it listens on a loopback address unless
//! `--insecure-http` says that a non-loopback listener is wanted anyway (behind a TLS-terminating
//! reverse proxy on the same host, for instance); then it logs a warning.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// HTTP/REST front end for vmd.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Args {
    /// vmd's socket (default: $VMD_SOCKET, else vmd's default socket).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port; the address is printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Allow plain HTTP on a non-loopback address (credentials cross the network in clear).
    #[arg(long)]
    pub insecure_http: bool,
}

impl Args {
    /// The socket to reach vmd on.
    pub fn socket_path(&self) -> PathBuf {
        vm_proto::paths::client_socket_path(self.socket.clone())
    }

    /// Refuses a non-loopback listener without `--insecure-http`; warns when it is given.
    pub fn check_listen(&self) -> Result<(), String> {
        if self.listen.ip().is_loopback() {
            return Ok(());
        }
        if !self.insecure_http {
            return Err(format!(
                "refusing plain HTTP on non-loopback address {}: TLS is not supported yet; \
                 listen on 127.0.0.1 behind a TLS reverse proxy, or pass --insecure-http",
                self.listen
            ));
        }
        tracing::warn!(listen = %self.listen, "serving plain HTTP on a non-loopback address: credentials are sent in clear");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(listen: &str, insecure: bool) -> Args {
        Args {
            socket: None,
            listen: listen.parse().expect("addr"),
            insecure_http: insecure,
        }
    }

    #[test]
    fn non_loopback_needs_insecure_http() {
        assert!(args("127.0.0.1:8080", false).check_listen().is_ok());
        assert!(args("[::1]:8080", false).check_listen().is_ok());
        let err = args("0.0.0.0:8080", false)
            .check_listen()
            .expect_err("refused");
        assert!(err.contains("--insecure-http"), "{err}");
        assert!(args("0.0.0.0:8080", true).check_listen().is_ok());
    }
}
