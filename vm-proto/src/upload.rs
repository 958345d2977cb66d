//! The upload endpoint's wire details beyond a plain body (`PUT /v1/uploads`).
//!
//! - `?kind=iso|disk` declares what the file is; vmd then checks its first
//!   [`crate::sniff::HEAD_BYTES`] with [`crate::sniff::check`] and refuses a wrong file at once.
//! - `?sparse=SIZE` says the body is not the file itself but its data extents, for a file of
//!   `SIZE` bytes whose other ranges are holes (zeros): each extent is a 16-byte
//!   [`ExtentHeader`] (offset and length, big-endian `u64`s) followed by `length` bytes of data.
//!   Extents come in increasing order, do not overlap, are not empty and end within `SIZE`.
//!   `Content-Length` is the length of that stream. vmd writes each extent at its offset and
//!   leaves the holes unwritten, so the staged file is sparse; the recorded `sha256` is still
//!   that of the whole `SIZE`-byte file (holes hashed as zeros), i.e. what `sha256sum FILE`
//!   prints.

/// Query parameter naming the declared kind (`iso` or `disk`).
pub const KIND_PARAM: &str = "kind";

/// Query parameter carrying the logical size of a sparse (extent stream) upload.
pub const SPARSE_PARAM: &str = "sparse";

/// The header before each extent's data in a sparse upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtentHeader {
    /// Where the data goes in the file.
    pub offset: u64,
    /// How many data bytes follow.
    pub length: u64,
}

impl ExtentHeader {
    /// Encoded size.
    pub const BYTES: usize = 16;

    /// The wire form.
    pub fn encode(self) -> [u8; Self::BYTES] {
        let mut out = [0u8; Self::BYTES];
        out[..8].copy_from_slice(&self.offset.to_be_bytes());
        out[8..].copy_from_slice(&self.length.to_be_bytes());
        out
    }

    /// Reads the wire form.
    pub fn decode(bytes: &[u8; Self::BYTES]) -> ExtentHeader {
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(w)
        };
        ExtentHeader {
            offset: word(0),
            length: word(8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_big_endian() {
        let h = ExtentHeader {
            offset: 1 << 33,
            length: 4096,
        };
        let wire = h.encode();
        assert_eq!(wire[3], 2);
        assert_eq!(ExtentHeader::decode(&wire), h);
    }
}
