//! `rust_core.Scorer` and `rust_core.ScoreError`: whole scoring requests, GIL released.

use std::collections::HashMap;
use std::sync::Arc;

use numpy::PyArray2;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::model::PyModel;
use super::plan::{DictCandidate, PyFeaturePlan};
use crate::error::Error;
use crate::plan::PythonValues;
use crate::serving::experiment::{bucket, Mode, Routing};
use crate::serving::{ExperimentSpec, Scorer, DEFAULT_MAX_CANDIDATES};

// The constructor's signature spells this default as a literal; keep the two in step.
const _: () = assert!(DEFAULT_MAX_CANDIDATES == 1000);

pyo3::create_exception!(
    rust_core,
    ScoreError,
    pyo3::exceptions::PyValueError,
    "A request the scorer refuses: `.code` is the gRPC status name (\"INVALID_ARGUMENT\" or \"NOT_FOUND\"), `.message` says why."
);

/// A `ScoreError` with its gRPC status name and message, also as attributes `.code` and
/// `.message` (the crate-wide conversion in `bindings/mod.rs` calls this).
pub(crate) fn score_error(code: &'static str, message: String) -> PyErr {
    Python::attach(|py| {
        let err = PyErr::new::<ScoreError, _>((code, message.clone()));
        let value = err.value(py);
        // setattr on a fresh exception instance cannot fail short of memory exhaustion;
        // the exception is still right without the attributes.
        let _ = value.setattr("code", code);
        let _ = value.setattr("message", message);
        err
    })
}

/// Several models over one feature plan, scoring whole requests.
#[pyclass(name = "Scorer", module = "rust_core", frozen)]
pub struct PyScorer {
    inner: Arc<Scorer>,
}

#[pymethods]
impl PyScorer {
    /// `models`: name -> (Model, version). Refuses a model whose fingerprint differs from its
    /// spec's in `plan`. `max_models`: the most entries a request's `models` list may have
    /// (None: no limit). `experiments`: model -> (experiment, mode, key, salt, share,
    /// (Model, version) of the treatment or None when it could not be loaded).
    #[new]
    // The literal is DEFAULT_MAX_CANDIDATES: pyo3 shows only literal defaults in signatures.
    #[pyo3(signature = (plan, models, max_candidates=1000, experiments=None, max_models=None))]
    fn new(
        plan: &PyFeaturePlan,
        models: &Bound<'_, PyDict>,
        max_candidates: usize,
        experiments: Option<&Bound<'_, PyDict>>,
        max_models: Option<usize>,
    ) -> PyResult<Self> {
        let mut list = Vec::with_capacity(models.len());
        for (name, entry) in models.iter() {
            let name: String = name.extract()?;
            let tuple = entry.cast::<PyTuple>().map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err(format!(
                    "model {name}: expected (Model, version)"
                ))
            })?;
            let (model, version): (PyRef<'_, PyModel>, String) = tuple.extract()?;
            list.push((name, Arc::clone(&model.inner), version));
        }
        let mut specs = Vec::new();
        for (name, entry) in experiments.into_iter().flat_map(PyDictMethods::iter) {
            let model: String = name.extract()?;
            #[expect(clippy::type_complexity, reason = "the Python tuple, spelled once")]
            let (experiment, mode, key, salt, share, treatment): (
                String,
                String,
                String,
                String,
                f64,
                Option<(PyRef<'_, PyModel>, String)>,
            ) = entry.extract()?;
            let mode = Mode::parse(&mode).ok_or_else(|| {
                pyo3::exceptions::PyValueError::new_err(format!(
                    "experiment {experiment}: unknown mode {mode:?} (ab, canary, shadow)"
                ))
            })?;
            specs.push(ExperimentSpec {
                model,
                routing: Routing {
                    experiment,
                    mode,
                    key,
                    salt,
                    share,
                },
                treatment: treatment.map(|(m, version)| (Arc::clone(&m.inner), version)),
            });
        }
        let mut scorer =
            Scorer::with_experiments(Arc::clone(&plan.inner), list, max_candidates, specs)?;
        if let Some(max_models) = max_models {
            scorer = scorer.with_max_models(max_models)?;
        }
        Ok(Self {
            inner: Arc::new(scorer),
        })
    }

    /// `(name, version)` of every model, sorted by name.
    #[getter]
    fn models(&self) -> Vec<(String, String)> {
        self.inner.models()
    }

    /// `(model, experiment, treatment version or None)` per experiment, in routing-word order:
    /// experiment `i` is bits `3i..3i+3` of the routing word `score_request_routed` and
    /// `score_many` return (0 not asked, 1 control, 2 treatment, 3 key missing (control),
    /// 4 shadow: control answered, the treatment scores it off the response path).
    #[getter]
    fn experiments(&self) -> Vec<(String, String, Option<String>)> {
        self.inner.experiments()
    }

    #[getter]
    fn max_candidates(&self) -> usize {
        self.inner.max_candidates()
    }

    /// The `max_models` limit; None when there is none.
    #[getter]
    fn max_models(&self) -> Option<usize> {
        Some(self.inner.max_models()).filter(|&n| n != usize::MAX)
    }

    /// Serialized `bidscore.v1.ScoreRequest` in, serialized `ScoreResponse` out.
    #[pyo3(signature = (request, python_values=None))]
    #[expect(
        clippy::needless_pass_by_value,
        reason = "pyo3 extracts Python arguments as owned values"
    )]
    fn score_request<'py>(
        &self,
        py: Python<'py>,
        request: &[u8],
        python_values: Option<PythonValues>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let scorer = &self.inner;
        let out = py.detach(|| scorer.score_request(request, python_values.as_ref()))?;
        Ok(PyBytes::new(py, &out))
    }

    /// `score_request`, returning `(response, candidate count, routing word)`: the server's one
    /// call per request (the count feeds its metrics without parsing the request in Python;
    /// the routing word names each routed model's arm, see `experiments`: 0 when no requested
    /// model is under an experiment, and for a deferred request). With `defer_over`, a valid
    /// request of more work than that many candidates scored by every served model (a request
    /// for half the models: twice the candidates) is not scored and comes back as
    /// `(None, count, 0)`, for the caller to score off its event loop.
    #[pyo3(signature = (request, python_values=None, defer_over=None))]
    #[expect(
        clippy::needless_pass_by_value,
        reason = "pyo3 extracts Python arguments as owned values"
    )]
    fn score_request_routed<'py>(
        &self,
        py: Python<'py>,
        request: &[u8],
        python_values: Option<PythonValues>,
        defer_over: Option<usize>,
    ) -> PyResult<(Option<Bound<'py, PyBytes>>, usize, u64)> {
        let scorer = &self.inner;
        let (out, count, routing) = py.detach(|| {
            scorer.score_request_unless_over(
                request,
                python_values.as_ref(),
                defer_over.unwrap_or(usize::MAX),
            )
        })?;
        Ok((out.map(|bytes| PyBytes::new(py, &bytes)), count, routing))
    }

    /// The treatment's scores for the models of `request` under a shadow experiment whose
    /// treatment the request is assigned to: a serialized `ScoreResponse` naming those models
    /// with their treatment versions, or None.
    #[pyo3(signature = (request, python_values=None))]
    #[expect(
        clippy::needless_pass_by_value,
        reason = "pyo3 extracts Python arguments as owned values"
    )]
    fn score_shadow<'py>(
        &self,
        py: Python<'py>,
        request: &[u8],
        python_values: Option<PythonValues>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let scorer = &self.inner;
        let out = py.detach(|| scorer.score_shadow(request, python_values.as_ref()))?;
        Ok(out.map(|bytes| PyBytes::new(py, &bytes)))
    }

    /// The stream server's one call per batch of waiting messages: for each serialized
    /// `ScoreRequest`, `(response, candidate count, status name, routing word)`. Never raises for a bad
    /// request: its response carries the `request_id` and `error` (status name and message as
    /// the unary call would answer), and the status name is not `"OK"`. A valid request of
    /// more work than `defer_over` (as in `score_request_routed`) is not scored:
    /// `(None, count, "OK")`.
    /// `python_values`, when given, has one entry (or None) per request.
    #[pyo3(signature = (requests, max_request_bytes, defer_over=None, python_values=None))]
    #[expect(
        clippy::needless_pass_by_value,
        reason = "pyo3 extracts Python arguments as owned values"
    )]
    fn score_many<'py>(
        &self,
        py: Python<'py>,
        requests: Vec<Bound<'py, PyBytes>>,
        max_request_bytes: usize,
        defer_over: Option<usize>,
        python_values: Option<Vec<Option<PythonValues>>>,
    ) -> PyResult<Bound<'py, PyList>> {
        if let Some(values) = &python_values {
            if values.len() != requests.len() {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "python_values has {} entries for {} requests",
                    values.len(),
                    requests.len()
                )));
            }
        }
        // Borrowed views of the bytes objects, which `requests` keeps alive (and immutable)
        // for the whole call.
        let views: Vec<&[u8]> = requests.iter().map(PyBytesMethods::as_bytes).collect();
        let scorer = &self.inner;
        let answers = py.detach(|| {
            scorer.answer_many(
                &views,
                python_values.as_deref(),
                max_request_bytes,
                defer_over.unwrap_or(usize::MAX),
            )
        });
        let out = PyList::empty(py);
        for answer in answers {
            let response = answer.response.map(|bytes| PyBytes::new(py, &bytes));
            out.append((response, answer.candidates, answer.code, answer.routing))?;
        }
        Ok(out)
    }

    /// Scores of every candidate (rows) by every model in `models` (columns; empty = all).
    #[pyo3(signature = (context, candidates, models, python_values=None))]
    #[expect(
        clippy::needless_pass_by_value,
        reason = "pyo3 extracts Python arguments as owned values"
    )]
    fn score<'py>(
        &self,
        py: Python<'py>,
        context: HashMap<String, String>,
        candidates: Vec<HashMap<String, String>>,
        models: Vec<String>,
        python_values: Option<PythonValues>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let candidates: Vec<DictCandidate> = candidates.into_iter().map(DictCandidate).collect();
        let scorer = &self.inner;
        let (scores, width) = py.detach(|| {
            let (scores, names) =
                scorer.score(&context, &candidates, &models, python_values.as_ref())?;
            Ok::<_, Error>((scores, names.len()))
        })?;
        let rows = scores.len() / width.max(1);
        let array = numpy::ndarray::Array2::from_shape_vec((rows, width), scores)
            .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
        Ok(PyArray2::from_owned_array(py, array))
    }

    fn __repr__(&self) -> String {
        format!(
            "Scorer(models={:?}, max_candidates={})",
            self.inner.models(),
            self.inner.max_candidates()
        )
    }
}

/// `bidscore.experiments.bucket(salt, value)` computed by the server's Rust code (the tests
/// check the two agree bit for bit).
#[pyfunction]
pub(crate) fn experiment_bucket(salt: &str, value: &str) -> f64 {
    bucket(salt, value)
}
