//! Feature hashing: token bytes -> bucket in `[0, 2^bits)`.
//!
//! The hash is XXH3-64 (xxHash 0.8, `XXH3_64bits_withSeed`) of the UTF-8 token bytes with
//! a 64-bit seed, reduced by keeping the low `bits` bits. XXH3 is specified byte for byte
//! and identical on every platform and endianness. Changing it is a model-format version
//! bump: the test vectors below pin it.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Largest supported hash space: 2^30 buckets.
pub const MAX_BITS: u32 = 30;

/// The full 64-bit hash of a token.
#[must_use]
#[inline]
pub fn hash64(token: &[u8], seed: u64) -> u64 {
    xxh3_64_with_seed(token, seed)
}

/// Bucket of a token in a `2^bits` hash space.
#[must_use]
#[inline]
pub fn bucket(token: &[u8], seed: u64, bits: u32) -> u32 {
    debug_assert!(bits <= MAX_BITS);
    (hash64(token, seed) & ((1u64 << bits) - 1)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values of XXH3_64bits_withSeed from the xxHash C library (0.8.x),
    // cross-checked in tests/features/test_hash.py against the `xxhash` PyPI package.
    #[test]
    fn xxh3_test_vectors() {
        assert_eq!(hash64(b"", 0), 0x2D06_8005_38D3_94C2);
        assert_eq!(hash64(b"a", 0), 0xE6C6_32B6_1E96_4E1F);
        assert_eq!(hash64(b"abc", 0), 0x78AF_5F94_892F_3950);
    }

    #[test]
    fn bucket_keeps_low_bits() {
        let h = hash64(b"app_id=com.example", 7);
        assert_eq!(
            u64::from(bucket(b"app_id=com.example", 7, 18)),
            h & 0x3_FFFF
        );
        assert!(bucket(b"x", 1, 1) < 2);
    }

    #[test]
    fn seed_changes_bucket() {
        let a: Vec<u32> = (0..64)
            .map(|i| bucket(format!("t{i}").as_bytes(), 1, 20))
            .collect();
        let b: Vec<u32> = (0..64)
            .map(|i| bucket(format!("t{i}").as_bytes(), 2, 20))
            .collect();
        assert_ne!(a, b);
    }
}
