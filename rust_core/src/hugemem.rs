//! Large f32 arrays in anonymous memory the kernel is asked to back with transparent huge
//! pages (`madvise(MADV_HUGEPAGE)`).
//!
//! Why: an FFM table of tens of megabytes is read at random, one latent block at a time. In
//! 4 KiB pages nearly every block is a TLB miss and a page walk, whose page-table entries
//! (8 bytes per 4 KiB of table) are themselves evicted from the caches when another process
//! streams through memory. In 2 MiB pages the whole table needs a few dozen TLB entries.
//! The advice is only a hint: where huge pages are disabled or unavailable the memory is
//! ordinary pages and everything works the same, only slower.

use std::ops::{Deref, DerefMut};

use memmap2::{Advice, MmapMut};

/// `len` f32s in an anonymous private mapping advised for huge pages, zero-initialised.
/// Pages are shared copy-on-write with children forked after it is filled.
pub struct HugeBuf {
    map: MmapMut,
    len: usize,
    /// Byte offset of the array in the mapping (see [`HugeBuf::copy_of`]).
    start: usize,
}

impl HugeBuf {
    /// A zeroed array of `len` f32s, advised for huge pages.
    pub fn zeroed(len: usize) -> std::io::Result<HugeBuf> {
        HugeBuf::zeroed_in(len, true)
    }

    /// A zeroed array of `len` f32s, advised for huge pages if `huge` (else left in
    /// ordinary pages, like a large heap allocation).
    pub fn zeroed_in(len: usize, huge: bool) -> std::io::Result<HugeBuf> {
        let bytes = len
            .checked_mul(4)
            .ok_or_else(|| std::io::Error::other("array too large"))?;
        // A zero-length mapping is refused by mmap: map at least one page.
        let map = MmapMut::map_anon(bytes.max(1))?;
        if huge {
            // Only a hint (EINVAL where THP is compiled out): ignore a refusal.
            let _ = map.advise(Advice::HugePage);
        }
        if map.as_ptr().align_offset(std::mem::align_of::<f32>()) != 0 {
            return Err(std::io::Error::other("anonymous mapping is not aligned"));
        }
        Ok(HugeBuf { map, len, start: 0 })
    }

    /// A copy of `src` placed so that element `lined` starts a 64-byte cache line (the
    /// mapping is page-aligned, so the array starts that many bytes into it, less than 64).
    pub fn copy_of(src: &[f32], lined: usize) -> std::io::Result<HugeBuf> {
        let start = (64 - lined.wrapping_mul(4) % 64) % 64;
        let mut buf = HugeBuf::zeroed(src.len() + start / 4)?;
        buf.len = src.len();
        buf.start = start;
        buf.copy_from_slice(src);
        Ok(buf)
    }
}

impl Deref for HugeBuf {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        // Cannot panic: the mapping is page-aligned (checked to be f32-aligned in
        // `zeroed`), `start` is a multiple of 4, and it holds at least `start + 4 * len` bytes.
        bytemuck::cast_slice(&self.map[self.start..self.start + self.len * 4])
    }
}

impl DerefMut for HugeBuf {
    fn deref_mut(&mut self) -> &mut [f32] {
        bytemuck::cast_slice_mut(&mut self.map[self.start..self.start + self.len * 4])
    }
}

impl std::fmt::Debug for HugeBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HugeBuf({} f32)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_and_copied() {
        let mut b = HugeBuf::zeroed(1000).unwrap();
        assert!(b.iter().all(|&x| x == 0.0));
        b[999] = 3.0;
        let c = HugeBuf::copy_of(&b, 0).unwrap();
        assert_eq!(c.len(), 1000);
        assert!((c[999] - 3.0).abs() < f32::EPSILON);
        for lined in [0, 1, 5, 16, 17, 65] {
            let d = HugeBuf::copy_of(&b, lined).unwrap();
            assert_eq!(&d[..], &b[..], "{lined}");
            assert_eq!((d.as_ptr() as usize + 4 * lined) % 64, 0, "{lined}");
        }
        assert!(HugeBuf::zeroed(0).unwrap().is_empty());
    }
}
