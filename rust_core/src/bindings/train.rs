//! `rust_core.train_ffm` and `rust_core.train_lr`: training with the GIL released, which is
//! reacquired only to call the optional progress callback once per epoch.

use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::dataset::PyDataset;
use super::model::PyModel;
use super::shards::PyShardedDataset;
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::shards::ShardSet;
use crate::train::{self, Common, DefaultValue, Epoch, FfmParams, LrParams, Source};

/// Training rows held past the GIL's release: in memory or shards on disk.
enum Rows {
    Memory(Arc<Dataset>),
    Shards(Arc<ShardSet>),
}

impl Rows {
    fn extract(train: &Bound<'_, PyAny>) -> PyResult<Rows> {
        if let Ok(d) = train.cast::<PyDataset>() {
            return Ok(Rows::Memory(Arc::clone(&d.get().inner)));
        }
        if let Ok(s) = train.cast::<PyShardedDataset>() {
            return Ok(Rows::Shards(Arc::clone(&s.get().inner)));
        }
        let got = train
            .get_type()
            .name()
            .map_or_else(|_| "?".into(), |n| n.to_string());
        Err(PyTypeError::new_err(format!(
            "train must be a Dataset or a ShardedDataset, got {got}"
        )))
    }

    fn source(&self) -> Source<'_> {
        match self {
            Rows::Memory(d) => Source::Memory(d),
            Rows::Shards(s) => Source::Shards(s),
        }
    }
}

fn fingerprint(hex: &str) -> PyResult<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.is_empty() {
        return Ok(out);
    }
    let bad = || PyValueError::new_err(format!("fingerprint must be 64 hex digits, got {hex:?}"));
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Runs `fit` without the GIL; the callback (if any) is called with the GIL per epoch. An
/// exception raised by the callback stops training and is re-raised as is.
#[expect(
    clippy::needless_pass_by_value,
    reason = "the callback moves into the closure"
)]
fn run(
    py: Python<'_>,
    progress: Option<Py<PyAny>>,
    fit: impl FnOnce(&mut dyn FnMut(&Epoch) -> Result<()>) -> Result<Model> + Send,
) -> PyResult<PyModel> {
    let mut raised: Option<PyErr> = None;
    let result = py.detach(|| {
        let mut report = |e: &Epoch| -> Result<()> {
            let Some(cb) = &progress else { return Ok(()) };
            Python::attach(|py| {
                cb.call1(py, (e.epoch, e.train_logloss, e.valid_logloss))
                    .map(drop)
            })
            .map_err(|err| {
                raised = Some(err);
                Error::Interrupted
            })
        };
        fit(&mut report)
    });
    match (result, raised) {
        (_, Some(err)) => Err(err),
        (Ok(m), None) => Ok(PyModel { inner: Arc::new(m) }),
        (Err(e), None) => Err(e.into()),
    }
}

fn common(
    (epochs, auto_stop, threads, seed): (u32, bool, usize, u64),
    bits: Option<u32>,
    fingerprint_hex: &str,
    downsample_rate: f64,
    shuffle: bool,
) -> PyResult<Common> {
    Ok(Common {
        shuffle,
        epochs,
        auto_stop,
        threads,
        seed,
        bits,
        fingerprint: fingerprint(fingerprint_hex)?,
        downsample_rate,
    })
}

fn defaults_dict<'py>(
    py: Python<'py>,
    table: &[(&'static str, DefaultValue)],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for &(name, value) in table {
        match value {
            DefaultValue::Int(x) => d.set_item(name, x)?,
            DefaultValue::Float(x) => d.set_item(name, x)?,
            DefaultValue::Bool(x) => d.set_item(name, x)?,
        }
    }
    Ok(d)
}

/// `train_ffm`'s keyword defaults, from Rust's `FfmParams::default()`.
#[pyfunction]
pub fn ffm_defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    defaults_dict(py, &FfmParams::defaults())
}

/// `train_lr`'s keyword defaults, from Rust's `LrParams::default()`.
#[pyfunction]
pub fn lr_defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    defaults_dict(py, &LrParams::defaults())
}

// The keyword defaults below repeat `FfmParams::default()` / `LrParams::default()` as
// literals: pyo3 shows only literal defaults in `__text_signature__` (any other expression
// becomes `...`, and `inspect.signature` would lose the values). A unit test
// (`train::tests::binding_signatures_repeat_the_default_structs`) reads this file and
// checks every literal against the structs.

/// Trains a field-aware factorization machine (`LIBFFM`'s `AdaGrad`, plus bias and linear terms
/// unless `linear` is false).
#[pyfunction]
#[pyo3(signature = (train, valid=None, *, k=4, eta=0.2, l2=2e-5, epochs=15, auto_stop=false,
                    normalize=true, linear=true, threads=1, seed=0, bits=None, fingerprint="",
                    downsample_rate=1.0, shuffle=true, progress=None, kernel=None, init=None))]
#[expect(
    clippy::too_many_arguments,
    clippy::fn_params_excessive_bools,
    reason = "mirrors the Python keyword arguments"
)]
pub fn train_ffm(
    py: Python<'_>,
    train: &Bound<'_, PyAny>,
    valid: Option<&PyDataset>,
    k: u32,
    eta: f32,
    l2: f32,
    epochs: u32,
    auto_stop: bool,
    normalize: bool,
    linear: bool,
    threads: usize,
    seed: u64,
    bits: Option<u32>,
    fingerprint: &str,
    downsample_rate: f64,
    shuffle: bool,
    progress: Option<Py<PyAny>>,
    kernel: Option<&str>,
    init: Option<PyRef<'_, PyModel>>,
) -> PyResult<PyModel> {
    let common = common(
        (epochs, auto_stop, threads, seed),
        bits,
        fingerprint,
        downsample_rate,
        shuffle,
    )?;
    let params = FfmParams {
        k,
        eta,
        l2,
        normalize,
        linear,
        kernel: Some(super::kernel(kernel)?),
        common,
    };
    let (t, v) = (Rows::extract(train)?, valid.map(|v| Arc::clone(&v.inner)));
    let init = init.map(|m| Arc::clone(&m.inner));
    run(py, progress, move |cb| {
        train::fit_ffm(t.source(), v.as_deref(), &params, init.as_deref(), cb)
    })
}

/// Trains a logistic regression with FTRL-Proximal.
#[pyfunction]
#[pyo3(signature = (train, valid=None, *, alpha=0.1, beta=1.0, l1=0.0, l2=0.0, epochs=15,
                    auto_stop=false, threads=1, seed=0, bits=None, fingerprint="",
                    downsample_rate=1.0, shuffle=true, progress=None, init=None))]
#[expect(
    clippy::too_many_arguments,
    reason = "mirrors the Python keyword arguments"
)]
pub fn train_lr(
    py: Python<'_>,
    train: &Bound<'_, PyAny>,
    valid: Option<&PyDataset>,
    alpha: f32,
    beta: f32,
    l1: f32,
    l2: f32,
    epochs: u32,
    auto_stop: bool,
    threads: usize,
    seed: u64,
    bits: Option<u32>,
    fingerprint: &str,
    downsample_rate: f64,
    shuffle: bool,
    progress: Option<Py<PyAny>>,
    init: Option<PyRef<'_, PyModel>>,
) -> PyResult<PyModel> {
    let common = common(
        (epochs, auto_stop, threads, seed),
        bits,
        fingerprint,
        downsample_rate,
        shuffle,
    )?;
    let params = LrParams {
        ftrl: crate::lr::Ftrl {
            alpha,
            beta,
            l1,
            l2,
        },
        common,
    };
    let (t, v) = (Rows::extract(train)?, valid.map(|v| Arc::clone(&v.inner)));
    let init = init.map(|m| Arc::clone(&m.inner));
    run(py, progress, move |cb| {
        train::fit_lr(t.source(), v.as_deref(), &params, init.as_deref(), cb)
    })
}
