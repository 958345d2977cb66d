//! Fuzz inputs, one connection each: mutated JSON-RPC bodies in valid HTTP, mutated HTTP
//! framing (in [`super::framing`]: request line, headers, Content-Length, chunked encoding,
//! pipelining, partial and half-closed sends, oversized headers), WebSocket upgrades followed
//! by broken frames, console attach requests with bad names or upgrades, uploads with wrong
//! lengths or aborted bodies, and uploads of mutated small images followed by their import.

use serde_json::Value;

use super::corpus::{self, CONSOLE_NAMES};
use super::framing::{self, chunked, replace, split};
use super::mutate;
use crate::rng::Rng;

/// What an input exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Mutated JSON-RPC body.
    Rpc,
    /// Mutated HTTP framing.
    Http,
    /// WebSocket upgrade and frames.
    Ws,
    /// `/v1/vms/<name>/console`.
    Console,
    /// `PUT /v1/uploads` with wrong framing.
    Upload,
    /// Upload of a mutated image, then `image.import`/`iso.import`.
    Import,
}

impl Kind {
    /// Every kind with its weight (per mille of inputs).
    pub const WEIGHTS: [(Kind, u32); 6] = [
        (Kind::Rpc, 620),
        (Kind::Http, 180),
        (Kind::Ws, 80),
        (Kind::Console, 60),
        (Kind::Upload, 50),
        (Kind::Import, 10),
    ];

    /// Its name in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Rpc => "rpc",
            Kind::Http => "http",
            Kind::Ws => "ws",
            Kind::Console => "console",
            Kind::Upload => "upload",
            Kind::Import => "import",
        }
    }
}

/// One input: bytes written on one connection.
#[derive(Debug, Clone)]
pub struct Input {
    /// What it exercises.
    pub kind: Kind,
    /// Written in order, a moment apart.
    pub parts: Vec<Vec<u8>>,
    /// Shut down the writing side after the last part.
    pub half_close: bool,
    /// For [`Kind::Import`]: the method and the name to import the upload as.
    pub import: Option<(&'static str, String)>,
}

/// The seeds every generator draws from.
pub struct Seeds {
    /// JSON-RPC requests.
    pub requests: Vec<Value>,
    /// Method names.
    pub methods: Vec<&'static str>,
    /// Small images (format, bytes).
    pub images: Vec<(&'static str, Vec<u8>)>,
    /// Only these kinds (by [`Kind::as_str`]); empty for all.
    pub only: Vec<String>,
}

/// A random input.
pub fn generate(seeds: &Seeds, rng: &mut Rng) -> Input {
    let weights: Vec<u32> = Kind::WEIGHTS
        .iter()
        .map(|(k, w)| {
            let wanted = seeds.only.is_empty() || seeds.only.contains(&k.as_str().to_string());
            if wanted {
                *w
            } else {
                0
            }
        })
        .collect();
    let kind = Kind::WEIGHTS[rng.weighted(&weights)].0;
    let one = |bytes| Input {
        kind,
        parts: vec![bytes],
        half_close: false,
        import: None,
    };
    match kind {
        Kind::Rpc => one(post("/", &rpc_body(seeds, rng))),
        Kind::Http => framing::http(seeds, rng),
        Kind::Ws => ws(seeds, rng),
        Kind::Console => console(rng),
        Kind::Upload => upload(seeds, rng),
        Kind::Import => {
            let (_, image) = rng.pick(&seeds.images);
            let method = if rng.chance(85) {
                "image.import"
            } else {
                "iso.import"
            };
            Input {
                import: Some((method, format!("fzimg{}", rng.below(8)))),
                ..one(request(
                    "PUT",
                    "/v1/uploads",
                    &[],
                    &mutate::image(image, rng),
                ))
            }
        }
    }
}

pub(super) fn rpc_body(seeds: &Seeds, rng: &mut Rng) -> Vec<u8> {
    let seed = rng.pick(&seeds.requests);
    let other = rng.pick(&seeds.requests);
    mutate::json(seed, other, &seeds.methods, rng)
}

/// A well-framed POST of `body`.
pub fn post(path: &str, body: &[u8]) -> Vec<u8> {
    request("POST", path, &[("content-type", "application/json")], body)
}

/// `METHOD PATH HTTP/1.1` with host, the extra headers, content-length and connection: close.
fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: vmd\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    [head.into_bytes(), body.to_vec()].concat()
}

/// A WebSocket upgrade, valid or not, followed by 1–3 frames, mostly broken.
fn ws(seeds: &Seeds, rng: &mut Rng) -> Input {
    let key = if rng.chance(85) {
        "dGhlIHNhbXBsZSBub25jZQ=="
    } else {
        "!!"
    };
    let version = if rng.chance(85) { "13" } else { "8" };
    let head = format!(
        "GET / HTTP/1.1\r\nhost: vmd\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-key: {key}\r\nsec-websocket-version: {version}\r\n\r\n"
    );
    let frames: Vec<u8> = (0..rng.range(1, 3))
        .flat_map(|_| ws_frame(seeds, rng))
        .collect();
    Input {
        kind: Kind::Ws,
        parts: vec![head.into_bytes(), frames],
        half_close: rng.chance(50),
        import: None,
    }
}

fn ws_frame(seeds: &Seeds, rng: &mut Rng) -> Vec<u8> {
    let payload = rpc_body(seeds, rng);
    match rng.below(9) {
        0 | 1 => frame(0x81, true, &payload, None),
        2 => frame(0x81, false, &payload, None),
        3 => frame(0x81, true, &payload, Some(u64::MAX >> 1)),
        4 => frame(0x09, true, b"ping", None),
        5 => frame(0x88, true, &[0x03, 0xe7, 0xff, 0xfe], None),
        6 => frame(0x81, true, b"\xff\xfe{\"id\":1}", None),
        7 => frame(*rng.pick(&[0x83, 0xC1, 0x71, 0x02]), true, &payload, None),
        _ => (0..rng.range(1, 64))
            .map(|_| rng.next_u64() as u8)
            .collect(),
    }
}

/// A WebSocket frame: first byte, masked or not, payload, optional false length.
fn frame(first: u8, masked: bool, payload: &[u8], len: Option<u64>) -> Vec<u8> {
    let n = len.unwrap_or(payload.len() as u64);
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut out = vec![first];
    if n < 126 {
        out.push(mask_bit | n as u8);
    } else if n <= u64::from(u16::MAX) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&n.to_be_bytes());
    }
    let key = [0x37, 0xfa, 0x21, 0x3d];
    if masked {
        out.extend_from_slice(&key);
    }
    out.extend(
        payload
            .iter()
            .enumerate()
            .map(|(i, b)| if masked { b ^ key[i % 4] } else { *b }),
    );
    out
}

/// A console attach with a real, missing or hostile name, and maybe a wrong upgrade.
fn console(rng: &mut Rng) -> Input {
    let mut name = rng.pick(CONSOLE_NAMES).as_bytes().to_vec();
    if rng.chance(20) {
        name = [name, vec![b'x'; rng.range(100, 20_000) as usize]].concat();
    }
    let method: &[u8] = if rng.chance(85) {
        b"GET"
    } else {
        rng.one(&[&b"POST"[..], b"PUT"])
    };
    let upgrade = rng.one(&[
        &b"upgrade: vmd-console\r\nconnection: upgrade\r\n"[..],
        b"upgrade: vmd-console\r\n",
        b"",
        b"upgrade: websocket\r\nconnection: upgrade\r\n",
        b"upgrade: VMD-CONSOLE\r\nconnection: upgrade\r\n",
    ]);
    let head = [
        method,
        b" /v1/vms/",
        &name,
        b"/console HTTP/1.1\r\nhost: vmd\r\n",
        upgrade,
        b"\r\n",
    ]
    .concat();
    let junk: Vec<u8> = (0..rng.below(256)).map(|_| rng.next_u64() as u8).collect();
    Input {
        kind: Kind::Console,
        parts: vec![head, junk],
        half_close: true,
        import: None,
    }
}

/// `PUT /v1/uploads` with a wrong length, an aborted body, or a wrong method or path.
fn upload(seeds: &Seeds, rng: &mut Rng) -> Input {
    let body: Vec<u8> = if rng.chance(50) {
        let (_, img) = rng.pick(&seeds.images);
        img[..img.len().min(2048)].to_vec()
    } else {
        (0..rng.below(2048)).map(|_| rng.next_u64() as u8).collect()
    };
    let ctype = [("content-type", "application/octet-stream")];
    let mut raw = request("PUT", "/v1/uploads", &ctype, &body);
    let cl = format!("content-length: {}", body.len()).into_bytes();
    let mut half_close = true;
    match rng.below(7) {
        0 => replace(
            &mut raw,
            &cl,
            format!("content-length: {}", body.len() + 4096).as_bytes(),
        ),
        1 => replace(&mut raw, &cl, b"content-length: 0"),
        2 => replace(&mut raw, &cl, b"content-length: 107374182401"),
        3 => raw = chunked(&raw, &body, rng),
        4 => raw.truncate(raw.len() - body.len() / 2),
        5 => {
            let m = rng.one(&[&b"POST"[..], b"GET", b"DELETE", b"PATCH"]);
            replace(&mut raw, b"PUT", m);
            half_close = false;
        }
        _ => {
            let p = rng.one(&[
                &b"/v1/uploads/"[..],
                b"/v1/uploads?x=1",
                b"/v1/uploads/../",
                b"/V1/UPLOADS",
            ]);
            replace(&mut raw, b"/v1/uploads", p);
            half_close = false;
        }
    }
    Input {
        kind: Kind::Upload,
        parts: split(raw, rng),
        half_close,
        import: None,
    }
}

/// The seeds of a fuzz run.
pub fn seeds(images: Vec<(&'static str, Vec<u8>)>, only: Vec<String>) -> Seeds {
    Seeds {
        only,
        requests: corpus::requests(),
        methods: corpus::calls().into_iter().map(|(m, _)| m).collect(),
        images,
    }
}
