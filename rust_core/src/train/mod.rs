//! The training driver shared by LR and FFM: epochs over a seeded shuffle of the rows,
//! single-threaded (bit-for-bit reproducible) or Hogwild across threads, per-epoch train
//! and validation log loss, and early stopping that keeps the best epoch's weights.
//!
//! The rows come from memory ([`Source::Memory`], a [`Dataset`]) or from shards on disk
//! ([`Source::Shards`], a [`ShardSet`]): then each epoch visits the shards in an order
//! shuffled per epoch, a background thread reading the next shards while one trains, and
//! shuffles the rows within each shard. With `shuffle` off both sources train the rows in
//! their stored order (shards in listed order), so that, single-threaded, a model trained
//! from shards is bit-identical to one trained in memory on the concatenated rows.
//!
//! Warm start ([`fit_ffm`] / [`fit_lr`] with `init`): training starts from an existing
//! model's weights instead of random ones. The model file keeps weights only, so the
//! optimiser state starts fresh: FFM's `AdaGrad` squared-gradient sums at 1 (as in a cold
//! start), FTRL's `n` at 0 with `z` set so that the weights equal the model's.

use std::ops::DerefMut;

use crate::dataset::{Dataset, Row};
use crate::error::{Error, Result};
use crate::hash::MAX_BITS;
use crate::model::format::MAX_K;
use crate::model::{Algorithm, Header, Model};
#[cfg(target_arch = "x86_64")]
use crate::quads;
use crate::rng::SplitMix64;
use crate::shards::ShardSet;
use crate::simd::Kernel;
use crate::slots::{self, as_atomic, as_cells, as_pairs};
use crate::{ffm, lr, metrics};

/// Settings shared by both algorithms.
#[derive(Clone, Debug)]
pub struct Common {
    pub epochs: u32,
    /// Stop at the first epoch whose validation loss does not improve and keep the best
    /// epoch's weights (needs a validation set).
    pub auto_stop: bool,
    pub threads: usize,
    pub seed: u64,
    /// Hash bits of the model; `None`: the fewest covering the training set's indices.
    pub bits: Option<u32>,
    pub fingerprint: [u8; 32],
    /// Rate at which negatives were kept; scoring corrects for it.
    pub downsample_rate: f64,
    /// Shuffle the rows every epoch (and, from shards, the shard order); off: stored order.
    pub shuffle: bool,
}

impl Default for Common {
    fn default() -> Self {
        Common {
            epochs: 15,
            auto_stop: false,
            threads: 1,
            seed: 0,
            bits: None,
            fingerprint: [0; 32],
            downsample_rate: 1.0,
            shuffle: true,
        }
    }
}

/// FFM hyper-parameters (defaults are LIBFFM's).
#[derive(Clone, Debug)]
pub struct FfmParams {
    pub k: u32,
    pub eta: f32,
    pub l2: f32,
    pub normalize: bool,
    /// Train a global bias and per-feature linear terms beside the pairwise terms
    /// (bidscore's addition to `LIBFFM`'s model); off: `LIBFFM`'s model exactly, pairwise
    /// terms only (bias and linear weights stay 0, or a warm start's values).
    pub linear: bool,
    /// The kernel to train with; `None`: the process's ([`Kernel::active`]).
    pub kernel: Option<Kernel>,
    pub common: Common,
}

impl Default for FfmParams {
    fn default() -> Self {
        FfmParams {
            k: 4,
            eta: 0.2,
            l2: 2e-5,
            normalize: true,
            linear: true,
            kernel: None,
            common: Common::default(),
        }
    }
}

/// FTRL-Proximal hyper-parameters.
#[derive(Clone, Debug)]
pub struct LrParams {
    pub ftrl: lr::Ftrl,
    pub common: Common,
}

impl Default for LrParams {
    fn default() -> Self {
        LrParams {
            ftrl: lr::Ftrl {
                alpha: 0.1,
                beta: 1.0,
                l1: 0.0,
                l2: 0.0,
            },
            common: Common::default(),
        }
    }
}

/// A hyper-parameter default as a Python keyword argument shows it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DefaultValue {
    Int(u64),
    Float(f64),
    Bool(bool),
}

impl DefaultValue {
    /// An f32 parameter as written in decimal (`0.2`, not `0.20000000298...`): its
    /// shortest round-trip text read back as f64.
    fn float(x: f32) -> DefaultValue {
        DefaultValue::Float(x.to_string().parse().unwrap_or(f64::from(x)))
    }
}

impl Common {
    /// The keyword defaults shared by both algorithms (`bits` and `fingerprint`, which
    /// default to None and "", are left out).
    fn defaults(&self) -> [(&'static str, DefaultValue); 6] {
        [
            ("epochs", DefaultValue::Int(u64::from(self.epochs))),
            ("auto_stop", DefaultValue::Bool(self.auto_stop)),
            ("threads", DefaultValue::Int(self.threads as u64)),
            ("seed", DefaultValue::Int(self.seed)),
            ("downsample_rate", DefaultValue::Float(self.downsample_rate)),
            ("shuffle", DefaultValue::Bool(self.shuffle)),
        ]
    }
}

impl FfmParams {
    /// `train_ffm`'s keyword defaults, from [`FfmParams::default`]: the one source of them
    /// (the Python binding exposes this table as `rust_core.ffm_defaults()`).
    #[must_use]
    pub fn defaults() -> Vec<(&'static str, DefaultValue)> {
        let p = FfmParams::default();
        let mut out = vec![
            ("k", DefaultValue::Int(u64::from(p.k))),
            ("eta", DefaultValue::float(p.eta)),
            ("l2", DefaultValue::float(p.l2)),
            ("normalize", DefaultValue::Bool(p.normalize)),
            ("linear", DefaultValue::Bool(p.linear)),
        ];
        out.extend(p.common.defaults());
        out
    }
}

impl LrParams {
    /// `train_lr`'s keyword defaults, from [`LrParams::default`] (`rust_core.lr_defaults()`).
    #[must_use]
    pub fn defaults() -> Vec<(&'static str, DefaultValue)> {
        let p = LrParams::default();
        let f = p.ftrl;
        let mut out = vec![
            ("alpha", DefaultValue::float(f.alpha)),
            ("beta", DefaultValue::float(f.beta)),
            ("l1", DefaultValue::float(f.l1)),
            ("l2", DefaultValue::float(f.l2)),
        ];
        out.extend(p.common.defaults());
        out
    }
}

/// What one epoch reports to the progress callback.
#[derive(Clone, Copy, Debug)]
pub struct Epoch {
    pub epoch: u32,
    /// Mean weighted log loss over the epoch's rows, each taken before its update.
    pub train_logloss: f64,
    /// Mean weighted log loss of the epoch's weights on the validation set (uncalibrated).
    pub valid_logloss: Option<f64>,
}

/// Called after every epoch; an error stops training and is returned.
pub type Progress<'a> = &'a mut dyn FnMut(&Epoch) -> Result<()>;

/// Where the training rows come from.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    Memory(&'a Dataset),
    /// Shards on disk, read one at a time in the background (see the module docs).
    Shards(&'a ShardSet),
}

impl Source<'_> {
    fn num_rows(&self) -> u64 {
        match self {
            Source::Memory(d) => d.num_rows() as u64,
            Source::Shards(s) => s.num_rows(),
        }
    }

    fn num_fields(&self) -> u32 {
        match self {
            Source::Memory(d) => d.num_fields(),
            Source::Shards(s) => s.num_fields(),
        }
    }

    fn num_features(&self) -> u64 {
        match self {
            Source::Memory(d) => d.num_features(),
            Source::Shards(s) => s.num_features(),
        }
    }

    /// Weighted share of positives.
    fn base_rate(&self) -> f64 {
        match self {
            Source::Memory(d) => base_rate(d),
            Source::Shards(s) => s.base_rate(),
        }
    }

    /// Total importance weight, summed row by row in stored order.
    fn weight_sum(&self) -> f64 {
        match self {
            Source::Memory(d) => (0..d.num_rows()).map(|i| f64::from(d.weight(i))).sum(),
            Source::Shards(s) => s.weight_sum(),
        }
    }
}

/// Trains an FFM.
pub fn train_ffm(
    train: &Dataset,
    valid: Option<&Dataset>,
    p: &FfmParams,
    progress: Progress<'_>,
) -> Result<Model> {
    fit_ffm(Source::Memory(train), valid, p, None, progress)
}

/// Trains an FFM from `train`, starting from `init`'s weights if given (warm start; refused
/// unless `init` is an FFM of the same hash bits, fields, k, layout, normalisation and
/// feature-spec fingerprint).
pub fn fit_ffm(
    train: Source<'_>,
    valid: Option<&Dataset>,
    p: &FfmParams,
    init: Option<&Model>,
    progress: Progress<'_>,
) -> Result<Model> {
    check(p.eta > 0.0 && p.eta.is_finite(), || {
        format!("eta must be > 0, got {}", p.eta)
    })?;
    check(p.l2 >= 0.0 && p.l2.is_finite(), || {
        format!("l2 must be >= 0, got {}", p.l2)
    })?;
    check((1..=MAX_K).contains(&p.k), || {
        format!("k must be in 1..={MAX_K}, got {}", p.k)
    })?;
    let (bits, fields) = dims(&train, &p.common, init)?;
    let kernel = p.kernel.unwrap_or_else(Kernel::active).or_fallback();
    // Latent vectors padded to whole 4-lane chunks (except on the legacy path, which
    // reproduces format version 1's training).
    let stride = if kernel.pads() {
        p.k.div_ceil(4) * 4
    } else {
        p.k
    };
    let shape = ffm::Shape {
        bits,
        fields,
        k: p.k,
        stride,
        normalize: p.normalize,
    };
    let header = header(
        Algorithm::Ffm,
        (bits, fields, p.k, stride, p.normalize),
        &p.common,
    );
    let mut rng = SplitMix64::new(p.common.seed);
    // FFM keeps weights and squared-gradient sums interleaved in one array (the first of the
    // driver's two state arrays); the second stays empty.
    let (state, mut st) = ffm::TrainState::new(&shape, kernel).ok_or_else(too_big)?;
    // A warm start draws the same random numbers as a cold one, then overwrites the weights:
    // the row order of a seed does not depend on where the weights came from.
    state.init(&mut st, train.base_rate(), p.linear, &mut rng);
    if let Some(m) = init {
        check_init(m, &header)?;
        state.set_weights(&mut st, m.weights());
    }
    let sgd = ffm::Sgd {
        eta: p.eta,
        l2: p.l2,
        linear: p.linear,
    };
    let learner = Learner {
        single: &|train: &Dataset, st: &mut [f32], _: &mut [f32], row_ids: &[u32]| {
            let st = as_cells(st);
            let mut steps = state.pass(sgd, state.bias(st));
            let loss = pass(train, row_ids, |row, next, y, wt| {
                steps.step(st, (row, next), y, wt)
            });
            state.set_bias(st, steps.bias());
            loss
        },
        shared: &|train: &Dataset, st: &mut [f32], _: &mut [f32], order: &[u32], threads: usize| {
            // One Hogwild pass over a block of rows. The bias is every row's, so each thread
            // works on its own copy and adds its change back after each block.
            fn rows<S: slots::Write + ?Sized>(
                st: &S,
                (train, state, sgd): (&Dataset, &ffm::TrainState, ffm::Sgd),
                row_ids: &[u32],
            ) -> f64 {
                let before = state.bias(st);
                let mut steps = state.pass(sgd, before);
                let loss = pass(train, row_ids, |row, next, y, wt| {
                    steps.step(st, (row, next), y, wt)
                });
                state.add_bias(st, before, steps.bias());
                loss
            }
            let ctx = (train, &state, sgd);
            // The AVX kernels on a padded layout: 16-byte chunk accesses (see `Quads`).
            #[cfg(target_arch = "x86_64")]
            let st = if state.chunks_of_four() {
                // SAFETY: `chunks_of_four` says that this state's kernel reaches latent
                // weights only in chunks from multiples of 4, and linear weights and the bias
                // (which lie below the first block, itself 64-byte aligned) one or two lanes
                // at a time: no location is reached both ways.
                match unsafe { quads::as_quads(st) } {
                    Ok(st) => return hogwild(order, threads, |ids| rows(st, ctx, ids)),
                    Err(st) => st,
                }
            } else {
                st
            };
            // 64-bit atomics: a 4-lane weight chunk is two loads and two stores (see `Pairs`).
            // Latent sizes not a multiple of 4 go one lane at a time, for which a pair is
            // the wrong grain (a lone lane's store would be a compare-and-swap).
            let pairs = if state.pairs_aligned(st) {
                as_pairs(st)
            } else {
                Err(st)
            };
            match pairs {
                Ok(st) => hogwild(order, threads, |ids| rows(st, ctx, ids)),
                Err(st) => {
                    let st = as_atomic(st);
                    hogwild(order, threads, |ids| rows(st, ctx, ids))
                }
            }
        },
        weights: &|st: &[f32], _: &[f32]| state.weights(st),
    };
    run(
        train,
        valid,
        &p.common,
        &header,
        (st, Vec::new()),
        &learner,
        &mut rng,
        progress,
    )
}

/// Trains a logistic regression with FTRL-Proximal.
pub fn train_lr(
    train: &Dataset,
    valid: Option<&Dataset>,
    p: &LrParams,
    progress: Progress<'_>,
) -> Result<Model> {
    fit_lr(Source::Memory(train), valid, p, None, progress)
}

/// Trains a logistic regression from `train`, starting from `init`'s weights if given (warm
/// start; refused unless `init` is an LR of the same hash bits, fields and fingerprint).
pub fn fit_lr(
    train: Source<'_>,
    valid: Option<&Dataset>,
    p: &LrParams,
    init: Option<&Model>,
    progress: Progress<'_>,
) -> Result<Model> {
    let f = p.ftrl;
    check(f.alpha > 0.0 && f.alpha.is_finite(), || {
        format!("alpha must be > 0, got {}", f.alpha)
    })?;
    for (name, x) in [("beta", f.beta), ("l1", f.l1), ("l2", f.l2)] {
        check(x >= 0.0 && x.is_finite(), || {
            format!("{name} must be >= 0, got {x}")
        })?;
    }
    let (bits, fields) = dims(&train, &p.common, init)?;
    let shape = lr::Shape { bits, fields };
    let header = header(Algorithm::Lr, (bits, fields, 0, 0, false), &p.common);
    let len = shape.payload_len().ok_or_else(too_big)?;
    let mut rng = SplitMix64::new(p.common.seed);
    let learner = Learner {
        single: &|train: &Dataset, z: &mut [f32], n: &mut [f32], row_ids: &[u32]| {
            let (z, n) = (as_cells(z), as_cells(n));
            pass(train, row_ids, |row, _, y, wt| {
                f.train_row(z, n, &shape, row, y, wt)
            })
        },
        shared: &|train: &Dataset, z: &mut [f32], n: &mut [f32], order: &[u32], threads: usize| {
            let (z, n) = (as_atomic(z), as_atomic(n));
            hogwild(order, threads, |row_ids| {
                pass(train, row_ids, |row, _, y, wt| {
                    f.train_row(z, n, &shape, row, y, wt)
                })
            })
        },
        weights: &|z: &[f32], n: &[f32]| f.materialize(z, n),
    };
    let mut state = (vec![0.0f32; len], vec![0.0f32; len]);
    if let Some(m) = init {
        check_init(m, &header)?;
        check(f.beta > 0.0 || f.l2 > 0.0, || {
            "a warm-started LR needs beta > 0 or l2 > 0 (with both 0 FTRL cannot hold weights \
             before its first update)"
                .into()
        })?;
        for (i, (&w, z)) in m.weights().iter().zip(state.0.iter_mut()).enumerate() {
            *z = f.state_for(i, w);
        }
    }
    run(
        train, valid, &p.common, &header, state, &learner, &mut rng, progress,
    )
}

type Single<'a> = &'a (dyn Fn(&Dataset, &mut [f32], &mut [f32], &[u32]) -> f64 + Sync);
type Shared<'a> = &'a (dyn Fn(&Dataset, &mut [f32], &mut [f32], &[u32], usize) -> f64 + Sync);
type Extract<'a> = &'a (dyn Fn(&[f32], &[f32]) -> Vec<f32> + Sync);

/// An algorithm as the driver sees it: a pass over some rows on exclusive state (one thread)
/// or over the epoch's rows on `threads` threads sharing the state through atomics of the
/// algorithm's choice (Hogwild, see [`hogwild`]), and the model weights derived from the
/// state.
struct Learner<'a> {
    single: Single<'a>,
    shared: Shared<'a>,
    weights: Extract<'a>,
}

/// One pass of `step` over `row_ids`. Rows come in shuffled order, so each is a cache miss:
/// while row `i` trains, row `i + 4`'s offsets and row `i + 2`'s features are on their way,
/// and `step` gets row `i + 1` to start fetching its weights (FFM does).
fn pass(
    data: &Dataset,
    row_ids: &[u32],
    mut step: impl FnMut(Row<'_>, Option<Row<'_>>, f32, f32) -> f64,
) -> f64 {
    let labels = data.labels();
    let mut loss = 0.0;
    for (n, &i) in row_ids.iter().enumerate() {
        if let Some(&far) = row_ids.get(n + 4) {
            data.prefetch_offsets(far as usize);
        }
        if let Some(&next) = row_ids.get(n + 2) {
            data.prefetch_row(next as usize);
        }
        let next = row_ids.get(n + 1).map(|&j| data.row(j as usize));
        let i = i as usize;
        loss += step(data.row(i), next, labels[i], data.weight(i));
    }
    loss
}

/// Rows a Hogwild thread claims at a time: large enough that the shared counter is touched
/// rarely, small enough that a thread the OS preempts (the machine is shared) does not
/// leave the other waiting for its fixed half at the end of the epoch.
const BLOCK: usize = 4096;

/// Runs `pass` on `threads` threads that take contiguous blocks of `order` until none is
/// left (the threads share whatever state `pass` captures) and returns the sum of the
/// losses.
fn hogwild(order: &[u32], threads: usize, pass: impl Fn(&[u32]) -> f64 + Sync) -> f64 {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut loss = 0.0;
        loop {
            let start = next.fetch_add(BLOCK, std::sync::atomic::Ordering::Relaxed);
            match order.get(start..) {
                Some(ids) if !ids.is_empty() => loss += pass(&ids[..ids.len().min(BLOCK)]),
                _ => return loss,
            }
        }
    };
    let work = &work;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1)).map(|_| s.spawn(work)).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .sum()
    })
}

#[expect(clippy::too_many_arguments, reason = "internal driver, called twice")]
fn run<A: DerefMut<Target = [f32]>, B: DerefMut<Target = [f32]>>(
    train: Source<'_>,
    valid: Option<&Dataset>,
    c: &Common,
    header: &Header,
    state: (A, B),
    learner: &Learner<'_>,
    rng: &mut SplitMix64,
    progress: Progress<'_>,
) -> Result<Model> {
    match train {
        Source::Memory(data) => {
            let rows = u32::try_from(data.num_rows())
                .map_err(|_| Error::InvalidArgument("at most 2^32 - 1 training rows".into()))?;
            let threads = c.threads.min(rows as usize).max(1);
            let mut order: Vec<u32> = (0..rows).collect();
            let mut epoch_pass = |a: &mut [f32], b: &mut [f32]| {
                if c.shuffle {
                    rng.shuffle(&mut order);
                }
                Ok(if threads == 1 {
                    (learner.single)(data, a, b, &order)
                } else {
                    (learner.shared)(data, a, b, &order, threads)
                })
            };
            epochs(
                train,
                valid,
                c,
                header,
                state,
                learner,
                &mut epoch_pass,
                progress,
            )
        }
        Source::Shards(set) => std::thread::scope(|s| {
            let orders = set.epoch_orders(c.epochs, c.seed, c.shuffle);
            let shards_per_epoch = set.shards().len();
            let incoming = set.stream(s, orders);
            let mut order: Vec<u32> = Vec::new();
            let mut epoch_pass = |a: &mut [f32], b: &mut [f32]| {
                let mut loss = 0.0;
                for _ in 0..shards_per_epoch {
                    let data = incoming.recv().map_err(|_| {
                        Error::Data("the shard reader stopped before the epoch ended".into())
                    })??;
                    let rows = u32::try_from(data.num_rows()).map_err(|_| {
                        Error::InvalidArgument("at most 2^32 - 1 rows per shard".into())
                    })?;
                    check(data.num_fields() <= set.num_fields(), || {
                        "a shard has more fields than its meta.json says".into()
                    })?;
                    order.clear();
                    order.extend(0..rows);
                    if c.shuffle {
                        rng.shuffle(&mut order);
                    }
                    let threads = c.threads.min(rows as usize).max(1);
                    loss += if threads == 1 {
                        (learner.single)(&data, a, b, &order)
                    } else {
                        (learner.shared)(&data, a, b, &order, threads)
                    };
                }
                Ok(loss)
            };
            // Returning drops `incoming`, which stops the reader if training ended early.
            epochs(
                train,
                valid,
                c,
                header,
                state,
                learner,
                &mut epoch_pass,
                progress,
            )
        }),
    }
}

/// One epoch's training on the state `(a, b)`, returning the summed loss.
type EpochPass<'a> = &'a mut dyn FnMut(&mut [f32], &mut [f32]) -> Result<f64>;

/// The epoch loop: `epoch_pass` trains one epoch on the state and returns the summed loss.
#[expect(clippy::too_many_arguments, reason = "internal driver, called twice")]
fn epochs<A: DerefMut<Target = [f32]>, B: DerefMut<Target = [f32]>>(
    train: Source<'_>,
    valid: Option<&Dataset>,
    c: &Common,
    header: &Header,
    state: (A, B),
    learner: &Learner<'_>,
    epoch_pass: EpochPass<'_>,
    progress: Progress<'_>,
) -> Result<Model> {
    let (mut a, mut b) = state;
    let weight_sum = train.weight_sum();
    check(weight_sum > 0.0, || {
        "training rows have zero total weight".into()
    })?;
    let mut best: Option<(f64, u32, Model)> = None;
    let mut last = None;
    for epoch in 1..=c.epochs {
        let loss = epoch_pass(&mut a, &mut b)?;
        let needed = valid.is_some() || epoch == c.epochs;
        let model = if needed {
            Some(Model::new(header.clone(), (learner.weights)(&a, &b)).map_err(|_| {
                Error::InvalidArgument(format!(
                    "training diverged in epoch {epoch} (non-finite weights); lower the learning rate"
                ))
            })?)
        } else {
            None
        };
        let valid_logloss = match (valid, &model) {
            (Some(v), Some(m)) => Some(metrics::logloss(
                &m.predict_uncalibrated(v),
                v.labels(),
                v.weights(),
            )),
            _ => None,
        };
        progress(&Epoch {
            epoch,
            train_logloss: loss / weight_sum,
            valid_logloss,
        })?;
        match (c.auto_stop, valid_logloss, model) {
            (true, Some(vl), Some(m)) => {
                if best.as_ref().is_some_and(|(b, _, _)| vl >= *b) {
                    break;
                }
                best = Some((vl, epoch, m));
            }
            (_, _, m) => last = m.or(last),
        }
    }
    match best {
        Some((_, epoch, m)) => Ok(m.with_best_epoch(Some(epoch))),
        None => last.ok_or_else(|| Error::InvalidArgument("epochs must be >= 1".into())),
    }
}

fn check(ok: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(msg()))
    }
}

fn too_big() -> Error {
    Error::InvalidArgument("model too large for this machine's address space".into())
}

/// Hash bits and field count of a model for this training set (and warm start, whose model
/// fixes both: the data may have fewer fields than it, not more).
fn dims(train: &Source<'_>, c: &Common, init: Option<&Model>) -> Result<(u32, u32)> {
    check(c.epochs >= 1, || "epochs must be >= 1".into())?;
    check(c.threads >= 1, || "threads must be >= 1".into())?;
    check(c.downsample_rate > 0.0 && c.downsample_rate <= 1.0, || {
        format!(
            "downsample_rate must be in (0, 1], got {}",
            c.downsample_rate
        )
    })?;
    check(train.num_rows() > 0, || {
        "the training set has no rows".into()
    })?;
    check(train.num_fields() > 0, || {
        "the training set has no features".into()
    })?;
    let bits = if let Some(b) = c.bits {
        check((1..=MAX_BITS).contains(&b), || {
            format!("bits must be in 1..={MAX_BITS}, got {b}")
        })?;
        b
    } else if let Some(m) = init {
        m.hash_bits()
    } else {
        let needed = 64 - train.num_features().saturating_sub(1).leading_zeros();
        needed.clamp(1, MAX_BITS)
    };
    let fields = match init {
        Some(m) if train.num_fields() <= m.num_fields() => m.num_fields(),
        Some(m) => {
            return Err(Error::Data(format!(
                "cannot warm-start: the training data has {} fields, the initial model {}",
                train.num_fields(),
                m.num_fields()
            )))
        }
        None => train.num_fields(),
    };
    Ok((bits, fields))
}

/// Refuses a warm-start model that does not have the shape `header` describes.
fn check_init(m: &Model, header: &Header) -> Result<()> {
    let h = m.header();
    let hex = |f: &[u8; 32]| {
        use std::fmt::Write as _;
        f.iter().fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    };
    let mismatch = if h.algorithm != header.algorithm {
        Some(format!(
            "algorithm {} where {} is trained",
            h.algorithm.name(),
            header.algorithm.name()
        ))
    } else if h.bits != header.bits {
        Some(format!(
            "{} hash bits where training uses {}",
            h.bits, header.bits
        ))
    } else if h.fields != header.fields {
        Some(format!(
            "{} fields where training has {}",
            h.fields, header.fields
        ))
    } else if h.k != header.k {
        Some(format!("k = {} where training uses k = {}", h.k, header.k))
    } else if h.stride != header.stride {
        Some(format!(
            "latent stride {} where this kernel trains {} (a model of another kernel family)",
            h.stride, header.stride
        ))
    } else if h.normalize != header.normalize {
        Some(format!(
            "normalize = {} where training uses normalize = {}",
            h.normalize, header.normalize
        ))
    } else if h.fingerprint != header.fingerprint {
        Some(format!(
            "feature-spec fingerprint {} where training uses {}",
            hex(&h.fingerprint),
            hex(&header.fingerprint)
        ))
    } else {
        None
    };
    match mismatch {
        Some(why) => Err(Error::Data(format!(
            "cannot warm-start from this model: it has {why}"
        ))),
        None => Ok(()),
    }
}

/// The header of a model with dimensions `(bits, fields, k, stride, normalize)`.
fn header(algorithm: Algorithm, dims: (u32, u32, u32, u32, bool), c: &Common) -> Header {
    let (bits, fields, k, stride, normalize) = dims;
    Header {
        algorithm,
        bits,
        fields,
        k,
        stride,
        normalize,
        fingerprint: c.fingerprint,
        downsample_rate: c.downsample_rate,
    }
}

/// Weighted share of positives in the training set.
fn base_rate(train: &Dataset) -> f64 {
    let (mut pos, mut all) = (0.0f64, 0.0f64);
    for (i, &y) in train.labels().iter().enumerate() {
        let w = f64::from(train.weight(i));
        pos += w * f64::from(y);
        all += w;
    }
    if all > 0.0 {
        pos / all
    } else {
        0.5
    }
}

#[cfg(test)]
mod tests;
