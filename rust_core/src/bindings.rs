//! The Python extension module `rust_core`: conversions between Python and the core, and
//! nothing else. Compute calls release the GIL.

use pyo3::prelude::*;

/// Bucket of each token in a `2^bits` hash space (XXH3-64 with `seed`, low bits).
#[pyfunction]
#[pyo3(signature = (tokens, *, seed, bits))]
fn hash_tokens<'py>(
    py: Python<'py>,
    tokens: Vec<String>,
    seed: u64,
    bits: u32,
) -> PyResult<Bound<'py, numpy::PyArray1<u32>>> {
    if bits == 0 || bits > crate::hash::MAX_BITS {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
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
    m.add_function(wrap_pyfunction!(hash_tokens, m)?)?;
    Ok(())
}
