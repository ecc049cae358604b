//! The scalar reference kernel: one lane at a time, pair sums in f64. Every other kernel
//! is tested against it (to 1e-6 relative in probability); it is not meant to be fast.

use super::Feat;
use crate::slots::Read;

/// The pairwise and linear terms of a resolved row (see [`super::score_feats`]); `k` lanes
/// per latent vector, padding included (zero lanes add exact zeros).
pub(super) fn score<S: Read + ?Sized>(s: &S, k: usize, r: f32, feats: &[Feat]) -> f32 {
    let mut linear = 0.0f64;
    let mut pairs = 0.0f64;
    for (i, a) in feats.iter().enumerate() {
        linear += f64::from(s.at(a.lin)) * f64::from(a.x);
        for b in &feats[i + 1..] {
            let (pa, pb) = (a.base + b.foff, b.base + a.foff);
            let dot: f64 = (0..k)
                .map(|q| f64::from(s.at(pa + q)) * f64::from(s.at(pb + q)))
                .sum();
            pairs += dot * f64::from(a.x) * f64::from(b.x);
        }
    }
    (linear + pairs * f64::from(r)) as f32
}
