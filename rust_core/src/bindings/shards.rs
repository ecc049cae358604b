//! `rust_core.ShardedDataset`: training rows in CSR shards on disk, streamed by training.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::shards::{ShardSet, DEFAULT_PREFETCH};

/// Shards on disk (a shard root with `shards.json`, or a list of shard directories) that
/// `train_ffm` / `train_lr` read one at a time in the background instead of loading.
#[pyclass(name = "ShardedDataset", module = "rust_core", frozen)]
pub struct PyShardedDataset {
    pub(crate) inner: Arc<ShardSet>,
}

const _: () = assert!(DEFAULT_PREFETCH == 2);

#[pymethods]
impl PyShardedDataset {
    /// Opens the shards (reading each one's `meta.json` and labels, not its features).
    // `prefetch=2` is `DEFAULT_PREFETCH` as a literal: pyo3 shows only literal defaults in
    // the text signature (the assertion below keeps the two together).
    #[new]
    #[pyo3(signature = (source, *, prefetch=2))]
    fn new(py: Python<'_>, source: &Bound<'_, PyAny>, prefetch: usize) -> PyResult<Self> {
        let set = if source.is_instance_of::<PyList>() || source.is_instance_of::<PyTuple>() {
            let dirs: Vec<PathBuf> = source.extract()?;
            py.detach(|| ShardSet::open(&dirs))?
        } else {
            let root: PathBuf = source.extract()?;
            py.detach(|| ShardSet::open_root(&root))?
        };
        Ok(PyShardedDataset {
            inner: Arc::new(set.with_prefetch(prefetch)),
        })
    }

    #[getter]
    fn num_rows(&self) -> u64 {
        self.inner.num_rows()
    }

    #[getter]
    fn nnz(&self) -> u64 {
        self.inner.nnz()
    }

    /// One more than the largest field id over all shards.
    #[getter]
    fn num_fields(&self) -> u32 {
        self.inner.num_fields()
    }

    /// One more than the largest feature index over all shards.
    #[getter]
    fn num_features(&self) -> u64 {
        self.inner.num_features()
    }

    #[getter]
    fn num_shards(&self) -> usize {
        self.inner.shards().len()
    }

    /// Sum of the labels.
    #[getter]
    fn label_sum(&self) -> f64 {
        self.inner.label_sum()
    }

    /// Sum of the importance weights (rows when unweighted).
    #[getter]
    fn weight_sum(&self) -> f64 {
        self.inner.weight_sum()
    }

    /// Loaded shards the reader queues ahead of training (at most this + 2 in memory).
    #[getter]
    fn prefetch(&self) -> usize {
        self.inner.prefetch()
    }

    /// The shard directories, in stored order.
    #[getter]
    fn paths(&self) -> Vec<String> {
        self.inner
            .shards()
            .iter()
            .map(|s| s.path.display().to_string())
            .collect()
    }

    fn __len__(&self) -> usize {
        self.inner.num_rows() as usize
    }

    fn __repr__(&self) -> String {
        let s = &self.inner;
        format!(
            "ShardedDataset(shards={}, rows={}, nnz={}, fields={}, features={})",
            s.shards().len(),
            s.num_rows(),
            s.nnz(),
            s.num_fields(),
            s.num_features()
        )
    }
}
