//! [`Quads`]: the Hogwild view of the weights for the AVX training kernels, in which every
//! 4-lane chunk of a latent block is one 16-byte load or store.
//!
//! Why: with 64-bit atomics ([`Pairs`]) a 4-lane chunk is two general-register loads, two
//! moves and a shuffle in, and the same out. That made one thread on the shared view 0.68x
//! (Zipf rows) to 0.79x (uniform) as fast as on plain memory, so two threads gained little
//! over one (docs/benchmarks.md, "Training: what limits k = 4 and two threads").
//!
//! Soundness. Rust's atomics have no 16-byte type on stable x86-64, so the chunk accesses
//! are `vmovaps` in inline assembly, which the compiler treats as opaque memory operations.
//! Intel (SDM vol. 3A, 9.1.1) and AMD (APM vol. 2, 7.3.2) guarantee that on processors
//! with AVX, an aligned 16-byte `vmovaps` load or store is one atomic access, so a chunk
//! access never races at a finer grain than the hardware's. What remains is Rust's rule
//! against mixed-size atomic accesses to one location: every other access goes through
//! [`Pairs`]' 64-bit atomics, so [`as_quads`] is `unsafe` and its caller promises that no
//! location is reached both ways (FFM training: latent blocks only in chunks, linear
//! weights and the bias only one or two lanes at a time, in separate 16-byte units).

#![cfg(target_arch = "x86_64")]
// One load or store each, in the kernels' inner loops: inlining them is the point.
#![expect(clippy::inline_always, reason = "see above")]

use std::arch::asm;
use std::arch::x86_64::__m128;

use crate::slots::{as_pairs, Pairs, Read, Write};

/// Weights shared between Hogwild threads: chunks of a multiple of 4 lanes from an index
/// that is a multiple of 4 are 16-byte atomic accesses (`vmovaps`), everything else is
/// [`Pairs`]' (see the module doc). Made by [`as_quads`].
#[repr(transparent)]
pub struct Quads(Pairs);

/// Views an exclusively borrowed f32 slice as [`Quads`], or gives it back if this CPU has
/// no AVX or the slice does not start on a 16-byte boundary.
///
/// # Safety
/// For the lifetime of the view, no f32 of `v` may be accessed both by a chunk access (a
/// multiple of 4 lanes from an index that is a multiple of 4) and by any other access (one
/// or two lanes, or a checked `load`/`store` of a chunk from another index). The unchecked
/// accesses of a multiple of 4 lanes (`load_unchecked`, `store_unchecked`) must start at a
/// multiple of 4: checked in debug builds; in release builds `vmovaps` faults on anything
/// else (the process stops; nothing is read or written).
pub unsafe fn as_quads(v: &mut [f32]) -> Result<&Quads, &mut [f32]> {
    if !std::arch::is_x86_feature_detected!("avx") || v.as_ptr().align_offset(16) != 0 {
        return Err(v);
    }
    let pairs = as_pairs(v)?;
    // SAFETY: `Quads` is `repr(transparent)` over `Pairs`, so the cast keeps the slice
    // length and layout; the borrow is the one `as_pairs` made from `v`.
    Ok(unsafe { &*(std::ptr::from_ref(pairs) as *const Quads) })
}

/// The 4 floats at `base + i`, one 16-byte atomic load. The address is formed in the
/// instruction (`[base + 4 i]`), where the compiler would otherwise spend an instruction on
/// it: the kernels hold `base` and the index in registers already.
///
/// # Safety
/// `base + i` is 16-byte aligned and 16 bytes from it are readable; the CPU has AVX.
#[inline(always)]
unsafe fn load16(base: *const f32, i: usize) -> [f32; 4] {
    let v: __m128;
    // SAFETY: our contract. `readonly`: it writes no memory; not `pure`, so each load
    // happens (another thread may have stored in between).
    unsafe {
        asm!(
            "vmovaps {v}, xmmword ptr [{b} + {i} * 4]",
            b = in(reg) base,
            i = in(reg) i,
            v = out(xmm_reg) v,
            options(nostack, preserves_flags, readonly),
        );
    }
    bytemuck::cast(v)
}

/// Stores 4 floats at `base + i`, one 16-byte atomic store.
///
/// # Safety
/// `base + i` is 16-byte aligned and 16 bytes from it are writable; the CPU has AVX.
#[inline(always)]
unsafe fn store16(base: *const f32, i: usize, x: [f32; 4]) {
    let v: __m128 = bytemuck::cast(x);
    // SAFETY: our contract.
    unsafe {
        asm!(
            "vmovaps xmmword ptr [{b} + {i} * 4], {v}",
            b = in(reg) base,
            i = in(reg) i,
            v = in(xmm_reg) v,
            options(nostack, preserves_flags),
        );
    }
}

/// The 4 floats at `base + i` and the 4 after them: two 16-byte atomic loads (a k = 4
/// training slot's weights and sums), the second address formed in its instruction too.
///
/// # Safety
/// `base + i` is 16-byte aligned and the 32 bytes from it are readable; the CPU has AVX.
#[inline(always)]
unsafe fn load16x2(base: *const f32, i: usize) -> ([f32; 4], [f32; 4]) {
    let (lo, hi): (__m128, __m128);
    // SAFETY: our contract. `readonly`: it writes no memory; not `pure` (see `load16`).
    unsafe {
        asm!(
            "vmovaps {lo}, xmmword ptr [{b} + {i} * 4]",
            "vmovaps {hi}, xmmword ptr [{b} + {i} * 4 + 16]",
            b = in(reg) base,
            i = in(reg) i,
            lo = out(xmm_reg) lo,
            hi = out(xmm_reg) hi,
            options(nostack, preserves_flags, readonly),
        );
    }
    (bytemuck::cast(lo), bytemuck::cast(hi))
}

/// Stores `lo` at `base + i` and `hi` at `base + i + 4`: two 16-byte atomic stores.
///
/// # Safety
/// As for [`load16x2`], writable.
#[inline(always)]
unsafe fn store16x2(base: *const f32, i: usize, lo: [f32; 4], hi: [f32; 4]) {
    let (lo, hi): (__m128, __m128) = (bytemuck::cast(lo), bytemuck::cast(hi));
    // SAFETY: our contract.
    unsafe {
        asm!(
            "vmovaps xmmword ptr [{b} + {i} * 4], {lo}",
            "vmovaps xmmword ptr [{b} + {i} * 4 + 16], {hi}",
            b = in(reg) base,
            i = in(reg) i,
            lo = in(xmm_reg) lo,
            hi = in(xmm_reg) hi,
            options(nostack, preserves_flags),
        );
    }
}

impl Quads {
    /// Whether `C` lanes from `i` are a chunk access.
    #[inline(always)]
    fn chunk<const C: usize>(i: usize) -> bool {
        C.is_multiple_of(4) && i.is_multiple_of(4)
    }
}

impl Read for Quads {
    #[inline(always)]
    fn slots(&self) -> usize {
        self.0.slots()
    }

    #[inline(always)]
    unsafe fn load_unchecked<const C: usize>(&self, i: usize) -> [f32; C] {
        if !C.is_multiple_of(4) {
            // SAFETY: passed on from our caller.
            return unsafe { self.0.load_unchecked::<C>(i) };
        }
        debug_assert!(i.is_multiple_of(4), "chunk from index {i}");
        let mut out = [0.0f32; C];
        for (m, four) in out.chunks_exact_mut(4).enumerate() {
            // SAFETY: the caller guarantees `i + C <= self.slots()`; the view starts on a
            // 16-byte boundary (`as_quads`) and `i + 4m` is a multiple of 4, so each chunk
            // is an aligned 16 bytes inside it; `as_quads` checked for AVX.
            four.copy_from_slice(&unsafe { load16(self.addr(0), i + 4 * m) });
        }
        out
    }

    #[inline(always)]
    fn addr(&self, i: usize) -> *const f32 {
        self.0.addr(i)
    }

    #[inline(always)]
    fn at(&self, i: usize) -> f32 {
        self.0.at(i)
    }

    #[inline(always)]
    unsafe fn load_halves(&self, i: usize) -> ([f32; 4], [f32; 4]) {
        debug_assert!(i.is_multiple_of(4), "chunk from index {i}");
        // SAFETY: the caller guarantees `i + 8 <= self.slots()`; the view starts on a
        // 16-byte boundary (`as_quads`) and `i` is a multiple of 4, so both chunks are
        // aligned 16 bytes inside it; `as_quads` checked for AVX.
        unsafe { load16x2(self.addr(0), i) }
    }

    #[inline(always)]
    fn load<const C: usize>(&self, i: usize) -> [f32; C] {
        if Self::chunk::<C>(i) {
            assert!(i + C <= self.slots(), "chunk {i}..{} out of bounds", i + C);
            // SAFETY: in bounds (checked above), from a multiple of 4.
            unsafe { self.load_unchecked::<C>(i) }
        } else {
            self.0.load::<C>(i)
        }
    }
}

impl Write for Quads {
    #[inline(always)]
    fn put(&self, i: usize, x: f32) {
        self.0.put(i, x);
    }

    #[inline(always)]
    fn add(&self, i: usize, x: f32) {
        self.0.add(i, x);
    }

    #[inline(always)]
    fn store<const C: usize>(&self, i: usize, x: [f32; C]) {
        if Self::chunk::<C>(i) {
            assert!(i + C <= self.slots(), "chunk {i}..{} out of bounds", i + C);
            // SAFETY: in bounds (checked above), from a multiple of 4.
            unsafe { self.store_unchecked::<C>(i, x) }
        } else {
            self.0.store::<C>(i, x);
        }
    }

    #[inline(always)]
    unsafe fn store_unchecked<const C: usize>(&self, i: usize, x: [f32; C]) {
        if !C.is_multiple_of(4) {
            // SAFETY: passed on from our caller.
            return unsafe { self.0.store_unchecked::<C>(i, x) };
        }
        debug_assert!(i.is_multiple_of(4), "chunk from index {i}");
        for (m, four) in x.chunks_exact(4).enumerate() {
            let four = [four[0], four[1], four[2], four[3]];
            // SAFETY: as in `load_unchecked`.
            unsafe { store16(self.addr(0), i + 4 * m, four) };
        }
    }

    #[inline(always)]
    unsafe fn store_halves(&self, i: usize, lo: [f32; 4], hi: [f32; 4]) {
        debug_assert!(i.is_multiple_of(4), "chunk from index {i}");
        // SAFETY: as in `load_halves`.
        unsafe { store16x2(self.addr(0), i, lo, hi) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16-byte aligned vector of `0, 1, 2, ...` (over-allocated, then offset).
    fn aligned(n: usize) -> (Vec<f32>, usize) {
        let v: Vec<f32> = (0..n + 4).map(|i| i as f32).collect();
        let skip = v.as_ptr().align_offset(16);
        (v, skip)
    }

    /// Exact comparison of floats, by their bits.
    fn bits(x: &[f32]) -> Vec<u32> {
        x.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn halves_are_the_two_chunks_of_a_slot() {
        let (mut v, skip) = aligned(24);
        let base = skip as f32;
        // SAFETY: this test touches every lane in chunks only.
        let Ok(q) = (unsafe { as_quads(&mut v[skip..skip + 24]) }) else {
            assert!(!std::arch::is_x86_feature_detected!("avx"));
            return;
        };
        for i in [0, 4, 8, 16] {
            // SAFETY: i + 8 <= 24, from a multiple of 4.
            let (lo, hi) = unsafe { q.load_halves(i) };
            // SAFETY: as above.
            let (lo4, hi4) = unsafe { (q.load_unchecked::<4>(i), q.load_unchecked::<4>(i + 4)) };
            assert_eq!((bits(&lo), bits(&hi)), (bits(&lo4), bits(&hi4)), "{i}");
            assert_eq!(lo[0].to_bits(), (base + i as f32).to_bits(), "{i}");
        }
        // SAFETY: 8 + 8 <= 24, from a multiple of 4.
        unsafe { q.store_halves(8, [1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]) };
        assert_eq!(
            bits(&q.load::<8>(8)),
            bits(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
        );
        // The chunks around it are as they were.
        assert_eq!(q.load::<4>(4)[3].to_bits(), (base + 7.0).to_bits());
        assert_eq!(q.load::<4>(16)[0].to_bits(), (base + 16.0).to_bits());
    }

    #[test]
    fn chunks_and_lanes_read_and_write_what_they_should() {
        let (mut v, skip) = aligned(16);
        let base = skip as f32;
        // SAFETY: this test touches lanes 0..8 only in chunks and lanes 8..16 only one or two
        // at a time.
        let Ok(q) = (unsafe { as_quads(&mut v[skip..skip + 16]) }) else {
            assert!(!std::arch::is_x86_feature_detected!("avx"));
            return;
        };
        assert_eq!(q.slots(), 16);
        let counting: [f32; 8] = std::array::from_fn(|i| base + i as f32);
        assert_eq!(bits(&q.load::<8>(0)), bits(&counting));
        q.store::<4>(4, [-1.0, -2.0, -3.0, -4.0]);
        // SAFETY: 0 + 4 <= 16, from a multiple of 4.
        unsafe { q.store_unchecked::<4>(0, [-5.0, -6.0, -7.0, -8.0]) };
        let chunks = [-5.0, -6.0, -7.0, -8.0, -1.0, -2.0, -3.0, -4.0];
        assert_eq!(bits(&q.load::<8>(0)), bits(&chunks));
        assert_eq!(q.at(9).to_bits(), (base + 9.0).to_bits());
        q.put(9, 0.5);
        q.add(10, 0.25);
        q.store::<2>(12, [7.0, 8.0]);
        assert_eq!(bits(&q.load::<2>(8)), bits(&[base + 8.0, 0.5]));
        assert_eq!(bits(&q.load::<2>(10)), bits(&[base + 10.25, base + 11.0]));
        assert_eq!(bits(&q.load::<2>(12)), bits(&[7.0, 8.0]));
        let lanes = [
            base + 8.0,
            0.5,
            base + 10.25,
            base + 11.0,
            7.0,
            8.0,
            base + 14.0,
            base + 15.0,
        ];
        assert_eq!(bits(&v[skip..skip + 8]), bits(&chunks));
        assert_eq!(bits(&v[skip + 8..skip + 16]), bits(&lanes));
    }

    #[test]
    fn misaligned_slices_are_given_back() {
        let (mut v, skip) = aligned(16);
        // SAFETY: the view is refused, nothing is accessed through it.
        assert!(unsafe { as_quads(&mut v[skip + 1..]) }.is_err());
        // SAFETY: as above.
        assert!(unsafe { as_quads(&mut v[skip + 2..]) }.is_err());
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn a_chunk_past_the_end_panics() {
        let (mut v, skip) = aligned(8);
        // SAFETY: chunk accesses only.
        let Ok(q) = (unsafe { as_quads(&mut v[skip..skip + 8]) }) else {
            panic!("out of bounds (no AVX: nothing to test)");
        };
        q.store::<8>(4, [0.0; 8]);
    }
}
