//! The mutation engine: structural changes to a JSON value (interesting values, wrong types,
//! removed or unknown keys, other methods, ids, batches), then byte-level changes to its text
//! (flips, insertions of interesting tokens, deletions, truncation, duplicated keys, splices
//! with another seed, invalid UTF-8, deep nesting, long strings), and header-field changes to
//! small disk images.

use serde_json::{json, Value};

use crate::rng::Rng;

/// Values that tend to break parsers and range checks.
fn interesting(rng: &mut Rng) -> Value {
    match rng.below(22) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(-1),
        3 => json!(0),
        4 => json!(i64::MAX),
        5 => json!(i64::MIN),
        6 => json!(u64::MAX),
        7 => json!(4_294_967_296u64),
        8 => json!(2_147_483_648u64),
        9 => json!(1e308),
        10 => json!(-0.5),
        11 => json!(""),
        12 => json!("x".repeat(rng.range(256, 70_000) as usize)),
        13 => json!("../../../../etc/passwd"),
        14 => json!("f0\u{0}"),
        15 => json!("\u{1F4A5}\u{202E}"),
        16 => json!([]),
        17 => json!({}),
        18 => json!([[[[{}]]]]),
        19 => json!("f0"),
        20 => json!("small"),
        _ => json!(65_535),
    }
}

/// Text tokens inserted at random offsets.
const TOKENS: &[&[u8]] = &[
    b"null",
    b"-1",
    b"1e999",
    b"18446744073709551616",
    b"-0",
    b"NaN",
    b"Infinity",
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\x00",
    b"\xff\xfe",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\"method\":\"vm.remove\",",
    b"\"id\":2,",
    b"\"params\":[],",
    b"\"jsonrpc\":\"1.0\",",
    b"\"name\":\"dup\",",
    b"/*",
    b"\r\n",
    b"\t",
    b" ",
];

/// A mutated copy of `seed` (1–4 changes); `other` is another seed for splicing.
pub fn json(seed: &Value, other: &Value, methods: &[&str], rng: &mut Rng) -> Vec<u8> {
    let mut value = seed.clone();
    for _ in 0..rng.below(3) {
        structural(&mut value, methods, rng);
    }
    let mut text = value.to_string().into_bytes();
    let byte_ops = if rng.chance(40) { 0 } else { rng.range(1, 3) };
    for _ in 0..byte_ops {
        bytes(&mut text, other, rng);
    }
    text
}

/// One structural change.
fn structural(value: &mut Value, methods: &[&str], rng: &mut Rng) {
    match rng.below(8) {
        0 | 1 => *random_node(value, rng) = interesting(rng),
        2 => remove_random(random_node(value, rng), rng),
        3 => {
            if let Value::Object(map) = random_node(value, rng) {
                map.insert(format!("k{}", rng.below(100)), interesting(rng));
            }
        }
        4 => set(value, "method", json!(rng.pick(methods))),
        5 => set(value, "id", interesting(rng)),
        6 => {
            let n = rng.range(0, 40) as usize;
            *value = Value::Array(vec![value.clone(); n]);
        }
        _ => {
            let node = random_node(value, rng);
            *node = retype(node);
        }
    }
}

/// Sets `key` if `value` is an object.
fn set(value: &mut Value, key: &str, to: Value) {
    if let Some(map) = value.as_object_mut() {
        map.insert(key.into(), to);
    }
}

/// A random node of `value` (walks down at most `depth` levels).
fn random_node<'a>(value: &'a mut Value, rng: &mut Rng) -> &'a mut Value {
    let depth = rng.below(6);
    descend(value, depth, rng)
}

fn descend<'a>(node: &'a mut Value, depth: usize, rng: &mut Rng) -> &'a mut Value {
    let len = match &*node {
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        _ => 0,
    };
    if depth == 0 || len == 0 {
        return node;
    }
    let i = rng.below(len);
    match node {
        Value::Array(a) => descend(&mut a[i], depth - 1, rng),
        Value::Object(o) => match o.values_mut().nth(i) {
            Some(v) => descend(v, depth - 1, rng),
            None => unreachable!("index below the length"),
        },
        other => other,
    }
}

fn remove_random(node: &mut Value, rng: &mut Rng) {
    match node {
        Value::Array(a) if !a.is_empty() => {
            a.remove(rng.below(a.len()));
        }
        Value::Object(o) if !o.is_empty() => {
            if let Some(k) = o.keys().nth(rng.below(o.len())).cloned() {
                o.remove(&k);
            }
        }
        _ => {}
    }
}

/// The same content as another JSON type.
fn retype(node: &Value) -> Value {
    match node {
        Value::String(s) => s.parse::<i64>().map_or(json!([s]), |n| json!(n)),
        Value::Number(n) => json!(n.to_string()),
        Value::Bool(b) => json!(u8::from(*b)),
        Value::Array(a) => json!({"0": a.first().cloned().unwrap_or(Value::Null)}),
        Value::Object(o) => Value::Array(o.values().cloned().collect()),
        Value::Null => json!("null"),
    }
}

/// One byte-level change of `text`.
pub fn bytes(text: &mut Vec<u8>, other: &Value, rng: &mut Rng) {
    let at = rng.below(text.len() + 1);
    match rng.below(9) {
        0 if !text.is_empty() => {
            let i = rng.below(text.len());
            text[i] ^= 1 << rng.below(8);
        }
        1 | 2 => insert(text, at, rng.one(TOKENS)),
        3 => {
            let end = (at + rng.range(1, 16) as usize).min(text.len());
            text.drain(at..end);
        }
        4 => text.truncate(at),
        5 => {
            let tail = other.to_string().into_bytes();
            let from = rng.below(tail.len());
            text.truncate(at);
            text.extend_from_slice(&tail[from..]);
        }
        6 => {
            let depth = rng.range(64, 20_000) as usize;
            let nest = [vec![b'['; depth], vec![b']'; depth]].concat();
            insert(text, at, &nest);
        }
        7 => {
            let n = if rng.chance(2) {
                1_100_000
            } else {
                rng.range(1000, 100_000) as usize
            };
            let long = [&b"\""[..], &vec![b'a'; n], b"\""].concat();
            insert(text, at, &long);
        }
        _ => {
            let dup = rng.pick(&TOKENS[22..27]);
            let brace = text.iter().position(|&b| b == b'{').map_or(0, |p| p + 1);
            insert(text, brace, dup);
        }
    }
}

fn insert(text: &mut Vec<u8>, at: usize, what: &[u8]) {
    let at = at.min(text.len());
    text.splice(at..at, what.iter().copied());
}

/// A disk image with changed header fields: flipped bits, fields set to extreme values,
/// truncation or appended junk.
pub fn image(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut img = seed.to_vec();
    for _ in 0..rng.range(1, 4) {
        let header = img.len().min(1024);
        match rng.below(5) {
            0 | 1 if header > 0 => {
                let i = rng.below(header);
                img[i] ^= 1 << rng.below(8);
            }
            2 if header >= 16 => {
                let i = rng.below(header / 8 - 1) * 8;
                let v: u64 = *rng.pick(&[0, 1, u64::MAX, 1 << 63, 0xFFFF_FFFF, 512, 1 << 40]);
                let be = rng.chance(50);
                let raw = if be { v.to_be_bytes() } else { v.to_le_bytes() };
                let width = *rng.pick(&[4usize, 8]);
                img[i..i + width].copy_from_slice(&raw[8 - width..]);
            }
            3 => img.truncate(rng.below(img.len() + 1)),
            _ => img.extend((0..rng.below(4096)).map(|_| rng.next_u64() as u8)),
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_deterministic_and_bounded() {
        let seed = json!({"jsonrpc": "2.0", "id": 1, "method": "vm.get", "params": ["f0"]});
        let methods = ["vm.get", "vm.list"];
        let run = |s| {
            let mut rng = Rng::new(s);
            (0..200)
                .map(|_| json(&seed, &seed, &methods, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert!(run(3)
            .iter()
            .any(|m| serde_json::from_slice::<Value>(m).is_err()));
        assert!(run(3).iter().all(|m| m.len() < 3_000_000));
    }

    #[test]
    fn images_change() {
        let mut rng = Rng::new(9);
        let seed = vec![0u8; 2048];
        assert!((0..20).any(|_| image(&seed, &mut rng) != seed));
    }
}
