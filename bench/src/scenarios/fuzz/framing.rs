//! HTTP framing mutations of a JSON-RPC POST: the request line, Content-Length (too small,
//! too large, negative, huge, doubled), chunked re-framing with broken chunks, oversized and
//! numerous headers, malformed header lines, bare LF line ends, pipelining, flipped head bits,
//! and sends split into parts.

use super::inputs::{post, rpc_body, Input, Kind, Seeds};
use crate::rng::Rng;

/// A JSON-RPC POST with 1–3 framing mutations.
pub fn http(seeds: &Seeds, rng: &mut Rng) -> Input {
    let body = if rng.chance(50) {
        rpc_body(seeds, rng)
    } else {
        rng.pick(&seeds.requests).to_string().into_bytes()
    };
    let mut raw = post("/", &body);
    let mut half_close = false;
    for _ in 0..rng.range(1, 3) {
        half_close |= frame_mutation(&mut raw, &body, seeds, rng);
    }
    let parts = split(raw, rng);
    Input {
        kind: Kind::Http,
        half_close: half_close || rng.chance(10),
        parts,
        import: None,
    }
}

/// Replaces the head's `old` with `new` (first occurrence).
pub fn replace(raw: &mut Vec<u8>, old: &[u8], new: &[u8]) {
    if let Some(at) = raw.windows(old.len()).position(|w| w == old) {
        raw.splice(at..at + old.len(), new.iter().copied());
    }
}

/// One framing change; true when the request is left incomplete (half-close it).
fn frame_mutation(raw: &mut Vec<u8>, body: &[u8], seeds: &Seeds, rng: &mut Rng) -> bool {
    let cl = format!("content-length: {}", body.len()).into_bytes();
    match rng.below(12) {
        0 => {
            let m = rng.one(&[
                &b"GET"[..],
                b"PUT",
                b"DELETE",
                b"OPTIONS",
                b"HEAD",
                b"post",
                b"P\x00ST",
                b"CONNECT",
                b"",
                b"POST POST",
            ]);
            replace(raw, b"POST", m);
        }
        1 => {
            let long = format!("/{}", "a".repeat(rng.range(1000, 70_000) as usize));
            let p = rng.one(&[
                "/v1/uploads",
                "/v1/vms/f0/console",
                "//",
                "/%00",
                "*",
                "http://vmd/",
                "/v1/",
                "/v1/vms/",
                "/?a=b",
                "",
                long.as_str(),
            ]);
            replace(raw, b"POST / ", format!("POST {p} ").as_bytes());
        }
        2 => {
            let v = rng.one(&[
                &b"HTTP/1.0"[..],
                b"HTTP/2.0",
                b"HTTP/9.9",
                b"HTTP/1",
                b"http/1.1",
                b"",
                b"HTTP/1.1 x",
                b"HTTP/1.1\x00",
            ]);
            replace(raw, b"HTTP/1.1", v);
        }
        3 => {
            let n = body.len() as i64;
            let v = match rng.below(6) {
                0 => (n + rng.range(1, 100) as i64).to_string(),
                1 => (n - rng.range(1, n.max(1) as u64) as i64)
                    .max(0)
                    .to_string(),
                2 => "-1".into(),
                3 => "18446744073709551616".into(),
                4 => format!("{n}, {}", n + 1),
                _ => "abc".into(),
            };
            replace(raw, &cl, format!("content-length: {v}").as_bytes());
            return true;
        }
        4 => {
            let dup = format!(
                "{}\r\ncontent-length: {}",
                String::from_utf8_lossy(&cl),
                rng.below(99)
            );
            replace(raw, &cl, dup.as_bytes());
        }
        5 => {
            *raw = chunked(raw, body, rng);
            return true;
        }
        6 => {
            let n = rng.range(8_000, 300_000) as usize;
            let big = format!("x-big: {}\r\nhost", "v".repeat(n));
            replace(raw, b"host", big.as_bytes());
        }
        7 => {
            let many: String = (0..rng.range(100, 3000))
                .map(|i| format!("x-h{i}: {i}\r\n"))
                .collect();
            replace(raw, b"host", format!("{many}host").as_bytes());
        }
        8 => {
            let bad = rng.one(&[
                &b"bad header\r\n"[..],
                b"x y: z\r\n",
                b" folded\r\n",
                b"x-nul: a\x00b\r\n",
                b"x-utf: \xff\xfe\r\n",
                b":\r\n",
                b"expect: 100-continue\r\n",
                b"transfer-encoding: gzip\r\n",
                b"upgrade: h2c\r\nconnection: upgrade\r\n",
            ]);
            replace(raw, b"host", &[bad, b"host"].concat());
        }
        9 => {
            let lf: Vec<u8> = raw.iter().copied().filter(|&b| b != b'\r').collect();
            *raw = lf;
        }
        10 => {
            for _ in 0..rng.range(1, 4) {
                let next = rpc_body(seeds, rng);
                raw.extend_from_slice(&post("/", &next));
            }
        }
        _ => {
            let head_end = raw
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .unwrap_or(raw.len());
            let i = rng.below(head_end.max(1));
            if let Some(b) = raw.get_mut(i) {
                *b ^= 1 << rng.below(8);
            }
        }
    }
    false
}

/// The request re-framed with `transfer-encoding: chunked`, with a chance of broken chunks.
pub fn chunked(raw: &[u8], body: &[u8], rng: &mut Rng) -> Vec<u8> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0);
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut out: Vec<u8> = head
        .lines()
        .filter(|l| !l.starts_with("content-length") || rng.chance(20))
        .flat_map(|l| format!("{l}\r\n").into_bytes())
        .collect();
    out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
    for piece in body.chunks(rng.range(1, 64) as usize) {
        let size = match rng.below(20) {
            0 => "zz".to_string(),
            1 => format!("{:x}", piece.len() + 5),
            2 => format!("{:x};ext=1", piece.len()),
            3 => "ffffffffffffffffff".to_string(),
            _ => format!("{:x}", piece.len()),
        };
        out.extend_from_slice(format!("{size}\r\n").as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    if rng.chance(70) {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    out
}

/// Splits `raw` into 1–4 parts written a moment apart.
pub fn split(raw: Vec<u8>, rng: &mut Rng) -> Vec<Vec<u8>> {
    if raw.len() < 2 || rng.chance(70) {
        return vec![raw];
    }
    let mut cuts: Vec<usize> = (0..rng.range(1, 3)).map(|_| rng.below(raw.len())).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut parts = Vec::new();
    let mut from = 0;
    for c in cuts.into_iter().chain([raw.len()]) {
        parts.push(raw[from..c].to_vec());
        from = c;
    }
    parts
}
