//! AVX-512F kernels: latent vectors in chunks of 16 lanes, then the AVX2 kernels' 8 and 4
//! for the rest. Training's `1/sqrt` is the 14-bit `rsqrt14` plus one Newton step, so its
//! rounding differs from the AVX2 path's (each path is deterministic on its own).
//!
//! The functions are `#[target_feature(enable = "avx512f,avx2,fma")]`: calling them is
//! sound only on a CPU that has all three, which the dispatcher checks.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::{
    __m256, __m512, _mm256_add_ps, _mm256_setzero_ps, _mm512_add_ps, _mm512_fmadd_ps,
    _mm512_fnmadd_ps, _mm512_mul_ps, _mm512_rsqrt14_ps, _mm512_set1_ps, _mm512_setzero_ps,
    _mm_setzero_ps,
};

use super::avx2::{self, hsum4, hsum8};
use super::{bias_step, linear_step, pair_update, Ahead, Dims, Drip, Feat, Sgd, StepArgs};
use crate::math::{logloss, sigmoid};
use crate::slots::{Read, Write};

/// 16 weights from `i`.
///
/// # Safety
/// `i + 16 <= s.slots()`.
#[inline(always)]
unsafe fn load16<S: Read + ?Sized>(s: &S, i: usize) -> __m512 {
    // SAFETY: the range is in bounds (our contract); `[f32; 16]` and `__m512` are both 64
    // bytes of plain f32 lanes, every bit pattern valid for both.
    unsafe { std::mem::transmute::<[f32; 16], __m512>(s.load_unchecked::<16>(i)) }
}

#[inline(always)]
fn lanes(v: __m512) -> [f32; 16] {
    // SAFETY: as in `load16`, the other way round.
    unsafe { std::mem::transmute::<__m512, [f32; 16]>(v) }
}

/// Sum of 16 lanes, always in the same order.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
fn hsum16(v: __m512) -> f32 {
    // SAFETY: `__m512` and `[__m256; 2]` are both 64 bytes of f32 lanes.
    let [lo, hi] = unsafe { std::mem::transmute::<__m512, [__m256; 2]>(v) };
    hsum8(_mm256_add_ps(lo, hi))
}

/// The pairwise and linear terms of a resolved row, as [`avx2::score`] with a 16-lane
/// accumulator per partner parity in front of the 8- and 4-lane ones.
///
/// # Safety
/// As for [`super::score_feats`] (`k` is a multiple of 4); the CPU has AVX-512F, AVX2, FMA.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn score<S: Read + ?Sized, const K: usize>(
    s: &S,
    k: usize,
    r: f32,
    feats: &[Feat],
    ahead: Ahead<'_>,
) -> f32 {
    // A literal latent size (K > 0) lets the compiler unroll the chunk loops.
    let k = if K == 0 { k } else { K };
    let k16 = k / 16 * 16;
    let mut t = 0.0f32;
    let mut tot16 = _mm512_setzero_ps();
    let mut rest = 0.0f32;
    for (i, a) in feats.iter().enumerate() {
        ahead.step(s, i, feats.len());
        t += s.at(a.lin) * a.x;
        let mut acc = [_mm512_setzero_ps(); 2];
        let (mut p, mut q) = ([_mm256_setzero_ps(); 2], [_mm_setzero_ps(); 2]);
        for (n, b) in feats[i + 1..].iter().enumerate() {
            let (pa, pb) = (a.base + b.foff, b.base + a.foff);
            let x = _mm512_set1_ps(b.x);
            let mut c = 0;
            while c < k16 {
                // SAFETY: blocks of resolved features (see `super::dot_into`), `c + 16 <= k`.
                let (va, vb) = unsafe { (load16(s, pa + c), load16(s, pb + c)) };
                acc[n & 1] = _mm512_fmadd_ps(_mm512_mul_ps(va, vb), x, acc[n & 1]);
                c += 16;
            }
            if c < k {
                // SAFETY: as above, for the lanes from `c` on; the rest is a multiple of 4.
                unsafe {
                    avx2_tail(
                        s,
                        k - c,
                        (pa + c, pb + c),
                        b.x,
                        &mut p[n & 1],
                        &mut q[n & 1],
                    );
                };
            }
        }
        let xr = a.x * r;
        tot16 = _mm512_fmadd_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_set1_ps(xr), tot16);
        rest += (hsum8(_mm256_add_ps(p[0], p[1]))
            + hsum4(std::arch::x86_64::_mm_add_ps(q[0], q[1])))
            * xr;
    }
    t + (hsum16(tot16) + rest)
}

/// The AVX2 dot product of `k` lanes (a multiple of 4) into 8- and 4-lane accumulators.
///
/// # Safety
/// `pa + k`, `pb + k` at most `s.slots()`.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn avx2_tail<S: Read + ?Sized>(
    s: &S,
    k: usize,
    (pa, pb): (usize, usize),
    x: f32,
    acc8: &mut __m256,
    acc4: &mut std::arch::x86_64::__m128,
) {
    use std::arch::x86_64::{
        _mm256_fmadd_ps, _mm256_mul_ps, _mm256_set1_ps, _mm_fmadd_ps, _mm_mul_ps, _mm_set1_ps,
    };
    let mut c = 0;
    while c + 8 <= k {
        // SAFETY: `c + 8 <= k` (our contract).
        let (va, vb) = unsafe { (avx2::load8(s, pa + c), avx2::load8(s, pb + c)) };
        *acc8 = _mm256_fmadd_ps(_mm256_mul_ps(va, vb), _mm256_set1_ps(x), *acc8);
        c += 8;
    }
    if c < k {
        // SAFETY: `k` is a multiple of 4, so `c + 4 <= k`.
        let (va, vb) = unsafe { (avx2::load4(s, pa + c), avx2::load4(s, pb + c)) };
        *acc4 = _mm_fmadd_ps(_mm_mul_ps(va, vb), _mm_set1_ps(x), *acc4);
    }
}

/// `y (1.5 - (x/2 y) y)` with `y` the 14-bit `rsqrt14` of `x`.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
fn rsqrt16(x: __m512) -> __m512 {
    let y = _mm512_rsqrt14_ps(x);
    let h = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5), x), y);
    _mm512_mul_ps(y, _mm512_fnmadd_ps(h, y, _mm512_set1_ps(1.5)))
}

/// One pair chunk of 16 lanes (see [`avx2::pair8`]).
///
/// # Safety
/// `a + k + 16` and `b + k + 16` are at most `st.slots()`; `a != b`.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn pair16<S: Write + ?Sized>(st: &S, k: usize, (a, b): (usize, usize), kx: f32, sgd: Sgd) {
    // SAFETY: every chunk ends by `a + k + 16` or `b + k + 16` (our contract).
    unsafe {
        let (wa, wb) = (load16(st, a), load16(st, b));
        let (sa, sb) = (load16(st, a + k), load16(st, b + k));
        let (l2, kx, eta) = (
            _mm512_set1_ps(sgd.l2),
            _mm512_set1_ps(kx),
            _mm512_set1_ps(sgd.eta),
        );
        let ga = _mm512_fmadd_ps(l2, wa, _mm512_mul_ps(kx, wb));
        let gb = _mm512_fmadd_ps(l2, wb, _mm512_mul_ps(kx, wa));
        let sa = _mm512_fmadd_ps(ga, ga, sa);
        let sb = _mm512_fmadd_ps(gb, gb, sb);
        let na = _mm512_fnmadd_ps(_mm512_mul_ps(eta, ga), rsqrt16(sa), wa);
        let nb = _mm512_fnmadd_ps(_mm512_mul_ps(eta, gb), rsqrt16(sb), wb);
        st.store_unchecked(a + k, lanes(sa));
        st.store_unchecked(b + k, lanes(sb));
        st.store_unchecked(a, lanes(na));
        st.store_unchecked(b, lanes(nb));
    }
}

/// One `AdaGrad` step on a resolved row with 16-lane pair updates (then 8, 4).
///
/// # Safety
/// As for [`super::train_k`] (`d.k` is a multiple of 4); the CPU has AVX-512F, AVX2, FMA.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn train<S: Write + ?Sized, const K: usize>(
    st: &S,
    bias: &mut [f32; 2],
    d: Dims,
    (r, sgd, feats, y, weight, ahead): StepArgs<'_>,
) -> f64 {
    let k = if K == 0 { d.k } else { K };
    // SAFETY: passed on from our caller.
    let p = sigmoid(bias[0] + unsafe { score::<S, K>(st, k, r, feats, Ahead::NONE) });
    let loss = logloss(p, y, weight);
    if weight == 0.0 {
        return loss;
    }
    let kappa = (p - y) * weight;
    bias_step(bias, kappa, sgd);
    let n = feats.len();
    let mut drip = Drip::new(ahead, n * n.saturating_sub(1) / 2);
    for (i, a) in feats.iter().enumerate() {
        linear_step(st, a, kappa, sgd);
        let kr = kappa * a.x * r;
        for b in &feats[i + 1..] {
            drip.lines(st);
            let kx = kr * b.x;
            let (pa, pb) = (a.base + b.foff, b.base + a.foff);
            // SAFETY: as in `avx2::train`.
            unsafe {
                if pa == pb {
                    for c in (0..k).step_by(4) {
                        pair_update::<S, 4, true>(st, k, pa + c, pb + c, kx, sgd);
                    }
                    continue;
                }
                let mut c = 0;
                while c + 16 <= k {
                    pair16(st, k, (pa + c, pb + c), kx, sgd);
                    c += 16;
                }
                while c + 8 <= k {
                    avx2::pair8(st, k, (pa + c, pb + c), kx, sgd);
                    c += 8;
                }
                if c < k {
                    avx2::pair4(st, k, (pa + c, pb + c), kx, sgd);
                }
            }
        }
    }
    drip.rest(st);
    loss
}
