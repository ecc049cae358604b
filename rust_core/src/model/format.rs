//! The model file's 128-byte header (see docs/architecture.md, "Model file"): encoding and
//! a parser that validates every field with checked arithmetic and never panics.

use xxhash_rust::xxh3::xxh3_64;

use super::{Algorithm, Header};
use crate::dataset::MAX_FIELDS;
use crate::error::{Error, Result};
use crate::hash::MAX_BITS;

pub const MAGIC: &[u8; 8] = b"BIDSCORE";
/// The version this build writes. Version 1 (no latent stride: `stride == k`) is read too.
pub const VERSION: u32 = 2;
pub const HEADER_LEN: usize = 128;
pub const MAX_K: u32 = 256;
const FLAG_NORMALIZE: u32 = 1;

/// XXH3-64 (seed 0) of the payload bytes.
#[must_use]
pub fn checksum(payload: &[u8]) -> u64 {
    xxh3_64(payload)
}

/// The header bytes for a payload of `payload_len` bytes with checksum `sum`.
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
/// 96..128 (version 2, which stores the latent stride at 96).
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

/// Validates a whole file image (header and payload) and returns its header and payload
/// checksum. The payload starts at [`HEADER_LEN`].
pub fn parse(file: &[u8]) -> Result<(Header, u64)> {
    if file.len() < HEADER_LEN {
        return Err(bad(format_args!(
            "truncated model file: {} bytes, the header alone is {HEADER_LEN}",
            file.len()
        )));
    }
    let (header, declared, sum) = parse_header(&file[..HEADER_LEN])?;
    let actual = (file.len() - HEADER_LEN) as u64;
    if actual != declared {
        return Err(bad(format_args!(
            "truncated or padded model file: payload is {actual} bytes, header says {declared}"
        )));
    }
    if checksum(&file[HEADER_LEN..]) != sum {
        return Err(bad("corrupted model file: payload checksum mismatch"));
    }
    Ok((header, sum))
}

/// Validates the 128 header bytes; returns the header, the declared payload length in bytes
/// (checked against the dimensions) and the declared payload checksum.
pub fn parse_header(b: &[u8]) -> Result<(Header, u64, u64)> {
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
    if version != 1 && version != VERSION {
        return Err(bad(format_args!(
            "unsupported model format version {version} (this build reads versions 1 and {VERSION})"
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
    // Version 1 has no stride: its latent vectors are unpadded.
    let (stride, reserved) = if version == 1 {
        (k, &b[96..])
    } else {
        (u32_at(b, 96), &b[100..])
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
    Ok((header, declared, u64_at(b, 80)))
}
