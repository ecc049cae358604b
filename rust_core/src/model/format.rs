//! The model file's 128-byte header (see docs/architecture.md, "Model file"): encoding and
//! a parser that validates every field with checked arithmetic and never panics.
//!
//! Version 3 puts zero bytes between the header and the payload so that an FFM model's
//! latent blocks start on a 64-byte cache-line boundary of the file, and so of a mapping of
//! it (mappings are page-aligned). Versions 1 and 2 put the payload right after the header,
//! which left every block 4 bytes past a line boundary: a 16-field, k = 4 feature's blocks
//! (256 bytes) then straddle 5 cache lines instead of 4.

use xxhash_rust::xxh3::xxh3_64;

use super::{Algorithm, Header};
use crate::dataset::MAX_FIELDS;
use crate::error::{Error, Result};
use crate::hash::MAX_BITS;

pub const MAGIC: &[u8; 8] = b"BIDSCORE";
/// The version this build writes. Versions 1 (no latent stride: `stride == k`) and 2 (no
/// gap before the payload) are read too.
pub const VERSION: u32 = 3;
pub const HEADER_LEN: usize = 128;
pub const MAX_K: u32 = 256;
const FLAG_NORMALIZE: u32 = 1;

/// XXH3-64 (seed 0) of the payload bytes.
#[must_use]
pub fn checksum(payload: &[u8]) -> u64 {
    xxh3_64(payload)
}

/// Where the payload starts in a file of this version: after the header and the zero bytes
/// that put the first latent block on a 64-byte boundary (FFM), or right after the header.
#[must_use]
pub fn payload_offset(h: &Header) -> usize {
    match h.algorithm {
        Algorithm::Lr => HEADER_LEN,
        Algorithm::Ffm => {
            let latent = 4 * h.ffm_shape().latent_start();
            HEADER_LEN + (64 - latent % 64) % 64
        }
    }
}

/// Where a file's payload is, and what the header says of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payload {
    /// Byte offset of the payload in the file.
    pub offset: usize,
    /// Its length in bytes.
    pub len: u64,
    /// Its checksum ([`checksum`]).
    pub checksum: u64,
}

/// The header bytes for a payload of `payload_len` bytes with checksum `sum`, written at
/// [`payload_offset`] (the bytes in between are zero).
#[must_use]
pub fn encode(h: &Header, payload_len: u64, sum: u64) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[0..8].copy_from_slice(MAGIC);
    b[8..12].copy_from_slice(&VERSION.to_le_bytes());
    b[12..16].copy_from_slice(&(h.algorithm as u32).to_le_bytes());
    b[16..20].copy_from_slice(&h.bits.to_le_bytes());
    b[20..24].copy_from_slice(&h.fields.to_le_bytes());
    b[24..28].copy_from_slice(&h.k.to_le_bytes());
    b[96..100].copy_from_slice(&h.stride.to_le_bytes());
    // Cannot truncate: the offset is under HEADER_LEN + 64.
    b[100..104].copy_from_slice(&(payload_offset(h) as u32).to_le_bytes());
    let flags = if h.normalize { FLAG_NORMALIZE } else { 0 };
    b[28..32].copy_from_slice(&flags.to_le_bytes());
    b[32..64].copy_from_slice(&h.fingerprint);
    b[64..72].copy_from_slice(&h.downsample_rate.to_le_bytes());
    b[72..80].copy_from_slice(&payload_len.to_le_bytes());
    b[80..88].copy_from_slice(&sum.to_le_bytes());
    let header_sum = header_checksum(&b, VERSION);
    b[88..96].copy_from_slice(&header_sum.to_le_bytes());
    b
}

/// The header checksum: XXH3-64 of bytes 0..88 (version 1), or of bytes 0..88 followed by
/// 96..128 (versions 2 and 3, which store the latent stride at 96 and, in 3, the payload
/// offset at 100).
fn header_checksum(b: &[u8], version: u32) -> u64 {
    if version == 1 {
        return xxh3_64(&b[..88]);
    }
    let mut covered = [0u8; HEADER_LEN - 8];
    covered[..88].copy_from_slice(&b[..88]);
    covered[88..].copy_from_slice(&b[96..HEADER_LEN]);
    xxh3_64(&covered)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn bad(what: impl std::fmt::Display) -> Error {
    Error::Format(what.to_string())
}

/// Validates a whole file image (header, gap and payload) and returns its header and where
/// its payload is.
pub fn parse(file: &[u8]) -> Result<(Header, Payload)> {
    if file.len() < HEADER_LEN {
        return Err(bad(format_args!(
            "truncated model file: {} bytes, the header alone is {HEADER_LEN}",
            file.len()
        )));
    }
    let (header, payload) = parse_header(&file[..HEADER_LEN])?;
    let Some(body) = file.get(payload.offset..) else {
        return Err(bad(format_args!(
            "truncated model file: {} bytes, the payload starts at {}",
            file.len(),
            payload.offset
        )));
    };
    if file[HEADER_LEN..payload.offset].iter().any(|&x| x != 0) {
        return Err(bad(
            "corrupted model file: the bytes before the payload are not zero",
        ));
    }
    let actual = body.len() as u64;
    if actual != payload.len {
        return Err(bad(format_args!(
            "truncated or padded model file: payload is {actual} bytes, header says {}",
            payload.len
        )));
    }
    if checksum(body) != payload.checksum {
        return Err(bad("corrupted model file: payload checksum mismatch"));
    }
    Ok((header, payload))
}

/// The latent stride (checked against `k`) and the declared payload offset (checked by the
/// caller, which knows the dimensions) of a header of `version`; the reserved bytes are zero.
fn layout(b: &[u8], version: u32, algorithm: Algorithm, k: u32) -> Result<(u32, u32)> {
    // Version 1 has no stride: its latent vectors are unpadded. Only version 3 has a gap
    // before the payload.
    let (stride, offset, reserved) = match version {
        1 => (k, HEADER_LEN as u32, &b[96..]),
        2 => (u32_at(b, 96), HEADER_LEN as u32, &b[100..]),
        _ => (u32_at(b, 96), u32_at(b, 100), &b[104..]),
    };
    if reserved.iter().any(|&x| x != 0) {
        return Err(bad("reserved header bytes are not zero"));
    }
    let padded = k.div_ceil(4) * 4;
    let stride_ok = match algorithm {
        Algorithm::Lr => stride == 0,
        Algorithm::Ffm => stride == k || stride == padded,
    };
    if !stride_ok {
        return Err(bad(format_args!(
            "latent stride {stride} in model header, expected {k} or {padded} for k {k}"
        )));
    }
    Ok((stride, offset))
}

/// Validates the 128 header bytes; returns the header and where its payload is declared to
/// be (the length checked against the dimensions).
pub fn parse_header(b: &[u8]) -> Result<(Header, Payload)> {
    if b.len() != HEADER_LEN {
        return Err(bad(format_args!(
            "model header is {} bytes, expected {HEADER_LEN}",
            b.len()
        )));
    }
    if &b[0..8] != MAGIC {
        return Err(bad("not a bidscore model file (bad magic)"));
    }
    let version = u32_at(b, 8);
    if !(1..=VERSION).contains(&version) {
        return Err(bad(format_args!(
            "unsupported model format version {version} (this build reads versions 1 to {VERSION})"
        )));
    }
    if u64_at(b, 88) != header_checksum(b, version) {
        return Err(bad("corrupted model file: header checksum mismatch"));
    }
    let algorithm = match u32_at(b, 12) {
        1 => Algorithm::Lr,
        2 => Algorithm::Ffm,
        a => return Err(bad(format_args!("unknown algorithm {a} in model header"))),
    };
    let (bits, fields, k, flags) = (u32_at(b, 16), u32_at(b, 20), u32_at(b, 24), u32_at(b, 28));
    if bits == 0 || bits > MAX_BITS {
        return Err(bad(format_args!(
            "hash bits {bits} out of range 1..={MAX_BITS}"
        )));
    }
    if fields == 0 || fields > MAX_FIELDS {
        return Err(bad(format_args!(
            "field count {fields} out of range 1..={MAX_FIELDS}"
        )));
    }
    match algorithm {
        Algorithm::Lr if k != 0 || flags != 0 => {
            return Err(bad(format_args!(
                "LR model with k {k} and flags {flags}, expected 0"
            )));
        }
        Algorithm::Ffm if k == 0 || k > MAX_K => {
            return Err(bad(format_args!(
                "latent size k {k} out of range 1..={MAX_K}"
            )));
        }
        _ => {}
    }
    if flags & !FLAG_NORMALIZE != 0 {
        return Err(bad(format_args!(
            "unknown flags {flags:#x} in model header"
        )));
    }
    let mut fingerprint = [0u8; 32];
    fingerprint.copy_from_slice(&b[32..64]);
    let downsample_rate = f64::from_bits(u64_at(b, 64));
    if !(downsample_rate > 0.0 && downsample_rate <= 1.0) {
        return Err(bad(format_args!(
            "downsampling rate {downsample_rate} out of range (0, 1]"
        )));
    }
    let (stride, offset) = layout(b, version, algorithm, k)?;
    let header = Header {
        algorithm,
        bits,
        fields,
        k,
        stride,
        normalize: flags & FLAG_NORMALIZE != 0,
        fingerprint,
        downsample_rate,
    };
    let declared = u64_at(b, 72);
    let expected = header
        .payload_len()
        .and_then(|n| u64::try_from(n).ok()?.checked_mul(4))
        .ok_or_else(|| bad("model dimensions overflow"))?;
    if declared != expected {
        return Err(bad(format_args!(
            "payload length {declared} in header, expected {expected} for these dimensions"
        )));
    }
    let want = if version < 3 {
        HEADER_LEN
    } else {
        payload_offset(&header)
    };
    if offset as usize != want {
        return Err(bad(format_args!(
            "payload offset {offset} in model header, expected {want} for these dimensions"
        )));
    }
    let payload = Payload {
        offset: want,
        len: declared,
        checksum: u64_at(b, 80),
    };
    Ok((header, payload))
}
