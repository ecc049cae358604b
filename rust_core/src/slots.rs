//! Weight storage seen by the kernels: plain `f32` slices for scoring, `Cell<f32>` for
//! single-threaded training, and for Hogwild training `AtomicU32` (f32 bits), 64-bit pairs
//! ([`Pairs`]) or, for the AVX kernels, 16-byte chunks ([`crate::quads::Quads`]). One generic
//! kernel serves them all, so scoring and training compute the same sums in the same order.

// One load or store each: inlining them is the point.
#![expect(clippy::inline_always, reason = "see above")]

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Read access to a flat array of f32 weights.
pub trait Read {
    fn at(&self, i: usize) -> f32;
    /// Address of element `i` (may be one past the end or beyond: only for prefetch hints,
    /// never dereferenced).
    fn addr(&self, i: usize) -> *const f32;
    /// Number of weights.
    fn slots(&self) -> usize;
    /// Like [`Read::load`] without the bounds check.
    ///
    /// # Safety
    /// `i + C <= self.slots()`.
    unsafe fn load_unchecked<const C: usize>(&self, i: usize) -> [f32; C];
    /// `C` consecutive weights from `i`: one bounds check, then a plain (vectorisable) copy.
    fn load<const C: usize>(&self, i: usize) -> [f32; C];
    /// The 4 weights from `i` and the 4 after them (a training slot at k = 4: weights and
    /// their squared-gradient sums), as two chunks. A storage may read them in one go.
    ///
    /// # Safety
    /// `i + 8 <= self.slots()`.
    #[inline(always)]
    unsafe fn load_halves(&self, i: usize) -> ([f32; 4], [f32; 4]) {
        // SAFETY: passed on from our caller.
        unsafe { (self.load_unchecked::<4>(i), self.load_unchecked::<4>(i + 4)) }
    }
}

/// Read-write access through a shared reference.
pub trait Write: Read {
    fn put(&self, i: usize, x: f32);
    /// Adds `x` to the weight at `i` (atomically where shared).
    fn add(&self, i: usize, x: f32);
    fn store<const C: usize>(&self, i: usize, x: [f32; C]);
    /// Like [`Write::store`] without the bounds check (where the storage can skip it).
    ///
    /// # Safety
    /// `i + C <= self.slots()`.
    #[inline(always)]
    unsafe fn store_unchecked<const C: usize>(&self, i: usize, x: [f32; C]) {
        self.store(i, x);
    }
    /// Stores `lo` at `i` and `hi` at `i + 4` ([`Read::load_halves`]' counterpart).
    ///
    /// # Safety
    /// `i + 8 <= self.slots()`.
    #[inline(always)]
    unsafe fn store_halves(&self, i: usize, lo: [f32; 4], hi: [f32; 4]) {
        // SAFETY: passed on from our caller.
        unsafe {
            self.store_unchecked(i, lo);
            self.store_unchecked(i + 4, hi);
        }
    }
}

impl Read for [f32] {
    #[inline(always)]
    fn slots(&self) -> usize {
        self.len()
    }

    #[inline(always)]
    unsafe fn load_unchecked<const C: usize>(&self, i: usize) -> [f32; C] {
        // SAFETY: the caller guarantees `i + C <= self.len()`, so the `C` floats from `i` are
        // in bounds and initialised, and `[f32; C]` has `f32`'s alignment. One array read
        // (rather than C element reads) becomes one full-width vector load.
        unsafe { self.as_ptr().add(i).cast::<[f32; C]>().read() }
    }

    #[inline(always)]
    fn addr(&self, i: usize) -> *const f32 {
        self.as_ptr().cast::<f32>().wrapping_add(i)
    }

    #[inline(always)]
    fn at(&self, i: usize) -> f32 {
        self[i]
    }

    #[inline(always)]
    fn load<const C: usize>(&self, i: usize) -> [f32; C] {
        let s = &self[i..i + C];
        std::array::from_fn(|q| s[q])
    }
}

impl Read for [Cell<f32>] {
    #[inline(always)]
    fn slots(&self) -> usize {
        self.len()
    }

    #[inline(always)]
    unsafe fn load_unchecked<const C: usize>(&self, i: usize) -> [f32; C] {
        // SAFETY: the caller guarantees `i + C <= self.len()`.
        let s = unsafe { self.get_unchecked(i..i + C) };
        std::array::from_fn(|q| s[q].get())
    }

    #[inline(always)]
    fn addr(&self, i: usize) -> *const f32 {
        self.as_ptr().cast::<f32>().wrapping_add(i)
    }

    #[inline(always)]
    fn at(&self, i: usize) -> f32 {
        self[i].get()
    }

    #[inline(always)]
    fn load<const C: usize>(&self, i: usize) -> [f32; C] {
        let s = &self[i..i + C];
        // SAFETY: `s` is C in-bounds cells; `Cell<f32>` has `f32`'s layout, and `[f32; C]`
        // its alignment. `Cell` is not `Sync`, so no other thread writes them, and no
        // reference into a cell's contents can exist. One array read becomes one vector load.
        unsafe { s.as_ptr().cast::<[f32; C]>().read() }
    }
}

impl Write for [Cell<f32>] {
    #[inline(always)]
    fn put(&self, i: usize, x: f32) {
        self[i].set(x);
    }

    #[inline(always)]
    fn add(&self, i: usize, x: f32) {
        self[i].set(self[i].get() + x);
    }

    #[inline(always)]
    fn store<const C: usize>(&self, i: usize, x: [f32; C]) {
        let s = &self[i..i + C];
        // SAFETY: as in `load`. The cells are `UnsafeCell`s underneath, so writing through a
        // pointer derived from a shared reference to them is permitted, as `Cell::set` does.
        unsafe { s.as_ptr().cast_mut().cast::<[f32; C]>().write(x) }
    }

    #[inline(always)]
    unsafe fn store_unchecked<const C: usize>(&self, i: usize, x: [f32; C]) {
        // SAFETY: the caller guarantees `i + C <= self.len()`; then as in `store`.
        unsafe {
            let s = self.get_unchecked(i..i + C);
            s.as_ptr().cast_mut().cast::<[f32; C]>().write(x);
        }
    }
}

// Hogwild (Niu et al. 2011): threads race on weights without locks. Relaxed atomics make the
// races defined behaviour in Rust's memory model and compile to plain moves on x86-64 and
// AArch64; a lost update costs a little accuracy, never memory safety.
impl Read for [AtomicU32] {
    #[inline(always)]
    fn slots(&self) -> usize {
        self.len()
    }

    #[inline(always)]
    unsafe fn load_unchecked<const C: usize>(&self, i: usize) -> [f32; C] {
        // SAFETY: the caller guarantees `i + C <= self.len()`.
        let s = unsafe { self.get_unchecked(i..i + C) };
        std::array::from_fn(|q| f32::from_bits(s[q].load(Ordering::Relaxed)))
    }

    #[inline(always)]
    fn addr(&self, i: usize) -> *const f32 {
        self.as_ptr().cast::<f32>().wrapping_add(i)
    }

    #[inline(always)]
    fn at(&self, i: usize) -> f32 {
        f32::from_bits(self[i].load(Ordering::Relaxed))
    }

    #[inline(always)]
    fn load<const C: usize>(&self, i: usize) -> [f32; C] {
        let s = &self[i..i + C];
        std::array::from_fn(|q| f32::from_bits(s[q].load(Ordering::Relaxed)))
    }
}

impl Write for [AtomicU32] {
    #[inline(always)]
    fn put(&self, i: usize, x: f32) {
        self[i].store(x.to_bits(), Ordering::Relaxed);
    }

    #[inline(always)]
    fn add(&self, i: usize, x: f32) {
        let add = |bits: u32| Some((f32::from_bits(bits) + x).to_bits());
        // The closure never returns None, so the update always succeeds.
        let _ = self[i].fetch_update(Ordering::Relaxed, Ordering::Relaxed, add);
    }

    #[inline(always)]
    fn store<const C: usize>(&self, i: usize, x: [f32; C]) {
        let s = &self[i..i + C];
        for q in 0..C {
            s[q].store(x[q].to_bits(), Ordering::Relaxed);
        }
    }
}

/// Hogwild view of an f32 array as 64-bit atomics, each holding two neighbouring f32s
/// (`cells[p]` holds f32s `2p` and `2p + 1`).
///
/// Element-wise `AtomicU32` access makes every 4-lane chunk of a latent block four scalar
/// loads plus three shuffles in, and three shuffles plus four scalar stores out: it made the
/// FFM kernels twice as slow per row as the single-threaded ones, so a second thread added
/// nothing. With pairs, a 4-lane chunk is two loads and two stores. Every access to the
/// memory goes through the 64-bit atomics for the view's lifetime (no mixed access sizes).
///
/// Chunk loads and stores of an even number of lanes at an even index take the fast path;
/// anything else goes one lane at a time, and a single-lane write is a compare-and-swap on
/// its pair, so it never overwrites the neighbouring lane with a stale value.
///
/// The unchecked chunk accesses (`load_unchecked`, `store_unchecked`) of an even number of
/// lanes skip the parity test too (it cost 10% of a training step): they require an even
/// start (checked in debug builds; an odd one would touch the wrong lanes, still in bounds).
/// Their one user, FFM training, only takes this view for a layout that puts every chunk
/// at an even index (`ffm::TrainState::pairs_aligned`).
///
/// Unsized (a slice underneath), so that `&Pairs` is a fat pointer the compiler keeps in
/// registers; a struct behind a reference would be reloaded after every atomic store.
#[repr(transparent)]
pub struct Pairs([AtomicU64]);

impl Pairs {
    /// Replaces one lane of a pair, leaving the other lane as it is in memory.
    #[inline(always)]
    fn update(&self, i: usize, f: impl Fn(f32) -> f32) {
        let step = |bits: u64| {
            let mut two: [f32; 2] = bytemuck::cast(bits);
            two[i % 2] = f(two[i % 2]);
            Some(bytemuck::cast(two))
        };
        // The closure never returns None, so the update always succeeds.
        let _ = self.0[i / 2].fetch_update(Ordering::Relaxed, Ordering::Relaxed, step);
    }
}

impl Read for Pairs {
    #[inline(always)]
    fn slots(&self) -> usize {
        2 * self.0.len()
    }

    #[inline(always)]
    unsafe fn load_unchecked<const C: usize>(&self, i: usize) -> [f32; C] {
        let mut out = [0.0f32; C];
        // An even `C` from an odd `i` would read the wrong lanes (still in bounds): the
        // unchecked accesses take `i` even, without a branch (see `Pairs`).
        debug_assert!(
            C % 2 == 1 || i.is_multiple_of(2),
            "odd start {i} of a pair chunk"
        );
        if C.is_multiple_of(2) {
            // SAFETY: the caller guarantees `i + C <= self.slots() = 2 * self.0.len()`; with
            // `i` and `C` even, pairs `i / 2 .. i / 2 + C / 2` are in bounds.
            let cells = unsafe { self.0.get_unchecked(i / 2..i / 2 + C / 2) };
            for (two, cell) in out.chunks_exact_mut(2).zip(cells) {
                let pair: [f32; 2] = bytemuck::cast(cell.load(Ordering::Relaxed));
                two.copy_from_slice(&pair);
            }
        } else {
            for (q, x) in out.iter_mut().enumerate() {
                *x = self.at(i + q);
            }
        }
        out
    }

    #[inline(always)]
    fn addr(&self, i: usize) -> *const f32 {
        self.0.as_ptr().cast::<f32>().wrapping_add(i)
    }

    #[inline(always)]
    fn at(&self, i: usize) -> f32 {
        let two: [f32; 2] = bytemuck::cast(self.0[i / 2].load(Ordering::Relaxed));
        two[i % 2]
    }

    #[inline(always)]
    fn load<const C: usize>(&self, i: usize) -> [f32; C] {
        let mut out = [0.0f32; C];
        if C.is_multiple_of(2) && i.is_multiple_of(2) {
            let cells = &self.0[i / 2..i / 2 + C / 2];
            for (two, cell) in out.chunks_exact_mut(2).zip(cells) {
                let pair: [f32; 2] = bytemuck::cast(cell.load(Ordering::Relaxed));
                two.copy_from_slice(&pair);
            }
        } else {
            for (q, x) in out.iter_mut().enumerate() {
                *x = self.at(i + q);
            }
        }
        out
    }
}

impl Write for Pairs {
    #[inline(always)]
    fn put(&self, i: usize, x: f32) {
        self.update(i, |_| x);
    }

    #[inline(always)]
    fn add(&self, i: usize, x: f32) {
        self.update(i, |w| w + x);
    }

    #[inline(always)]
    fn store<const C: usize>(&self, i: usize, x: [f32; C]) {
        if C.is_multiple_of(2) && i.is_multiple_of(2) {
            let cells = &self.0[i / 2..i / 2 + C / 2];
            for (two, cell) in x.chunks_exact(2).zip(cells) {
                let pair: [f32; 2] = [two[0], two[1]];
                cell.store(bytemuck::cast(pair), Ordering::Relaxed);
            }
        } else {
            for (q, &v) in x.iter().enumerate() {
                self.put(i + q, v);
            }
        }
    }

    #[inline(always)]
    unsafe fn store_unchecked<const C: usize>(&self, i: usize, x: [f32; C]) {
        debug_assert!(
            C % 2 == 1 || i.is_multiple_of(2),
            "odd start {i} of a pair chunk"
        );
        if C.is_multiple_of(2) {
            // SAFETY: as in `load_unchecked`.
            let cells = unsafe { self.0.get_unchecked(i / 2..i / 2 + C / 2) };
            for (two, cell) in x.chunks_exact(2).zip(cells) {
                let pair: [f32; 2] = [two[0], two[1]];
                cell.store(bytemuck::cast(pair), Ordering::Relaxed);
            }
        } else {
            for (q, &v) in x.iter().enumerate() {
                self.put(i + q, v);
            }
        }
    }
}

/// Views an exclusively borrowed f32 slice as [`Pairs`] for sharing between Hogwild
/// threads, or gives it back if it does not start on an 8-byte boundary (in practice the
/// allocator always aligns this much). An odd last float is left out of the view.
pub fn as_pairs(v: &mut [f32]) -> Result<&Pairs, &mut [f32]> {
    const {
        assert!(size_of::<AtomicU64>() == 2 * size_of::<f32>());
    }
    if v.as_ptr().align_offset(align_of::<AtomicU64>()) != 0 {
        return Err(v);
    }
    let n = v.len() / 2;
    // SAFETY: `v` starts at an address aligned for `AtomicU64` (checked above); `n` pairs of
    // f32 are `n` u64-sized blocks inside `v`, and every bit pattern is valid for both
    // types. `Pairs` is `repr(transparent)` over `[AtomicU64]`, so the fat pointer cast
    // keeps the length and layout. The `&mut` borrow guarantees no other access to `v` for
    // the lifetime of the view, so all access to this memory goes through these atomics (an
    // odd last float is not reachable through the view).
    #[expect(clippy::cast_ptr_alignment, reason = "alignment checked above")]
    Ok(unsafe {
        let cells = std::ptr::slice_from_raw_parts(v.as_mut_ptr().cast::<AtomicU64>(), n);
        &*(cells as *const Pairs)
    })
}

/// Views an exclusively borrowed f32 slice as atomics for sharing between Hogwild threads.
pub fn as_atomic(v: &mut [f32]) -> &[AtomicU32] {
    const {
        assert!(size_of::<AtomicU32>() == size_of::<f32>());
        assert!(align_of::<AtomicU32>() == align_of::<f32>());
    }
    // SAFETY: `AtomicU32` has the same size as `u32`/`f32` and (checked above) the same
    // alignment, and every bit pattern is valid for both. The `&mut` borrow guarantees no
    // other access exists for the lifetime of the returned slice, so all access to this memory
    // for that lifetime goes through atomics.
    unsafe { std::slice::from_raw_parts(v.as_mut_ptr().cast::<AtomicU32>(), v.len()) }
}

/// Views an exclusively borrowed f32 slice as cells for the single-threaded kernels.
pub fn as_cells(v: &mut [f32]) -> &[Cell<f32>] {
    Cell::from_mut(v).as_slice_of_cells()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_write_through() {
        let mut v = vec![1.0f32, 2.0, 3.0];
        as_atomic(&mut v).put(1, 5.0);
        as_cells(&mut v).put(2, 7.0);
        assert_eq!(v, [1.0, 5.0, 7.0]);
        assert!((v[..].at(0) - 1.0).abs() < f32::EPSILON);
    }

    #[test]
    fn pairs_read_and_write_every_lane() {
        let mut v: Vec<f32> = (0..11).map(|i| i as f32).collect();
        let mut misaligned = false;
        for skip in 0..2 {
            let Ok(p) = as_pairs(&mut v[skip..]) else {
                misaligned = true;
                continue;
            };
            let n = p.slots();
            assert_eq!(n, (11 - skip) / 2 * 2);
            for i in 0..n {
                assert_eq!(p.at(i).to_bits(), ((i + skip) as f32).to_bits());
            }
            for i in 0..=n - 4 {
                let four = p.load::<4>(i);
                let want: [f32; 4] = std::array::from_fn(|q| (i + q + skip) as f32);
                assert_eq!(four.map(f32::to_bits), want.map(f32::to_bits));
            }
            p.store::<4>(1, [-1.0, -2.0, -3.0, -4.0]);
            p.store::<4>(4, [-5.0, -6.0, -7.0, -8.0]);
            p.put(0, 0.5);
            p.add(8, 0.25);
            let want = [0.5, -1.0, -2.0, -3.0, -5.0, -6.0, -7.0, -8.0];
            for (i, &x) in want.iter().enumerate() {
                assert_eq!(p.at(i).to_bits(), f32::to_bits(x), "lane {i}");
            }
            assert_eq!(p.at(8).to_bits(), ((8 + skip) as f32 + 0.25).to_bits());
            v = (0..11).map(|i| i as f32).collect();
        }
        // One of two neighbouring f32 addresses is 8-byte aligned, the other is refused.
        assert!(misaligned);
    }
}
