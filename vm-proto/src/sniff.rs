//! What kind of file an upload is, from its first bytes (and, where known, its last 512).
//!
//! One set of rules for everyone, so they cannot drift: vmctl applies [`check`] to the file
//! before it sends a byte, vmd applies it to the first [`HEAD_BYTES`] of an upload declared
//! `?kind=iso|disk` (and refuses at once), and vmd's import-time detection starts from
//! [`classify`]. The rules are never stricter at the head than at import: what needs the
//! tail (a fixed VHD has its only signature in a 512-byte footer) is decided only where the
//! tail is known.
//!
//! | bytes | verdict |
//! |---|---|
//! | `QFI\xfb` / `KDMV` / `vhdxfile` / `conectix` at 0, `7f 10 da be` at 0x40 | a disk format |
//! | `# Disk DescriptorFile` at 0 | a VMDK descriptor (refused: it names other files) |
//! | `CD001` at 32769 (ISO 9660) | an ISO, never a disk (hybrid ISOs with an MBR too) |
//! | `conectix` in the last 512 bytes | a fixed VHD |
//! | MBR `55 aa` at 510 or GPT `EFI PART` at 512, size a multiple of 512 | a raw disk |
//! | anything else | unknown: not a disk vmd accepts |
//!
//! An upload declared `iso` must have an ISO 9660 (`CD001`) or UDF (`NSR02`/`NSR03`) volume
//! descriptor in the sectors from 16 ([`is_iso`]).

use std::str::FromStr;

/// How many leading bytes every rule here needs: the ISO/UDF volume descriptors of sectors
/// 16 to 23 end there.
pub const HEAD_BYTES: usize = 32768 + 8 * 2048;

/// How many trailing bytes [`classify`] reads for the VHD footer.
pub const TAIL_BYTES: usize = 512;

/// What an upload is declared to be (`PUT /v1/uploads?kind=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    /// A CD/DVD image for the ISO library (`iso.import`).
    Iso,
    /// A disk image to become a base (`image.import`).
    Disk,
}

impl UploadKind {
    /// The query value.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadKind::Iso => "iso",
            UploadKind::Disk => "disk",
        }
    }
}

impl FromStr for UploadKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "iso" => Ok(UploadKind::Iso),
            "disk" => Ok(UploadKind::Disk),
            other => Err(format!("unknown upload kind {other:?} (iso or disk)")),
        }
    }
}

/// What the bytes say a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A disk image in the named format (qemu-img driver name).
    Disk(&'static str),
    /// A VMDK descriptor (text naming other files).
    VmdkDescriptor,
    /// An ISO 9660 CD/DVD image.
    Iso,
    /// No signature vmd accepts.
    Unknown,
    /// Only the tail can tell (no signature at the head, and the tail was not given).
    Undecided,
}

impl Verdict {
    /// What the file looks like, for messages ("a qcow2 disk image").
    pub fn describe(self) -> String {
        match self {
            Verdict::Disk(format) => format!("a {format} disk image"),
            Verdict::VmdkDescriptor => "a VMDK descriptor file".into(),
            Verdict::Iso => "an ISO (CD/DVD image)".into(),
            Verdict::Unknown | Verdict::Undecided => "neither a disk image nor an ISO".into(),
        }
    }
}

/// Why a file is the wrong kind for its upload. The texts name what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Declared an ISO, but it has no ISO 9660 or UDF volume descriptor.
    #[error("this is not an ISO: no ISO 9660 or UDF volume descriptor at sector 16 ({})", .0.describe())]
    NotIso(Verdict),
    /// Declared a disk, but it is an ISO.
    #[error("this is an ISO (CD/DVD image), not a disk image")]
    IsoNotDisk,
    /// Declared a disk, but it is a VMDK descriptor.
    #[error("VMDK descriptor files reference other files and are refused; upload a monolithic (single-file) VMDK")]
    VmdkDescriptor,
    /// Declared a disk, but nothing says it is one.
    #[error("not a recognised disk image (qcow2, vmdk, vdi, vhdx, vpc, or raw with an MBR/GPT partition table)")]
    NotDisk,
}

impl Refusal {
    /// What to do instead.
    pub fn hint(&self) -> &'static str {
        match self {
            Refusal::NotIso(Verdict::Disk(_)) => {
                "disk images go through `vmctl image import FILE --name NAME`"
            }
            Refusal::NotIso(_) => "upload a CD/DVD image (ISO 9660 or UDF, usually a .iso file)",
            Refusal::IsoNotDisk => {
                "an ISO is an installer medium, not a disk: add it with `vmctl iso upload`, or import a disk image"
            }
            Refusal::VmdkDescriptor | Refusal::NotDisk => {
                "convert or flatten the image into a single self-contained file (e.g. `qemu-img convert -O qcow2 in out`) and import that"
            }
        }
    }
}

/// Classifies a file from `head` (its first bytes, up to [`HEAD_BYTES`]) and, if known,
/// `tail` (its last [`TAIL_BYTES`]) and its length `len`.
pub fn classify(head: &[u8], tail: Option<&[u8]>, len: u64) -> Verdict {
    if let Some(verdict) = magic(head) {
        return verdict;
    }
    if head.get(32769..32774) == Some(b"CD001") {
        return Verdict::Iso;
    }
    let Some(tail) = tail else {
        return Verdict::Undecided;
    };
    if len >= TAIL_BYTES as u64 && tail.starts_with(b"conectix") {
        return Verdict::Disk("vpc");
    }
    let mbr = head.get(510..512) == Some(&[0x55, 0xaa]);
    let gpt = head.get(512..520) == Some(b"EFI PART");
    match len.is_multiple_of(512) && (mbr || gpt) {
        true => Verdict::Disk("raw"),
        false => Verdict::Unknown,
    }
}

/// A signature at a fixed place near the start.
fn magic(head: &[u8]) -> Option<Verdict> {
    const AT_ZERO: [(&[u8], Verdict); 5] = [
        (b"QFI\xfb", Verdict::Disk("qcow2")),
        (b"KDMV", Verdict::Disk("vmdk")),
        (b"# Disk DescriptorFile", Verdict::VmdkDescriptor),
        (b"vhdxfile", Verdict::Disk("vhdx")),
        (b"conectix", Verdict::Disk("vpc")),
    ];
    if let Some((_, verdict)) = AT_ZERO.iter().find(|(sig, _)| head.starts_with(sig)) {
        return Some(*verdict);
    }
    (head.get(0x40..0x44) == Some(&[0x7f, 0x10, 0xda, 0xbe])).then_some(Verdict::Disk("vdi"))
}

/// Whether `head` has an ISO 9660 primary volume descriptor (`CD001` at byte 32769) or a UDF
/// volume recognition sequence (`NSR02`/`NSR03` in the descriptors of sectors 16 to 23).
pub fn is_iso(head: &[u8]) -> bool {
    let ident = |sector: usize| head.get(32768 + sector * 2048 + 1..32768 + sector * 2048 + 6);
    let udf = (0..8).any(|s| matches!(ident(s), Some(b"NSR02") | Some(b"NSR03")));
    ident(0) == Some(b"CD001") || udf
}

/// Checks that a file of `len` bytes starting with `head` (and ending with `tail`, if known)
/// is of `kind`. Without the tail, only what the head alone decides is refused.
pub fn check(kind: UploadKind, head: &[u8], tail: Option<&[u8]>, len: u64) -> Result<(), Refusal> {
    let verdict = classify(head, tail, len);
    match kind {
        UploadKind::Iso if is_iso(head) => Ok(()),
        UploadKind::Iso => Err(Refusal::NotIso(verdict)),
        UploadKind::Disk => match verdict {
            Verdict::Disk(_) | Verdict::Undecided => Ok(()),
            Verdict::Iso => Err(Refusal::IsoNotDisk),
            Verdict::VmdkDescriptor => Err(Refusal::VmdkDescriptor),
            Verdict::Unknown => Err(Refusal::NotDisk),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso() -> Vec<u8> {
        let mut bytes = vec![0u8; HEAD_BYTES];
        bytes[32769..32774].copy_from_slice(b"CD001");
        bytes
    }

    #[test]
    fn isos_pass_as_isos_and_are_refused_as_disks() {
        let iso = iso();
        assert_eq!(check(UploadKind::Iso, &iso, None, 1 << 20), Ok(()));
        assert_eq!(
            check(UploadKind::Disk, &iso, None, 1 << 20),
            Err(Refusal::IsoNotDisk)
        );
        let mut hybrid = iso.clone();
        hybrid[510..512].copy_from_slice(&[0x55, 0xaa]);
        let tail = [0u8; 512];
        assert_eq!(classify(&hybrid, Some(&tail), 1 << 20), Verdict::Iso);
        let mut udf = vec![0u8; HEAD_BYTES];
        udf[32769 + 2048..32774 + 2048].copy_from_slice(b"NSR03");
        assert_eq!(check(UploadKind::Iso, &udf, None, 1 << 20), Ok(()));
    }

    #[test]
    fn disks_are_refused_as_isos_with_a_hint_for_disks() {
        let mut qcow2 = vec![0u8; 4096];
        qcow2[..4].copy_from_slice(b"QFI\xfb");
        let err = check(UploadKind::Iso, &qcow2, None, 4096).expect_err("not an iso");
        assert_eq!(err, Refusal::NotIso(Verdict::Disk("qcow2")));
        assert!(err.to_string().starts_with("this is not an ISO: "), "{err}");
        assert!(err.to_string().contains("a qcow2 disk image"), "{err}");
        assert!(!err.hint().contains("qemu-img"), "{}", err.hint());
        assert_eq!(check(UploadKind::Disk, &qcow2, None, 4096), Ok(()));
    }

    #[test]
    fn unknown_files_wait_for_the_tail() {
        let text = b"just some text\n".repeat(10);
        let len = text.len() as u64;
        assert_eq!(check(UploadKind::Disk, &text, None, len), Ok(()));
        let tail = &text[text.len() - 512.min(text.len())..];
        assert_eq!(
            check(UploadKind::Disk, &text, Some(tail), len),
            Err(Refusal::NotDisk)
        );
        let mut fixed_vhd = vec![0u8; 4096];
        fixed_vhd[3584..3592].copy_from_slice(b"conectix");
        let tail = &fixed_vhd[3584..];
        assert_eq!(classify(&fixed_vhd, Some(tail), 4096), Verdict::Disk("vpc"));
    }

    #[test]
    fn raw_needs_a_partition_table_and_whole_sectors() {
        let mut disk = vec![0u8; 4096];
        let tail = [0u8; 512];
        assert_eq!(classify(&disk, Some(&tail), 4096), Verdict::Unknown);
        disk[510..512].copy_from_slice(&[0x55, 0xaa]);
        assert_eq!(classify(&disk, Some(&tail), 4096), Verdict::Disk("raw"));
        assert_eq!(classify(&disk, Some(&tail), 4097), Verdict::Unknown);
        assert_eq!(classify(&disk, None, 4096), Verdict::Undecided);
    }

    #[test]
    fn kinds_parse() {
        assert_eq!("iso".parse(), Ok(UploadKind::Iso));
        assert_eq!("disk".parse(), Ok(UploadKind::Disk));
        assert!("image".parse::<UploadKind>().is_err());
    }
}
