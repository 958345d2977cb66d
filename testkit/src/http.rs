//! Raw HTTP/1.1 replies as the tests and the bench read them off a socket: status, head and
//! body, with a chunked body joined; and a body streamed until the server answers.

use std::io::{Read, Write};

/// `(status, body)` of a raw reply; status 0 when there is no status line.
pub fn parse_response(raw: &[u8]) -> (u16, String) {
    let (status, _, body) = split_response(raw);
    (status, body)
}

/// `(status, head, body)` of a raw reply.
pub fn split_response(raw: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = match chunked {
        true => dechunk(body),
        false => body.to_string(),
    };
    (status, head.to_string(), body)
}

/// Joins the chunks of a chunked body (up to the last complete one).
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// After a request's head was written to `writer`: streams a `len`-byte body starting with
/// `head` (zeros after it), 64 KiB per write, on a thread of its own while `reader` (the
/// same connection) reads the reply to its end. Returns the raw reply and how many body
/// bytes could be written before the server stopped reading.
pub fn stream_until_answered<W, R>(
    mut writer: W,
    mut reader: R,
    head: &[u8],
    len: u64,
) -> (Vec<u8>, u64)
where
    W: Write + Send + 'static,
    R: Read,
{
    let head = head.to_vec();
    let sender = std::thread::spawn(move || {
        let mut sent = 0u64;
        while sent < len {
            let mut piece = vec![0u8; 64 << 10];
            let from = usize::try_from(sent).unwrap_or(usize::MAX).min(head.len());
            let take = (head.len() - from).min(piece.len());
            piece[..take].copy_from_slice(&head[from..from + take]);
            match writer.write(&piece) {
                Ok(n) => sent += n as u64,
                Err(_) => break,
            }
        }
        sent
    });
    let mut raw = Vec::new();
    let _ = reader.read_to_end(&mut raw);
    let sent = sender.join().expect("the body's writer");
    (raw, sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_chunked_bodies() {
        let plain = b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain), (404, "{}".to_string()));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), (200, "abcde".to_string()));
        let (_, head, _) = split_response(chunked);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }

    #[test]
    fn garbage_has_status_zero_and_a_cut_chunk_is_dropped() {
        assert_eq!(parse_response(b"nonsense").0, 0);
        let cut = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\nff\r\nxy";
        assert_eq!(parse_response(cut).1, "abc");
    }
}
