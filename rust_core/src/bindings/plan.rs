//! `rust_core.FeaturePlan`: the feature plan for Python. Columns arrive as numpy views of
//! Arrow buffers and are read in place; tokenising runs with the GIL released.

use std::collections::HashMap;
use std::sync::Arc;

use numpy::{PyArray1, PyReadonlyArray1, PyUntypedArrayMethods as _};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::dataset::PyDataset;
use crate::dataset::Dataset;
use crate::plan::{
    CandidateInput, Column, ColumnData, Csr, FeaturePlan, Lookup, Offsets, PythonValues,
    ScratchPool,
};
use crate::serving::wire::decode_request;

/// A compiled feature plan (`features.tokenize.plan_for(spec)` builds one).
#[pyclass(name = "FeaturePlan", module = "rust_core", frozen)]
pub struct PyFeaturePlan {
    pub(crate) inner: Arc<FeaturePlan>,
    pool: ScratchPool,
}

/// A candidate given as a Python dict; errors name it by position.
pub(crate) struct DictCandidate(pub(crate) HashMap<String, String>);

impl Lookup for DictCandidate {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

impl CandidateInput for DictCandidate {
    fn id(&self) -> &'static str {
        ""
    }
}

enum HeldOffsets<'py> {
    I32(PyReadonlyArray1<'py, i32>),
    I64(PyReadonlyArray1<'py, i64>),
}

enum HeldData<'py> {
    Str {
        offsets: HeldOffsets<'py>,
        data: PyReadonlyArray1<'py, u8>,
    },
    Int(PyReadonlyArray1<'py, i64>),
    Float(PyReadonlyArray1<'py, f64>),
}

/// A column's numpy arrays, borrowed read-only for the duration of the call.
struct HeldColumn<'py> {
    data: HeldData<'py>,
    valid: Option<PyReadonlyArray1<'py, bool>>,
}

fn contiguous<'a, T: numpy::Element>(
    name: &str,
    a: &'a PyReadonlyArray1<'_, T>,
) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("column {name}: arrays must be contiguous")))
}

impl HeldColumn<'_> {
    fn view(&self, name: &str) -> PyResult<Column<'_>> {
        let data = match &self.data {
            HeldData::Str { offsets, data } => ColumnData::Str {
                offsets: match offsets {
                    HeldOffsets::I32(o) => Offsets::I32(contiguous(name, o)?),
                    HeldOffsets::I64(o) => Offsets::I64(contiguous(name, o)?),
                },
                data: contiguous(name, data)?,
            },
            HeldData::Int(v) => ColumnData::Int(contiguous(name, v)?),
            HeldData::Float(v) => ColumnData::Float(contiguous(name, v)?),
        };
        let valid = match &self.valid {
            Some(v) => Some(contiguous(name, v)?),
            None => None,
        };
        Ok(Column { data, valid })
    }
}

fn extract_column<'py>(name: &str, tuple: &Bound<'py, PyAny>) -> PyResult<HeldColumn<'py>> {
    let bad = |what: &str| {
        PyValueError::new_err(format!(
            "column {name}: {what}; expected (\"str\", offsets, data, valid), (\"int\", values, valid) or (\"float\", values, valid)"
        ))
    };
    let tuple = tuple.cast::<PyTuple>().map_err(|_| bad("not a tuple"))?;
    let kind: String = tuple
        .get_item(0)
        .and_then(|k| k.extract())
        .map_err(|_| bad("no kind"))?;
    let arity = if kind == "str" { 4 } else { 3 };
    if tuple.len() != arity {
        return Err(bad(&format!("{} items for kind {kind:?}", tuple.len())));
    }
    let array = |i: usize, dtype: &str| -> PyResult<Bound<'py, PyAny>> {
        let item = tuple.get_item(i)?;
        if item.is_none() {
            return Err(bad(&format!("item {i} is None, expected a {dtype} array")));
        }
        Ok(item)
    };
    let wrong = |i: usize, dtype: &str| bad(&format!("item {i} is not a 1-d {dtype} numpy array"));
    let data = match kind.as_str() {
        "str" => {
            let raw = array(1, "int32/int64")?;
            let offsets = if let Ok(o) = raw.extract::<PyReadonlyArray1<i32>>() {
                HeldOffsets::I32(o)
            } else {
                HeldOffsets::I64(raw.extract().map_err(|_| wrong(1, "int32/int64"))?)
            };
            let data = array(2, "uint8")?
                .extract()
                .map_err(|_| wrong(2, "uint8"))?;
            HeldData::Str { offsets, data }
        }
        "int" => HeldData::Int(
            array(1, "int64")?
                .extract()
                .map_err(|_| wrong(1, "int64"))?,
        ),
        "float" => HeldData::Float(
            array(1, "float64")?
                .extract()
                .map_err(|_| wrong(1, "float64"))?,
        ),
        other => return Err(bad(&format!("unknown kind {other:?}"))),
    };
    let last = tuple.get_item(arity - 1)?;
    let valid = if last.is_none() {
        None
    } else {
        Some(last.extract().map_err(|_| wrong(arity - 1, "bool"))?)
    };
    Ok(HeldColumn { data, valid })
}

fn optional_f32(
    a: Option<PyReadonlyArray1<'_, f32>>,
    n: usize,
    what: &str,
) -> PyResult<Option<Vec<f32>>> {
    match a {
        None => Ok(None),
        Some(a) if a.len() == n => Ok(Some(a.as_array().to_vec())),
        Some(a) => Err(PyValueError::new_err(format!(
            "{what} has {} rows, expected {n}",
            a.len()
        ))),
    }
}

impl PyFeaturePlan {
    /// Borrows the columns' arrays and tokenises them with the GIL released.
    fn csr(
        &self,
        py: Python<'_>,
        columns: &Bound<'_, PyDict>,
        num_rows: usize,
        model: &str,
        python_columns: Option<PythonValues>,
    ) -> PyResult<Csr> {
        let mut held = Vec::with_capacity(columns.len());
        for (key, value) in columns.iter() {
            let name: String = key.extract()?;
            let column = extract_column(&name, &value)?;
            held.push((name, column));
        }
        let python_columns = python_columns.unwrap_or_default();
        let mut views: HashMap<String, Column<'_>> = HashMap::with_capacity(held.len());
        for (name, column) in &held {
            views.insert(name.clone(), column.view(name)?);
        }
        for (name, values) in &python_columns {
            views.insert(
                name.clone(),
                Column {
                    data: ColumnData::Text(values),
                    valid: None,
                },
            );
        }
        let plan = &self.inner;
        // The numpy arrays stay borrowed (`held`) until we return; the Arrow buffers behind
        // them are immutable, so reading them without the GIL is sound.
        py.detach(|| plan.tokenize_columns(model, &views, num_rows))
            .map_err(PyErr::from)
    }
}

#[pymethods]
impl PyFeaturePlan {
    #[new]
    fn new(plan_json: &str) -> PyResult<Self> {
        Ok(Self {
            inner: Arc::new(FeaturePlan::from_json(plan_json)?),
            pool: ScratchPool::default(),
        })
    }

    /// Model names of the plan, sorted.
    #[getter]
    fn models(&self) -> Vec<String> {
        self.inner.model_names().map(str::to_owned).collect()
    }

    /// The model's fingerprint as the plan records it (hex).
    fn fingerprint(&self, model: &str) -> PyResult<String> {
        Ok(self.inner.model(model)?.fingerprint.clone())
    }

    /// Tokenises columns (raw feature name -> Column tuple) into a CSR `Dataset`.
    #[pyo3(signature = (columns, num_rows, model, python_columns=None, *, labels=None, weights=None))]
    #[expect(clippy::too_many_arguments, reason = "the Python signature")]
    fn tokenize_columns(
        &self,
        py: Python<'_>,
        columns: &Bound<'_, PyDict>,
        num_rows: usize,
        model: &str,
        python_columns: Option<PythonValues>,
        labels: Option<PyReadonlyArray1<'_, f32>>,
        weights: Option<PyReadonlyArray1<'_, f32>>,
    ) -> PyResult<PyDataset> {
        let labels =
            optional_f32(labels, num_rows, "labels")?.unwrap_or_else(|| vec![0.0; num_rows]);
        let weights = optional_f32(weights, num_rows, "weights")?;
        let csr = self.csr(py, columns, num_rows, model, python_columns)?;
        let dataset = py.detach(|| {
            Dataset::from_owned(
                csr.indptr,
                csr.fields,
                csr.indices,
                csr.values,
                labels,
                weights,
            )
        })?;
        Ok(PyDataset {
            inner: Arc::new(dataset),
        })
    }

    /// Like `tokenize_columns`, but the CSR arrays themselves:
    /// `(indptr u64[n+1], fields u32[nnz], indices u32[nnz], values f32[nnz])` (tests, bench).
    #[pyo3(signature = (columns, num_rows, model, python_columns=None))]
    #[expect(
        clippy::type_complexity,
        reason = "the Python return type, spelled out"
    )]
    fn tokenize_columns_csr<'py>(
        &self,
        py: Python<'py>,
        columns: &Bound<'py, PyDict>,
        num_rows: usize,
        model: &str,
        python_columns: Option<PythonValues>,
    ) -> PyResult<(
        Bound<'py, PyArray1<u64>>,
        Bound<'py, PyArray1<u32>>,
        Bound<'py, PyArray1<u32>>,
        Bound<'py, PyArray1<f32>>,
    )> {
        let csr = self.csr(py, columns, num_rows, model, python_columns)?;
        Ok((
            PyArray1::from_vec(py, csr.indptr),
            PyArray1::from_vec(py, csr.fields),
            PyArray1::from_vec(py, csr.indices),
            PyArray1::from_vec(py, csr.values),
        ))
    }

    /// Tokens of every candidate of one request: `(fields, indices, values)` per candidate.
    #[pyo3(signature = (context, candidates, model, python_values=None))]
    #[expect(
        clippy::type_complexity,
        reason = "the Python return type, spelled out"
    )]
    #[expect(
        clippy::needless_pass_by_value,
        reason = "pyo3 extracts Python arguments as owned values"
    )]
    fn tokenize_request<'py>(
        &self,
        py: Python<'py>,
        context: HashMap<String, String>,
        candidates: Vec<HashMap<String, String>>,
        model: &str,
        python_values: Option<PythonValues>,
    ) -> PyResult<
        Vec<(
            Bound<'py, PyArray1<u32>>,
            Bound<'py, PyArray1<u32>>,
            Bound<'py, PyArray1<f32>>,
        )>,
    > {
        let candidates: Vec<DictCandidate> = candidates.into_iter().map(DictCandidate).collect();
        let (plan, pool) = (&self.inner, &self.pool);
        let rows = py.detach(|| {
            let m = plan.model(model)?;
            let mut rows = Vec::with_capacity(candidates.len());
            pool.with(plan, |scratch| {
                plan.tokenize_request(
                    &[m],
                    &context,
                    &candidates,
                    python_values.as_ref(),
                    scratch,
                    |_, _, f, i, v| rows.push((f.to_vec(), i.to_vec(), v.to_vec())),
                )
            })?;
            Ok::<_, crate::error::Error>(rows)
        })?;
        Ok(rows
            .into_iter()
            .map(|(f, i, v)| {
                (
                    PyArray1::from_vec(py, f),
                    PyArray1::from_vec(py, i),
                    PyArray1::from_vec(py, v),
                )
            })
            .collect())
    }

    /// Tokens of a serialized `bidscore.v1.ScoreRequest` (replaying logged requests, and
    /// timing tokenisation without Python conversions), as one CSR over its candidates:
    /// `(indptr u64[n+1], fields u32[nnz], indices u32[nnz], values f32[nnz])`.
    #[pyo3(signature = (request, model, python_values=None))]
    #[expect(
        clippy::type_complexity,
        reason = "the Python return type, spelled out"
    )]
    #[expect(
        clippy::needless_pass_by_value,
        reason = "pyo3 extracts Python arguments as owned values"
    )]
    fn tokenize_wire<'py>(
        &self,
        py: Python<'py>,
        request: &[u8],
        model: &str,
        python_values: Option<PythonValues>,
    ) -> PyResult<(
        Bound<'py, PyArray1<u64>>,
        Bound<'py, PyArray1<u32>>,
        Bound<'py, PyArray1<u32>>,
        Bound<'py, PyArray1<f32>>,
    )> {
        let (plan, pool) = (&self.inner, &self.pool);
        let csr = py.detach(|| {
            let view = decode_request(request)?;
            let m = plan.model(model)?;
            // Exact sizes: one token per field per candidate.
            let rows = view.candidates.len();
            let nnz = rows * m.fields.len();
            let mut csr = Csr {
                indptr: Vec::with_capacity(rows + 1),
                fields: Vec::with_capacity(nnz),
                indices: Vec::with_capacity(nnz),
                values: Vec::with_capacity(nnz),
            };
            csr.indptr.push(0);
            pool.with(plan, |scratch| {
                plan.tokenize_request(
                    &[m],
                    &view.context,
                    &view.candidates,
                    python_values.as_ref(),
                    scratch,
                    |_, _, f, i, v| {
                        csr.fields.extend_from_slice(f);
                        csr.indices.extend_from_slice(i);
                        csr.values.extend_from_slice(v);
                        csr.indptr.push(csr.indices.len() as u64);
                    },
                )
            })?;
            Ok::<_, crate::error::Error>(csr)
        })?;
        Ok((
            PyArray1::from_vec(py, csr.indptr),
            PyArray1::from_vec(py, csr.fields),
            PyArray1::from_vec(py, csr.indices),
            PyArray1::from_vec(py, csr.values),
        ))
    }

    fn __repr__(&self) -> String {
        let names: Vec<&str> = self.inner.model_names().collect();
        format!(
            "FeaturePlan(models={names:?}, features={})",
            self.inner.features().len()
        )
    }
}
