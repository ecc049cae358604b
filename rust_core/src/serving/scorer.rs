//! [`Scorer`]: several models (possibly with different specs: an FFM ctr, an LR cvr) over one
//! feature plan, scoring whole requests.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use prost::Message as _;

use super::proto::{self, CandidateScores, ModelVersion, ScoreResponse};
use super::wire::{decode_request, salvage_request_id};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::plan::{CandidateInput, FeaturePlan, Lookup, ModelPlan, PythonValues, ScratchPool};

/// Candidates per request unless the constructor says otherwise.
pub const DEFAULT_MAX_CANDIDATES: usize = 1000;

/// The gRPC status name of a successful answer.
pub const OK: &str = "OK";

/// One stream message, answered by [`Scorer::answer`].
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The encoded `ScoreResponse`: scores, or `error` set when the request was refused.
    /// `None` only for a request deferred by `defer_over` (valid, not scored).
    pub response: Option<Vec<u8>>,
    /// The request's candidate count (0 when it could not be decoded).
    pub candidates: usize,
    /// [`OK`] or the gRPC status name the unary call would have returned.
    pub code: &'static str,
}

/// The gRPC status name of a refused request, as the unary path reports it.
#[must_use]
pub fn status_name(error: &Error) -> &'static str {
    match error {
        Error::NotFound(_) => "NOT_FOUND",
        Error::BadRequest(_) | Error::InvalidArgument(_) | Error::Data(_) => "INVALID_ARGUMENT",
        Error::Io { .. } | Error::Format(_) | Error::Interrupted => "INTERNAL",
    }
}

/// A served model's name and version.
pub type NameVersion<'a> = (&'a str, &'a str);

struct Served {
    model: Arc<Model>,
    version: String,
    plan: ModelPlan,
}

/// Scores requests with a fixed set of models. Immutable once built (`Send + Sync`): a model
/// update builds a new `Scorer` and the server swaps one reference.
pub struct Scorer {
    plan: Arc<FeaturePlan>,
    models: BTreeMap<String, Served>,
    max_candidates: usize,
    pool: ScratchPool,
}

impl std::fmt::Debug for Scorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scorer")
            .field("models", &self.models())
            .field("max_candidates", &self.max_candidates)
            .finish_non_exhaustive()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

impl Scorer {
    /// A scorer for `models` (name, model, version). Refuses a model the plan has no spec for,
    /// and a model whose fingerprint differs from its spec's (the message names both).
    pub fn new(
        plan: Arc<FeaturePlan>,
        models: Vec<(String, Arc<Model>, String)>,
        max_candidates: usize,
    ) -> Result<Scorer> {
        if models.is_empty() {
            return Err(Error::InvalidArgument(
                "a scorer needs at least one model".into(),
            ));
        }
        if max_candidates == 0 {
            return Err(Error::InvalidArgument(
                "max_candidates must be at least 1".into(),
            ));
        }
        let mut served = BTreeMap::new();
        for (name, model, version) in models {
            let spec = plan.model(&name).map_err(|_| {
                Error::InvalidArgument(format!("model {name}: the feature plan has no spec for it"))
            })?;
            let found = hex(&model.fingerprint());
            if spec.fingerprint.is_empty() || found != spec.fingerprint.to_ascii_lowercase() {
                return Err(Error::InvalidArgument(format!(
                    "model {name}: fingerprint {found} does not match the feature spec's {}",
                    if spec.fingerprint.is_empty() {
                        "(none)"
                    } else {
                        &spec.fingerprint
                    }
                )));
            }
            if model.hash_bits() != spec.bits || model.num_fields() as usize != spec.fields.len() {
                return Err(Error::InvalidArgument(format!(
                    "model {name}: {} bits and {} fields, the spec has {} and {}",
                    model.hash_bits(),
                    model.num_fields(),
                    spec.bits,
                    spec.fields.len()
                )));
            }
            let entry = Served {
                model,
                version,
                plan: spec.clone(),
            };
            if served.insert(name.clone(), entry).is_some() {
                return Err(Error::InvalidArgument(format!(
                    "model {name} is given twice"
                )));
            }
        }
        Ok(Scorer {
            plan,
            models: served,
            max_candidates,
            pool: ScratchPool::default(),
        })
    }

    /// `(name, version)` of every model, sorted by name.
    #[must_use]
    pub fn models(&self) -> Vec<(String, String)> {
        self.models
            .iter()
            .map(|(n, s)| (n.clone(), s.version.clone()))
            .collect()
    }

    #[must_use]
    pub fn max_candidates(&self) -> usize {
        self.max_candidates
    }

    #[must_use]
    pub fn plan(&self) -> &Arc<FeaturePlan> {
        &self.plan
    }

    /// The served models a request asks for, in its order; all of them (by name) when empty.
    /// A name asked for twice is refused: every path (unary, stream, batch) resolves here, so
    /// a request can never ask for more scores per candidate than there are served models.
    fn resolve<'a, M: AsRef<str>>(&'a self, names: &'a [M]) -> Result<Vec<(&'a str, &'a Served)>> {
        if names.is_empty() {
            return Ok(self.models.iter().map(|(n, s)| (n.as_str(), s)).collect());
        }
        let mut chosen: Vec<(&'a str, &'a Served)> = Vec::with_capacity(names.len());
        for n in names {
            let n = n.as_ref();
            if chosen.iter().any(|&(seen, _)| seen == n) {
                return Err(Error::BadRequest(format!(
                    "request names model {n:?} more than once; each model at most once"
                )));
            }
            let served = self.models.get(n).ok_or_else(|| {
                let served: Vec<&str> = self.models.keys().map(String::as_str).collect();
                Error::NotFound(format!(
                    "model {n:?} is not served here (served: {served:?})"
                ))
            })?;
            chosen.push((n, served));
        }
        Ok(chosen)
    }

    fn check_count(&self, n: usize) -> Result<()> {
        if n == 0 {
            return Err(Error::BadRequest("the request has no candidates".into()));
        }
        if n > self.max_candidates {
            return Err(Error::BadRequest(format!(
                "the request has {n} candidates, more than the limit of {}",
                self.max_candidates
            )));
        }
        Ok(())
    }

    /// Scores `candidates` with `models` (by name; empty = all): a row-major
    /// `candidates x models` matrix, and the models in column order.
    pub fn score<'a, C: CandidateInput, M: AsRef<str>>(
        &'a self,
        context: &dyn Lookup,
        candidates: &[C],
        models: &'a [M],
        python: Option<&PythonValues>,
    ) -> Result<(Vec<f32>, Vec<NameVersion<'a>>)> {
        let chosen = self.resolve(models)?;
        self.check_count(candidates.len())?;
        let plans: Vec<&ModelPlan> = chosen.iter().map(|(_, s)| &s.plan).collect();
        let width = chosen.len();
        let mut scores = vec![0f32; candidates.len() * width];
        self.pool.with(&self.plan, |scratch| {
            self.plan.tokenize_request(
                &plans,
                context,
                candidates,
                python,
                scratch,
                |m, c, fields, indices, values| {
                    scores[c * width + m] = chosen[m].1.model.predict_row(fields, indices, values);
                },
            )
        })?;
        let names = chosen
            .iter()
            .map(|(n, s)| (*n, s.version.as_str()))
            .collect();
        Ok((scores, names))
    }

    /// Decodes a serialized `ScoreRequest` (zero-copy, [`super::wire`]), scores it, encodes
    /// the `ScoreResponse` with prost.
    pub fn score_request(&self, request: &[u8], python: Option<&PythonValues>) -> Result<Vec<u8>> {
        self.score_request_counted(request, python)
            .map(|(response, _)| response)
    }

    /// [`Scorer::score_request`], also returning the request's candidate count: the server's
    /// metrics need it, and reading it here spares the caller a second parse of the request.
    /// The count is checked (at least 1, at most `max_candidates`) before any scoring.
    pub fn score_request_counted(
        &self,
        request: &[u8],
        python: Option<&PythonValues>,
    ) -> Result<(Vec<u8>, usize)> {
        self.score_request_unless_over(request, python, usize::MAX)
            .map(|(response, count)| (response.unwrap_or_default(), count))
    }

    /// [`Scorer::score_request_counted`], except that a valid request with more than
    /// `defer_over` candidates (and no more than `max_candidates`) is not scored: `None` and
    /// its count come back, and the caller scores it elsewhere (the server, on a thread, so
    /// that a big request does not stall its event loop).
    pub fn score_request_unless_over(
        &self,
        request: &[u8],
        python: Option<&PythonValues>,
        defer_over: usize,
    ) -> Result<(Option<Vec<u8>>, usize)> {
        let request = decode_request(request)?;
        let count = request.candidates.len();
        if count > defer_over && count <= self.max_candidates {
            self.resolve(&request.models)?;
            return Ok((None, count));
        }
        let (scores, names) = self.score(
            &request.context,
            &request.candidates,
            &request.models,
            python,
        )?;
        let width = names.len();
        let response = ScoreResponse {
            request_id: request.request_id.to_owned(),
            models: names
                .iter()
                .map(|(n, v)| ModelVersion {
                    name: (*n).to_owned(),
                    version: (*v).to_owned(),
                })
                .collect(),
            candidates: request
                .candidates
                .into_iter()
                .zip(scores.chunks_exact(width))
                .map(|(c, s)| CandidateScores {
                    id: c.id.to_owned(),
                    scores: s.to_vec(),
                })
                .collect(),
            error: None,
        };
        Ok((Some(response.encode_to_vec()), count))
    }

    /// A stream message's answer, never an `Err`: a refused request (over `max_request_bytes`,
    /// malformed, unknown model, bad feature) becomes a `ScoreResponse` carrying its
    /// `request_id` (salvaged when the request is malformed) and `error`, with the status name
    /// and message the unary call would have answered with.
    #[must_use]
    pub fn answer(
        &self,
        request: &[u8],
        python: Option<&PythonValues>,
        max_request_bytes: usize,
        defer_over: usize,
    ) -> Answer {
        if request.len() > max_request_bytes {
            return refusal(
                request,
                "INVALID_ARGUMENT",
                format!(
                    "request is {} bytes, over the limit of {max_request_bytes}",
                    request.len()
                ),
            );
        }
        match self.score_request_unless_over(request, python, defer_over) {
            Ok((response, candidates)) => Answer {
                response,
                candidates,
                code: OK,
            },
            Err(error) => {
                let code = status_name(&error);
                refusal(request, code, error.to_string())
            }
        }
    }

    /// [`Scorer::answer`] for each of `requests`, in order: the stream server's one call per
    /// batch of waiting messages.
    #[must_use]
    pub fn answer_many<R: AsRef<[u8]>>(
        &self,
        requests: &[R],
        python: Option<&[Option<PythonValues>]>,
        max_request_bytes: usize,
        defer_over: usize,
    ) -> Vec<Answer> {
        requests
            .iter()
            .enumerate()
            .map(|(i, request)| {
                let values = python.and_then(|all| all.get(i)).and_then(Option::as_ref);
                self.answer(request.as_ref(), values, max_request_bytes, defer_over)
            })
            .collect()
    }
}

fn refusal(request: &[u8], code: &'static str, message: String) -> Answer {
    let response = ScoreResponse {
        request_id: salvage_request_id(request).to_owned(),
        error: Some(proto::Error {
            code: code.to_owned(),
            message,
        }),
        ..ScoreResponse::default()
    };
    Answer {
        response: Some(response.encode_to_vec()),
        candidates: 0,
        code,
    }
}
