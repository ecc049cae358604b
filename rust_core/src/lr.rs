//! Logistic regression trained with FTRL-Proximal (`McMahan` et al., "Ad Click Prediction: a
//! View from the Trenches", KDD 2013), per-coordinate learning rates.
//!
//! Weights are laid out like the model file's payload: `bias, w[2^bits]`. A row's score is
//! `t = bias + sum_i w[j_i] x_i` over features whose field is below the model's field count,
//! with indices reduced modulo `2^bits`. The training state is FTRL's `z` and `n` per
//! coordinate (same layout); weights are derived from them. The bias is not regularised.

use crate::dataset::Row;
use crate::math::{logloss, sigmoid};
use crate::slots::{Read, Write};

/// FTRL-Proximal hyper-parameters.
#[derive(Clone, Copy, Debug)]
pub struct Ftrl {
    pub alpha: f32,
    pub beta: f32,
    pub l1: f32,
    pub l2: f32,
}

/// The dimensions of an LR model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub bits: u32,
    pub fields: u32,
}

impl Shape {
    /// Number of f32 weights, or `None` if it does not fit in memory addresses.
    #[must_use]
    pub fn payload_len(&self) -> Option<usize> {
        1usize.checked_shl(self.bits)?.checked_add(1)
    }
}

/// The raw score `t` (before the sigmoid) of a row.
#[inline]
pub fn score<S: Read + ?Sized>(w: &S, shape: &Shape, row: Row<'_>) -> f32 {
    let mask = (1usize << shape.bits) - 1;
    let mut t = w.at(0);
    for ((&f, &j), &x) in row.fields.iter().zip(row.indices).zip(row.values) {
        if f < shape.fields {
            t += w.at(1 + (j as usize & mask)) * x;
        }
    }
    t
}

impl Ftrl {
    /// The weight of coordinate `i` (0 is the bias, which has no L1 or L2).
    #[inline]
    #[must_use]
    pub fn weight(&self, i: usize, z: f32, n: f32) -> f32 {
        let (l1, l2) = if i == 0 {
            (0.0, 0.0)
        } else {
            (self.l1, self.l2)
        };
        if z.abs() <= l1 {
            0.0
        } else {
            -(z - z.signum() * l1) / ((self.beta + n.sqrt()) / self.alpha + l2)
        }
    }

    /// The `z` that gives coordinate `i` the weight `w` while its `n` is 0 (a warm start:
    /// the inverse of [`Ftrl::weight`] there, up to rounding). Needs `beta > 0` or, for
    /// `i > 0`, `l2 > 0`.
    #[must_use]
    pub fn state_for(&self, i: usize, w: f32) -> f32 {
        let (l1, l2) = if i == 0 {
            (0.0, 0.0)
        } else {
            (self.l1, self.l2)
        };
        if w == 0.0 {
            0.0
        } else {
            -w * (self.beta / self.alpha + l2) - w.signum() * l1
        }
    }

    /// Weights of every coordinate from the FTRL state.
    #[must_use]
    pub fn materialize(&self, z: &[f32], n: &[f32]) -> Vec<f32> {
        z.iter()
            .zip(n)
            .enumerate()
            .map(|(i, (&z, &n))| self.weight(i, z, n))
            .collect()
    }

    #[inline]
    fn update<S: Write + ?Sized>(&self, z: &S, n: &S, i: usize, g: f32) {
        let (zi, ni) = (z.at(i), n.at(i));
        let w = self.weight(i, zi, ni);
        let nn = ni + g * g;
        let sigma = (nn.sqrt() - ni.sqrt()) / self.alpha;
        z.put(i, zi + g - sigma * w);
        n.put(i, nn);
    }

    /// One FTRL step on a row; returns its weighted log loss before the update.
    #[inline]
    pub fn train_row<S: Write + ?Sized>(
        &self,
        z: &S,
        n: &S,
        shape: &Shape,
        row: Row<'_>,
        y: f32,
        weight: f32,
    ) -> f64 {
        let mask = (1usize << shape.bits) - 1;
        let mut t = self.weight(0, z.at(0), n.at(0));
        for ((&f, &j), &x) in row.fields.iter().zip(row.indices).zip(row.values) {
            if f < shape.fields {
                let i = 1 + (j as usize & mask);
                t += self.weight(i, z.at(i), n.at(i)) * x;
            }
        }
        let p = sigmoid(t);
        let loss = logloss(p, y, weight);
        if weight == 0.0 {
            return loss;
        }
        let kappa = (p - y) * weight;
        self.update(z, n, 0, kappa);
        for ((&f, &j), &x) in row.fields.iter().zip(row.indices).zip(row.values) {
            if f < shape.fields {
                self.update(z, n, 1 + (j as usize & mask), kappa * x);
            }
        }
        loss
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use crate::slots::as_cells;

    #[test]
    fn training_step_follows_the_gradient() {
        // FTRL adds the gradient to z and its square to n: g = dz + sigma * w recovers the
        // gradient the real training code used, checked against finite differences of the
        // log loss in the weights.
        let ftrl = Ftrl {
            alpha: 0.1,
            beta: 1.0,
            l1: 0.01,
            l2: 0.5,
        };
        let shape = Shape { bits: 5, fields: 3 };
        let mut rng = SplitMix64::new(3);
        let z0: Vec<f32> = (0..33).map(|_| rng.next_f32() * 2.0 - 1.0).collect();
        let n0: Vec<f32> = (0..33).map(|_| rng.next_f32() * 4.0).collect();
        let row = Row {
            fields: &[0, 1, 2, 7],
            indices: &[1, 4, 30, 5],
            values: &[1.0, -0.5, 2.0, 3.0],
        };
        for (y, weight) in [(1.0f32, 1.0f32), (0.0, 3.0)] {
            let (mut z, mut n) = (z0.clone(), n0.clone());
            ftrl.train_row(as_cells(&mut z), as_cells(&mut n), &shape, row, y, weight);
            let w = ftrl.materialize(&z0, &n0);
            let loss = |w: &[f32]| logloss(sigmoid(score(w, &shape, row)), y, weight);
            for i in [0usize, 2, 5, 31] {
                let sigma = ((n[i]).sqrt() - n0[i].sqrt()) / ftrl.alpha;
                let g = f64::from(z[i] - z0[i] + sigma * w[i]);
                let h = 1e-2f32;
                let (mut wp, mut wm) = (w.clone(), w.clone());
                wp[i] += h;
                wm[i] -= h;
                let fd = (loss(&wp) - loss(&wm)) / (2.0 * f64::from(h));
                assert!(
                    (g - fd).abs() < 1e-3 + 1e-2 * fd.abs(),
                    "coordinate {i}: {g} vs {fd}"
                );
                assert!(fd.abs() > 1e-3, "coordinate {i} should have a gradient");
            }
            // Field 7 is beyond the model's 3 fields: its coordinate is untouched.
            assert_eq!(z[6].to_bits(), z0[6].to_bits());
        }
    }

    #[test]
    fn l1_zeroes_small_weights() {
        let ftrl = Ftrl {
            alpha: 0.1,
            beta: 1.0,
            l1: 1.0,
            l2: 0.0,
        };
        assert!(ftrl.weight(3, 0.5, 1.0).abs() < f32::EPSILON);
        assert!(ftrl.weight(3, 2.0, 1.0) < 0.0);
        assert!(ftrl.weight(0, 0.5, 1.0) < 0.0, "the bias has no L1");
    }
}
