//! Output that arrives over time (logs, events, console): raw bytes or JSON lines on stdout,
//! flushed at once.
//!
//! A reader that goes away (`vmctl events -f | head -1`) is not an error: the writers answer
//! [`Flow::Closed`] and the verb stops and exits 0.

use std::io::Write;

use serde::Serialize;

use crate::error::CliError;

/// Whether stdout still has a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    Open,
    /// The pipe was closed; stop.
    Closed,
}

/// Writes `data` to stdout as it is (no newline added) and flushes.
pub fn bytes(data: &[u8]) -> Result<Flow, CliError> {
    write_to(&mut std::io::stdout().lock(), data)
}

/// Writes `value` to stdout as one line of compact JSON and flushes.
pub fn json_line<T: Serialize>(value: &T) -> Result<Flow, CliError> {
    bytes(line(value)?.as_bytes())
}

/// `value` as compact JSON and a newline.
fn line<T: Serialize>(value: &T) -> Result<String, CliError> {
    let mut line = serde_json::to_string(value)
        .map_err(|err| CliError::Protocol(format!("cannot encode the result as JSON: {err}")))?;
    line.push('\n');
    Ok(line)
}

/// Writes and flushes; a broken pipe is [`Flow::Closed`].
fn write_to(out: &mut impl Write, data: &[u8]) -> Result<Flow, CliError> {
    match out.write_all(data).and_then(|()| out.flush()) {
        Ok(()) => Ok(Flow::Open),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(Flow::Closed),
        Err(source) => Err(CliError::Io {
            context: "cannot write to stdout".to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    /// A writer that fails every write with `kind`.
    struct Failing(ErrorKind);

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(self.0.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_ends_the_stream_other_failures_are_errors() {
        let mut out = Vec::new();
        assert_eq!(write_to(&mut out, b"abc").expect("written"), Flow::Open);
        assert_eq!(out, b"abc");
        let closed = write_to(&mut Failing(ErrorKind::BrokenPipe), b"x");
        assert_eq!(closed.expect("not an error"), Flow::Closed);
        let full = write_to(&mut Failing(ErrorKind::StorageFull), b"x");
        assert_eq!(full.expect_err("an error").exit_code(), 1);
    }

    #[test]
    fn json_lines_are_compact_and_end_in_a_newline() {
        let chunk = vm_proto::types::LogChunk {
            text: "login: \n".into(),
        };
        assert_eq!(line(&chunk).expect("json"), "{\"text\":\"login: \\n\"}\n");
    }
}
