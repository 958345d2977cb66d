//! `upload`: what sending a sparse disk costs, side by side: a 10 GiB raw disk holding 100 MiB
//! of data sent as its extents (`?sparse=SIZE`, what vmctl does), the same file sent whole
//! (what a plain `curl -T` does), and a dense 100 MiB file; plus `vmctl image import` of the
//! sparse disk end to end. With one repetition (`--smoke`) the disk is 1 GiB with 10 MiB of data.
//!
//! The sparse upload still hashes the whole logical file (holes as zeros, so that `sha256`
//! equals `sha256sum FILE`): that CPU time is part of its figure.

use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{bail, Context};

use super::{timed, Ctx};
use crate::daemon::Daemon;
use crate::report::{Report, Unit};

const MIB: u64 = 1 << 20;

/// Runs the group.
pub fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let d = Daemon::start(ctx.opts, "upload")?;
    let smoke = ctx.opts.reps == 1;
    let (size, pieces) = if smoke {
        (1 << 30, 10)
    } else {
        (10 << 30, 100)
    };
    let scratch = tempfile::Builder::new().prefix("vmd-bench-up-").tempdir()?;
    let sparse = scratch.path().join("sparse.raw");
    let extents = write_sparse(&sparse, size, pieces)?;
    let dense = scratch.path().join("dense.raw");
    write_dense(&dense, pieces * MIB)?;
    let label = format!("{} GiB with {pieces} MiB of data", size >> 30);
    for _ in 0..ctx.opts.reps.min(3) {
        let (t, _) = timed(|| put_extents(&d.socket, &sparse, size, &extents))?;
        report.sample(
            "upload.sparse",
            Unit::Ms,
            &format!("sparse upload of {label} (extents)"),
            t,
        );
        let (t, _) = timed(|| put_whole(&d.socket, &dense))?;
        report.sample(
            "upload.dense",
            Unit::Ms,
            &format!("plain upload of {pieces} MiB"),
            t,
        );
    }
    let (t, _) = timed(|| put_whole(&d.socket, &sparse))?;
    report.sample(
        "upload.whole",
        Unit::Ms,
        &format!("plain upload of {label} (holes sent)"),
        t,
    );
    let (t, _) = timed(|| vmctl_import(ctx, &d, &sparse))?;
    report.sample(
        "upload.vmctl_import",
        Unit::Ms,
        &format!("vmctl image import of {label}"),
        t,
    );
    Ok(())
}

/// A raw disk of `size` bytes (an MBR) with `pieces` MiB of data, one every `size / pieces`;
/// returns its extents.
fn write_sparse(path: &Path, size: u64, pieces: u64) -> anyhow::Result<Vec<(u64, u64)>> {
    let file = std::fs::File::create(path)?;
    let stride = size / pieces;
    let extents: Vec<(u64, u64)> = (0..pieces).map(|i| (i * stride, MIB)).collect();
    for (offset, len) in &extents {
        file.write_all_at(&data(*offset, *len as usize), *offset)?;
    }
    file.set_len(size)?;
    Ok(extents)
}

fn write_dense(path: &Path, len: u64) -> anyhow::Result<()> {
    Ok(std::fs::write(path, data(0, len as usize))?)
}

/// Non-zero bytes (an MBR when at offset 0).
fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut bytes: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    if seed == 0 && len >= 512 {
        bytes[510..512].copy_from_slice(&[0x55, 0xaa]);
    }
    bytes
}

/// `PUT /v1/uploads?kind=disk` of the whole file.
fn put_whole(socket: &Path, path: &Path) -> anyhow::Result<()> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut stream = request(socket, "kind=disk", len)?;
    std::io::copy(&mut file, &mut stream)?;
    finish(stream)
}

/// `PUT /v1/uploads?kind=disk&sparse=SIZE` of the extents.
fn put_extents(
    socket: &Path,
    path: &Path,
    size: u64,
    extents: &[(u64, u64)],
) -> anyhow::Result<()> {
    let file = std::fs::File::open(path)?;
    let wire = extents.iter().map(|(_, len)| 16 + len).sum();
    let mut stream = request(socket, &format!("kind=disk&sparse={size}"), wire)?;
    for (offset, len) in extents {
        let mut buf = vec![0u8; *len as usize];
        file.read_exact_at(&mut buf, *offset)?;
        stream.write_all(&offset.to_be_bytes())?;
        stream.write_all(&len.to_be_bytes())?;
        stream.write_all(&buf)?;
    }
    finish(stream)
}

fn request(socket: &Path, query: &str, len: u64) -> anyhow::Result<UnixStream> {
    let mut stream = UnixStream::connect(socket).context("connecting to vmd")?;
    let head = format!(
        "PUT /v1/uploads?{query} HTTP/1.1\r\nhost: localhost\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes())?;
    Ok(stream)
}

fn finish(mut stream: UnixStream) -> anyhow::Result<()> {
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    if !reply.starts_with("HTTP/1.1 201") {
        bail!("upload refused: {reply}");
    }
    Ok(())
}

fn vmctl_import(ctx: &Ctx, d: &Daemon, path: &Path) -> anyhow::Result<()> {
    let out = std::process::Command::new(&ctx.opts.vmctl)
        .arg("--socket")
        .arg(&d.socket)
        .args(["-q", "image", "import"])
        .arg(path)
        .args(["--name", "sparse"])
        .output()?;
    if !out.status.success() {
        bail!(
            "vmctl image import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
