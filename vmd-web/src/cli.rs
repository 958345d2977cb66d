//! Command-line flags of `vmd-web`.
//!
//! With `--tls-cert` and `--tls-key` (both or neither) vmd-web serves HTTPS and may listen on
//! any address. Without them it serves plain HTTP, so it listens on a loopback address unless
//! `--insecure-http` says that a non-loopback listener is wanted anyway; then it logs a warning.
//!
//! `--max-logins`, `--max-streams-per-credential` and `--max-streams` set the caps of
//! [`crate::limits`]; keep `--max-streams` plus `--max-logins` well below vmd's
//! `max_connections_per_uid` (128), so that short requests still reach vmd.
//!
//! Two hidden flags, for tests, change the connection limits of [`crate::server`]:
//! `--header-timeout-secs` and `--max-connections`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::builder::TypedValueParser;
use clap::Parser;

use crate::limits::Caps;
use crate::server::Limits;

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
    #[arg(long, conflicts_with = "tls_cert")]
    pub insecure_http: bool,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Logins in flight at once; one more is answered 503 at once.
    #[arg(long, value_name = "N", default_value_t = Caps::default().logins,
        value_parser = clap::value_parser!(u16).range(1..).map(usize::from))]
    pub max_logins: usize,
    /// Event streams, log followers and consoles held open per credential; one more is a 429.
    #[arg(long, value_name = "N", default_value_t = Caps::default().streams_per_credential,
        value_parser = clap::value_parser!(u16).range(1..).map(usize::from))]
    pub max_streams_per_credential: usize,
    /// Event streams, log followers and consoles held open in all; one more is a 429.
    #[arg(long, value_name = "N", default_value_t = Caps::default().streams,
        value_parser = clap::value_parser!(u16).range(1..).map(usize::from))]
    pub max_streams: usize,
    /// Seconds a client has to send a request head, and to start the next request on a
    /// kept-alive connection (hidden: for tests).
    #[arg(long, hide = true, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_secs: u64,
    /// Most connections served at once (hidden: for tests).
    #[arg(long, hide = true, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub max_connections: u64,
}

impl Args {
    /// The socket to reach vmd on.
    pub fn socket_path(&self) -> PathBuf {
        vm_proto::paths::client_socket_path(self.socket.clone())
    }

    /// The caps of [`crate::limits`].
    pub fn caps(&self) -> Caps {
        Caps {
            logins: self.max_logins,
            streams_per_credential: self.max_streams_per_credential,
            streams: self.max_streams,
        }
    }

    /// The certificate and key files, when serving HTTPS.
    pub fn tls(&self) -> Option<(&Path, &Path)> {
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }

    /// The connection limits.
    pub fn limits(&self) -> Limits {
        Limits {
            header_timeout: std::time::Duration::from_secs(self.header_timeout_secs),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
        }
    }

    /// Refuses plain HTTP on a non-loopback address without `--insecure-http`; warns when it is
    /// given.
    pub fn check_listen(&self) -> Result<(), String> {
        if self.tls().is_some() || self.listen.ip().is_loopback() {
            return Ok(());
        }
        if !self.insecure_http {
            return Err(format!(
                "refusing plain HTTP on non-loopback address {}: pass --tls-cert and --tls-key, \
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
            tls_cert: None,
            tls_key: None,
            max_logins: 8,
            max_streams_per_credential: 16,
            max_streams: 96,
            header_timeout_secs: 10,
            max_connections: 512,
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
        let tls = Args {
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            ..args("0.0.0.0:8080", false)
        };
        assert!(tls.check_listen().is_ok());
    }

    #[test]
    fn cert_and_key_come_together() {
        let parse = |extra: &[&str]| Args::try_parse_from([&["vmd-web"], extra].concat());
        assert!(parse(&["--tls-cert", "c.pem"]).is_err());
        assert!(parse(&["--tls-key", "k.pem"]).is_err());
        let both = parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).expect("both");
        assert!(both.tls().is_some());
        let insecure = ["--tls-cert", "c", "--tls-key", "k", "--insecure-http"];
        assert!(parse(&insecure).is_err());
    }

    #[test]
    fn caps_have_defaults_and_flags() {
        let parse = |extra: &[&str]| Args::try_parse_from([&["vmd-web"], extra].concat());
        assert_eq!(parse(&[]).expect("defaults").caps(), Caps::default());
        let set = [
            "--max-logins",
            "1",
            "--max-streams-per-credential",
            "2",
            "--max-streams",
            "3",
        ];
        let caps = parse(&set).expect("flags").caps();
        assert_eq!(
            (caps.logins, caps.streams_per_credential, caps.streams),
            (1, 2, 3)
        );
        assert!(parse(&["--max-logins", "0"]).is_err());
    }

    #[test]
    fn limits_default_and_refuse_zero() {
        let parse = |extra: &[&str]| Args::try_parse_from([&["vmd-web"], extra].concat());
        let limits = parse(&[]).expect("defaults").limits();
        assert_eq!(limits.header_timeout.as_secs(), 10);
        assert_eq!(limits.max_connections, 512);
        assert!(parse(&["--max-connections", "0"]).is_err());
        assert!(parse(&["--header-timeout-secs", "0"]).is_err());
    }
}
