//! Errors of vmctl, how they are printed, and the one place that turns them into exit codes.
//!
//! # Exit codes
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | other error: vmd `internal`, a JSON-RPC error that is not vmd's (e.g. `-32602` invalid params), connection lost, unexpected reply, local I/O, the VM crashed (or stopped, waiting for readiness) during `wait` |
//! | 2 | usage error (printed by clap) |
//! | 3 | not found (`not_found`) |
//! | 4 | conflict (`already_exists`, `in_use`, `wrong_state`; a busy console is `in_use`) |
//! | 5 | daemon unreachable (socket missing, connection refused or denied, not a vmd socket) |
//! | 6 | invalid argument (vmd's `invalid_argument`, or a bad name, size or FILE found locally) |
//! | 7 | permission denied or not authenticated (`permission_denied`, `unauthenticated`: a bad, expired or revoked token, a failed login) |
//! | 8 | timed out (`wait --timeout`) |
//! | 9 | no space (`no_space`) |
//! | 10 | quota exceeded (`quota_exceeded`) |
//!
//! # What stderr gets
//! In table mode: `vmctl: error: <message chain joined by ": ">`, then `hint: <hint>` when there
//! is one. With `--output json`, only one JSON line instead:
//! `{"error":{"code":404,"kind":"not_found","message":"…","hint":null,"exit_code":3}}`.
//! `code` is the JSON-RPC error code, or `null` when the failure did not come from the API
//! (`kind` is then `unreachable`, `protocol`, `io`, `timed_out`, `crashed` or `stopped`; `rpc` marks
//! non-vmd JSON-RPC errors).

use std::path::PathBuf;
use std::process::ExitCode;

use jsonrpsee::core::ClientError;
use vm_proto::{ApiError, ErrorCode};

/// A failed vmctl command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A vmd error: answered by the daemon, or found locally before asking it.
    #[error("{}", .0.full_message())]
    Api(ApiError),
    /// The socket could not be connected, or does not speak vmd's protocol.
    #[error("cannot reach vmd at {}: {cause}", socket.display())]
    Unreachable {
        /// The socket tried.
        socket: PathBuf,
        /// Why it failed.
        cause: String,
        /// What to do about it.
        hint: String,
    },
    /// A JSON-RPC error that is not one of vmd's codes (invalid params, method not found…).
    #[error("{message} (JSON-RPC error {code}){}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Rpc {
        /// The JSON-RPC error code.
        code: i32,
        /// The error message.
        message: String,
        /// The error's `data`, if any.
        detail: Option<String>,
    },
    /// The connection broke mid-request or the daemon answered something unexpected.
    #[error("{0}")]
    Protocol(String),
    /// A local I/O operation (writing output, starting the runtime) failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        source: std::io::Error,
    },
    /// A wait gave up (`wait --timeout`); the message says for what and the state reached.
    #[error("{0}")]
    TimedOut(String),
    /// The VM crashed while vmctl waited for another state.
    #[error("vm {name} crashed: {reason}")]
    Crashed {
        /// VM name.
        name: String,
        /// The daemon's `reason`.
        reason: String,
    },
    /// The VM stopped while vmctl waited for it to become ready.
    #[error("vm {name} is {state}: it stopped while vmctl waited for it")]
    Stopped {
        /// VM name.
        name: String,
        /// The state it reached.
        state: vm_proto::types::VmState,
    },
}

impl CliError {
    /// A local validation failure; exits 6 like the daemon's `invalid_argument`.
    pub fn invalid(message: impl Into<String>) -> Self {
        CliError::Api(ApiError::new(ErrorCode::InvalidArgument, message))
    }

    /// The `kind` printed in JSON mode: an [`ErrorCode`] name or
    /// `unreachable`/`rpc`/`protocol`/`io`/`timed_out`/`crashed`.
    pub fn kind(&self) -> &'static str {
        match self {
            CliError::Api(err) => err.kind().as_str(),
            CliError::Unreachable { .. } => "unreachable",
            CliError::Rpc { .. } => "rpc",
            CliError::Protocol(_) => "protocol",
            CliError::Io { .. } => "io",
            CliError::TimedOut(_) => "timed_out",
            CliError::Crashed { .. } => "crashed",
            CliError::Stopped { .. } => "stopped",
        }
    }

    /// The JSON-RPC error code, when the error came from (or mirrors) the API.
    pub fn code(&self) -> Option<i32> {
        match self {
            CliError::Api(err) => Some(err.kind().code()),
            CliError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<&str> {
        match self {
            CliError::Api(err) => err.data.hint.as_deref(),
            CliError::Unreachable { hint, .. } => Some(hint),
            _ => None,
        }
    }

    /// The process exit status: the one mapping from failures to exit codes.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Api(err) => match err.kind() {
                ErrorCode::NotFound => 3,
                ErrorCode::AlreadyExists | ErrorCode::InUse | ErrorCode::WrongState => 4,
                ErrorCode::InvalidArgument => 6,
                ErrorCode::PermissionDenied | ErrorCode::Unauthenticated => 7,
                ErrorCode::NoSpace => 9,
                ErrorCode::QuotaExceeded => 10,
                ErrorCode::Unavailable => 5,
                ErrorCode::Internal => 1,
            },
            CliError::Unreachable { .. } => 5,
            CliError::TimedOut(_) => 8,
            CliError::Rpc { .. }
            | CliError::Protocol(_)
            | CliError::Io { .. }
            | CliError::Crashed { .. }
            | CliError::Stopped { .. } => 1,
        }
    }

    /// The single JSON line printed on stderr in JSON mode.
    pub fn to_json(&self) -> String {
        let error = JsonError {
            code: self.code(),
            kind: self.kind(),
            message: self.to_string(),
            hint: self.hint(),
            exit_code: self.exit_code(),
        };
        let line = JsonLine { error };
        serde_json::to_string(&line).unwrap_or_else(|_| r#"{"error":{}}"#.to_string())
    }

    /// Prints the error on stderr, as text or (in JSON mode) as one JSON line.
    pub fn report(&self, json: bool) {
        if json {
            eprintln!("{}", self.to_json());
            return;
        }
        eprintln!("vmctl: error: {self}");
        if let Some(hint) = self.hint() {
            eprintln!("hint: {hint}");
        }
    }
}

/// The JSON error line.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    error: JsonError<'a>,
}

/// The `error` object of the JSON error line, fields in documentation order.
#[derive(serde::Serialize)]
struct JsonError<'a> {
    code: Option<i32>,
    kind: &'static str,
    message: String,
    hint: Option<&'a str>,
    exit_code: u8,
}

impl From<&CliError> for ExitCode {
    fn from(err: &CliError) -> Self {
        ExitCode::from(err.exit_code())
    }
}

impl From<ApiError> for CliError {
    fn from(err: ApiError) -> Self {
        CliError::Api(err)
    }
}

impl From<ClientError> for CliError {
    fn from(err: ClientError) -> Self {
        match err {
            ClientError::Call(obj) => {
                let data = obj.data().map(|d| d.get());
                match ApiError::from_parts(obj.code(), obj.message(), data) {
                    Some(api) => CliError::Api(api),
                    None => CliError::Rpc {
                        code: obj.code(),
                        message: obj.message().to_string(),
                        detail: data.map(unquote),
                    },
                }
            }
            ClientError::RestartNeeded(cause) => {
                CliError::Protocol(format!("connection to vmd lost: {cause}"))
            }
            other => CliError::Protocol(other.to_string()),
        }
    }
}

/// A JSON string's contents, or the raw JSON for any other value.
fn unquote(raw: &str) -> String {
    serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonrpsee::types::ErrorObjectOwned;

    fn call_error(code: i32, data: Option<serde_json::Value>) -> CliError {
        CliError::from(ClientError::Call(ErrorObjectOwned::owned(
            code, "boom", data,
        )))
    }

    #[test]
    fn every_error_code_has_its_exit_code() {
        let expected = |kind| match kind {
            ErrorCode::InvalidArgument => 6,
            ErrorCode::NotFound => 3,
            ErrorCode::AlreadyExists | ErrorCode::InUse | ErrorCode::WrongState => 4,
            ErrorCode::PermissionDenied | ErrorCode::Unauthenticated => 7,
            ErrorCode::NoSpace => 9,
            ErrorCode::QuotaExceeded => 10,
            ErrorCode::Unavailable => 5,
            ErrorCode::Internal => 1,
        };
        for kind in ErrorCode::ALL {
            let data = serde_json::json!({"kind": kind, "chain": ["boom", "cause"]});
            let err = call_error(kind.code(), Some(data));
            assert_eq!(err.exit_code(), expected(kind), "{kind:?}");
            assert_eq!(err.kind(), kind.as_str());
            assert_eq!(err.to_string(), "boom: cause");
        }
    }

    #[test]
    fn foreign_rpc_errors_exit_1_with_their_message() {
        let err = call_error(-32602, Some(serde_json::json!("unknown field `x`")));
        assert_eq!(err.exit_code(), 1);
        assert_eq!(err.kind(), "rpc");
        assert_eq!(
            err.to_string(),
            "boom (JSON-RPC error -32602): unknown field `x`"
        );
    }

    #[test]
    fn other_failures_have_their_codes() {
        let unreachable = CliError::Unreachable {
            socket: PathBuf::from("/x.sock"),
            cause: "refused".into(),
            hint: "start it".into(),
        };
        assert_eq!(unreachable.exit_code(), 5);
        assert_eq!(
            unreachable.to_string(),
            "cannot reach vmd at /x.sock: refused"
        );
        assert_eq!(CliError::invalid("bad size").exit_code(), 6);
        assert_eq!(CliError::Protocol("lost".into()).exit_code(), 1);
        assert_eq!(CliError::from(ClientError::RequestTimeout).exit_code(), 1);
        let timed_out = CliError::TimedOut("timed out after 3 s".into());
        assert_eq!((timed_out.exit_code(), timed_out.kind()), (8, "timed_out"));
        let crashed = CliError::Crashed {
            name: "web1".into(),
            reason: "guest panicked".into(),
        };
        assert_eq!(crashed.exit_code(), 1);
        assert_eq!(crashed.to_string(), "vm web1 crashed: guest panicked");
    }

    #[test]
    fn json_line_has_every_field() {
        let err =
            CliError::Api(ApiError::new(ErrorCode::NotFound, "vm x not found").with_hint("ls"));
        let line = err.to_json();
        let expected = r#"{"error":{"code":404,"kind":"not_found","message":"vm x not found","hint":"ls","exit_code":3}}"#;
        assert_eq!(line, expected);
        let io: serde_json::Value =
            serde_json::from_str(&CliError::Protocol("x".into()).to_json()).expect("json");
        assert!(io["error"]["code"].is_null() && io["error"]["hint"].is_null());
    }
}
