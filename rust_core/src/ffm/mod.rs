//! Field-aware factorization machine: `LIBFFM`'s model plus a global bias and per-feature
//! linear terms, or `LIBFFM`'s model exactly with [`Sgd::linear`] off (bias and linear weights
//! stay 0). The two are different models, not two implementations of one: on the Frappe CTR
//! data, `LIBFFM`'s best configuration trained with the linear terms loses about 0.003 of test
//! AUC (docs/benchmarks.md).
//!
//! A model's weights are laid out like the model file's payload:
//! `bias, w[2^bits], v[2^bits][fields][stride]`: each latent vector holds `k` weights and
//! `stride - k` zeros. Training pads `k` up to a multiple of 4 lanes (LIBFFM's choice), so
//! that every kernel works in whole SIMD chunks; zero lanes add exact zeros to every dot
//! product and get zero gradients, so they never change a score. Files of format version 1
//! have `stride == k`. For a row of kept features `(f_i, j_i, x_i)`
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
//!
//! Speed: a row is first resolved into its kept features with their block offsets
//! ([`Feat`]), so the pair loops only add offsets, with one bounds check per call instead of
//! one per access. With a table larger than the caches, a scored row costs mostly cache
//! misses, so batch scoring and training prefetch the weights of upcoming rows while
//! computing the current one.

// The kernels are generic over the weight storage and specialised by literal latent sizes;
// forcing them inline is what lets the literals reach the inner loops.
#![expect(clippy::inline_always, reason = "see above")]

mod avx2;
mod avx512;
mod scalar;

use crate::dataset::{prefetch_line, prefetch_lines, Dataset, Row};
use crate::hugemem::HugeBuf;
use crate::math::{logloss, sigmoid};
use crate::rng::SplitMix64;
use crate::simd::Kernel;
use crate::slots::{Read, Write};

/// The dimensions of an FFM model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub bits: u32,
    pub fields: u32,
    pub k: u32,
    /// Floats per latent vector: `k` plus zero padding.
    pub stride: u32,
    pub normalize: bool,
}

impl Shape {
    /// Number of f32 weights, or `None` if it does not fit in memory addresses.
    #[must_use]
    pub fn payload_len(&self) -> Option<usize> {
        if self.stride < self.k {
            return None;
        }
        let n = 1usize.checked_shl(self.bits)?;
        let v = n
            .checked_mul(self.fields as usize)?
            .checked_mul(self.stride as usize)?;
        v.checked_add(n)?.checked_add(1)
    }

    /// Index of the first latent weight in the payload layout (after the bias and the
    /// linear weights).
    #[must_use]
    pub fn latent_start(&self) -> usize {
        self.dims().v0
    }

    /// Where things are in the payload layout.
    fn dims(&self) -> Dims {
        let n = 1usize << self.bits;
        Dims {
            mask: n - 1,
            fields: self.fields as usize,
            k: self.stride as usize,
            bias: 0,
            lin0: 1,
            lin_stride: 1,
            v0: 1 + n,
            slot: self.stride as usize,
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
    /// Lanes the kernels process per latent vector: the stride (padding included).
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

    /// One past the last latent weight: every block lies below it.
    fn end(&self) -> usize {
        self.v0 + (self.mask + 1) * self.fields * self.slot
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
    /// Train the bias and the linear terms; off, they are left as they are (0 from
    /// [`TrainState::init`] with `linear` off): `LIBFFM`'s model, pairwise terms only.
    pub linear: bool,
}

/// One kept feature of a row (field below the model's field count) with its offsets
/// resolved once per row, so the pair loops only add offsets.
#[derive(Clone, Copy, Debug, Default)]
pub struct Feat {
    /// Start of the feature's latent blocks, `block(j, 0)`.
    base: usize,
    /// Where the feature's field sits inside any feature's blocks: `f * slot`.
    foff: usize,
    /// Index of the feature's linear weight.
    lin: usize,
    x: f32,
}

thread_local! {
    /// Per-thread scratch for [`Feat`]s: single-row calls and training steps reuse it
    /// instead of allocating.
    static FEATS: std::cell::RefCell<Vec<Feat>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The upcoming row's resolved features, whose blocks a kernel prefetches a few at a time
/// between the current row's features ([`Ahead::step`]) rather than all at once: a burst of
/// hundreds of prefetches fills the line-fill buffers and stalls the core until the memory
/// system drains them (the profile of the burst showed a quarter of training time stalled
/// on `prefetcht0`); spread out, the misses overlap the current row's arithmetic.
#[derive(Clone, Copy)]
pub(crate) struct Ahead<'a> {
    feats: &'a [Feat],
    /// Bytes of one feature's latent blocks.
    bytes: usize,
}

impl<'a> Ahead<'a> {
    pub(crate) const NONE: Ahead<'static> = Ahead {
        feats: &[],
        bytes: 0,
    };

    fn new(d: Dims, feats: &'a [Feat]) -> Ahead<'a> {
        Ahead {
            feats,
            bytes: d.fields * d.slot * 4,
        }
    }

    /// At step `i` of `n` (the current row's outer loop), prefetches upcoming feature `i`,
    /// and at the last step every upcoming feature from `n` on: all of them over the loop.
    /// (No division: this runs once per feature of every row.) Only hints: nothing is
    /// read, nothing can fault.
    #[inline(always)]
    pub(crate) fn step<S: Read + ?Sized>(&self, s: &S, i: usize, n: usize) {
        if let Some(f) = self.feats.get(i) {
            self.one(s, f);
        }
        if i + 1 == n {
            for f in self.feats.get(n..).unwrap_or_default() {
                self.one(s, f);
            }
        }
    }

    /// Every line of feature `f`'s blocks, each once, and the line of its linear weight.
    #[inline(always)]
    fn one<S: Read + ?Sized>(&self, s: &S, f: &Feat) {
        let (first, span) = self.lines(s, f);
        let mut at = 0;
        while at < span {
            prefetch_line(first.wrapping_add(at));
            at += 64;
        }
        prefetch_line(s.addr(f.lin).cast());
    }

    /// The start of the line where feature `f`'s blocks start, and the bytes from there to
    /// their end: its lines are every 64 bytes of that span.
    #[inline(always)]
    fn lines<S: Read + ?Sized>(&self, s: &S, f: &Feat) -> (*const u8, usize) {
        let p = s.addr(f.base).cast::<u8>();
        let skew = p as usize % 64;
        (p.wrapping_sub(skew), skew + self.bytes)
    }
}

/// [`Ahead`]'s prefetches issued a few lines at a time between the current row's pair
/// updates ([`Drip::lines`]) instead of a feature's blocks at a time between its features:
/// in training at k = 15 an upcoming feature is 35 lines, and such a burst filled the
/// line-fill buffers and stalled the core (45% of a profile's samples sat on the
/// instruction after a `prefetcht0`; 25% once dripped, and 10% more row-epochs per second).
pub(crate) struct Drip<'a> {
    ahead: Ahead<'a>,
    /// The upcoming feature whose lines come next.
    feat: usize,
    /// Byte offset of the next line from the start of the line where its blocks start;
    /// past their end, its linear weight is next.
    at: usize,
    /// Lines per call of [`Drip::lines`]: all of them over `pairs` calls.
    per: usize,
}

impl<'a> Drip<'a> {
    /// A drip of `ahead`'s lines over `pairs` calls of [`Drip::lines`].
    pub(crate) fn new(ahead: Ahead<'a>, pairs: usize) -> Drip<'a> {
        // Steps of `some` per feature, at most: one per line its blocks touch, one for its
        // linear weight.
        let lines = ahead.feats.len() * (ahead.bytes.div_ceil(64) + 2);
        Drip {
            ahead,
            feat: 0,
            at: 0,
            per: lines.div_ceil(pairs.max(1)),
        }
    }

    /// Prefetches the next few lines (hints only: nothing is read, nothing can fault).
    #[inline(always)]
    pub(crate) fn lines<S: Read + ?Sized>(&mut self, s: &S) {
        self.some(s, self.per);
    }

    /// Prefetches every line not prefetched yet.
    pub(crate) fn rest<S: Read + ?Sized>(&mut self, s: &S) {
        self.some(s, usize::MAX);
    }

    #[inline(always)]
    fn some<S: Read + ?Sized>(&mut self, s: &S, count: usize) {
        for _ in 0..count {
            let Some(f) = self.ahead.feats.get(self.feat) else {
                return;
            };
            let (first, span) = self.ahead.lines(s, f);
            if self.at < span {
                prefetch_line(first.wrapping_add(self.at));
                self.at += 64;
            } else {
                prefetch_line(s.addr(f.lin).cast());
                self.feat += 1;
                self.at = 0;
            }
        }
    }
}

/// Runs `f` with this thread's scratch. Reentrant calls (none today) get a fresh vector
/// rather than a panic.
#[inline(always)]
fn with_scratch<R>(f: impl FnOnce(&mut Vec<Feat>) -> R) -> R {
    FEATS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => f(&mut v),
        Err(_) => f(&mut Vec::new()),
    })
}

/// How a resolved row's features are laid out, for the kernels' specialised loops
/// (`avx2::score4`, `avx2::score_rows`): `step`, the common distance between consecutive
/// features' field offsets if there is one and it is positive (one feature per field,
/// fields in increasing order at equal steps: a feature's blocks for its successive
/// partners then sit at equal steps, so a pair loop need not look up each partner's field);
/// `same_x`, whether every feature has the same value (one-hot rows). A kernel given a
/// row's shape may rely on both; [`RowShape::of_row`] finds it from the row's arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RowShape {
    pub(crate) step: Option<usize>,
    pub(crate) same_x: bool,
}

impl RowShape {
    /// Nothing known: what the loops that take any row need. Every row has this shape too.
    pub(crate) const GENERAL: RowShape = RowShape {
        step: None,
        same_x: false,
    };

    /// A row of fewer than two features: no pairs, so any loop scores it.
    const NO_PAIRS: RowShape = RowShape {
        step: None,
        same_x: true,
    };

    /// The shape of the `kept` features [`resolve`] kept of `row` (`d`'s layout), from the
    /// row's own field and value arrays: fields at equal steps `df > 0` from the first, and
    /// one value, over all its features, which is the kept ones' shape when every feature is
    /// kept. Folds without an early exit, which the compiler turns into vector compares: a
    /// few instructions per row (the kernels used to find it with a pass over the resolved
    /// features).
    #[inline(always)]
    fn of_row(d: Dims, row: Row<'_>, kept: usize) -> RowShape {
        if kept < 2 {
            return RowShape::NO_PAIRS;
        }
        let (fields, values) = (row.fields, row.values);
        let (f0, df) = match fields {
            [a, b, ..] if b > a => (*a, b - a),
            _ => (0, 0),
        };
        let x0 = values.first().map_or(0, |x| x.to_bits());
        let even = df > 0
            && (fields.iter().zip(0u32..)).fold(true, |even, (&f, i)| {
                even & (f == f0.wrapping_add(i.wrapping_mul(df)))
            });
        RowShape {
            // Every feature kept: the fields went up by `df` (no wrap: all are below
            // `d.fields`), so their offsets by `df * slot`.
            step: (even && kept == fields.len()).then_some(df as usize * d.slot),
            // The same value over all features is the same over the kept ones; otherwise
            // `false`, which every loop accepts, even if the kept ones happen to agree.
            same_x: values
                .iter()
                .fold(true, |same, x| same & (x.to_bits() == x0)),
        }
    }

    /// The shape of `feats`, in one pass over them (the reference [`RowShape::of_row`] is
    /// tested against).
    #[cfg(test)]
    pub(crate) fn of(feats: &[Feat]) -> RowShape {
        let [f0, f1, ..] = feats else {
            return RowShape::NO_PAIRS;
        };
        let step = f1.foff.wrapping_sub(f0.foff);
        let (mut even, mut same_x) = (f1.foff > f0.foff, true);
        for w in feats.windows(2) {
            even &= w[0].foff.wrapping_add(step) == w[1].foff;
            same_x &= w[0].x.to_bits() == w[1].x.to_bits();
        }
        RowShape {
            step: even.then_some(step),
            same_x,
        }
    }
}

/// Fills `out` with the row's kept features and returns the pair scale `r`
/// (`1 / sum x^2` over kept features under normalisation, else 1).
///
/// Every feature's blocks lie below `d.end()`: the kernels rely on it (with a weight array
/// of at least that length, checked by [`check_len`]) to skip per-access bounds checks.
///
/// Every feature is written at the next free place, which moves on only past a kept one:
/// no branch and no length update per feature (`resolve_v1`'s `push` had both), and the
/// same features and scale, bit for bit.
#[inline(always)]
fn resolve(d: Dims, normalize: bool, row: Row<'_>, out: &mut Vec<Feat>) -> f32 {
    let n = row.fields.len();
    let (fields, indices, values) = (row.fields, &row.indices[..n], &row.values[..n]);
    out.clear();
    out.reserve(n);
    let spare = &mut out.spare_capacity_mut()[..n];
    let mut kept = 0;
    let mut s = 0.0f32;
    for i in 0..n {
        let (f, j, x) = (fields[i], indices[i] as usize & d.mask, values[i]);
        let keep = (f as usize) < d.fields;
        // SAFETY: `kept <= i < n == spare.len()`.
        unsafe { spare.get_unchecked_mut(kept) }.write(Feat {
            base: d.block(j, 0),
            foff: f as usize * d.slot,
            lin: d.lin(j),
            x,
        });
        // A skipped feature adds 0.0, which leaves `s` as it was, bit for bit.
        s += if keep { x * x } else { 0.0 };
        kept += usize::from(keep);
    }
    // SAFETY: the first `kept` places were written above, one kept feature each.
    unsafe { out.set_len(kept) };
    pair_scale(normalize, s)
}

/// [`resolve`] as format version 1's code did it, one `push` per kept feature: the `legacy`
/// kernel's, so that the benchmarks' same-run baseline stays the code before the padded
/// kernels.
#[inline(always)]
fn resolve_v1(d: Dims, normalize: bool, row: Row<'_>, out: &mut Vec<Feat>) -> f32 {
    out.clear();
    out.reserve(row.fields.len());
    let mut s = 0.0f32;
    for ((&f, &j), &x) in row.fields.iter().zip(row.indices).zip(row.values) {
        let f = f as usize;
        if f < d.fields {
            let j = j as usize & d.mask;
            s += x * x;
            out.push(Feat {
                base: d.block(j, 0),
                foff: f * d.slot,
                lin: d.lin(j),
                x,
            });
        }
    }
    pair_scale(normalize, s)
}

/// A row resolved for scoring with `kernel`: its pair scale and its shape. The legacy kernel
/// resolves as format version 1 did ([`resolve_v1`]) and uses no shape.
#[inline(always)]
fn resolve_to_score(
    legacy: bool,
    d: Dims,
    normalize: bool,
    row: Row<'_>,
    out: &mut Vec<Feat>,
) -> (f32, RowShape) {
    if legacy {
        (resolve_v1(d, normalize, row, out), RowShape::GENERAL)
    } else {
        let r = resolve(d, normalize, row, out);
        (r, RowShape::of_row(d, row, out.len()))
    }
}

/// `1 / sum x^2` under normalisation (when the sum is positive), else 1.
#[inline(always)]
fn pair_scale(normalize: bool, s: f32) -> f32 {
    if normalize && s > 0.0 {
        1.0 / s
    } else {
        1.0
    }
}

/// Panics unless `s` holds every latent block of the shape: one check per call instead of
/// one per weight access. Models and training states are built with exactly this length.
#[inline(always)]
fn check_len<S: Read + ?Sized>(s: &S, d: Dims) {
    assert!(
        s.slots() >= d.end(),
        "weight array of {} shorter than the model's {}",
        s.slots(),
        d.end()
    );
}

/// Asks the CPU to start fetching the weights a row will touch (every kept feature's linear
/// weight and latent blocks), so that the misses of the next row overlap the arithmetic of
/// the current one. Only a hint: it reads nothing and cannot fault.
#[inline(always)]
fn prefetch_row<S: Read + ?Sized>(s: &S, d: Dims, row: Row<'_>) {
    let span = d.fields * d.slot;
    for (&f, &j) in row.fields.iter().zip(row.indices) {
        if (f as usize) < d.fields {
            let j = j as usize & d.mask;
            prefetch_lines(s.addr(d.block(j, 0)).cast(), span * 4);
            prefetch_lines(s.addr(d.lin(j)).cast(), 4);
        }
    }
}

/// The raw score `t` (before the sigmoid) of a row, from payload-layout weights, with the
/// process's kernel ([`Kernel::active`]).
#[inline]
pub fn score<S: Read + ?Sized>(s: &S, shape: &Shape, row: Row<'_>) -> f32 {
    score_with(Kernel::active(), s, shape, row)
}

/// [`score`] with a given kernel (`kernel.available()` or it falls back, see
/// [`Kernel::or_fallback`]).
#[inline]
pub fn score_with<S: Read + ?Sized>(kernel: Kernel, s: &S, shape: &Shape, row: Row<'_>) -> f32 {
    let kernel = kernel.or_fallback();
    let d = shape.dims();
    check_len(s, d);
    with_scratch(|feats| {
        let legacy = kernel == Kernel::Legacy;
        let (r, row_shape) = resolve_to_score(legacy, d, shape.normalize, row, feats);
        // A lone row has no successor to overlap with, but its own misses can overlap each
        // other: ask for all its blocks at once instead of one pair at a time.
        prefetch_feats(s, d, feats);
        // SAFETY: `feats` comes from `resolve` with `d`, and `check_len` passed.
        s.at(d.bias) + unsafe { score_dispatch(kernel, s, d.k, (r, row_shape), feats, Ahead::NONE) }
    })
}

/// How many rows ahead batch scoring resolves rows and prefetches their weights.
const AHEAD: usize = 2;

/// Raw scores of every row of `data`, in order, passed to `out`. Same arithmetic as
/// [`score`]; row `i + AHEAD` is resolved, and its weights prefetched, while row `i` is
/// scored, so the cache misses of upcoming rows overlap the arithmetic of the current one.
pub fn score_batch<S: Read + ?Sized>(
    kernel: Kernel,
    s: &S,
    shape: &Shape,
    data: &Dataset,
    out: impl FnMut(f32),
) {
    let kernel = kernel.or_fallback();
    if kernel == Kernel::Legacy {
        score_batch_with::<S, true>(kernel, s, shape, data, out);
    } else {
        score_batch_with::<S, false>(kernel, s, shape, data, out);
    }
}

/// [`score_batch`] with `kernel` available; `V1`: the legacy kernel's loop (format version
/// 1's code), which resolves rows with [`resolve_v1`] and prefetches a row's blocks in one
/// burst when it resolves it. The others spread a row's prefetches over the scoring of the
/// row `AHEAD` rows earlier (see `Ahead`).
#[inline(always)]
fn score_batch_with<S: Read + ?Sized, const V1: bool>(
    kernel: Kernel,
    s: &S,
    shape: &Shape,
    data: &Dataset,
    mut out: impl FnMut(f32),
) {
    let d = shape.dims();
    check_len(s, d);
    let rows = data.num_rows();
    let mut ring: [(Vec<Feat>, (f32, RowShape)); AHEAD + 1] =
        std::array::from_fn(|_| (Vec::new(), (1.0, RowShape::GENERAL)));
    let prepare = |i: usize, (feats, r): &mut (Vec<Feat>, (f32, RowShape))| {
        *r = resolve_to_score(V1, d, shape.normalize, data.row(i), feats);
        if V1 || i < AHEAD {
            prefetch_feats(s, d, feats);
        }
    };
    for (i, slot) in ring.iter_mut().enumerate().take(rows.min(AHEAD)) {
        prepare(i, slot);
    }
    for i in 0..rows {
        if i + AHEAD < rows {
            prepare(i + AHEAD, &mut ring[(i + AHEAD) % (AHEAD + 1)]);
        }
        let (feats, r) = &ring[i % (AHEAD + 1)];
        let ahead = if V1 || i + AHEAD >= rows {
            Ahead::NONE
        } else {
            Ahead::new(d, &ring[(i + AHEAD) % (AHEAD + 1)].0)
        };
        // SAFETY: `feats` comes from `resolve` with `d`, and `check_len` passed.
        out(s.at(d.bias) + unsafe { score_dispatch(kernel, s, d.k, *r, feats, ahead) });
    }
}

/// [`prefetch_row`] for a resolved row.
#[inline(always)]
fn prefetch_feats<S: Read + ?Sized>(s: &S, d: Dims, feats: &[Feat]) {
    let bytes = d.fields * d.slot * 4;
    for f in feats {
        prefetch_lines(s.addr(f.base).cast(), bytes);
        prefetch_lines(s.addr(f.lin).cast(), 4);
    }
}

/// The pairwise and linear terms of a resolved row with `kernel` (which is available).
/// Latent sizes that are not a multiple of 4 (unpadded files of format version 1) take the
/// legacy one-lane path on every kernel but the scalar reference, as they always did.
///
/// # Safety
/// As for [`score_feats`], and `kernel.available()`; `shape` is `feats`' (see
/// [`RowShape`]).
#[inline(always)]
unsafe fn score_dispatch<S: Read + ?Sized>(
    kernel: Kernel,
    s: &S,
    k: usize,
    (r, shape): (f32, RowShape),
    feats: &[Feat],
    ahead: Ahead<'_>,
) -> f32 {
    // SAFETY: passed on from our caller; the AVX kernels run only when the CPU has them.
    unsafe {
        match kernel {
            Kernel::Scalar => {
                ahead.step(s, 0, 1);
                scalar::score(s, k, r, feats)
            }
            Kernel::Legacy | Kernel::Sse => score_feats(s, k, r, feats, ahead),
            _ if !k.is_multiple_of(4) => score_feats(s, k, r, feats, ahead),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => match k {
                4 => avx2::score4(s, r, feats, shape, ahead),
                8 => avx2::score_rows::<S, 8>(s, r, feats, shape, ahead),
                16 => avx2::score_rows::<S, 16>(s, r, feats, shape, ahead),
                _ => avx2::score::<S, 0>(s, k, r, feats, ahead),
            },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => match k {
                4 => avx2::score4(s, r, feats, shape, ahead),
                8 => avx2::score::<S, 8>(s, k, r, feats, ahead),
                16 => avx512::score::<S, 16>(s, k, r, feats, ahead),
                _ => avx512::score::<S, 0>(s, k, r, feats, ahead),
            },
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx2 | Kernel::Avx512 => score_feats(s, k, r, feats, ahead),
        }
    }
}

/// The legacy kernels (format version 1's, and the `sse`/`legacy` paths): the pairwise and
/// linear terms of a resolved row. Latent vectors are processed in chunks
/// of C lanes held in registers; a literal C and k let the compiler unroll and vectorise.
/// A model always takes the same arm, whatever the layout, so batch, single-row and
/// training scores agree bit for bit.
///
/// # Safety
/// `feats` comes from [`resolve`] with dims `d` such that `d.k == k` and
/// `s.slots() >= d.end()` (see [`check_len`]).
#[inline(always)]
unsafe fn score_feats<S: Read + ?Sized>(
    s: &S,
    k: usize,
    r: f32,
    feats: &[Feat],
    ahead: Ahead<'_>,
) -> f32 {
    // SAFETY: passed on from our caller.
    unsafe {
        match k {
            4 => score_k::<S, 4>(s, 4, r, feats, ahead),
            8 => score_k::<S, 8>(s, 8, r, feats, ahead),
            k if k % 8 == 0 => score_k::<S, 8>(s, k, r, feats, ahead),
            k if k % 4 == 0 => score_k::<S, 4>(s, k, r, feats, ahead),
            k => score_k::<S, 1>(s, k, r, feats, ahead),
        }
    }
}

/// Two accumulators, alternating between consecutive partners, so that the additions of
/// one pair do not wait for those of the previous one.
///
/// # Safety
/// As for [`score_feats`], and `C` divides `k`.
#[inline(always)]
unsafe fn score_k<S: Read + ?Sized, const C: usize>(
    s: &S,
    k: usize,
    r: f32,
    feats: &[Feat],
    ahead: Ahead<'_>,
) -> f32 {
    let mut t = 0.0f32;
    let mut acc = [[0.0f32; C]; 2];
    for (i, a) in feats.iter().enumerate() {
        ahead.step(s, i, feats.len());
        t += s.at(a.lin) * a.x;
        let xr = a.x * r;
        let mut partners = feats[i + 1..].chunks_exact(2);
        for two in &mut partners {
            for (acc, b) in acc.iter_mut().zip(two) {
                // SAFETY: both blocks are blocks of resolved features (see `dot_into`).
                unsafe { dot_into::<S, C>(acc, s, k, a.base + b.foff, b.base + a.foff, xr * b.x) };
            }
        }
        if let [b] = partners.remainder() {
            // SAFETY: as above.
            unsafe {
                dot_into::<S, C>(
                    &mut acc[0],
                    s,
                    k,
                    a.base + b.foff,
                    b.base + a.foff,
                    xr * b.x,
                );
            }
        }
    }
    let mut pair = 0.0f32;
    for (a, b) in acc[0].iter().zip(&acc[1]) {
        pair += a + b;
    }
    t + pair
}

/// `acc += <v[a..a+k], v[b..b+k]> * xx`, lane by lane.
///
/// # Safety
/// `a + k` and `b + k` are at most `s.slots()`, and `C` divides `k`. For `a` = `base` of
/// one resolved feature plus `foff` of another: `base + foff + k <= block(j, f) + slot <=
/// end` because `j <= mask`, `f < fields` and `k <= slot`; likewise `b`.
#[inline(always)]
unsafe fn dot_into<S: Read + ?Sized, const C: usize>(
    acc: &mut [f32; C],
    s: &S,
    k: usize,
    a: usize,
    b: usize,
    xx: f32,
) {
    for c in (0..k).step_by(C) {
        // SAFETY: `c + C <= k`, so both ranges end by `a + k` and `b + k` (our contract).
        let (va, vb) = unsafe { (s.load_unchecked::<C>(a + c), s.load_unchecked::<C>(b + c)) };
        #[cfg(target_arch = "x86_64")]
        if C.is_multiple_of(4) {
            // Left to itself the compiler handles `[f32; 4]` as two 64-bit halves: twice
            // the loads and multiplications. Same operations, same order, same rounding.
            for q in (0..C).step_by(4) {
                let four = |x: &[f32; C]| [x[q], x[q + 1], x[q + 2], x[q + 3]];
                let r = mul_add4(four(acc), four(&va), four(&vb), xx);
                acc[q..q + 4].copy_from_slice(&r);
            }
            continue;
        }
        for q in 0..C {
            acc[q] += va[q] * vb[q] * xx;
        }
    }
}

/// The training layout: weights interleaved with their squared-gradient sums.
#[derive(Clone, Copy, Debug)]
pub struct TrainState {
    shape: Shape,
    dims: Dims,
    kernel: Kernel,
    /// Whether steps prefetch the next row's weights (see [`PREFETCH_FROM_BYTES`]).
    prefetch: bool,
}

/// Training states smaller than this train without prefetching the next row's weights: a
/// state that fits in a core's second-level cache stays there, and the prefetch instructions
/// (about ten per feature at k = 4) are only extra work. Measured on the benchmark machine
/// (1 MiB of L2 per core): 2^10 buckets x 17 fields x k = 4 (0.6 MB) trains faster without,
/// 2^12 (2.2 MB) with; docs/benchmarks.md, "Training: 16-byte chunks for two threads, each
/// row resolved once".
const PREFETCH_FROM_BYTES: usize = 1 << 20;

impl TrainState {
    /// The layout and a zeroed state array for it (weights 0, squared-gradient sums 1),
    /// padded so that latent blocks start on a 64-byte boundary, in memory advised for huge
    /// pages (see [`crate::hugemem`]). Trained with `kernel` (falling back to what the CPU
    /// has). `None` if too large.
    #[must_use]
    pub fn new(shape: &Shape, kernel: Kernel) -> Option<(TrainState, HugeBuf)> {
        if shape.stride < shape.k {
            return None;
        }
        let n = 1usize.checked_shl(shape.bits)?;
        let slot = 2 * shape.stride as usize;
        let v = n.checked_mul(shape.fields as usize)?.checked_mul(slot)?;
        let len = v.checked_add(2 * n)?.checked_add(2 + 16)?;
        // The legacy path reproduces the training before huge pages too (its state was a
        // heap allocation in ordinary pages): it is the benchmarks' baseline.
        let mut st = HugeBuf::zeroed_in(len, kernel != Kernel::Legacy).ok()?;
        st.fill(1.0);
        // Pad the front so that v0 (= pad + 2 + 2n) is 64-byte aligned.
        let v0_addr = st.as_ptr() as usize + (2 + 2 * n) * 4;
        let pad = ((64 - v0_addr % 64) % 64) / 4;
        let dims = Dims {
            mask: n - 1,
            fields: shape.fields as usize,
            k: shape.stride as usize,
            bias: pad,
            lin0: pad + 2,
            lin_stride: 2,
            v0: pad + 2 + 2 * n,
            slot,
        };
        let layout = TrainState {
            shape: *shape,
            dims,
            kernel: kernel.or_fallback(),
            prefetch: len.saturating_mul(4) >= PREFETCH_FROM_BYTES,
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

    /// LIBFFM's initialisation plus ours: bias at the logit of the base rate (0 without
    /// `linear`, as LIBFFM has no bias), linear terms 0, latent weights uniform in
    /// `[0, 1/sqrt(k))` drawn in payload order; padding lanes 0 (drawing nothing, so a padded
    /// and an unpadded layout start from the same weights).
    pub fn init(&self, st: &mut [f32], base_rate: f64, linear: bool, rng: &mut SplitMix64) {
        let rate = base_rate.clamp(1e-6, 1.0 - 1e-6);
        let bias = if linear {
            (rate / (1.0 - rate)).ln() as f32
        } else {
            0.0
        };
        let scale = 1.0 / (self.shape.k as f32).sqrt();
        let v0 = 1 + self.dims.mask + 1;
        let (k, stride) = (self.shape.k as usize, self.dims.k);
        self.fill(st, |i| match i {
            0 => bias,
            i if i < v0 => 0.0,
            i if (i - v0) % stride >= k => 0.0,
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

    /// The model's shape (with the stride training chose).
    #[must_use]
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// A pass of training steps for one thread, from the bias and its squared-gradient sum
    /// `bias` (see [`TrainPass`]).
    #[must_use]
    pub fn pass(&self, sgd: Sgd, bias: [f32; 2]) -> TrainPass<'_> {
        TrainPass {
            state: self,
            sgd,
            bias,
            feats: Vec::new(),
            next: Vec::new(),
            next_r: 1.0,
            next_key: None,
        }
    }

    /// One `AdaGrad` step on a resolved row (scale `r`, features `f`) with the non-legacy
    /// kernels, the next row's blocks to prefetch along the way in `ahead`.
    ///
    /// # Safety
    /// `f` comes from [`resolve`] with this state's dims, and `check_len(st, dims)` passed.
    #[inline(always)]
    unsafe fn train_resolved<S: Write + ?Sized>(
        &self,
        st: &S,
        bias: &mut [f32; 2],
        sgd: Sgd,
        (r, f): (f32, &[Feat]),
        (y, weight): (f32, f32),
        ahead: Ahead<'_>,
    ) -> f64 {
        let d = self.dims;
        let args = (r, sgd, f, y, weight, ahead);
        // SAFETY: our contract; the AVX kernels run only where the CPU has them (`kernel`
        // went through `or_fallback`).
        unsafe {
            match (self.kernel, d.k) {
                (Kernel::Legacy, _) => train_legacy::<S, false>(st, bias, d, args),
                (Kernel::Scalar, _) => train_k::<S, 1, true>(st, bias, d, args),
                (_, k) if k % 4 != 0 => train_k::<S, 1, true>(st, bias, d, args),
                #[cfg(target_arch = "x86_64")]
                (Kernel::Avx2, 4) => avx2::train::<S, 4>(st, bias, d, args),
                #[cfg(target_arch = "x86_64")]
                (Kernel::Avx2, 8) => avx2::train::<S, 8>(st, bias, d, args),
                #[cfg(target_arch = "x86_64")]
                (Kernel::Avx2, 16) => avx2::train::<S, 16>(st, bias, d, args),
                #[cfg(target_arch = "x86_64")]
                (Kernel::Avx2, _) => avx2::train::<S, 0>(st, bias, d, args),
                #[cfg(target_arch = "x86_64")]
                (Kernel::Avx512, 4) => avx2::train::<S, 4>(st, bias, d, args),
                #[cfg(target_arch = "x86_64")]
                (Kernel::Avx512, 8) => avx2::train::<S, 8>(st, bias, d, args),
                #[cfg(target_arch = "x86_64")]
                (Kernel::Avx512, 16) => avx512::train::<S, 16>(st, bias, d, args),
                #[cfg(target_arch = "x86_64")]
                (Kernel::Avx512, _) => avx512::train::<S, 0>(st, bias, d, args),
                _ => train_legacy::<S, true>(st, bias, d, args),
            }
        }
    }

    /// Whether, in `st` (the array built with this layout), every weight chunk the
    /// training kernels access in one piece, every linear weight with its sum and the bias
    /// with its sum start at an even index from an 8-byte aligned start, as
    /// [`crate::slots::Pairs`] needs: with latent sizes that are multiples of 4
    /// (chunks of 4 or 8 lanes, sums at +k), all offsets are even once the bias, the first
    /// linear weight and the first block are (`lin_stride` and `slot` are even).
    #[must_use]
    pub fn pairs_aligned(&self, st: &[f32]) -> bool {
        let d = self.dims;
        st.as_ptr().align_offset(8) == 0
            && d.k.is_multiple_of(4)
            && d.bias.is_multiple_of(2)
            && d.lin0.is_multiple_of(2)
            && d.v0.is_multiple_of(2)
    }

    /// Whether this state's kernel reaches latent weights only in chunks of 4 or 8 lanes from
    /// indices that are multiples of 4, and the rest (linear weights, the bias) one or two
    /// lanes at a time, below the first block: the contract of [`crate::quads::as_quads`].
    /// True of the AVX kernels on a padded layout (`k` a multiple of 4, blocks from a
    /// multiple of 4): their pair updates and dot products work in chunks of 4, 8 or 16
    /// lanes from a block's start, and a feature paired with itself takes its steps on whole
    /// chunks ([`pair_update`]).
    #[must_use]
    pub fn chunks_of_four(&self) -> bool {
        let d = self.dims;
        matches!(self.kernel, Kernel::Avx2 | Kernel::Avx512)
            && d.k.is_multiple_of(4)
            && d.slot.is_multiple_of(4)
            && d.v0.is_multiple_of(4)
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

/// Identifies a row by where its three slices start and their length: rows are slices of a
/// dataset's arrays, so two rows with the same key are the same row (or both empty).
#[derive(Clone, Copy, PartialEq, Eq)]
struct RowKey(*const u32, *const u32, *const f32, usize);

impl RowKey {
    fn of(row: Row<'_>) -> RowKey {
        let Row {
            fields,
            indices,
            values,
        } = row;
        RowKey(
            fields.as_ptr(),
            indices.as_ptr(),
            values.as_ptr(),
            indices.len(),
        )
    }
}

/// One thread's pass of training steps over a sequence of rows ([`TrainState::pass`]).
///
/// It holds the thread's copy of the bias and its squared-gradient sum: every row updates
/// them, so Hogwild threads sharing them would fight over one cache line on every row. Each
/// thread works on its own copy ([`TrainPass::bias`]) and the driver adds the change back
/// ([`TrainState::add_bias`]).
///
/// It also holds the resolved features of the current row and of the next: the next row is
/// resolved while the current one trains, so that its weights can be prefetched ([`Ahead`]),
/// and that same resolution is used when its turn comes.
pub struct TrainPass<'a> {
    state: &'a TrainState,
    sgd: Sgd,
    bias: [f32; 2],
    feats: Vec<Feat>,
    next: Vec<Feat>,
    /// The pair scale of the row in `next`, and which row that is (`None`: none).
    next_r: f32,
    next_key: Option<RowKey>,
}

impl TrainPass<'_> {
    /// One `AdaGrad` step on `row`: forward, then in-place updates of the bias, the linear
    /// terms and every pair's two latent vectors. Returns the row's weighted log loss before
    /// the update. `next` is the row the caller will train next: its weights are prefetched
    /// along the way (see [`Ahead`]).
    #[inline]
    pub fn step<S: Write + ?Sized>(
        &mut self,
        st: &S,
        (row, next): (Row<'_>, Option<Row<'_>>),
        y: f32,
        weight: f32,
    ) -> f64 {
        let state = self.state;
        let (d, nz) = (state.dims, state.shape.normalize);
        check_len(st, d);
        if state.kernel == Kernel::Legacy {
            // Format version 1's training: the next row's blocks in one burst, here.
            if let Some(next) = next {
                prefetch_row(st, d, next);
            }
            let r = resolve_v1(d, nz, row, &mut self.feats);
            let args = (r, self.sgd, &self.feats[..], y, weight, Ahead::NONE);
            // SAFETY: `feats` comes from `resolve` with `d`, and `check_len` passed.
            return unsafe { train_legacy::<S, false>(st, &mut self.bias, d, args) };
        }
        let r = if self.next_key == Some(RowKey::of(row)) {
            std::mem::swap(&mut self.feats, &mut self.next);
            self.next_r
        } else {
            resolve(d, nz, row, &mut self.feats)
        };
        self.next.clear();
        self.next_key = next.map(|next| {
            self.next_r = resolve(d, nz, next, &mut self.next);
            RowKey::of(next)
        });
        let ahead = if state.prefetch {
            Ahead::new(d, &self.next)
        } else {
            Ahead::NONE
        };
        let (current, bias) = ((r, &self.feats[..]), &mut self.bias);
        // SAFETY: `feats` comes from `resolve` with `d`, and `check_len` passed.
        unsafe { state.train_resolved(st, bias, self.sgd, current, (y, weight), ahead) }
    }

    /// This pass's bias and its squared-gradient sum.
    #[must_use]
    pub fn bias(&self) -> [f32; 2] {
        self.bias
    }
}

/// `1 / sqrt(x)` for `x >= 1` (squared-gradient sums start at 1): the CPU's 12-bit
/// approximation refined by one Newton step, `y (1.5 - (x/2 y) y)`, about 1e-7 relative
/// error. The approximate `AdaGrad` step of the `scalar` and `sse` paths, lane for lane the
/// same arithmetic as [`pair_step_sse`]'s.
#[inline(always)]
pub(crate) fn rsqrt_nr(x: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_cvtss_f32, _mm_rsqrt_ss, _mm_set_ss};
        // SAFETY: register-only SSE arithmetic; SSE is part of the x86-64 baseline.
        let y = unsafe { _mm_cvtss_f32(_mm_rsqrt_ss(_mm_set_ss(x))) };
        y * (1.5 - (0.5 * x * y) * y)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        1.0 / x.sqrt()
    }
}

/// The arguments of a training step after the row is resolved: pair scale `r`, the
/// hyper-parameters, the kept features, label and importance weight.
pub(crate) type StepArgs<'a> = (f32, Sgd, &'a [Feat], f32, f32, Ahead<'a>);

/// A row's step on the bias (the thread's own copy), exact `AdaGrad`; nothing without
/// linear terms (`LIBFFM`'s model). One copy for every kernel.
#[inline(always)]
pub(crate) fn bias_step(bias: &mut [f32; 2], kappa: f32, sgd: Sgd) {
    if sgd.linear {
        bias[1] += kappa * kappa;
        bias[0] -= sgd.eta * kappa / bias[1].sqrt();
    }
}

/// A row's step on feature `a`'s linear weight, exact `AdaGrad`; nothing without linear
/// terms. One copy for every kernel.
#[inline(always)]
pub(crate) fn linear_step<S: Write + ?Sized>(st: &S, a: &Feat, kappa: f32, sgd: Sgd) {
    if sgd.linear {
        adagrad(st, a.lin, sgd.l2 * st.at(a.lin) + kappa * a.x, sgd.eta);
    }
}

/// `AdaGrad` on the weight at `i` whose squared-gradient sum is at `i + 1`.
#[inline(always)]
fn adagrad<S: Write + ?Sized>(st: &S, i: usize, grad: f32, eta: f32) {
    // One load and one store of the pair (one atomic each in the Hogwild view).
    let [w, gg] = st.load::<2>(i);
    let gg = gg + grad * grad;
    st.store(i, [w - eta * grad / gg.sqrt(), gg]);
}

/// The two latent chunks of a pair (weights at `a`, `b`, sums at `+k`), updated together in
/// registers. Blocks are either disjoint or the same block (a feature paired with itself in
/// the same field); the same block takes each weight's two updates one after the other, so
/// none is lost, in registers too: the Hogwild view of AVX training accesses latent weights
/// only in chunks of 4 lanes ([`crate::slots::Quads`]).
///
/// # Safety
/// `a + k + C` and `b + k + C` are at most `st.slots()`: for chunks of the blocks of
/// resolved features in the training layout (`slot` = 2k), `base + foff + c + k + C <=
/// block(j, f) + 2k <= end` (see [`dot_into`]).
#[inline(always)]
unsafe fn pair_update<S: Write + ?Sized, const C: usize, const APPROX: bool>(
    st: &S,
    k: usize,
    a: usize,
    b: usize,
    kx: f32,
    sgd: Sgd,
) {
    let Sgd { eta, l2, .. } = sgd;
    if a == b {
        // SAFETY: both chunks end by `a + k + C` (our contract).
        let (mut w, mut g) = unsafe { (st.load_unchecked::<C>(a), st.load_unchecked::<C>(a + k)) };
        for (w, g) in w.iter_mut().zip(&mut g) {
            // Both sides' gradient from the weight before either step, then the two steps.
            let grad = l2 * *w + kx * *w;
            for _ in 0..2 {
                *g += grad * grad;
                *w -= eta * grad / g.sqrt();
            }
        }
        // SAFETY: as above.
        unsafe {
            st.store_unchecked(a + k, g);
            st.store_unchecked(a, w);
        }
        return;
    }
    // SAFETY: every chunk below ends by `a + k + C` or `b + k + C` (our contract).
    unsafe {
        let (wa, wb) = (st.load_unchecked::<C>(a), st.load_unchecked::<C>(b));
        let (mut sa, mut sb) = (st.load_unchecked::<C>(a + k), st.load_unchecked::<C>(b + k));
        let (na, nb) = pair_step::<C, APPROX>(wa, wb, &mut sa, &mut sb, kx, sgd);
        st.store_unchecked(a + k, sa);
        st.store_unchecked(b + k, sb);
        st.store_unchecked(a, na);
        st.store_unchecked(b, nb);
    }
}

/// The arithmetic of a pair update on register copies: new weights, updated sums. On
/// x86-64, lanes go four at a time through explicit SSE: when the weights come from
/// element-wise atomic loads (Hogwild) the compiler will not vectorise the arithmetic by
/// itself and would issue eight scalar square roots and divisions per chunk. Both paths
/// round identically (IEEE add, mul, div and sqrt; no fused operations).
/// With `APPROX`, `1 / sqrt` is [`rsqrt_nr`]'s approximation on every lane instead of a
/// square root and a division.
#[inline(always)]
fn pair_step<const C: usize, const APPROX: bool>(
    wa: [f32; C],
    wb: [f32; C],
    sa: &mut [f32; C],
    sb: &mut [f32; C],
    kx: f32,
    sgd: Sgd,
) -> ([f32; C], [f32; C]) {
    let (mut na, mut nb) = ([0.0f32; C], [0.0f32; C]);
    #[cfg(target_arch = "x86_64")]
    if C.is_multiple_of(4) {
        for q in (0..C).step_by(4) {
            let r = pair_step_sse::<APPROX>(
                [wa[q], wa[q + 1], wa[q + 2], wa[q + 3]],
                [wb[q], wb[q + 1], wb[q + 2], wb[q + 3]],
                [sa[q], sa[q + 1], sa[q + 2], sa[q + 3]],
                [sb[q], sb[q + 1], sb[q + 2], sb[q + 3]],
                kx,
                sgd,
            );
            sa[q..q + 4].copy_from_slice(&r[0]);
            sb[q..q + 4].copy_from_slice(&r[1]);
            na[q..q + 4].copy_from_slice(&r[2]);
            nb[q..q + 4].copy_from_slice(&r[3]);
        }
        return (na, nb);
    }
    let Sgd { eta, l2, .. } = sgd;
    for q in 0..C {
        let ga = l2 * wa[q] + kx * wb[q];
        let gb = l2 * wb[q] + kx * wa[q];
        sa[q] += ga * ga;
        sb[q] += gb * gb;
        if APPROX {
            na[q] = wa[q] - (eta * ga) * rsqrt_nr(sa[q]);
            nb[q] = wb[q] - (eta * gb) * rsqrt_nr(sb[q]);
        } else {
            na[q] = wa[q] - eta * ga / sa[q].sqrt();
            nb[q] = wb[q] - eta * gb / sb[q].sqrt();
        }
    }
    (na, nb)
}

/// `acc + a * b * x` on four lanes in one SSE register each.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn mul_add4(acc: [f32; 4], a: [f32; 4], b: [f32; 4], x: f32) -> [f32; 4] {
    use std::arch::x86_64::{__m128, _mm_add_ps, _mm_mul_ps, _mm_set1_ps};
    let v = |x: [f32; 4]| -> __m128 { bytemuck::cast(x) };
    // SAFETY: register-only SSE arithmetic; SSE is part of the x86-64 baseline.
    let r = unsafe { _mm_add_ps(v(acc), _mm_mul_ps(_mm_mul_ps(v(a), v(b)), _mm_set1_ps(x))) };
    bytemuck::cast(r)
}

/// Four lanes of [`pair_step`] in SSE registers: `[sa, sb, na, nb]` after the step.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn pair_step_sse<const APPROX: bool>(
    wa: [f32; 4],
    wb: [f32; 4],
    sa: [f32; 4],
    sb: [f32; 4],
    kx: f32,
    sgd: Sgd,
) -> [[f32; 4]; 4] {
    use std::arch::x86_64::{
        __m128, _mm_add_ps, _mm_div_ps, _mm_mul_ps, _mm_rsqrt_ps, _mm_set1_ps, _mm_setr_ps,
        _mm_sqrt_ps, _mm_sub_ps,
    };
    // SAFETY: these intrinsics only compute on values in registers (no memory access), and
    // they need SSE, which every x86-64 CPU has (it is part of the target's baseline, so it
    // is enabled in every build for this target).
    unsafe {
        let v = |x: [f32; 4]| _mm_setr_ps(x[0], x[1], x[2], x[3]);
        let a = |x: __m128| -> [f32; 4] { bytemuck::cast(x) };
        let (wa, wb, sa, sb) = (v(wa), v(wb), v(sa), v(sb));
        let (l2, kx, eta) = (_mm_set1_ps(sgd.l2), _mm_set1_ps(kx), _mm_set1_ps(sgd.eta));
        let ga = _mm_add_ps(_mm_mul_ps(l2, wa), _mm_mul_ps(kx, wb));
        let gb = _mm_add_ps(_mm_mul_ps(l2, wb), _mm_mul_ps(kx, wa));
        let sa = _mm_add_ps(sa, _mm_mul_ps(ga, ga));
        let sb = _mm_add_ps(sb, _mm_mul_ps(gb, gb));
        let (na, nb) = if APPROX {
            // y (1.5 - (x/2 y) y), as in `rsqrt_nr`.
            let rs = |x: __m128| {
                let y = _mm_rsqrt_ps(x);
                let h = _mm_mul_ps(_mm_mul_ps(_mm_set1_ps(0.5), x), y);
                _mm_mul_ps(y, _mm_sub_ps(_mm_set1_ps(1.5), _mm_mul_ps(h, y)))
            };
            (
                _mm_sub_ps(wa, _mm_mul_ps(_mm_mul_ps(eta, ga), rs(sa))),
                _mm_sub_ps(wb, _mm_mul_ps(_mm_mul_ps(eta, gb), rs(sb))),
            )
        } else {
            (
                _mm_sub_ps(wa, _mm_div_ps(_mm_mul_ps(eta, ga), _mm_sqrt_ps(sa))),
                _mm_sub_ps(wb, _mm_div_ps(_mm_mul_ps(eta, gb), _mm_sqrt_ps(sb))),
            )
        };
        [a(sa), a(sb), a(na), a(nb)]
    }
}

/// The legacy training kernels (chunks of 8, 4 or 1 lanes by latent size, SSE), with the
/// exact `AdaGrad` step (`legacy`) or the approximate one (`sse`).
///
/// # Safety
/// As for [`score_k`].
#[inline(always)]
unsafe fn train_legacy<S: Write + ?Sized, const APPROX: bool>(
    st: &S,
    bias: &mut [f32; 2],
    d: Dims,
    args: StepArgs<'_>,
) -> f64 {
    // SAFETY: passed on from our caller.
    unsafe {
        match d.k {
            4 => train_k::<S, 4, APPROX>(st, bias, Dims { k: 4, ..d }, args),
            8 => train_k::<S, 8, APPROX>(st, bias, Dims { k: 8, ..d }, args),
            k if k % 8 == 0 => train_k::<S, 8, APPROX>(st, bias, d, args),
            k if k % 4 == 0 => train_k::<S, 4, APPROX>(st, bias, d, args),
            _ => train_k::<S, 1, APPROX>(st, bias, d, args),
        }
    }
}

/// One `AdaGrad` step on a resolved row (see [`TrainState::train_row`]): chunks of `C`
/// lanes, exact or approximate (`APPROX`) steps on the latent weights. The bias and linear
/// weights (one per feature, not per pair and lane) always take the exact step.
///
/// # Safety
/// As for [`score_k`].
#[inline(always)]
unsafe fn train_k<S: Write + ?Sized, const C: usize, const APPROX: bool>(
    st: &S,
    bias: &mut [f32; 2],
    d: Dims,
    (r, sgd, feats, y, weight, ahead): StepArgs<'_>,
) -> f64 {
    // SAFETY: passed on from our caller.
    let p = sigmoid(bias[0] + unsafe { score_k::<S, C>(st, d.k, r, feats, Ahead::NONE) });
    let loss = logloss(p, y, weight);
    if weight == 0.0 {
        return loss;
    }
    let kappa = (p - y) * weight;
    bias_step(bias, kappa, sgd);
    for (i, a) in feats.iter().enumerate() {
        ahead.step(st, i, feats.len());
        linear_step(st, a, kappa, sgd);
        let kr = kappa * a.x * r;
        for b in &feats[i + 1..] {
            let kx = kr * b.x;
            let (pa, pb) = (a.base + b.foff, b.base + a.foff);
            for c in (0..d.k).step_by(C) {
                // SAFETY: `pa + c` and `pb + c` are chunks of resolved features' blocks in
                // the training layout, and `check_len` passed (our contract).
                unsafe { pair_update::<S, C, APPROX>(st, d.k, pa + c, pb + c, kx, sgd) };
            }
        }
    }
    loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use crate::slots::as_cells;

    /// Random weights in [-0.5, 0.5), padding lanes zero.
    fn random_model(shape: &Shape, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        let v0 = (1usize << shape.bits) + 1;
        let (k, stride) = (shape.k as usize, shape.stride as usize);
        (0..shape.payload_len().unwrap())
            .map(|i| {
                if i >= v0 && (i - v0) % stride >= k {
                    0.0
                } else {
                    rng.next_f32() - 0.5
                }
            })
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
        let cases = [
            (true, 0.0, 4),
            (false, 0.05, 3),
            (true, 0.01, 8),
            (true, 0.01, 15),
        ];
        let kernels = Kernel::ALL.into_iter().filter(|k| k.available());
        for (kernel, (normalize, l2, k)) in kernels.flat_map(|kr| cases.map(|c| (kr, c))) {
            let shape = Shape {
                bits: 4,
                fields: 4,
                k,
                stride: if kernel.pads() { k.div_ceil(4) * 4 } else { k },
                normalize,
            };
            let w0 = random_model(&shape, 7);
            let row = Row {
                fields: &[0, 1, 2, 3],
                indices: &[3, 17, 9, 9],
                values: &[1.0, 0.5, -1.5, 2.0],
            };
            for (y, weight) in [(1.0, 1.0), (0.0, 2.5)] {
                let (state, mut st) = TrainState::new(&shape, kernel).unwrap();
                state.set_weights(&mut st, &w0);
                state.set_grad_sums(&mut st, 1e12);
                let sgd = Sgd {
                    eta: 1e3,
                    l2,
                    linear: true,
                };
                let cells = as_cells(&mut st);
                let mut pass = state.pass(sgd, state.bias(cells));
                pass.step(cells, (row, Some(row)), y, weight);
                state.set_bias(cells, pass.bias());
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
    fn a_feature_paired_with_itself_takes_both_steps() {
        // One block (a feature paired with itself in its own field): each lane's gradient is
        // taken before either step, then the weight takes two AdaGrad steps in turn.
        let k = 8;
        let w0: Vec<f32> = (0..k).map(|q| 0.1 * q as f32 - 0.35).collect();
        let g0: Vec<f32> = (0..k).map(|q| 1.0 + q as f32).collect();
        let (kx, sgd) = (
            0.7f32,
            Sgd {
                eta: 0.2,
                l2: 0.01,
                linear: true,
            },
        );
        for approx in [false, true] {
            let mut st: Vec<f32> = w0.iter().chain(&g0).copied().collect();
            let cells = as_cells(&mut st);
            for c in (0..k).step_by(4) {
                // SAFETY: c + k + 4 <= 2k = cells.len().
                unsafe {
                    if approx {
                        pair_update::<_, 4, true>(cells, k, c, c, kx, sgd);
                    } else {
                        pair_update::<_, 4, false>(cells, k, c, c, kx, sgd);
                    }
                }
            }
            for q in 0..k {
                let (mut w, mut g) = (f64::from(w0[q]), f64::from(g0[q]));
                let grad = (f64::from(sgd.l2) + f64::from(kx)) * w;
                for _ in 0..2 {
                    g += grad * grad;
                    w -= f64::from(sgd.eta) * grad / g.sqrt();
                }
                assert!(
                    (f64::from(st[q]) - w).abs() < 1e-6,
                    "lane {q}: {} vs {w}",
                    st[q]
                );
                assert!((f64::from(st[k + q]) - g).abs() < 1e-5, "sum {q}");
            }
        }
    }

    #[test]
    fn a_drip_has_hinted_every_upcoming_line_by_the_last_pair() {
        let shape = Shape {
            bits: 4,
            fields: 17,
            k: 15,
            stride: 16,
            normalize: true,
        };
        let d = shape.dims();
        let w = vec![0.0f32; d.end()];
        let (f, j): (Vec<u32>, Vec<u32>) = (0..17).map(|i| (i, 3 * i)).unzip();
        let x = vec![1.0f32; 17];
        let mut feats = Vec::new();
        resolve(
            d,
            true,
            Row {
                fields: &f,
                indices: &j,
                values: &x,
            },
            &mut feats,
        );
        // 17 features of 1,088 bytes (17 or 18 lines) and a linear weight each.
        for pairs in [0, 1, 7, 136, 323, 1000] {
            let mut drip = Drip::new(Ahead::new(d, &feats), pairs);
            drip.lines(&w[..]);
            assert_eq!(drip.feat == feats.len(), pairs <= 1, "{pairs}: one call");
            for _ in 1..pairs {
                drip.lines(&w[..]);
            }
            assert_eq!(drip.feat, feats.len(), "{pairs}: every call");
            drip.rest(&w[..]);
            assert_eq!((drip.feat, drip.at), (feats.len(), 0), "{pairs}");
        }
        let mut none = Drip::new(Ahead::NONE, 10);
        none.rest(&w[..]);
        assert_eq!(none.feat, 0);
    }

    #[test]
    fn unseen_fields_are_skipped_and_indices_wrap() {
        let shape = Shape {
            bits: 3,
            fields: 2,
            k: 4,
            stride: 4,
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
        for kernel in Kernel::ALL.into_iter().filter(|k| k.available()) {
            let t = score_with(kernel, &w[..], &shape, base);
            let name = kernel.name();
            assert_eq!(
                t.to_bits(),
                score_with(kernel, &w[..], &shape, extra).to_bits(),
                "{name}"
            );
            assert_eq!(
                t.to_bits(),
                score_with(kernel, &w[..], &shape, wrapped).to_bits(),
                "{name}"
            );
        }
    }

    /// The branch-free `resolve` keeps the same features, in the same order, with the same
    /// scale bit for bit as format version 1's `resolve_v1`, wherever the skipped ones are.
    #[test]
    fn both_resolves_keep_the_same_features() {
        let d = Shape {
            bits: 4,
            fields: 3,
            k: 4,
            stride: 4,
            normalize: true,
        }
        .dims();
        let rows: [(&[u32], &[u32], &[f32]); 11] = [
            (&[], &[], &[]),
            (&[7], &[1], &[2.0]),
            (&[1], &[1], &[2.0]),
            (&[0, 1, 2], &[1, 2, 99], &[0.5, 1.5, 0.25]),
            (&[0, 1, 2], &[1, 2, 99], &[1.0, 1.0, 1.0]),
            (&[0, 2], &[3, 4], &[1.0, 1.0]),
            (&[0, 1, 2, 2], &[3, 4, 5, 6], &[1.0, 1.0, 1.0, 1.0]),
            (&[3, 0, 1], &[1, 2, 3], &[1.0, 3.0, 0.1]),
            (&[0, 1, 9], &[1, 2, 3], &[1.0, 1.0, 1.0]),
            (
                &[0, 9, 1, 9, 2],
                &[4, 5, 6, 7, 8],
                &[0.3, 0.7, 1.1, 1.3, 0.9],
            ),
            (&[2, 1, 0, 5], &[15, 16, 17, 18], &[1.0, 1.0, 1.0, 4.0]),
        ];
        for normalize in [true, false] {
            for (fields, indices, values) in rows {
                let row = Row {
                    fields,
                    indices,
                    values,
                };
                let (mut new, mut v1) = (vec![Feat::default(); 9], Vec::new());
                let r = resolve(d, normalize, row, &mut new);
                let shape = RowShape::of_row(d, row, new.len());
                // The kept features' shape; or, when some were skipped, one the kernels
                // may rely on (nothing claimed that `RowShape::of` does not).
                let want = RowShape::of(&new);
                if new.len() == fields.len() {
                    assert_eq!(shape, want, "{fields:?}");
                } else {
                    assert!(
                        shape.step.is_none() || shape.step == want.step,
                        "{fields:?}"
                    );
                    assert!(!shape.same_x || want.same_x, "{fields:?}");
                }
                let r1 = resolve_v1(d, normalize, row, &mut v1);
                assert_eq!(r.to_bits(), r1.to_bits(), "{fields:?}");
                let key = |f: &Feat| (f.base, f.foff, f.lin, f.x.to_bits());
                let (new, v1): (Vec<_>, Vec<_>) =
                    (new.iter().map(key).collect(), v1.iter().map(key).collect());
                assert_eq!(new, v1, "{fields:?}");
            }
        }
    }
}
