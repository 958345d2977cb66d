//! A keep-alive HTTP/1.1 client over any byte stream (TCP to vmd-web, the Unix socket to
//! vmd): one request at a time on one connection, the body read by `content-length` or
//! de-chunked. Raw on purpose, like [`crate::rpc`]: the client must cost next to nothing.

use std::io::{BufRead, BufReader, Read, Write};

use anyhow::{bail, Context};

/// One persistent connection.
pub struct KeepAlive<S> {
    reader: BufReader<S>,
}

impl<S: Read + Write> KeepAlive<S> {
    /// A client on `stream`.
    pub fn new(stream: S) -> KeepAlive<S> {
        KeepAlive {
            reader: BufReader::new(stream),
        }
    }

    /// Sends `head` (the request line and headers, without the blank line) and `body`;
    /// returns the status and the body.
    pub fn request(&mut self, head: &str, body: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        let req = format!("{head}content-length: {}\r\n\r\n", body.len());
        let stream = self.reader.get_mut();
        stream.write_all(req.as_bytes())?;
        stream.write_all(body)?;
        stream.flush()?;
        let (status, length, chunked) = self.read_head()?;
        let body = if chunked {
            self.read_chunked()?
        } else {
            let mut body = vec![0; length];
            self.reader.read_exact(&mut body)?;
            body
        };
        Ok((status, body))
    }

    /// Status, content length and whether the body is chunked.
    fn read_head(&mut self) -> anyhow::Result<(u16, usize, bool)> {
        let status_line = self.line()?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let (mut length, mut chunked) = (0, false);
        loop {
            let line = self.line()?.to_ascii_lowercase();
            if line.is_empty() {
                return Ok((status, length, chunked));
            }
            if let Some(v) = line.strip_prefix("content-length:") {
                length = v.trim().parse().context("bad content-length")?;
            }
            chunked |= line.starts_with("transfer-encoding:") && line.contains("chunked");
        }
    }

    fn read_chunked(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let size = usize::from_str_radix(self.line()?.trim(), 16).context("bad chunk size")?;
            let mut chunk = vec![0; size + 2];
            self.reader.read_exact(&mut chunk)?;
            if size == 0 {
                return Ok(body);
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }

    fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            bail!("connection closed");
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that answers from a canned buffer and swallows writes.
    struct Canned(std::io::Cursor<Vec<u8>>);
    impl Read for Canned {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(buf)
        }
    }
    impl Write for Canned {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn two_answers_on_one_connection() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let mut c = KeepAlive::new(Canned(std::io::Cursor::new(raw.to_vec())));
        assert_eq!(
            c.request("GET / HTTP/1.1\r\n", b"").expect("answer"),
            (200, b"{}".to_vec())
        );
        assert_eq!(
            c.request("GET / HTTP/1.1\r\n", b"").expect("answer"),
            (404, b"abc".to_vec())
        );
        assert!(c.request("GET / HTTP/1.1\r\n", b"").is_err());
    }
}
