//! Disk image format detection from magic bytes, and the header checks that run before any
//! qemu-img process sees an untrusted file.
//!
//! Detection is ours, not qemu-img's probing: the detected format is then passed explicitly.
//! The signatures are [`vm_proto::sniff`]'s, the rules vmctl and the upload endpoint also apply
//! before a whole file is sent. Raw images are only accepted when they carry a partition table
//! (MBR boot signature or a GPT header), so an arbitrary file is not mistaken for a disk. VMDKs are parsed in full by
//! [`super::vmdk`]; qcow2 headers are checked for references to other files and for a virtual
//! size above [`DISK_BYTES_MAX`].

use std::io::{Read, Seek, SeekFrom};

use vm_proto::names::format_size;
use vm_proto::sniff::{self, Refusal, UploadKind, Verdict};
use vm_proto::types::DISK_BYTES_MAX;

use super::vmdk::{self, VmdkError};

/// A format vmd can import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// QEMU copy-on-write v2/v3.
    Qcow2,
    /// Raw disk with an MBR or GPT.
    Raw,
    /// VMware monolithic sparse / stream-optimized.
    Vmdk,
    /// VirtualBox.
    Vdi,
    /// Hyper-V.
    Vhdx,
    /// Virtual PC / VHD.
    Vpc,
}

impl Format {
    /// The qemu-img driver name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Qcow2 => "qcow2",
            Format::Raw => "raw",
            Format::Vmdk => "vmdk",
            Format::Vdi => "vdi",
            Format::Vhdx => "vhdx",
            Format::Vpc => "vpc",
        }
    }
}

/// Why a file was refused before qemu-img ran.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// Reading the staged file failed.
    #[error("cannot read uploaded file")]
    Io(#[from] std::io::Error),
    /// No known signature.
    #[error("{}", Refusal::NotDisk)]
    Unknown,
    /// An upload offered as an ISO has no ISO 9660 or UDF signature.
    #[error(transparent)]
    NotIso(Refusal),
    /// An ISO 9660 file was offered as a disk.
    #[error("{}", Refusal::IsoNotDisk)]
    Iso,
    /// A VMDK descriptor (text) file, whose extents are other host files.
    #[error("{}", Refusal::VmdkDescriptor)]
    VmdkDescriptor,
    /// qcow2 header names a backing file.
    #[error("qcow2 image has a backing file ({0:?}); refusing images that reference other files")]
    BackingFile(String),
    /// qcow2 header flags an external data file.
    #[error("qcow2 image uses an external data file; refusing images that reference other files")]
    ExternalDataFile,
    /// qcow2 header says the image is encrypted.
    #[error("qcow2 image is encrypted; encrypted images are not supported")]
    Encrypted,
    /// The VMDK header or descriptor was refused.
    #[error(transparent)]
    Vmdk(#[from] VmdkError),
    /// The header declares a virtual size above [`DISK_BYTES_MAX`].
    #[error("image's virtual size of {} exceeds the limit of {}", format_size(*.0), format_size(DISK_BYTES_MAX))]
    TooLarge(u64),
}

/// Refuses a virtual size above [`DISK_BYTES_MAX`].
pub fn check_size(bytes: u64) -> Result<(), DetectError> {
    match bytes > DISK_BYTES_MAX {
        true => Err(DetectError::TooLarge(bytes)),
        false => Ok(()),
    }
}

/// Detects the format of the file `f` (a daemon-owned staged upload) with the shared rules of
/// [`vm_proto::sniff`], then runs the deeper per-format header checks.
pub fn detect(f: &mut std::fs::File) -> Result<Format, DetectError> {
    let len = f.metadata()?.len();
    let head = read_at(f, 0, sniff::HEAD_BYTES)?;
    let tail = read_at(
        f,
        len.saturating_sub(sniff::TAIL_BYTES as u64),
        sniff::TAIL_BYTES,
    )?;
    let format = match sniff::classify(&head, Some(&tail), len) {
        Verdict::Disk(name) => format_named(name),
        Verdict::Iso => return Err(DetectError::Iso),
        Verdict::VmdkDescriptor => return Err(DetectError::VmdkDescriptor),
        Verdict::Unknown | Verdict::Undecided => return Err(DetectError::Unknown),
    };
    match format {
        Format::Qcow2 => check_qcow2_header(f, &head)?,
        Format::Vmdk => {
            vmdk::check_file(f)?;
        }
        _ => {}
    }
    Ok(format)
}

/// The [`Format`] of a qemu-img driver name from [`sniff::classify`].
fn format_named(name: &str) -> Format {
    match name {
        "qcow2" => Format::Qcow2,
        "vmdk" => Format::Vmdk,
        "vhdx" => Format::Vhdx,
        "vpc" => Format::Vpc,
        "vdi" => Format::Vdi,
        _ => Format::Raw,
    }
}

/// Checks for an ISO 9660 primary volume descriptor or a UDF volume recognition sequence
/// ([`sniff::is_iso`]).
pub fn check_iso(f: &mut std::fs::File) -> Result<(), DetectError> {
    let len = f.metadata()?.len();
    let head = read_at(f, 0, sniff::HEAD_BYTES)?;
    sniff::check(UploadKind::Iso, &head, None, len).map_err(DetectError::NotIso)
}

/// Refuses qcow2 images that name a backing file, use an external data file or are encrypted,
/// reading the header fields directly (qemu would open a data file just to print info).
fn check_qcow2_header(f: &mut std::fs::File, head: &[u8]) -> Result<(), DetectError> {
    let be64 = |at: usize| u64::from_be_bytes(head[at..at + 8].try_into().unwrap_or([0; 8]));
    let be32 = |at: usize| u32::from_be_bytes(head[at..at + 4].try_into().unwrap_or([0; 4]));
    if head.len() < 72 {
        return Err(DetectError::Unknown);
    }
    let (backing_offset, backing_len) = (be64(8), be32(16));
    if backing_offset != 0 {
        let name = read_at(f, backing_offset, backing_len.min(1023) as usize)?;
        return Err(DetectError::BackingFile(
            String::from_utf8_lossy(&name).into_owned(),
        ));
    }
    if be32(32) != 0 {
        return Err(DetectError::Encrypted);
    }
    check_size(be64(24))?;
    let version = be32(4);
    const INCOMPAT_DATA_FILE: u64 = 1 << 2;
    if version >= 3 && head.len() >= 80 && be64(72) & INCOMPAT_DATA_FILE != 0 {
        return Err(DetectError::ExternalDataFile);
    }
    Ok(())
}

/// Up to `len` bytes of `f` from `offset` (fewer at the end of the file, none past it: header
/// offsets are attacker-chosen).
pub(super) fn read_at(f: &mut std::fs::File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    if offset >= f.metadata()?.len() {
        return Ok(Vec::new());
    }
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len);
    f.take(len as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file_with(bytes: &[u8]) -> (tempfile::NamedTempFile, std::fs::File) {
        let mut tmp = tempfile::NamedTempFile::new().expect("tmp");
        tmp.write_all(bytes).expect("write");
        let f = std::fs::File::open(tmp.path()).expect("open");
        (tmp, f)
    }

    #[test]
    fn text_is_unknown() {
        let (_t, mut f) = file_with(b"hello world\n");
        assert!(matches!(detect(&mut f), Err(DetectError::Unknown)));
    }

    #[test]
    fn raw_needs_partition_table() {
        let mut disk = vec![0u8; 4096];
        let (_t, mut f) = file_with(&disk);
        assert!(matches!(detect(&mut f), Err(DetectError::Unknown)));
        disk[510] = 0x55;
        disk[511] = 0xaa;
        let (_t2, mut f2) = file_with(&disk);
        assert_eq!(detect(&mut f2).expect("raw"), Format::Raw);
    }

    #[test]
    fn qcow2_backing_offset_is_refused() {
        let mut hdr = vec![0u8; 512];
        hdr[..4].copy_from_slice(b"QFI\xfb");
        hdr[4..8].copy_from_slice(&3u32.to_be_bytes());
        hdr[8..16].copy_from_slice(&200u64.to_be_bytes());
        hdr[16..20].copy_from_slice(&11u32.to_be_bytes());
        hdr[200..211].copy_from_slice(b"/etc/passwd");
        let (_t, mut f) = file_with(&hdr);
        match detect(&mut f) {
            Err(DetectError::BackingFile(name)) => assert_eq!(name, "/etc/passwd"),
            other => panic!("expected backing file refusal, got {other:?}"),
        }
    }

    #[test]
    fn absurd_qcow2_header_fields_are_refusals_not_io_errors() {
        let mut hdr = vec![0u8; 512];
        hdr[..4].copy_from_slice(b"QFI\xfb");
        hdr[4..8].copy_from_slice(&3u32.to_be_bytes());
        hdr[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
        let (_t, mut f) = file_with(&hdr);
        assert!(matches!(detect(&mut f), Err(DetectError::BackingFile(n)) if n.is_empty()));
        hdr[8..16].copy_from_slice(&0u64.to_be_bytes());
        hdr[24..32].copy_from_slice(&(1u64 << 60).to_be_bytes());
        let (_t, mut f) = file_with(&hdr);
        assert!(matches!(detect(&mut f), Err(DetectError::TooLarge(n)) if n == 1 << 60));
    }

    #[test]
    fn iso_signatures() {
        let mut iso = vec![0u8; 64 * 1024];
        let (_t, mut f) = file_with(&iso);
        assert!(matches!(check_iso(&mut f), Err(DetectError::NotIso(_))));
        iso[32769..32774].copy_from_slice(b"CD001");
        let (_t2, mut f2) = file_with(&iso);
        assert!(check_iso(&mut f2).is_ok());
        let mut udf = vec![0u8; 64 * 1024];
        udf[32769 + 2048..32774 + 2048].copy_from_slice(b"NSR02");
        let (_t3, mut f3) = file_with(&udf);
        assert!(check_iso(&mut f3).is_ok());
    }

    #[test]
    fn vmdk_descriptor_is_refused() {
        let (_t, mut f) = file_with(b"# Disk DescriptorFile\nversion=1\n");
        assert!(matches!(detect(&mut f), Err(DetectError::VmdkDescriptor)));
    }
}
