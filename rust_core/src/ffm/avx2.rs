//! AVX2 + FMA kernels: latent vectors in chunks of 8 lanes, a trailing half chunk of 4
//! (k = 4, 12, ...) in 128-bit registers. Training uses the approximate `AdaGrad` step
//! (`rsqrt` plus one Newton step, fused), the same on every call, so single-threaded
//! training on this path is bit-for-bit reproducible.
//!
//! The functions are `#[target_feature(enable = "avx2,fma")]`: calling them is sound only
//! on a CPU that has both, which the dispatcher checks ([`crate::simd::Kernel::available`]).

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::{
    __m128, __m256, _mm256_add_ps, _mm256_castps256_ps128, _mm256_extractf128_ps, _mm256_fmadd_ps,
    _mm256_fnmadd_ps, _mm256_mul_ps, _mm256_rsqrt_ps, _mm256_set1_ps, _mm256_set_m128,
    _mm256_setzero_ps, _mm_add_ps, _mm_cvtss_f32, _mm_fmadd_ps, _mm_fnmadd_ps, _mm_movehdup_ps,
    _mm_movehl_ps, _mm_mul_ps, _mm_rsqrt_ps, _mm_set1_ps, _mm_setzero_ps,
};

use super::{
    bias_step, linear_step, pair_update, Ahead, Dims, Drip, Feat, RowShape, Sgd, StepArgs,
};
use crate::math::{logloss, sigmoid};
use crate::slots::{Read, Write};

/// 8 weights from `i`.
///
/// # Safety
/// `i + 8 <= s.slots()`.
#[inline(always)]
pub(super) unsafe fn load8<S: Read + ?Sized>(s: &S, i: usize) -> __m256 {
    // SAFETY: the range is in bounds (our contract).
    bytemuck::cast(unsafe { s.load_unchecked::<8>(i) })
}

/// 4 weights from `i`.
///
/// # Safety
/// `i + 4 <= s.slots()`.
#[inline(always)]
pub(super) unsafe fn load4<S: Read + ?Sized>(s: &S, i: usize) -> __m128 {
    // SAFETY: the range is in bounds (our contract).
    bytemuck::cast(unsafe { s.load_unchecked::<4>(i) })
}

/// Sum of 4 lanes, always in the same order.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) fn hsum4(v: __m128) -> f32 {
    let pairs = _mm_add_ps(v, _mm_movehl_ps(v, v));
    _mm_cvtss_f32(_mm_add_ps(pairs, _mm_movehdup_ps(pairs)))
}

/// Sum of 8 lanes, always in the same order.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) fn hsum8(v: __m256) -> f32 {
    hsum4(_mm_add_ps(
        _mm256_castps256_ps128(v),
        _mm256_extractf128_ps::<1>(v),
    ))
}

/// `acc8/acc4 += v[pa..pa+k] * v[pb..pb+k] * x`, 8 lanes at a time, then 4.
///
/// # Safety
/// `pa + k` and `pb + k` are at most `s.slots()`; `k` is a multiple of 4.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn dot<S: Read + ?Sized>(
    s: &S,
    k: usize,
    (pa, pb): (usize, usize),
    x: f32,
    acc8: &mut __m256,
    acc4: &mut __m128,
) {
    let mut c = 0;
    while c + 8 <= k {
        // SAFETY: `c + 8 <= k` (our contract).
        let (va, vb) = unsafe { (load8(s, pa + c), load8(s, pb + c)) };
        *acc8 = _mm256_fmadd_ps(_mm256_mul_ps(va, vb), _mm256_set1_ps(x), *acc8);
        c += 8;
    }
    if c < k {
        // SAFETY: `k` is a multiple of 4, so `c + 4 <= k`.
        let (va, vb) = unsafe { (load4(s, pa + c), load4(s, pb + c)) };
        *acc4 = _mm_fmadd_ps(_mm_mul_ps(va, vb), _mm_set1_ps(x), *acc4);
    }
}

/// The pairwise and linear terms of a resolved row: for each feature `a`, the partners'
/// products `<v_a, v_b> x_b` accumulate lane-wise in two register sets (alternating
/// partners), and are scaled by `x_a r` once per `a`.
///
/// # Safety
/// As for [`super::score_feats`] (`k` is a multiple of 4); the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn score<S: Read + ?Sized, const K: usize>(
    s: &S,
    k: usize,
    r: f32,
    feats: &[Feat],
    ahead: Ahead<'_>,
) -> f32 {
    // A literal latent size (K > 0) lets the compiler unroll the chunk loops.
    let k = if K == 0 { k } else { K };
    let mut t = 0.0f32;
    let (mut tot8, mut tot4) = (_mm256_setzero_ps(), _mm_setzero_ps());
    for (i, a) in feats.iter().enumerate() {
        ahead.step(s, i, feats.len());
        t += s.at(a.lin) * a.x;
        let (mut p0, mut p1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (mut q0, mut q1) = (_mm_setzero_ps(), _mm_setzero_ps());
        let mut partners = feats[i + 1..].chunks_exact(2);
        for two in &mut partners {
            let (b0, b1) = (&two[0], &two[1]);
            // SAFETY: blocks of resolved features (see `super::dot_into`).
            unsafe {
                dot(
                    s,
                    k,
                    (a.base + b0.foff, b0.base + a.foff),
                    b0.x,
                    &mut p0,
                    &mut q0,
                );
                dot(
                    s,
                    k,
                    (a.base + b1.foff, b1.base + a.foff),
                    b1.x,
                    &mut p1,
                    &mut q1,
                );
            }
        }
        if let [b] = partners.remainder() {
            // SAFETY: as above.
            unsafe {
                dot(
                    s,
                    k,
                    (a.base + b.foff, b.base + a.foff),
                    b.x,
                    &mut p0,
                    &mut q0,
                );
            };
        }
        let xr = a.x * r;
        tot8 = _mm256_fmadd_ps(_mm256_add_ps(p0, p1), _mm256_set1_ps(xr), tot8);
        tot4 = _mm_fmadd_ps(_mm_add_ps(q0, q1), _mm_set1_ps(xr), tot4);
    }
    t + (hsum8(tot8) + hsum4(tot4))
}

/// [`score`] for scoring rows (training's forward pass keeps [`score`], so that trained
/// weights keep their bits) with 8 or 16 lanes per latent vector (k = 5..8, 13..16): the row
/// is inspected once, as in [`score4`], and when every feature has the same value (one-hot
/// rows) a pair is one fused multiply-add per 8 lanes, the values applied once per row; when
/// the fields go up in equal steps ([`RowShape`]) feature `a`'s block for each partner is
/// found by adding the step. Fewer instructions per pair also keep more pairs' loads in
/// flight when the table does not fit in the caches.
///
/// # Safety
/// As for [`score`] with `k == K`, and `K` is 8 or 16; `shape` is `feats`' (see
/// [`RowShape`]).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn score_rows<S: Read + ?Sized, const K: usize>(
    s: &S,
    r: f32,
    feats: &[Feat],
    shape: RowShape,
    ahead: Ahead<'_>,
) -> f32 {
    // SAFETY: passed on from our caller; each arm's condition is the one its loop needs.
    unsafe {
        match (shape.step, shape.same_x) {
            (Some(step), true) => score_rows_run::<S, K, true, true>(s, r, feats, step, ahead),
            (Some(step), false) => score_rows_run::<S, K, true, false>(s, r, feats, step, ahead),
            (None, true) => score_rows_run::<S, K, false, true>(s, r, feats, 0, ahead),
            (None, false) => score_rows_run::<S, K, false, false>(s, r, feats, 0, ahead),
        }
    }
}

/// The loops of [`score_rows`]. `EVEN`: feature `a`'s block for partner `b` is at
/// `a.base + feats[i + 1].foff + step * (b - i - 1)` (the same address when
/// `RowShape::of(feats).step == Some(step)`), else at `a.base + b.foff`. `SAME_X`: every feature
/// has the same value, applied once per row.
///
/// # Safety
/// As for [`score_rows`]; with `EVEN`, `RowShape::of(feats).step == Some(step)`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn score_rows_run<S: Read + ?Sized, const K: usize, const EVEN: bool, const SAME_X: bool>(
    s: &S,
    r: f32,
    feats: &[Feat],
    step: usize,
    ahead: Ahead<'_>,
) -> f32 {
    let n = feats.len();
    // SAFETY (of every `f(b)` below): called with partners only, `i < b < n`.
    let f = |b: usize| unsafe { feats.get_unchecked(b) };
    let mut t = 0.0f32;
    let mut tot = _mm256_setzero_ps();
    for (i, a) in feats.iter().enumerate() {
        ahead.step(s, i, n);
        t += s.at(a.lin) * a.x;
        let first = feats.get(i + 1).map_or(0, |b| a.base + b.foff);
        // `acc + <v_a[f_b], v_b[f_a]> (* x_b)`, lane-wise over 8-lane chunks.
        let pair = |b: usize, mut acc: __m256| {
            let pa = if EVEN {
                first + step * (b - i - 1)
            } else {
                a.base + f(b).foff
            };
            let pb = f(b).base + a.foff;
            let mut c = 0;
            while c < K {
                // SAFETY: `c + 8 <= K == k`: chunks of blocks of resolved features (see
                // `super::dot_into`).
                let (va, vb) = unsafe { (load8(s, pa + c), load8(s, pb + c)) };
                acc = if SAME_X {
                    _mm256_fmadd_ps(va, vb, acc)
                } else {
                    _mm256_fmadd_ps(_mm256_mul_ps(va, vb), _mm256_set1_ps(f(b).x), acc)
                };
                c += 8;
            }
            acc
        };
        let (acc0, acc1) = alternating(i + 1, n, _mm256_setzero_ps(), pair);
        let xr = if SAME_X { r } else { a.x * r };
        tot = _mm256_fmadd_ps(_mm256_add_ps(acc0, acc1), _mm256_set1_ps(xr), tot);
    }
    let xx = one_hot_scale::<SAME_X>(feats);
    t + hsum8(tot) * xx
}

/// Partners `from..n` folded by `step` into two accumulators, alternating, so that one
/// partner's additions do not wait for the previous one's.
#[inline(always)]
fn alternating<A: Copy>(
    from: usize,
    n: usize,
    zero: A,
    mut step: impl FnMut(usize, A) -> A,
) -> (A, A) {
    let (mut acc0, mut acc1) = (zero, zero);
    let mut b = from;
    while b + 2 <= n {
        acc0 = step(b, acc0);
        acc1 = step(b + 1, acc1);
        b += 2;
    }
    if b < n {
        acc0 = step(b, acc0);
    }
    (acc0, acc1)
}

/// What the loops that leave the values out of the pairs (`SAME_X`: every feature has the
/// same value) multiply the pair sum by once: that value squared.
#[inline(always)]
fn one_hot_scale<const SAME_X: bool>(feats: &[Feat]) -> f32 {
    if SAME_X {
        feats.first().map_or(1.0, |a| a.x * a.x)
    } else {
        1.0
    }
}

/// [`score`] for `k = 4`: two partners per 256-bit register (each half one pair's four
/// lanes), so a pair costs half the vector instructions of one 128-bit step.
///
/// The row is looked at once to pick a specialised loop: when the features' field offsets
/// go up in equal steps ([`RowShape`]: one feature per field, fields in order) feature
/// `a`'s blocks for its partners are found by adding the step, not by reading each
/// partner's field, and with a step of 4 floats (the payload layout, fields without gaps)
/// features are taken two at a time ([`score4_adjacent`]); when every feature has the same
/// value (one-hot rows) the products are scaled once per row instead of once per pair.
///
/// # Safety
/// As for [`score`] with `k == 4`; `shape` is `feats`' (see [`RowShape`]).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn score4<S: Read + ?Sized>(
    s: &S,
    r: f32,
    feats: &[Feat],
    shape: RowShape,
    ahead: Ahead<'_>,
) -> f32 {
    // SAFETY: passed on from our caller; each arm's condition is the one its loop needs.
    unsafe {
        match (shape.step, shape.same_x) {
            (Some(4), true) => score4_adjacent::<S, true>(s, r, feats, ahead),
            (Some(4), false) => score4_adjacent::<S, false>(s, r, feats, ahead),
            (Some(step), true) => score4_run::<S, true, true>(s, r, feats, step, ahead),
            (Some(step), false) => score4_run::<S, true, false>(s, r, feats, step, ahead),
            (None, true) => score4_run::<S, false, true>(s, r, feats, 0, ahead),
            (None, false) => score4_run::<S, false, false>(s, r, feats, 0, ahead),
        }
    }
}

/// The other loops of [`score4`]. `EVEN`: feature `a`'s block for partner `b` is at
/// `a.base + feats[i + 1].foff + step * (b - i - 1)` (the same address when
/// `RowShape::of(feats).step == Some(step)`), else at `a.base + b.foff`. `SAME_X`: every feature
/// has the same value, so a pair's product is scaled by `x_a r x_b` once per row.
///
/// # Safety
/// As for [`score`] with `k == 4`; with `EVEN`, `RowShape::of(feats).step == Some(step)`.
#[target_feature(enable = "avx2,fma")]
// Each of `score4`'s six loops is a function of its own: inlined together into one large
// function, a 10-feature row scored about 2% slower (measured; the call costs less).
#[inline(never)]
unsafe fn score4_run<S: Read + ?Sized, const EVEN: bool, const SAME_X: bool>(
    s: &S,
    r: f32,
    feats: &[Feat],
    step: usize,
    ahead: Ahead<'_>,
) -> f32 {
    let n = feats.len();
    let mut t = 0.0f32;
    let mut tot = _mm256_setzero_ps();
    let mut tail = _mm_setzero_ps();
    for (i, a) in feats.iter().enumerate() {
        ahead.step(s, i, n);
        t += s.at(a.lin) * a.x;
        let first = feats.get(i + 1).map_or(0, |b| a.base + b.foff);
        // A partner's features. SAFETY: this local closure is only called with partners,
        // `i < b < n` (the loop conditions below), so `b` is in bounds.
        let f = |b: usize| unsafe { feats.get_unchecked(b) };
        // Feature `a`'s block for partner `b` (i < b < n).
        let aside = |b: usize| {
            if EVEN {
                first + step * (b - i - 1)
            } else {
                a.base + f(b).foff
            }
        };
        // `acc + v_a[f_b] * v_b[f_a] (* x_b)` for partners `b` and `b + 1` in the halves.
        let two = |b: usize, acc: __m256| {
            // SAFETY: `i < b` and `b + 1 < n`: blocks of resolved features (see
            // `super::dot_into`), 4 lanes each.
            unsafe {
                let va = _mm256_set_m128(load4(s, aside(b + 1)), load4(s, aside(b)));
                let vb = _mm256_set_m128(
                    load4(s, f(b + 1).base + a.foff),
                    load4(s, f(b).base + a.foff),
                );
                if SAME_X {
                    _mm256_fmadd_ps(va, vb, acc)
                } else {
                    let x = _mm256_set_m128(_mm_set1_ps(f(b + 1).x), _mm_set1_ps(f(b).x));
                    _mm256_fmadd_ps(_mm256_mul_ps(va, x), vb, acc)
                }
            }
        };
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut b = i + 1;
        while b + 4 <= n {
            acc0 = two(b, acc0);
            acc1 = two(b + 2, acc1);
            b += 4;
        }
        if b + 2 <= n {
            acc0 = two(b, acc0);
            b += 2;
        }
        let mut q = _mm_setzero_ps();
        if b < n {
            // SAFETY: as in `two`, one partner.
            let (va, vb) = unsafe { (load4(s, aside(b)), load4(s, f(b).base + a.foff)) };
            let x = if SAME_X { 1.0 } else { f(b).x };
            q = _mm_mul_ps(_mm_mul_ps(va, _mm_set1_ps(x)), vb);
        }
        let xr = if SAME_X { r } else { a.x * r };
        tot = _mm256_fmadd_ps(_mm256_add_ps(acc0, acc1), _mm256_set1_ps(xr), tot);
        tail = _mm_fmadd_ps(q, _mm_set1_ps(xr), tail);
    }
    let xx = one_hot_scale::<SAME_X>(feats);
    t + (hsum8(tot) + hsum4(tail)) * xx
}

/// [`score4`]'s loop for rows whose features sit one per field in consecutive fields with
/// the payload layout (`RowShape::of(feats).step == Some(4)`, the usual CTR row): features are
/// taken two at a time, `a` and the next one `a2`. For a partner `b` after both, `b`'s
/// blocks for `a`'s and `a2`'s fields are adjacent, so one 256-bit load gives both, and the
/// other halves come from `a`'s and `a2`'s blocks for `b`'s field; the pair `(a, a2)`
/// itself is one 128-bit step. Half as many passes over the partners as one feature at a
/// time: with 10 or 16 features a row's cost is mostly that per-pass work (loop set-up,
/// prefetch hints, tails), not the pairs' arithmetic.
///
/// # Safety
/// As for [`score`] with `k == 4`, and `RowShape::of(feats).step == Some(4)`.
#[target_feature(enable = "avx2,fma")]
#[inline(never)] // see `score4_run`
unsafe fn score4_adjacent<S: Read + ?Sized, const SAME_X: bool>(
    s: &S,
    r: f32,
    feats: &[Feat],
    ahead: Ahead<'_>,
) -> f32 {
    let n = feats.len();
    // SAFETY (of every `f(b)` below): called with `b < n` only (the loop conditions).
    let f = |b: usize| unsafe { feats.get_unchecked(b) };
    let mut t = 0.0f32;
    let mut tot = _mm256_setzero_ps();
    let mut tail = _mm_setzero_ps();
    let mut i = 0;
    while i + 1 < n {
        let (a, a2) = (f(i), f(i + 1));
        ahead.step(s, i, n);
        ahead.step(s, i + 1, n);
        t += s.at(a.lin) * a.x;
        t += s.at(a2.lin) * a2.x;
        let (xa, xa2) = if SAME_X { (1.0, 1.0) } else { (a.x, a2.x) };
        // SAFETY: blocks of resolved features, 4 lanes each (see `super::dot_into`).
        let q = unsafe { _mm_mul_ps(load4(s, a.base + a2.foff), load4(s, a2.base + a.foff)) };
        tail = _mm_fmadd_ps(q, _mm_set1_ps(xa * xa2 * r), tail);
        // `a`'s and `a2`'s blocks for partner `b` (i + 1 < b < n): the fields go up by one
        // from `a2`'s, so the offsets go up by 4 from theirs for `a2`'s successor.
        let (pa, pa2) = (a.base + a2.foff + 4, a2.base + a2.foff + 4);
        // `acc + [v_a[f_b], v_a2[f_b]] * [v_b[f_a], v_b[f_a2]] (* x_b)`.
        let two = |b: usize, acc: __m256| {
            let o = 4 * (b - i - 2);
            // SAFETY: `i + 1 < b < n`. The 8 floats from `f(b).base + a.foff` are `b`'s
            // blocks for `a`'s and `a2`'s fields (`a2.foff == a.foff + 4`); `pa + o` and
            // `pa2 + o` are `a`'s and `a2`'s blocks for `b`'s field: all blocks of resolved
            // features.
            unsafe {
                let vb = load8(s, f(b).base + a.foff);
                let va = _mm256_set_m128(load4(s, pa2 + o), load4(s, pa + o));
                if SAME_X {
                    _mm256_fmadd_ps(va, vb, acc)
                } else {
                    _mm256_fmadd_ps(_mm256_mul_ps(va, _mm256_set1_ps(f(b).x)), vb, acc)
                }
            }
        };
        let (acc0, acc1) = alternating(i + 2, n, _mm256_setzero_ps(), two);
        let xr = _mm256_set_m128(_mm_set1_ps(xa2 * r), _mm_set1_ps(xa * r));
        tot = _mm256_fmadd_ps(_mm256_add_ps(acc0, acc1), xr, tot);
        i += 2;
    }
    if i < n {
        // The last feature of an odd count: its pairs were all taken above.
        let a = f(i);
        ahead.step(s, i, n);
        t += s.at(a.lin) * a.x;
    }
    let xx = one_hot_scale::<SAME_X>(feats);
    t + (hsum8(tot) + hsum4(tail)) * xx
}

/// The forward pass of k = 4 training (the previous version of [`score4`], kept for training
/// so that trained weights stay bit for bit what they were): two partners per 256-bit
/// register, each partner's block and value read from its [`Feat`]. [`score4`]'s
/// specialised loops sum in another order (same results to f32 rounding) and saved 2% of a
/// training step's instructions, not worth changing every trained model's bits.
///
/// # Safety
/// As for [`score`] with `k == 4`.
#[target_feature(enable = "avx2,fma")]
unsafe fn score4_train<S: Read + ?Sized>(s: &S, r: f32, feats: &[Feat], ahead: Ahead<'_>) -> f32 {
    let mut t = 0.0f32;
    let mut tot = _mm256_setzero_ps();
    let mut tail = _mm_setzero_ps();
    for (i, a) in feats.iter().enumerate() {
        ahead.step(s, i, feats.len());
        t += s.at(a.lin) * a.x;
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut partners = feats[i + 1..].chunks_exact(4);
        for four in &mut partners {
            // SAFETY: blocks of resolved features (see `super::dot_into`), 4 lanes each.
            unsafe {
                acc0 = two_pairs(s, a, (&four[0], &four[1]), acc0);
                acc1 = two_pairs(s, a, (&four[2], &four[3]), acc1);
            }
        }
        let mut rest = partners.remainder().chunks_exact(2);
        for two in &mut rest {
            // SAFETY: as above.
            acc0 = unsafe { two_pairs(s, a, (&two[0], &two[1]), acc0) };
        }
        let mut q = _mm_setzero_ps();
        if let [b] = rest.remainder() {
            // SAFETY: as above.
            let (va, vb) = unsafe { (load4(s, a.base + b.foff), load4(s, b.base + a.foff)) };
            q = _mm_mul_ps(_mm_mul_ps(va, vb), _mm_set1_ps(b.x));
        }
        let xr = a.x * r;
        tot = _mm256_fmadd_ps(_mm256_add_ps(acc0, acc1), _mm256_set1_ps(xr), tot);
        tail = _mm_fmadd_ps(q, _mm_set1_ps(xr), tail);
    }
    t + (hsum8(tot) + hsum4(tail))
}

/// `acc + [v_a[f_b0] * v_b0[f_a] * x_b0, v_a[f_b1] * v_b1[f_a] * x_b1]`.
///
/// # Safety
/// The four 4-lane vectors are in bounds (blocks of resolved features, stride 4).
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn two_pairs<S: Read + ?Sized>(
    s: &S,
    a: &Feat,
    (b0, b1): (&Feat, &Feat),
    acc: __m256,
) -> __m256 {
    // SAFETY: our contract.
    let (a0, a1, v0, v1) = unsafe {
        (
            load4(s, a.base + b0.foff),
            load4(s, a.base + b1.foff),
            load4(s, b0.base + a.foff),
            load4(s, b1.base + a.foff),
        )
    };
    let va = _mm256_set_m128(a1, a0);
    let vb = _mm256_set_m128(v1, v0);
    let x = _mm256_set_m128(_mm_set1_ps(b1.x), _mm_set1_ps(b0.x));
    _mm256_fmadd_ps(_mm256_mul_ps(va, vb), x, acc)
}

/// `y (1.5 - (x/2 y) y)` with `y` the 12-bit `rsqrt` of `x`: `1/sqrt(x)` to about 1e-7.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) fn rsqrt8(x: __m256) -> __m256 {
    let y = _mm256_rsqrt_ps(x);
    let h = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5), x), y);
    _mm256_mul_ps(y, _mm256_fnmadd_ps(h, y, _mm256_set1_ps(1.5)))
}

/// [`rsqrt8`] on 4 lanes.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) fn rsqrt4(x: __m128) -> __m128 {
    let y = _mm_rsqrt_ps(x);
    let h = _mm_mul_ps(_mm_mul_ps(_mm_set1_ps(0.5), x), y);
    _mm_mul_ps(y, _mm_fnmadd_ps(h, y, _mm_set1_ps(1.5)))
}

/// One pair chunk of 8 lanes: weights at `a`, `b`, squared-gradient sums at `+k`.
///
/// # Safety
/// `a + k + 8` and `b + k + 8` are at most `st.slots()`; `a != b`.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn pair8<S: Write + ?Sized>(
    st: &S,
    k: usize,
    (a, b): (usize, usize),
    kx: f32,
    sgd: Sgd,
) {
    // SAFETY: every chunk ends by `a + k + 8` or `b + k + 8` (our contract).
    unsafe {
        let (wa, wb) = (load8(st, a), load8(st, b));
        let (sa, sb) = (load8(st, a + k), load8(st, b + k));
        let (l2, kx, eta) = (
            _mm256_set1_ps(sgd.l2),
            _mm256_set1_ps(kx),
            _mm256_set1_ps(sgd.eta),
        );
        let ga = _mm256_fmadd_ps(l2, wa, _mm256_mul_ps(kx, wb));
        let gb = _mm256_fmadd_ps(l2, wb, _mm256_mul_ps(kx, wa));
        let sa = _mm256_fmadd_ps(ga, ga, sa);
        let sb = _mm256_fmadd_ps(gb, gb, sb);
        let na = _mm256_fnmadd_ps(_mm256_mul_ps(eta, ga), rsqrt8(sa), wa);
        let nb = _mm256_fnmadd_ps(_mm256_mul_ps(eta, gb), rsqrt8(sb), wb);
        let arr = |v: __m256| -> [f32; 8] { bytemuck::cast(v) };
        st.store_unchecked(a + k, arr(sa));
        st.store_unchecked(b + k, arr(sb));
        st.store_unchecked(a, arr(na));
        st.store_unchecked(b, arr(nb));
    }
}

/// [`pair8`] on 4 lanes.
///
/// # Safety
/// `a + k + 4` and `b + k + 4` are at most `st.slots()`; `a != b`.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn pair4<S: Write + ?Sized>(
    st: &S,
    k: usize,
    (a, b): (usize, usize),
    kx: f32,
    sgd: Sgd,
) {
    // SAFETY: every chunk ends by `a + k + 4` or `b + k + 4` (our contract).
    unsafe {
        let (wa, wb) = (load4(st, a), load4(st, b));
        let (sa, sb) = (load4(st, a + k), load4(st, b + k));
        let (l2, kx, eta) = (_mm_set1_ps(sgd.l2), _mm_set1_ps(kx), _mm_set1_ps(sgd.eta));
        let ga = _mm_fmadd_ps(l2, wa, _mm_mul_ps(kx, wb));
        let gb = _mm_fmadd_ps(l2, wb, _mm_mul_ps(kx, wa));
        let sa = _mm_fmadd_ps(ga, ga, sa);
        let sb = _mm_fmadd_ps(gb, gb, sb);
        let na = _mm_fnmadd_ps(_mm_mul_ps(eta, ga), rsqrt4(sa), wa);
        let nb = _mm_fnmadd_ps(_mm_mul_ps(eta, gb), rsqrt4(sb), wb);
        let arr = |v: __m128| -> [f32; 4] { bytemuck::cast(v) };
        st.store_unchecked(a + k, arr(sa));
        st.store_unchecked(b + k, arr(sb));
        st.store_unchecked(a, arr(na));
        st.store_unchecked(b, arr(nb));
    }
}

/// The pair updates of feature `a` with its `partners` at k = 4: two pairs per 256-bit
/// register when their four latent vectors are distinct (then neither pair reads what the
/// other writes, and each lane's arithmetic is [`pair4`]'s, so the result is bit for bit
/// that of two [`pair4`] steps), else one pair at a time.
///
/// # Safety
/// As for [`train`] with k = 4: `a` and `partners` are resolved features of the row.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn update4<S: Write + ?Sized>(st: &S, a: &Feat, partners: &[Feat], kr: f32, sgd: Sgd) {
    let one = |b: &Feat| {
        let (pa, pb) = (a.base + b.foff, b.base + a.foff);
        // SAFETY: our contract (see `train`).
        unsafe {
            if pa == pb {
                pair_update::<S, 4, true>(st, 4, pa, pb, kr * b.x, sgd);
            } else {
                pair4(st, 4, (pa, pb), kr * b.x, sgd);
            }
        }
    };
    let mut two = partners.chunks_exact(2);
    for p in &mut two {
        let (b0, b1) = (&p[0], &p[1]);
        let slots = [
            a.base + b0.foff,
            b0.base + a.foff,
            a.base + b1.foff,
            b1.base + a.foff,
        ];
        let distinct = slots[0] != slots[1]
            && slots[0] != slots[2]
            && slots[0] != slots[3]
            && slots[1] != slots[2]
            && slots[1] != slots[3]
            && slots[2] != slots[3];
        if distinct {
            // SAFETY: our contract; the four slots are distinct.
            unsafe { pair4x2(st, slots, (kr * b0.x, kr * b1.x), sgd) };
        } else {
            one(b0);
            one(b1);
        }
    }
    if let [b] = two.remainder() {
        one(b);
    }
}

/// Two [`pair4`] steps in 256-bit registers: pairs `(slots[0], slots[1])` with `kx.0` and
/// `(slots[2], slots[3])` with `kx.1` (weights at the slot, squared-gradient sums at +4).
///
/// # Safety
/// Every `slot + 8 <= st.slots()`, and the four slots are distinct.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn pair4x2<S: Write + ?Sized>(st: &S, slots: [usize; 4], kx: (f32, f32), sgd: Sgd) {
    let [a0, b0, a1, b1] = slots;
    // SAFETY: every chunk ends by `slot + 8` (our contract).
    unsafe {
        // Each slot's weights and sums: (w, g) of 4 lanes each, one `load_halves`.
        let m = |x: [f32; 4]| -> __m128 { bytemuck::cast(x) };
        let [(wa0, sa0), (wb0, sb0), (wa1, sa1), (wb1, sb1)] =
            slots.map(|slot| st.load_halves(slot));
        let two = |lo: [f32; 4], hi: [f32; 4]| _mm256_set_m128(m(hi), m(lo));
        let (wa, wb) = (two(wa0, wa1), two(wb0, wb1));
        let (sa, sb) = (two(sa0, sa1), two(sb0, sb1));
        let kx = _mm256_set_m128(_mm_set1_ps(kx.1), _mm_set1_ps(kx.0));
        let (l2, eta) = (_mm256_set1_ps(sgd.l2), _mm256_set1_ps(sgd.eta));
        let ga = _mm256_fmadd_ps(l2, wa, _mm256_mul_ps(kx, wb));
        let gb = _mm256_fmadd_ps(l2, wb, _mm256_mul_ps(kx, wa));
        let sa = _mm256_fmadd_ps(ga, ga, sa);
        let sb = _mm256_fmadd_ps(gb, gb, sb);
        let na = _mm256_fnmadd_ps(_mm256_mul_ps(eta, ga), rsqrt8(sa), wa);
        let nb = _mm256_fnmadd_ps(_mm256_mul_ps(eta, gb), rsqrt8(sb), wb);
        let halves = |v: __m256| -> [[f32; 4]; 2] { bytemuck::cast(v) };
        let ([sa0, sa1], [sb0, sb1]) = (halves(sa), halves(sb));
        let ([na0, na1], [nb0, nb1]) = (halves(na), halves(nb));
        st.store_halves(a0, na0, sa0);
        st.store_halves(b0, nb0, sb0);
        st.store_halves(a1, na1, sa1);
        st.store_halves(b1, nb1, sb1);
    }
}

/// One `AdaGrad` step on a resolved row (see [`super::train_k`]) with AVX2 pair updates.
///
/// # Safety
/// As for [`super::train_k`] (`d.k` is a multiple of 4); the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn train<S: Write + ?Sized, const K: usize>(
    st: &S,
    bias: &mut [f32; 2],
    d: Dims,
    (r, sgd, feats, y, weight, ahead): StepArgs<'_>,
) -> f64 {
    let k = if K == 0 { d.k } else { K };
    // SAFETY: passed on from our caller.
    let t = unsafe {
        if k == 4 {
            score4_train(st, r, feats, Ahead::NONE)
        } else {
            score::<S, K>(st, k, r, feats, Ahead::NONE)
        }
    };
    let p = sigmoid(bias[0] + t);
    let loss = logloss(p, y, weight);
    if weight == 0.0 {
        return loss;
    }
    let kappa = (p - y) * weight;
    bias_step(bias, kappa, sgd);
    let n = feats.len();
    // With k = 4 the drip stays empty: `ahead` is stepped per feature instead.
    let pairs = n * n.saturating_sub(1) / 2;
    let mut drip = Drip::new(if k == 4 { Ahead::NONE } else { ahead }, pairs);
    for (i, a) in feats.iter().enumerate() {
        linear_step(st, a, kappa, sgd);
        let kr = kappa * a.x * r;
        let partners = &feats[i + 1..];
        if k == 4 {
            // An upcoming feature is 9 or 10 lines at k = 4: one feature's at a time, here,
            // costs less than dripping them between pairs (measured).
            ahead.step(st, i, n);
            // SAFETY: as below, with k = 4.
            unsafe { update4(st, a, partners, kr, sgd) };
            continue;
        }
        for b in partners {
            drip.lines(st);
            let kx = kr * b.x;
            let (pa, pb) = (a.base + b.foff, b.base + a.foff);
            // SAFETY: chunks of resolved features' blocks in the training layout (see
            // `super::pair_update`); the same block takes its two steps in turn.
            unsafe {
                if pa == pb {
                    for c in (0..k).step_by(4) {
                        pair_update::<S, 4, true>(st, k, pa + c, pb + c, kx, sgd);
                    }
                    continue;
                }
                let mut c = 0;
                while c + 8 <= k {
                    pair8(st, k, (pa + c, pb + c), kx, sgd);
                    c += 8;
                }
                if c < k {
                    pair4(st, k, (pa + c, pb + c), kx, sgd);
                }
            }
        }
    }
    drip.rest(st);
    loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use crate::simd::Kernel;
    use crate::slots::as_cells;

    /// Every specialised scoring loop of `score4` and `score_rows` (fields in equal steps of
    /// k or more floats, or not; one value for every feature, or not; every remainder of
    /// partners) against the scalar reference, in the payload layout (slot k) and the
    /// training layout (slot 2k).
    #[test]
    fn every_scoring_loop_scores_like_the_scalar_reference() {
        use crate::dataset::Row;
        if !Kernel::Avx2.available() {
            return;
        }
        let mut rng = SplitMix64::new(11);
        let (bits, fields) = (6u32, 24usize);
        for (k, slot) in [
            (4usize, 4usize),
            (4, 8),
            (8, 8),
            (8, 16),
            (16, 16),
            (16, 32),
        ] {
            let d = super::super::Dims {
                mask: (1 << bits) - 1,
                fields,
                k,
                bias: 0,
                lin0: 1,
                lin_stride: slot / k,
                v0: 1 + (slot / k) * (1 << bits),
                slot,
            };
            let w: Vec<f32> = (0..d.end()).map(|_| rng.next_f32() - 0.5).collect();
            for n in 0..=20usize {
                for (step, same_x, shuffled) in [
                    (1, true, false),
                    (1, false, false),
                    (2, true, false),
                    (1, true, true),
                    (1, false, true),
                    (0, true, false),
                ] {
                    // `step` 0: every feature in field 3 (equal offsets: no even step).
                    let mut f: Vec<u32> = (0..n)
                        .map(|i| (i * step + 3 * usize::from(step == 0)) as u32)
                        .collect();
                    f.retain(|&x| (x as usize) < fields);
                    if shuffled {
                        f.reverse();
                    }
                    let j: Vec<u32> = f.iter().map(|_| rng.below(1 << bits) as u32).collect();
                    let x: Vec<f32> = f
                        .iter()
                        .map(|_| if same_x { 0.7 } else { rng.next_f32() + 0.1 })
                        .collect();
                    let row = Row {
                        fields: &f,
                        indices: &j,
                        values: &x,
                    };
                    let mut feats = Vec::new();
                    let r = super::super::resolve(d, true, row, &mut feats);
                    let shape = RowShape::of_row(d, row, feats.len());
                    assert_eq!(shape, RowShape::of(&feats));
                    let want = super::super::scalar::score(&w[..], k, r, &feats);
                    // SAFETY: AVX2 and FMA checked above; `feats` resolved with `d`, and
                    // `w` holds every block of `d`.
                    let got = unsafe {
                        match k {
                            4 => score4(&w[..], r, &feats, shape, Ahead::NONE),
                            8 => score_rows::<_, 8>(&w[..], r, &feats, shape, Ahead::NONE),
                            _ => score_rows::<_, 16>(&w[..], r, &feats, shape, Ahead::NONE),
                        }
                    };
                    assert!(
                        (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                        "k {k} slot {slot} n {n} step {step} same_x {same_x} shuffled {shuffled}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn two_pairs_per_register_give_the_bits_of_one_pair_at_a_time() {
        if !Kernel::Avx2.available() {
            return;
        }
        let mut rng = SplitMix64::new(9);
        let base: Vec<f32> = (0..64).map(|_| rng.next_f32() + 0.5).collect();
        let sgd = Sgd {
            eta: 0.2,
            l2: 1e-3,
            linear: true,
        };
        let slots = [0usize, 16, 40, 24];
        let (mut x2, mut one) = (base.clone(), base.clone());
        // SAFETY: AVX2 and FMA checked above; all slots + 8 <= 64 and distinct.
        unsafe {
            pair4x2(as_cells(&mut x2), slots, (0.3, -0.7), sgd);
            let cells = as_cells(&mut one);
            pair4(cells, 4, (slots[0], slots[1]), 0.3, sgd);
            pair4(cells, 4, (slots[2], slots[3]), -0.7, sgd);
        }
        assert_eq!(
            x2.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            one.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert_ne!(x2, base);
    }
}
