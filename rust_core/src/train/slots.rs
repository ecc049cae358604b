//! Weight storage seen by the kernels: plain `f32` slices for scoring, `Cell<f32>` for
//! single-threaded training and `AtomicU32` (f32 bits) for Hogwild training. One generic
//! kernel serves all three, so scoring and training compute the same sums in the same order.

// One load or store each: inlining them is the point.
#![expect(clippy::inline_always, reason = "see above")]

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};

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
}

/// Read-write access through a shared reference.
pub trait Write: Read {
    fn put(&self, i: usize, x: f32);
    /// Adds `x` to the weight at `i` (atomically where shared).
    fn add(&self, i: usize, x: f32);
    fn store<const C: usize>(&self, i: usize, x: [f32; C]);
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
}
