//! `rust_core.Dataset`: CSR data from numpy arrays (zero-copy) or LIBFFM files.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{Element, PyArray1, PyArrayMethods as _, PyUntypedArrayMethods as _};
use pyo3::prelude::*;

use super::DataError;
use crate::dataset::{Buf, Dataset};

/// A validated sparse dataset (rows of `(field, index, value)`, labels, optional weights).
#[pyclass(name = "Dataset", module = "rust_core", frozen)]
pub struct PyDataset {
    pub(crate) inner: Arc<Dataset>,
}

/// Borrows a 1-d numpy array of element type `T` as a `Buf<U>` without copying, or `None`
/// if the array is not of type `T`.
///
/// Aliasing contract: the `Buf` keeps a strong reference to the array, so its memory stays
/// alive as long as the dataset does. To keep Python from writing the memory while Rust
/// reads it without the GIL, the array is frozen (`flags.writeable = False`); writes through
/// some other writeable view of the same memory are the caller's to avoid, as with any
/// numpy consumer that releases the GIL.
fn borrow<T: Element + 'static, U: bytemuck::Pod>(
    name: &str,
    obj: &Bound<'_, PyAny>,
) -> PyResult<Option<Buf<U>>> {
    const { assert!(size_of::<T>() == size_of::<U>() && align_of::<T>() == align_of::<U>()) };
    let Ok(arr) = obj.cast::<PyArray1<T>>() else {
        return Ok(None);
    };
    if !arr.is_c_contiguous() {
        return Err(DataError::new_err(format!(
            "{name} must be a contiguous array"
        )));
    }
    let len = arr.len();
    if len == 0 {
        return Ok(Some(Buf::from_vec(Vec::new())));
    }
    let ptr = arr.data().cast_const().cast::<U>();
    if !ptr.is_aligned() {
        return Err(DataError::new_err(format!(
            "{name} is not aligned for its element type"
        )));
    }
    arr.getattr("flags")?.setattr("writeable", false)?;
    let owner: Py<PyArray1<T>> = arr.clone().unbind();
    // SAFETY: `ptr` is the non-null, aligned (checked) start of `len` initialised, contiguous
    // elements of the array; T and U have the same size and alignment and are plain old data
    // (every bit pattern valid: the u64/i64 and u32/i32 pairs and f32). `owner` keeps the
    // array, and so its memory, alive; the array is frozen against writes (contract above).
    Ok(Some(unsafe {
        Buf::from_foreign(ptr, len, Box::new(owner))
    }))
}

fn wrong_type(name: &str, expected: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    let got = obj
        .getattr("dtype")
        .and_then(|d| d.str().map(|s| s.to_string()))
        .unwrap_or_else(|_| {
            obj.get_type()
                .name()
                .map_or_else(|_| "?".into(), |n| n.to_string())
        });
    DataError::new_err(format!(
        "{name} must be a 1-d numpy array of {expected}, got {got}"
    ))
}

fn u64_like(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Buf<u64>> {
    if let Some(b) = borrow::<u64, u64>(name, obj)? {
        return Ok(b);
    }
    // Non-negative int64 has the same bits as uint64; negative values fail validation.
    borrow::<i64, u64>(name, obj)?.ok_or_else(|| wrong_type(name, "uint64 or int64", obj))
}

fn u32_like(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Buf<u32>> {
    if let Some(b) = borrow::<u32, u32>(name, obj)? {
        return Ok(b);
    }
    // Negative int32 field ids become huge and are refused by validation.
    borrow::<i32, u32>(name, obj)?.ok_or_else(|| wrong_type(name, "uint32 or int32", obj))
}

fn f32s(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Buf<f32>> {
    borrow::<f32, f32>(name, obj)?.ok_or_else(|| wrong_type(name, "float32", obj))
}

#[pymethods]
impl PyDataset {
    /// Reads a LIBFFM text file (`label field:index:value ...`).
    #[staticmethod]
    #[expect(
        clippy::needless_pass_by_value,
        reason = "pyo3 extracts owned arguments"
    )]
    fn from_libffm(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let d = py.detach(|| crate::libffm::read_path(&path))?;
        Ok(PyDataset { inner: Arc::new(d) })
    }

    /// Wraps CSR numpy arrays without copying them (see the aliasing contract: the arrays
    /// are made read-only).
    #[staticmethod]
    #[pyo3(signature = (indptr, fields, indices, values, labels, weights=None))]
    fn from_csr(
        py: Python<'_>,
        indptr: &Bound<'_, PyAny>,
        fields: &Bound<'_, PyAny>,
        indices: &Bound<'_, PyAny>,
        values: &Bound<'_, PyAny>,
        labels: &Bound<'_, PyAny>,
        weights: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let indptr = u64_like("indptr", indptr)?;
        let fields = u32_like("fields", fields)?;
        let indices = u32_like("indices", indices)?;
        let values = f32s("values", values)?;
        let labels = f32s("labels", labels)?;
        let weights = weights.map(|w| f32s("weights", w)).transpose()?;
        let d =
            py.detach(|| Dataset::from_bufs(indptr, fields, indices, values, labels, weights))?;
        Ok(PyDataset { inner: Arc::new(d) })
    }

    #[getter]
    fn num_rows(&self) -> usize {
        self.inner.num_rows()
    }

    /// One more than the largest field id.
    #[getter]
    fn num_fields(&self) -> u32 {
        self.inner.num_fields()
    }

    /// One more than the largest feature index.
    #[getter]
    fn num_features(&self) -> u64 {
        self.inner.num_features()
    }

    #[getter]
    fn nnz(&self) -> usize {
        self.inner.nnz()
    }

    /// A copy of the labels.
    #[getter]
    fn labels<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        PyArray1::from_slice(py, self.inner.labels())
    }

    /// A copy of the importance weights, or None.
    #[getter]
    fn weights<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyArray1<f32>>> {
        self.inner.weights().map(|w| PyArray1::from_slice(py, w))
    }

    fn __len__(&self) -> usize {
        self.inner.num_rows()
    }

    fn __repr__(&self) -> String {
        let d = &self.inner;
        format!(
            "Dataset(rows={}, nnz={}, fields={}, features={})",
            d.num_rows(),
            d.nnz(),
            d.num_fields(),
            d.num_features()
        )
    }
}
