//! VMDK sparse extent header and embedded descriptor parsing: only self-contained VMDKs pass.
//!
//! A VMDK can make qemu-img open other files: a descriptor lists extents by path (`FLAT`,
//! `SPARSE`, `VMFS`… on any host path, relative ones resolved next to the image), a sparse
//! header with capacity 0 makes qemu treat its embedded descriptor as a descriptor file, and a
//! `parentFileNameHint` names a backing file. So before any qemu-img sees an uploaded VMDK, this
//! module reads it the way the VMware Virtual Disk Format 1.1 describes it and accepts only:
//!
//! - a `KDMV` header (version 1–3, little-endian) with a non-zero capacity, a power-of-two grain
//!   size and an embedded descriptor of at most [`DESCRIPTOR_BYTES_MAX`] inside the file;
//! - for a stream-optimized file whose grain directory is at the end, a valid footer (which
//!   qemu prefers to the header), again with a non-zero capacity;
//! - a descriptor whose `createType` is `monolithicSparse` or `streamOptimized`, with no parent
//!   (`parentCID` all ones, no `parentFileNameHint` anywhere qemu could find one), declaring
//!   exactly one `SPARSE` extent named by a bare file name, whose size equals the capacity.
//!
//! Header layout (offsets in bytes): 0 magic, 4 version, 8 flags, 12 capacity, 20 grain size,
//! 28 descriptor offset, 36 descriptor size, 44 grain table entries per table, 48 redundant
//! grain directory offset, 56 grain directory offset, 64 overhead, 72 unclean-shutdown byte,
//! 73–76 the newline test characters, 77 compression algorithm; sizes and offsets in sectors.
//!
//! Error messages never quote an extent's path, so they cannot depend on the host.

use std::fs::File;

use super::detect::{check_size, read_at, DetectError};

/// Bytes per VMDK sector.
const SECTOR: u64 = 512;
/// Largest embedded descriptor accepted (qemu-img writes 10 KiB).
pub const DESCRIPTOR_BYTES_MAX: u64 = 64 << 10;
/// Grain directory offset meaning "in the footer" (stream-optimized).
const GD_AT_END: u64 = u64::MAX;
/// Header flag: the newline test characters are valid.
const FLAG_NEWLINE_TEST: u32 = 1;
/// The region qemu searches for a parent hint whatever the header says (sectors 1–20).
const QEMU_DESCRIPTOR_REGION: (u64, usize) = (512, 20 * 512);
/// Longest attacker-chosen word quoted back in a message.
const QUOTE_MAX: usize = 40;

/// Why a VMDK was refused.
#[derive(Debug, thiserror::Error)]
pub enum VmdkError {
    /// Shorter than its header, descriptor or footer.
    #[error("VMDK file is truncated")]
    Truncated,
    /// Header version other than 1–3.
    #[error("VMDK version {0} is not supported (1 to 3 are)")]
    Version(u32),
    /// Capacity 0: qemu would read the embedded descriptor as a descriptor file.
    #[error("VMDK sparse header has a capacity of 0, which makes its descriptor point at other files; upload a monolithic (single-file) VMDK")]
    ZeroCapacity,
    /// Grain size not a power of two or too large.
    #[error("VMDK grain size of {0} sectors is invalid")]
    GrainSize(u64),
    /// Grain table size of 0 or above 512 entries.
    #[error("VMDK grain table size of {0} entries is invalid")]
    GrainTable(u32),
    /// Text-mode transfer damage.
    #[error("VMDK header is damaged (newline characters altered, e.g. by a text-mode transfer)")]
    Newlines,
    /// No embedded descriptor.
    #[error("VMDK has no embedded descriptor (a split-extent piece or snapshot delta); upload a monolithic (single-file) VMDK")]
    NoDescriptor,
    /// Descriptor outside the file, overlapping the header, or too large.
    #[error("VMDK descriptor lies outside the file or exceeds {} KiB", DESCRIPTOR_BYTES_MAX >> 10)]
    DescriptorBounds,
    /// Descriptor bytes are not UTF-8 text.
    #[error("VMDK descriptor is not text")]
    DescriptorText,
    /// A descriptor line is neither a comment, `key = value` nor an extent.
    #[error("VMDK descriptor line {0} is malformed")]
    Line(usize),
    /// An extent line does not parse.
    #[error("VMDK descriptor line {0} is not a valid extent description")]
    ExtentSyntax(usize),
    /// `createType` missing or given twice.
    #[error("VMDK descriptor has no single createType")]
    NoCreateType,
    /// A subformat that is not one self-contained file.
    #[error("VMDK subformat {0:?} is not self-contained; only monolithicSparse and streamOptimized are accepted")]
    CreateType(String),
    /// A parent image is named.
    #[error(
        "VMDK names a parent image (a snapshot delta); refusing images that reference other files"
    )]
    Parent,
    /// Not exactly one extent.
    #[error("VMDK descriptor declares {0} extents; exactly one SPARSE extent in the file itself is accepted")]
    ExtentCount(usize),
    /// An extent of another type than SPARSE.
    #[error("VMDK extent of type {0:?} refers to data outside the file; only SPARSE is accepted")]
    ExtentKind(String),
    /// The extent's file name is a path or missing.
    #[error("VMDK extent names another file by path; only the file itself is accepted")]
    ExtentFile,
    /// Extent size and header capacity disagree.
    #[error("VMDK extent size ({extent} sectors) differs from the header's capacity ({capacity} sectors)")]
    ExtentSize {
        /// Sectors in the descriptor.
        extent: u64,
        /// Sectors in the header.
        capacity: u64,
    },
    /// Stream-optimized footer missing or invalid.
    #[error("VMDK stream-optimized footer is missing or invalid")]
    Footer,
}

/// The fields of a `KDMV` sparse extent header (sizes and offsets in sectors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseHeader {
    /// Format version (1–3).
    pub version: u32,
    /// Feature flags.
    pub flags: u32,
    /// Guest-visible size.
    pub capacity: u64,
    /// Sectors per grain.
    pub grain_size: u64,
    /// Embedded descriptor start.
    pub desc_offset: u64,
    /// Embedded descriptor length.
    pub desc_size: u64,
    /// Entries per grain table.
    pub gtes_per_gt: u32,
    /// Redundant grain directory.
    pub rgd_offset: u64,
    /// Grain directory, or [`GD_AT_END`].
    pub gd_offset: u64,
    /// Sectors before the first grain.
    pub overhead: u64,
    /// 0 none, 1 deflate.
    pub compress: u16,
    newlines: [u8; 4],
}

impl SparseHeader {
    /// Parses the first 512 bytes of a sparse extent (or a footer's header sector).
    pub fn parse(b: &[u8]) -> Result<SparseHeader, VmdkError> {
        if b.len() < 512 || &b[..4] != b"KDMV" {
            return Err(VmdkError::Truncated);
        }
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let u64_at = |at: usize| u64::from(u32_at(at)) | u64::from(u32_at(at + 4)) << 32;
        Ok(SparseHeader {
            version: u32_at(4),
            flags: u32_at(8),
            capacity: u64_at(12),
            grain_size: u64_at(20),
            desc_offset: u64_at(28),
            desc_size: u64_at(36),
            gtes_per_gt: u32_at(44),
            rgd_offset: u64_at(48),
            gd_offset: u64_at(56),
            overhead: u64_at(64),
            newlines: [b[73], b[74], b[75], b[76]],
            compress: u16::from_le_bytes([b[77], b[78]]),
        })
    }

    /// Version, capacity, grain geometry and the newline test.
    fn check_geometry(&self) -> Result<(), VmdkError> {
        if !(1..=3).contains(&self.version) {
            return Err(VmdkError::Version(self.version));
        }
        if self.capacity == 0 {
            return Err(VmdkError::ZeroCapacity);
        }
        if !self.grain_size.is_power_of_two() || self.grain_size > 1 << 21 {
            return Err(VmdkError::GrainSize(self.grain_size));
        }
        if self.gtes_per_gt == 0 || self.gtes_per_gt > 512 {
            return Err(VmdkError::GrainTable(self.gtes_per_gt));
        }
        if self.flags & FLAG_NEWLINE_TEST != 0 && self.newlines != *b"\n \r\n" {
            return Err(VmdkError::Newlines);
        }
        Ok(())
    }

    /// Byte range of the embedded descriptor, checked against the file length.
    fn descriptor_range(&self, file_len: u64) -> Result<(u64, usize), VmdkError> {
        if self.desc_offset == 0 || self.desc_size == 0 {
            return Err(VmdkError::NoDescriptor);
        }
        let start = self.desc_offset.checked_mul(SECTOR);
        let len = self.desc_size.checked_mul(SECTOR);
        match (start, len) {
            (Some(start), Some(len))
                if len <= DESCRIPTOR_BYTES_MAX
                    && start.checked_add(len).is_some_and(|end| end <= file_len) =>
            {
                Ok((start, len as usize))
            }
            _ => Err(VmdkError::DescriptorBounds),
        }
    }
}

/// One extent line: `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    /// Size in sectors.
    pub sectors: u64,
    /// `SPARSE`, `FLAT`, `ZERO`, `VMFS`, …
    pub kind: String,
    /// The quoted file name, if any.
    pub file: Option<String>,
}

impl Extent {
    /// Whether `line` starts with an access mode, i.e. is meant as an extent.
    fn is_extent(line: &str) -> bool {
        matches!(
            line.split_whitespace().next(),
            Some("RW" | "RDONLY" | "NOACCESS")
        )
    }

    fn parse(line: &str) -> Option<Extent> {
        let (_access, rest) = next_word(line)?;
        let (sectors, rest) = next_word(rest)?;
        let (kind, rest) = next_word(rest)?;
        let file = match rest {
            "" => None,
            quoted => {
                let (name, offset) = quoted.strip_prefix('"')?.split_once('"')?;
                let offset = offset.trim();
                if !offset.is_empty() && offset.parse::<u64>().is_err() {
                    return None;
                }
                Some(name.to_string())
            }
        };
        Some(Extent {
            sectors: sectors.parse().ok()?,
            kind: kind.to_string(),
            file,
        })
    }

    /// A bare file name: not empty, no directory part, not `.` or `..`, printable.
    fn names_only_itself(&self) -> bool {
        self.file.as_deref().is_some_and(|f| {
            !f.is_empty()
                && !matches!(f, "." | "..")
                && !f.contains(['/', '\\'])
                && !f.chars().any(char::is_control)
        })
    }
}

/// The parts of a descriptor that decide whether the image is self-contained.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// The subformat.
    pub create_type: Option<String>,
    /// Parent content id (`ffffffff` when there is none).
    pub parent_cid: Option<String>,
    /// Extent lines in order.
    pub extents: Vec<Extent>,
}

impl Descriptor {
    /// Parses descriptor text: comments, `key = "value"` lines and extent lines.
    pub fn parse(text: &str) -> Result<Descriptor, VmdkError> {
        let mut d = Descriptor::default();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if Extent::is_extent(line) {
                let extent = Extent::parse(line).ok_or(VmdkError::ExtentSyntax(index + 1))?;
                d.extents.push(extent);
                continue;
            }
            let (key, value) = line.split_once('=').ok_or(VmdkError::Line(index + 1))?;
            let value = value.trim().trim_matches('"').to_string();
            let slot = match key.trim() {
                "createType" => &mut d.create_type,
                "parentCID" => &mut d.parent_cid,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(VmdkError::Line(index + 1));
            }
        }
        Ok(d)
    }

    /// Accepts only a self-contained subformat with one SPARSE extent of `capacity` sectors.
    pub fn check_self_contained(&self, capacity: u64) -> Result<(), VmdkError> {
        let create_type = self.create_type.as_deref().ok_or(VmdkError::NoCreateType)?;
        if !matches!(create_type, "monolithicSparse" | "streamOptimized") {
            return Err(VmdkError::CreateType(quote(create_type)));
        }
        if self
            .parent_cid
            .as_deref()
            .is_some_and(|cid| !cid.eq_ignore_ascii_case("ffffffff"))
        {
            return Err(VmdkError::Parent);
        }
        let [extent] = self.extents.as_slice() else {
            return Err(VmdkError::ExtentCount(self.extents.len()));
        };
        if extent.kind != "SPARSE" {
            return Err(VmdkError::ExtentKind(quote(&extent.kind)));
        }
        if !extent.names_only_itself() {
            return Err(VmdkError::ExtentFile);
        }
        if extent.sectors != capacity {
            return Err(VmdkError::ExtentSize {
                extent: extent.sectors,
                capacity,
            });
        }
        Ok(())
    }
}

/// Checks an uploaded sparse VMDK (blocking); returns its virtual size in bytes.
pub fn check_file(f: &mut File) -> Result<u64, DetectError> {
    let len = f.metadata()?.len();
    let header = SparseHeader::parse(&read_at(f, 0, 512)?)?;
    header.check_geometry()?;
    let (start, size) = header.descriptor_range(len)?;
    let raw = read_at(f, start, size)?;
    refuse_parent_hint(&raw)?;
    refuse_parent_hint(&read_at(
        f,
        QEMU_DESCRIPTOR_REGION.0,
        QEMU_DESCRIPTOR_REGION.1,
    )?)?;
    let capacity = match header.gd_offset {
        GD_AT_END => footer_header(f, len)?.capacity,
        _ => header.capacity,
    };
    Descriptor::parse(descriptor_text(&raw)?)?.check_self_contained(capacity)?;
    let bytes = capacity.saturating_mul(SECTOR);
    check_size(bytes)?;
    Ok(bytes)
}

/// The header copy in a stream-optimized footer: footer marker, header, end-of-stream marker
/// in the last three sectors.
fn footer_header(f: &mut File, len: u64) -> Result<SparseHeader, DetectError> {
    let tail = read_at(
        f,
        len.checked_sub(3 * SECTOR).ok_or(VmdkError::Footer)?,
        1536,
    )?;
    if tail.len() != 1536 {
        return Err(VmdkError::Footer.into());
    }
    let le32 = |at: usize| u32::from_le_bytes([tail[at], tail[at + 1], tail[at + 2], tail[at + 3]]);
    const MARKER_EOS: u32 = 0;
    const MARKER_FOOTER: u32 = 3;
    let footer_marker = le32(8) == 0 && le32(12) == MARKER_FOOTER;
    let eos = tail[1024..1036].iter().all(|b| *b == 0) && le32(1036) == MARKER_EOS;
    if !footer_marker || !eos {
        return Err(VmdkError::Footer.into());
    }
    let header = SparseHeader::parse(&tail[512..1024]).map_err(|_| VmdkError::Footer)?;
    header.check_geometry()?;
    Ok(header)
}

/// The descriptor up to its NUL padding, as text.
fn descriptor_text(raw: &[u8]) -> Result<&str, VmdkError> {
    let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
    std::str::from_utf8(&raw[..end]).map_err(|_| VmdkError::DescriptorText)
}

/// qemu finds a parent hint by substring search, so any occurrence counts.
fn refuse_parent_hint(raw: &[u8]) -> Result<(), VmdkError> {
    let needle = b"parentFileNameHint";
    match raw.windows(needle.len()).any(|w| w == needle) {
        true => Err(VmdkError::Parent),
        false => Ok(()),
    }
}

/// The first whitespace-separated word of `s` and the rest, trimmed.
fn next_word(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    (end > 0).then(|| (&s[..end], s[end..].trim()))
}

/// An attacker-chosen word, shortened for quoting in a message.
fn quote(word: &str) -> String {
    word.chars().take(QUOTE_MAX).collect()
}

#[cfg(test)]
#[path = "vmdk_tests.rs"]
mod tests;
