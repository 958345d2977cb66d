//! Embeds the browser UI: walks `ui/` and writes `$OUT_DIR/ui_assets.rs`, a table of
//! `(path, etag, include_bytes!(file))` sorted by path, which `src/ui.rs` includes. No
//! dependency and no build step for the assets themselves: the files are served as they are
//! in the repository. `rerun-if-changed=ui` makes Cargo rebuild when any file below changes,
//! is added or is removed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    println!("cargo:rerun-if-changed=ui");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    let mut table = String::from("&[\n");
    for file in &files {
        let rel = file.strip_prefix(&root).expect("under ui/");
        let rel = rel.to_str().expect("UTF-8 asset path");
        let bytes = std::fs::read(file).expect("read asset");
        let etag = fnv1a(&bytes);
        let abs = file.display();
        writeln!(
            table,
            "    ({rel:?}, \"\\\"{etag:016x}\\\"\", include_bytes!({:?})),",
            abs.to_string()
        )
        .expect("write to a String");
    }
    table.push(']');
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("ui_assets.rs"), table).expect("write ui_assets.rs");
}

/// Every regular file below `dir`, skipping dot files.
fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).expect("read ui/");
    for entry in entries {
        let path = entry.expect("dir entry").path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            walk(&path, files);
        } else {
            files.push(path);
        }
    }
}

/// 64-bit FNV-1a of `bytes`: an ETag that changes when the file does.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
