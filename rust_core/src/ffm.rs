//! Field-aware factorization machine: `LIBFFM`'s model plus a global bias and per-feature
//! linear terms.
//!
//! A model's weights are laid out like the model file's payload:
//! `bias, w[2^bits], v[2^bits][fields][k]`. For a row of kept features `(f_i, j_i, x_i)`
//! (field below the model's field count, index reduced modulo `2^bits`):
//!
//! `t = bias + sum_i w[j_i] x_i + r * sum_{i<l} <v[j_i][f_l], v[j_l][f_i]> x_i x_l`
//!
//! with `r = 1 / sum_i x_i^2` under instance normalisation (`LIBFFM`'s default) and 1 without.
//! `LIBFFM` normalises the pairwise terms only; the linear terms see the raw values.
//!
//! Training is `LIBFFM`'s: per-coordinate `AdaGrad` with the squared-gradient sums started at
//! 1, L2 on every touched weight except the bias, pairs updated in place one after the other.
//! During training each weight sits next to its squared-gradient sum ([`TrainState`]: a
//! latent block is `w[k], g[k]`, 32 bytes at k = 4, cache-line aligned), so a pair touches
//! two cache lines instead of four; scoring reads both layouts through the same kernel.

// The kernels are generic over the weight storage and specialised by literal latent sizes;
// forcing them inline is what lets the literals reach the inner loops.
#![expect(clippy::inline_always, reason = "see above")]

use crate::dataset::Row;
use crate::rng::SplitMix64;
use crate::train::slots::{Read, Write};

/// The dimensions of an FFM model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub bits: u32,
    pub fields: u32,
    pub k: u32,
    pub normalize: bool,
}

impl Shape {
    /// Number of f32 weights, or `None` if it does not fit in memory addresses.
    #[must_use]
    pub fn payload_len(&self) -> Option<usize> {
        let n = 1usize.checked_shl(self.bits)?;
        let v = n
            .checked_mul(self.fields as usize)?
            .checked_mul(self.k as usize)?;
        v.checked_add(n)?.checked_add(1)
    }

    /// Where things are in the payload layout.
    fn dims(&self) -> Dims {
        let n = 1usize << self.bits;
        Dims {
            mask: n - 1,
            fields: self.fields as usize,
            k: self.k as usize,
            bias: 0,
            lin0: 1,
            lin_stride: 1,
            v0: 1 + n,
            slot: self.k as usize,
        }
    }
}

/// Offsets of bias, linear terms and latent blocks in a flat array: the payload layout
/// (`lin_stride` 1, `slot` k) or the training layout (`lin_stride` 2, `slot` 2k, each
/// weight followed by its squared-gradient sum at +1 or +k).
#[derive(Clone, Copy, Debug)]
struct Dims {
    mask: usize,
    fields: usize,
    k: usize,
    bias: usize,
    lin0: usize,
    lin_stride: usize,
    v0: usize,
    slot: usize,
}

impl Dims {
    #[inline(always)]
    fn lin(&self, j: usize) -> usize {
        self.lin0 + j * self.lin_stride
    }

    /// Start of the latent block `v[j][f]`.
    #[inline(always)]
    fn block(&self, j: usize, f: usize) -> usize {
        self.v0 + (j * self.fields + f) * self.slot
    }
}

/// `AdaGrad` hyper-parameters.
#[derive(Clone, Copy, Debug)]
pub struct Sgd {
    pub eta: f32,
    pub l2: f32,
}

#[inline]
#[must_use]
pub fn sigmoid(t: f32) -> f32 {
    1.0 / (1.0 + (-t).exp())
}

/// Weighted log loss of one prediction, in f64 for accumulation.
#[inline]
#[must_use]
pub fn logloss(p: f32, y: f32, weight: f32) -> f64 {
    let p = f64::from(p).clamp(1e-15, 1.0 - 1e-15);
    let y = f64::from(y);
    -f64::from(weight) * (y * p.ln() + (1.0 - y) * (1.0 - p).ln())
}

fn norm(row: Row<'_>, fields: usize, normalize: bool) -> f32 {
    if !normalize {
        return 1.0;
    }
    let mut s = 0.0f32;
    for (&f, &x) in row.fields.iter().zip(row.values) {
        if (f as usize) < fields {
            s += x * x;
        }
    }
    if s > 0.0 {
        1.0 / s
    } else {
        1.0
    }
}

/// The raw score `t` (before the sigmoid) of a row, from payload-layout weights.
#[inline]
pub fn score<S: Read + ?Sized>(s: &S, shape: &Shape, row: Row<'_>) -> f32 {
    let d = shape.dims();
    s.at(d.bias) + score_dims(s, d, shape.normalize, row)
}

/// Latent vectors are processed in chunks of C lanes held in registers; a literal C and k
/// let the compiler unroll and vectorise. A model always takes the same arm, whatever the
/// layout, so batch, single-row and training scores agree bit for bit.
#[inline(always)]
fn score_dims<S: Read + ?Sized>(s: &S, d: Dims, normalize: bool, row: Row<'_>) -> f32 {
    match d.k {
        4 => score_k::<S, 4>(s, Dims { k: 4, ..d }, normalize, row),
        8 => score_k::<S, 4>(s, Dims { k: 8, ..d }, normalize, row),
        k if k % 4 == 0 => score_k::<S, 4>(s, d, normalize, row),
        _ => score_k::<S, 1>(s, d, normalize, row),
    }
}

#[inline(always)]
fn score_k<S: Read + ?Sized, const C: usize>(s: &S, d: Dims, normalize: bool, row: Row<'_>) -> f32 {
    let n = row
        .fields
        .len()
        .min(row.indices.len())
        .min(row.values.len());
    let (fs, js, xs) = (&row.fields[..n], &row.indices[..n], &row.values[..n]);
    let r = norm(row, d.fields, normalize);
    let mut t = 0.0f32;
    let mut acc = [0.0f32; C];
    for i in 0..n {
        let fi = fs[i] as usize;
        if fi >= d.fields {
            continue;
        }
        let ji = js[i] as usize & d.mask;
        let xi = xs[i];
        t += s.at(d.lin(ji)) * xi;
        for l in i + 1..n {
            let fl = fs[l] as usize;
            if fl >= d.fields {
                continue;
            }
            let jl = js[l] as usize & d.mask;
            let xx = xi * xs[l] * r;
            let (a, b) = (d.block(ji, fl), d.block(jl, fi));
            for c in (0..d.k).step_by(C) {
                let (va, vb) = (s.load::<C>(a + c), s.load::<C>(b + c));
                for q in 0..C {
                    acc[q] += va[q] * vb[q] * xx;
                }
            }
        }
    }
    let mut pair = 0.0f32;
    for a in acc {
        pair += a;
    }
    t + pair
}

/// The training layout: weights interleaved with their squared-gradient sums.
#[derive(Clone, Copy, Debug)]
pub struct TrainState {
    shape: Shape,
    dims: Dims,
}

impl TrainState {
    /// The layout and a zeroed state array for it (weights 0, squared-gradient sums 1),
    /// padded so that latent blocks start on a 64-byte boundary. `None` if too large.
    #[must_use]
    pub fn new(shape: &Shape) -> Option<(TrainState, Vec<f32>)> {
        let n = 1usize.checked_shl(shape.bits)?;
        let slot = 2 * shape.k as usize;
        let v = n.checked_mul(shape.fields as usize)?.checked_mul(slot)?;
        let len = v.checked_add(2 * n)?.checked_add(2 + 16)?;
        let mut st = vec![1.0f32; len];
        // Pad the front so that v0 (= pad + 2 + 2n) is 64-byte aligned.
        let v0_addr = st.as_ptr() as usize + (2 + 2 * n) * 4;
        let pad = ((64 - v0_addr % 64) % 64) / 4;
        let dims = Dims {
            mask: n - 1,
            fields: shape.fields as usize,
            k: shape.k as usize,
            bias: pad,
            lin0: pad + 2,
            lin_stride: 2,
            v0: pad + 2 + 2 * n,
            slot,
        };
        let layout = TrainState {
            shape: *shape,
            dims,
        };
        layout.fill(&mut st, |_| 0.0);
        Some((layout, st))
    }

    /// Sets every weight (in payload order) to `f(payload index)`.
    fn fill(&self, st: &mut [f32], mut f: impl FnMut(usize) -> f32) {
        let d = self.dims;
        let n = d.mask + 1;
        st[d.bias] = f(0);
        for j in 0..n {
            st[d.lin(j)] = f(1 + j);
        }
        let mut i = 1 + n;
        for j in 0..n {
            for fl in 0..d.fields {
                let b = d.block(j, fl);
                for q in 0..d.k {
                    st[b + q] = f(i);
                    i += 1;
                }
            }
        }
    }

    /// LIBFFM's initialisation plus ours: bias at the logit of the base rate, linear terms 0,
    /// latent weights uniform in `[0, 1/sqrt(k))` drawn in payload order.
    pub fn init(&self, st: &mut [f32], base_rate: f64, rng: &mut SplitMix64) {
        let rate = base_rate.clamp(1e-6, 1.0 - 1e-6);
        let bias = (rate / (1.0 - rate)).ln() as f32;
        let scale = 1.0 / (self.shape.k as f32).sqrt();
        let v0 = 1 + self.dims.mask + 1;
        self.fill(st, |i| match i {
            0 => bias,
            i if i < v0 => 0.0,
            _ => scale * rng.next_f32(),
        });
    }

    /// Sets the weights from a payload-layout array (tests).
    pub fn set_weights(&self, st: &mut [f32], w: &[f32]) {
        self.fill(st, |i| w[i]);
    }

    /// Sets every squared-gradient sum (tests).
    pub fn set_grad_sums(&self, st: &mut [f32], value: f32) {
        let d = self.dims;
        st[d.bias + 1] = value;
        for j in 0..=d.mask {
            st[d.lin(j) + 1] = value;
            for fl in 0..d.fields {
                let b = d.block(j, fl) + d.k;
                st[b..b + d.k].fill(value);
            }
        }
    }

    /// The weights in payload layout.
    #[must_use]
    pub fn weights(&self, st: &[f32]) -> Vec<f32> {
        let d = self.dims;
        let n = d.mask + 1;
        let mut w = Vec::with_capacity(1 + n + n * d.fields * d.k);
        w.push(st[d.bias]);
        w.extend((0..n).map(|j| st[d.lin(j)]));
        for j in 0..n {
            for fl in 0..d.fields {
                let b = d.block(j, fl);
                w.extend_from_slice(&st[b..b + d.k]);
            }
        }
        w
    }

    /// One `AdaGrad` step on a row: forward, then in-place updates of the bias, the linear
    /// terms and every pair's two latent vectors. Returns the row's weighted log loss before
    /// the update.
    ///
    /// The bias and its squared-gradient sum live in `bias`, the caller's copy: every row
    /// updates them, so Hogwild threads sharing them would fight over one cache line on every
    /// row. Each thread works on its own copy and the driver adds the deltas back
    /// ([`TrainState::bias`], [`TrainState::add_bias`]).
    #[inline]
    pub fn train_row<S: Write + ?Sized>(
        &self,
        st: &S,
        bias: &mut [f32; 2],
        sgd: Sgd,
        row: Row<'_>,
        y: f32,
        weight: f32,
    ) -> f64 {
        let (d, nz) = (self.dims, self.shape.normalize);
        match d.k {
            4 => train_k::<S, 4>(st, bias, Dims { k: 4, ..d }, nz, sgd, row, y, weight),
            8 => train_k::<S, 4>(st, bias, Dims { k: 8, ..d }, nz, sgd, row, y, weight),
            k if k % 4 == 0 => train_k::<S, 4>(st, bias, d, nz, sgd, row, y, weight),
            _ => train_k::<S, 1>(st, bias, d, nz, sgd, row, y, weight),
        }
    }

    /// The bias and its squared-gradient sum.
    pub fn bias<S: Read + ?Sized>(&self, st: &S) -> [f32; 2] {
        [st.at(self.dims.bias), st.at(self.dims.bias + 1)]
    }

    /// Stores the bias and its squared-gradient sum.
    pub fn set_bias<S: Write + ?Sized>(&self, st: &S, bias: [f32; 2]) {
        st.put(self.dims.bias, bias[0]);
        st.put(self.dims.bias + 1, bias[1]);
    }

    /// Adds `now - before` (one Hogwild thread's change) to the bias and its sum.
    pub fn add_bias<S: Write + ?Sized>(&self, st: &S, before: [f32; 2], now: [f32; 2]) {
        st.add(self.dims.bias, now[0] - before[0]);
        st.add(self.dims.bias + 1, now[1] - before[1]);
    }
}

/// `AdaGrad` on the weight at `i` whose squared-gradient sum is at `i + 1`.
#[inline(always)]
fn adagrad<S: Write + ?Sized>(st: &S, i: usize, grad: f32, eta: f32) {
    let gg = st.at(i + 1) + grad * grad;
    st.put(i + 1, gg);
    st.put(i, st.at(i) - eta * grad / gg.sqrt());
}

/// The two latent chunks of a pair (weights at `a`, `b`, sums at `+k`), updated together in
/// registers. Blocks are either disjoint or the same block (a feature paired with itself in
/// the same field); the same block takes the one-weight-at-a-time path so no update is lost.
#[inline(always)]
fn pair_update<S: Write + ?Sized, const C: usize>(
    st: &S,
    k: usize,
    a: usize,
    b: usize,
    kx: f32,
    sgd: Sgd,
) {
    let Sgd { eta, l2 } = sgd;
    if a == b {
        for q in 0..C {
            let (wa, wb) = (st.at(a + q), st.at(b + q));
            for (i, grad) in [(a + q, l2 * wa + kx * wb), (b + q, l2 * wb + kx * wa)] {
                let gg = st.at(i + k) + grad * grad;
                st.put(i + k, gg);
                st.put(i, st.at(i) - eta * grad / gg.sqrt());
            }
        }
        return;
    }
    let (wa, wb) = (st.load::<C>(a), st.load::<C>(b));
    let (mut sa, mut sb) = (st.load::<C>(a + k), st.load::<C>(b + k));
    let (na, nb) = if S::SCALAR_LOADS {
        pair_step_outlined(wa, wb, &mut sa, &mut sb, kx, sgd)
    } else {
        pair_step(wa, wb, &mut sa, &mut sb, kx, sgd)
    };
    st.store(a + k, sa);
    st.store(b + k, sb);
    st.store(a, na);
    st.store(b, nb);
}

/// The arithmetic of a pair update on register copies: new weights, updated sums.
#[inline(always)]
fn pair_step<const C: usize>(
    wa: [f32; C],
    wb: [f32; C],
    sa: &mut [f32; C],
    sb: &mut [f32; C],
    kx: f32,
    sgd: Sgd,
) -> ([f32; C], [f32; C]) {
    let Sgd { eta, l2 } = sgd;
    let (mut na, mut nb) = ([0.0f32; C], [0.0f32; C]);
    for q in 0..C {
        let ga = l2 * wa[q] + kx * wb[q];
        let gb = l2 * wb[q] + kx * wa[q];
        sa[q] += ga * ga;
        sb[q] += gb * gb;
        na[q] = wa[q] - eta * ga / sa[q].sqrt();
        nb[q] = wb[q] - eta * gb / sb[q].sqrt();
    }
    (na, nb)
}

/// [`pair_step`] behind a call: when the weights come from element-wise atomic loads the
/// compiler will not vectorise the inlined arithmetic (scalar sqrt and div), but it does
/// vectorise this function body, whose inputs arrive as arrays in memory.
#[inline(never)]
fn pair_step_outlined<const C: usize>(
    wa: [f32; C],
    wb: [f32; C],
    sa: &mut [f32; C],
    sb: &mut [f32; C],
    kx: f32,
    sgd: Sgd,
) -> ([f32; C], [f32; C]) {
    pair_step(wa, wb, sa, sb, kx, sgd)
}

#[expect(
    clippy::too_many_arguments,
    reason = "the hot loop takes its inputs unbundled"
)]
#[inline(always)]
fn train_k<S: Write + ?Sized, const C: usize>(
    st: &S,
    bias: &mut [f32; 2],
    d: Dims,
    normalize: bool,
    sgd: Sgd,
    row: Row<'_>,
    y: f32,
    weight: f32,
) -> f64 {
    let p = sigmoid(bias[0] + score_k::<S, C>(st, d, normalize, row));
    let loss = logloss(p, y, weight);
    if weight == 0.0 {
        return loss;
    }
    let kappa = (p - y) * weight;
    let Sgd { eta, l2 } = sgd;
    let n = row
        .fields
        .len()
        .min(row.indices.len())
        .min(row.values.len());
    let (fs, js, xs) = (&row.fields[..n], &row.indices[..n], &row.values[..n]);
    let r = norm(row, d.fields, normalize);
    bias[1] += kappa * kappa;
    bias[0] -= eta * kappa / bias[1].sqrt();
    for i in 0..n {
        let fi = fs[i] as usize;
        if fi >= d.fields {
            continue;
        }
        let ji = js[i] as usize & d.mask;
        let xi = xs[i];
        let li = d.lin(ji);
        adagrad(st, li, l2 * st.at(li) + kappa * xi, eta);
        for l in i + 1..n {
            let fl = fs[l] as usize;
            if fl >= d.fields {
                continue;
            }
            let jl = js[l] as usize & d.mask;
            let kx = kappa * xi * xs[l] * r;
            let (a, b) = (d.block(ji, fl), d.block(jl, fi));
            for c in (0..d.k).step_by(C) {
                pair_update::<S, C>(st, d.k, a + c, b + c, kx, sgd);
            }
        }
    }
    loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use crate::train::slots::as_cells;

    fn random_model(shape: &Shape, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        (0..shape.payload_len().unwrap())
            .map(|_| rng.next_f32() - 0.5)
            .collect()
    }

    /// Objective of one row: weighted log loss plus L2/2 on the touched non-bias weights.
    fn objective(w: &[f32], shape: &Shape, row: Row<'_>, y: f32, weight: f32, l2: f32) -> f64 {
        let p = sigmoid(score(w, shape, row));
        let d = shape.dims();
        let mut reg = 0.0f64;
        let k = shape.k as usize;
        for (i, (&fi, &ji)) in row.fields.iter().zip(row.indices).enumerate() {
            let ji = ji as usize & d.mask;
            reg += f64::from(w[1 + ji]).powi(2);
            for (&fl, &jl) in row.fields.iter().zip(row.indices).skip(i + 1) {
                let jl = jl as usize & d.mask;
                let a = d.block(ji, fl as usize);
                let b = d.block(jl, fi as usize);
                for q in 0..k {
                    reg += f64::from(w[a + q]).powi(2) + f64::from(w[b + q]).powi(2);
                }
            }
        }
        logloss(p, y, weight) + 0.5 * f64::from(l2) * reg
    }

    #[test]
    fn training_step_follows_the_gradient() {
        // With squared-gradient sums of 1e12 and eta 1e3 an `AdaGrad` step is -1e-3 * gradient
        // (to 1e-12 relative), so the real training code yields its own gradient. One
        // feature per field: no latent slot is shared by two pairs of the row.
        for (normalize, l2, k) in [(true, 0.0, 4), (false, 0.05, 3), (true, 0.01, 8)] {
            let shape = Shape {
                bits: 4,
                fields: 4,
                k,
                normalize,
            };
            let w0 = random_model(&shape, 7);
            let row = Row {
                fields: &[0, 1, 2, 3],
                indices: &[3, 17, 9, 9],
                values: &[1.0, 0.5, -1.5, 2.0],
            };
            for (y, weight) in [(1.0, 1.0), (0.0, 2.5)] {
                let (state, mut st) = TrainState::new(&shape).unwrap();
                state.set_weights(&mut st, &w0);
                state.set_grad_sums(&mut st, 1e12);
                let sgd = Sgd { eta: 1e3, l2 };
                let cells = as_cells(&mut st);
                let mut bias = state.bias(cells);
                state.train_row(cells, &mut bias, sgd, row, y, weight);
                state.set_bias(cells, bias);
                let w = state.weights(&st);
                assert_eq!(w.len(), w0.len());
                let mut checked = 0;
                for i in 0..w.len() {
                    let analytic = f64::from(w0[i] - w[i]) / 1e-3;
                    let h = 1e-2f32;
                    let (mut wp, mut wm) = (w0.clone(), w0.clone());
                    wp[i] += h;
                    wm[i] -= h;
                    let fd = (objective(&wp, &shape, row, y, weight, l2)
                        - objective(&wm, &shape, row, y, weight, l2))
                        / (2.0 * f64::from(h));
                    assert!(
                        (analytic - fd).abs() < 2e-3 + 1e-2 * fd.abs(),
                        "weight {i}: step gradient {analytic} vs finite difference {fd}"
                    );
                    checked += usize::from(fd.abs() > 1e-4);
                }
                assert!(checked > 20, "only {checked} weights had a gradient");
            }
        }
    }

    #[test]
    fn unseen_fields_are_skipped_and_indices_wrap() {
        let shape = Shape {
            bits: 3,
            fields: 2,
            k: 4,
            normalize: true,
        };
        let w = random_model(&shape, 1);
        let base = Row {
            fields: &[0, 1],
            indices: &[1, 2],
            values: &[1.0, 1.0],
        };
        let extra = Row {
            fields: &[0, 5, 1],
            indices: &[1, 3, 2],
            values: &[1.0, 9.0, 1.0],
        };
        let wrapped = Row {
            fields: &[0, 1],
            indices: &[9, 2 + 64],
            values: &[1.0, 1.0],
        };
        let t = score(&w[..], &shape, base);
        assert_eq!(t.to_bits(), score(&w[..], &shape, extra).to_bits());
        assert_eq!(t.to_bits(), score(&w[..], &shape, wrapped).to_bits());
    }
}
