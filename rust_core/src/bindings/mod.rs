//! The Python extension module `rust_core`: conversions between Python and the core, and
//! nothing else. Compute calls release the GIL (`py.detach`); the crate's one error enum is
//! converted to Python exceptions here, once.

mod dataset;
mod model;
mod plan;
mod scorer;
mod shards;
mod train;

use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::Error;
use crate::simd::Kernel;

pyo3::create_exception!(
    rust_core,
    ModelFormatError,
    PyValueError,
    "A model file that is truncated, corrupted or not a bidscore model file."
);
pyo3::create_exception!(
    rust_core,
    DataError,
    PyValueError,
    "Malformed training or scoring data; the message names the file and line or the array."
);

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let msg = e.to_string();
        match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                PyFileNotFoundError::new_err(msg)
            }
            Error::Io { .. } => PyOSError::new_err(msg),
            Error::Format(_) => ModelFormatError::new_err(msg),
            Error::Data(_) => DataError::new_err(msg),
            Error::InvalidArgument(_) => PyValueError::new_err(msg),
            Error::BadRequest(m) => scorer::score_error("INVALID_ARGUMENT", m),
            Error::NotFound(m) => scorer::score_error("NOT_FOUND", m),
            Error::Interrupted => PyRuntimeError::new_err(msg),
        }
    }
}

/// The FFM kernel named `name` (`None`: the process's choice), refused unless this CPU
/// can run it.
pub(crate) fn kernel(name: Option<&str>) -> PyResult<Kernel> {
    let Some(name) = name else {
        return Ok(Kernel::active());
    };
    let available: Vec<&str> = Kernel::ALL
        .into_iter()
        .filter(|k| k.available())
        .map(Kernel::name)
        .collect();
    match Kernel::from_name(name) {
        Some(k) if k.available() => Ok(k),
        _ => Err(PyValueError::new_err(format!(
            "kernel {name:?} is not available on this CPU (available: {})",
            available.join(", ")
        ))),
    }
}

/// What the FFM kernel dispatch chose and why: `{"kernel": name, "chosen_by": "auto" |
/// "BIDSCORE_KERNEL=...", "available": [names], "features": {cpu feature: bool}}`.
#[pyfunction]
fn cpu_features(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let (chosen, how, available, features) = crate::simd::report();
    let d = PyDict::new(py);
    d.set_item("kernel", chosen.name())?;
    d.set_item("chosen_by", how)?;
    let names: Vec<&str> = available.into_iter().map(Kernel::name).collect();
    d.set_item("available", names)?;
    let f = PyDict::new(py);
    for (name, has) in features {
        f.set_item(name, has)?;
    }
    d.set_item("features", f)?;
    Ok(d)
}

/// Bucket of each token in a `2^bits` hash space (XXH3-64 with `seed`, low bits).
#[pyfunction]
#[pyo3(signature = (tokens, *, seed, bits))]
#[expect(
    clippy::needless_pass_by_value,
    reason = "pyo3 extracts owned arguments"
)]
fn hash_tokens(
    py: Python<'_>,
    tokens: Vec<String>,
    seed: u64,
    bits: u32,
) -> PyResult<Bound<'_, numpy::PyArray1<u32>>> {
    if bits == 0 || bits > crate::hash::MAX_BITS {
        return Err(PyValueError::new_err(format!(
            "bits must be in 1..={}, got {bits}",
            crate::hash::MAX_BITS
        )));
    }
    let out: Vec<u32> = py.detach(|| {
        tokens
            .iter()
            .map(|t| crate::hash::bucket(t.as_bytes(), seed, bits))
            .collect()
    });
    Ok(numpy::PyArray1::from_vec(py, out))
}

#[pymodule]
fn rust_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_function(wrap_pyfunction!(hash_tokens, m)?)?;
    m.add_function(wrap_pyfunction!(cpu_features, m)?)?;
    m.add("ModelFormatError", py.get_type::<ModelFormatError>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add_class::<dataset::PyDataset>()?;
    m.add_class::<shards::PyShardedDataset>()?;
    m.add_class::<model::PyModel>()?;
    m.add_function(wrap_pyfunction!(model::load_model, m)?)?;
    m.add_function(wrap_pyfunction!(train::train_ffm, m)?)?;
    m.add_function(wrap_pyfunction!(train::train_lr, m)?)?;
    m.add_function(wrap_pyfunction!(train::ffm_defaults, m)?)?;
    m.add_function(wrap_pyfunction!(train::lr_defaults, m)?)?;
    m.add_class::<plan::PyFeaturePlan>()?;
    m.add_class::<scorer::PyScorer>()?;
    m.add_function(wrap_pyfunction!(scorer::experiment_bucket, m)?)?;
    m.add("ScoreError", py.get_type::<scorer::ScoreError>())?;
    Ok(())
}
