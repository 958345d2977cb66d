//! QMP framing: one JSON object per line (QEMU ends lines with `\r\n`), classified into the
//! greeting, command replies and asynchronous events.

use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Longest frame kept; longer ones are read to their end and dropped. Generous: QEMU's
/// largest reply (`query-qmp-schema`) is about 200 KiB.
pub(super) const MAX_FRAME: usize = 16 << 20;

/// An asynchronous event from QEMU (`STOP`, `RESUME`, `RESET`, `SHUTDOWN`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct QmpEvent {
    /// Event name, e.g. `SHUTDOWN`.
    pub event: String,
    /// Event data; `Value::Null` for events without data.
    pub data: Value,
    /// When QEMU emitted it, in microseconds since the Unix epoch (0 if QEMU sent none).
    pub timestamp_micros: u64,
}

/// A QMP error reply's body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(super) struct ErrorBody {
    pub class: String,
    pub desc: String,
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Frame {
    /// The greeting (`{"QMP": {...}}`).
    Greeting(Value),
    /// An asynchronous event.
    Event(QmpEvent),
    /// A command reply; `id` is `None` when QEMU could not tie it to a request.
    Reply {
        id: Option<u64>,
        result: Result<Value, ErrorBody>,
    },
}

#[derive(Deserialize)]
struct Timestamp {
    seconds: i64,
    microseconds: i64,
}

#[derive(Deserialize)]
struct RawFrame {
    #[serde(rename = "QMP")]
    greeting: Option<Value>,
    event: Option<String>,
    #[serde(default)]
    data: Value,
    timestamp: Option<Timestamp>,
    #[serde(rename = "return")]
    ret: Option<Value>,
    error: Option<ErrorBody>,
    id: Option<Value>,
}

/// Why a line was not a frame.
#[derive(Debug, thiserror::Error)]
pub(super) enum FrameError {
    /// Not a JSON object of the expected shape.
    #[error("malformed QMP frame")]
    Json(#[from] serde_json::Error),
    /// A JSON object, but neither greeting, event nor reply.
    #[error("unknown QMP frame")]
    Unknown,
}

impl Frame {
    /// Parses one line.
    pub(super) fn parse(line: &[u8]) -> Result<Frame, FrameError> {
        let raw: RawFrame = serde_json::from_slice(line)?;
        if let Some(greeting) = raw.greeting {
            return Ok(Frame::Greeting(greeting));
        }
        if let Some(event) = raw.event {
            let timestamp_micros = raw.timestamp.map_or(0, |t| {
                let micros = t
                    .seconds
                    .saturating_mul(1_000_000)
                    .saturating_add(t.microseconds);
                u64::try_from(micros).unwrap_or(0)
            });
            return Ok(Frame::Event(QmpEvent {
                event,
                data: raw.data,
                timestamp_micros,
            }));
        }
        let id = raw.id.as_ref().and_then(Value::as_u64);
        match (raw.ret, raw.error) {
            (Some(value), None) => Ok(Frame::Reply {
                id,
                result: Ok(value),
            }),
            (None, Some(error)) => Ok(Frame::Reply {
                id,
                result: Err(error),
            }),
            _ => Err(FrameError::Unknown),
        }
    }
}

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// A line is in the buffer (with its terminator, if any).
    Complete,
    /// A line longer than [`MAX_FRAME`] was skipped.
    Oversized,
    /// End of stream.
    Eof,
}

/// Reads one line into `buf` (cleared first), keeping at most [`MAX_FRAME`] bytes.
/// A final line without a newline counts as complete.
pub(super) async fn read_line<R>(reader: &mut R, buf: &mut Vec<u8>) -> std::io::Result<Line>
where
    R: AsyncBufRead + Unpin,
{
    buf.clear();
    let mut oversized = false;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(match (oversized, buf.is_empty()) {
                (true, _) => Line::Oversized,
                (false, true) => Line::Eof,
                (false, false) => Line::Complete,
            });
        }
        let newline = chunk.iter().position(|&b| b == b'\n');
        let take = newline.map_or(chunk.len(), |i| i + 1);
        if buf.len() + take <= MAX_FRAME + 1 {
            buf.extend_from_slice(&chunk[..take]);
        } else {
            oversized = true;
            buf.clear();
        }
        reader.consume(take);
        if newline.is_some() {
            return Ok(if oversized {
                Line::Oversized
            } else {
                Line::Complete
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_greeting() {
        let line = br#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}"#;
        let Ok(Frame::Greeting(g)) = Frame::parse(line) else {
            panic!("not a greeting")
        };
        assert_eq!(g["version"]["qemu"]["major"], 7);
    }

    #[test]
    fn parses_event_with_and_without_data() {
        let line = b"{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 5}, \"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}}\r\n";
        let expected = QmpEvent {
            event: "SHUTDOWN".into(),
            data: json!({"guest": false, "reason": "host-qmp-quit"}),
            timestamp_micros: 1_700_000_000_000_005,
        };
        assert_eq!(Frame::parse(line).expect("event"), Frame::Event(expected));
        let line = br#"{"timestamp": {"seconds": -1, "microseconds": -1}, "event": "STOP"}"#;
        let Ok(Frame::Event(e)) = Frame::parse(line) else {
            panic!("not an event")
        };
        assert_eq!((e.data, e.timestamp_micros), (Value::Null, 0));
    }

    #[test]
    fn parses_replies() {
        let ok = Frame::parse(br#"{"return": {}, "id": 3}"#).expect("reply");
        assert_eq!(
            ok,
            Frame::Reply {
                id: Some(3),
                result: Ok(json!({}))
            }
        );
        let err = Frame::parse(
            br#"{"id": 4, "error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}}"#,
        )
        .expect("reply");
        let Frame::Reply { id, result: Err(e) } = err else {
            panic!("not an error reply")
        };
        assert_eq!((id, e.class.as_str()), (Some(4), "CommandNotFound"));
        let foreign_id = Frame::parse(br#"{"return": {}, "id": "x"}"#).expect("reply");
        assert!(matches!(foreign_id, Frame::Reply { id: None, .. }));
    }

    #[test]
    fn rejects_garbage_and_unknown_objects() {
        assert!(matches!(
            Frame::parse(b"not json"),
            Err(FrameError::Json(_))
        ));
        assert!(matches!(Frame::parse(b"[1]"), Err(FrameError::Json(_))));
        assert!(matches!(
            Frame::parse(br#"{"hello": 1}"#),
            Err(FrameError::Unknown)
        ));
    }

    #[tokio::test]
    async fn reads_lines_and_skips_oversized_ones() {
        let mut input = b"{\"a\":1}\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_FRAME + 10));
        input.extend_from_slice(b"\n{\"b\":2}");
        let mut reader = tokio::io::BufReader::new(&input[..]);
        let mut buf = Vec::new();
        assert_eq!(
            read_line(&mut reader, &mut buf).await.expect("read"),
            Line::Complete
        );
        assert_eq!(buf, b"{\"a\":1}\r\n");
        assert_eq!(
            read_line(&mut reader, &mut buf).await.expect("read"),
            Line::Oversized
        );
        assert_eq!(
            read_line(&mut reader, &mut buf).await.expect("read"),
            Line::Complete
        );
        assert_eq!(buf, b"{\"b\":2}");
        assert_eq!(
            read_line(&mut reader, &mut buf).await.expect("read"),
            Line::Eof
        );
    }
}
