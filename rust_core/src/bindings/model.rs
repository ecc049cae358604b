//! `rust_core.Model` and `rust_core.load_model`: scoring, saving, loading (memory-mapped).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use numpy::PyArray1;
use pyo3::prelude::*;

use super::dataset::PyDataset;
use crate::model::Model;

/// A trained LR or FFM model. Scoring releases the GIL; safe to share across threads.
#[pyclass(name = "Model", module = "rust_core", frozen)]
pub struct PyModel {
    pub(crate) inner: Arc<Model>,
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Memory-maps a model file and verifies it completely; with `huge_pages`, then copies the
/// weights into private memory backed by transparent huge pages (load before forking
/// workers so that they share the copy).
#[pyfunction]
#[pyo3(signature = (path, *, huge_pages=false))]
#[expect(
    clippy::needless_pass_by_value,
    reason = "pyo3 extracts owned arguments"
)]
pub fn load_model(py: Python<'_>, path: PathBuf, huge_pages: bool) -> PyResult<PyModel> {
    let m = py.detach(|| {
        if huge_pages {
            Model::load_huge(&path)
        } else {
            Model::load(&path)
        }
    })?;
    Ok(PyModel { inner: Arc::new(m) })
}

#[pymethods]
impl PyModel {
    /// Calibrated probabilities of every row; `kernel` names an FFM kernel to use instead
    /// of the process's (tests, benchmarks).
    #[pyo3(signature = (dataset, *, kernel=None))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        dataset: &PyDataset,
        kernel: Option<&str>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let kernel = super::kernel(kernel)?;
        let (m, d) = (Arc::clone(&self.inner), Arc::clone(&dataset.inner));
        let p = py.detach(move || m.predict_with(kernel, &d));
        Ok(PyArray1::from_vec(py, p))
    }

    /// Calibrated probability of one row given as parallel sequences.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "pyo3 extracts owned arguments"
    )]
    fn predict_row(&self, fields: Vec<u32>, indices: Vec<u32>, values: Vec<f32>) -> PyResult<f32> {
        if fields.len() != indices.len() || fields.len() != values.len() {
            return Err(super::DataError::new_err(format!(
                "fields, indices and values differ in length: {}, {}, {}",
                fields.len(),
                indices.len(),
                values.len()
            )));
        }
        Ok(self.inner.predict_row(&fields, &indices, &values))
    }

    /// Writes the model atomically (temporary file, then rename).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let m = Arc::clone(&self.inner);
        py.detach(move || m.save(&path))?;
        Ok(())
    }

    /// "lr" or "ffm".
    #[getter]
    fn algorithm(&self) -> &'static str {
        self.inner.algorithm().name()
    }

    #[getter]
    fn hash_bits(&self) -> u32 {
        self.inner.hash_bits()
    }

    #[getter]
    fn num_fields(&self) -> u32 {
        self.inner.num_fields()
    }

    #[getter]
    fn k(&self) -> u32 {
        self.inner.k()
    }

    #[getter]
    fn normalize(&self) -> bool {
        self.inner.header().normalize
    }

    /// The feature-spec fingerprint (SHA-256) as 64 hex digits.
    #[getter]
    fn fingerprint(&self) -> String {
        hex(&self.inner.fingerprint())
    }

    #[getter]
    fn downsample_rate(&self) -> f64 {
        self.inner.downsample_rate()
    }

    /// XXH3-64 of the payload, 16 hex digits.
    #[getter]
    fn checksum(&self) -> String {
        format!("{:016x}", self.inner.checksum())
    }

    /// Epoch whose weights early stopping kept (None without early stopping or after load).
    #[getter]
    fn best_epoch(&self) -> Option<u32> {
        self.inner.best_epoch()
    }

    /// Floats per latent vector: k plus zero padding (0 for LR).
    #[getter]
    fn stride(&self) -> u32 {
        self.inner.header().stride
    }

    /// Whether the weights are a private copy in huge pages (`load_model(huge_pages=True)`).
    #[getter]
    fn huge_pages(&self) -> bool {
        self.inner.is_huge()
    }

    /// Whether the weights are a memory-mapped file.
    #[getter]
    fn mapped(&self) -> bool {
        self.inner.is_mapped()
    }

    fn __repr__(&self) -> String {
        let m = &self.inner;
        format!(
            "Model(algorithm={:?}, bits={}, fields={}, k={}, checksum={:016x})",
            m.algorithm().name(),
            m.hash_bits(),
            m.num_fields(),
            m.k(),
            m.checksum()
        )
    }
}
