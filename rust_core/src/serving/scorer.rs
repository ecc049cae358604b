//! [`Scorer`]: several models (possibly with different specs: an FFM ctr, an LR cvr) over one
//! feature plan, scoring whole requests.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use prost::Message as _;

use super::experiment::{ArmCode, Mode, Routing, MAX_ROUTES, ROUTE_BITS};
use super::proto::{self, CandidateScores, ModelVersion, ScoreResponse};
use super::wire::{decode_request, salvage_request_id, CandidateView};
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
    /// The experiment routing word of a scored request ([`Scorer::experiments`]); 0 otherwise.
    pub routing: u64,
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
    /// Index in `Scorer::routes` of the experiment this model is under.
    route: Option<usize>,
}

/// A model under a running experiment: its routing and treatment (None: the server could not
/// load it, the experiment is degraded and every request goes to control).
struct Route {
    model: String,
    routing: Routing,
    treatment: Option<Served>,
}

/// An experiment to route, given to [`Scorer::with_experiments`].
#[derive(Debug, Clone)]
pub struct ExperimentSpec {
    pub model: String,
    pub routing: Routing,
    /// The treatment model and its version; None when it could not be loaded (degraded).
    pub treatment: Option<(Arc<Model>, String)>,
}

/// The routing word of a request: 3 bits per route (see [`ArmCode`]), route `i` at bit `3i`.
pub type RoutingWord = u64;

/// Scores requests with a fixed set of models. Immutable once built (`Send + Sync`): a model
/// update builds a new `Scorer` and the server swaps one reference.
pub struct Scorer {
    plan: Arc<FeaturePlan>,
    models: BTreeMap<String, Served>,
    /// Experiments, by model name; `Served::route` indexes this.
    routes: Vec<Route>,
    max_candidates: usize,
    /// The most entries a request's `models` list may have (unbounded unless set).
    max_models: usize,
    pool: ScratchPool,
}

impl std::fmt::Debug for Scorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scorer")
            .field("models", &self.models())
            .field("max_candidates", &self.max_candidates)
            .field("max_models", &self.max_models)
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
            let entry = checked(&plan, &name, model, version)?;
            if served.insert(name.clone(), entry).is_some() {
                return Err(Error::InvalidArgument(format!(
                    "model {name} is given twice"
                )));
            }
        }
        Ok(Scorer {
            plan,
            models: served,
            routes: Vec::new(),
            max_candidates,
            max_models: usize::MAX,
            pool: ScratchPool::default(),
        })
    }

    /// [`Scorer::new`] with experiments: each routes requests for its model (which must be
    /// one of `models`, at most one experiment per model) between the served version (control)
    /// and its treatment, which passes the same checks as a served model.
    pub fn with_experiments(
        plan: Arc<FeaturePlan>,
        models: Vec<(String, Arc<Model>, String)>,
        max_candidates: usize,
        experiments: Vec<ExperimentSpec>,
    ) -> Result<Scorer> {
        let mut scorer = Scorer::new(plan, models, max_candidates)?;
        if experiments.len() > MAX_ROUTES {
            return Err(Error::InvalidArgument(format!(
                "{} experiments, at most {MAX_ROUTES} per scorer",
                experiments.len()
            )));
        }
        let mut experiments = experiments;
        experiments.sort_by(|a, b| a.model.cmp(&b.model));
        for spec in experiments {
            let name = spec.model;
            let r = &spec.routing;
            if !(r.share > 0.0 && r.share <= 1.0) || r.key.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "experiment {}: share must be in (0, 1] and the key non-empty",
                    r.experiment
                )));
            }
            let treatment = match spec.treatment {
                Some((model, version)) => Some(checked(&scorer.plan, &name, model, version)?),
                None => None,
            };
            let index = scorer.routes.len();
            let control = scorer.models.get_mut(&name).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "experiment {}: model {name} is not served",
                    r.experiment
                ))
            })?;
            if control.route.is_some() {
                return Err(Error::InvalidArgument(format!(
                    "model {name} is under two experiments"
                )));
            }
            control.route = Some(index);
            scorer.routes.push(Route {
                model: name,
                routing: spec.routing,
                treatment,
            });
        }
        Ok(scorer)
    }

    /// `(model, experiment, treatment version or None)` of every route, in routing-word order:
    /// route `i` is bits `3i..3i+3` of a request's routing word.
    #[must_use]
    pub fn experiments(&self) -> Vec<(String, String, Option<String>)> {
        self.routes
            .iter()
            .map(|r| {
                (
                    r.model.clone(),
                    r.routing.experiment.clone(),
                    r.treatment.as_ref().map(|t| t.version.clone()),
                )
            })
            .collect()
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

    /// This scorer, refusing requests whose `models` list has more than `max_models` entries
    /// (the server's `--max-models`, which bounds the response with `max_candidates`).
    pub fn with_max_models(mut self, max_models: usize) -> Result<Scorer> {
        if max_models == 0 {
            return Err(Error::InvalidArgument(
                "max_models must be at least 1".into(),
            ));
        }
        self.max_models = max_models;
        Ok(self)
    }

    #[must_use]
    pub fn max_models(&self) -> usize {
        self.max_models
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
        if names.len() > self.max_models {
            return Err(Error::BadRequest(format!(
                "request names {} models, over the limit of {}",
                names.len(),
                self.max_models
            )));
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
    /// Models under an experiment are scored by the arm the request's context assigns.
    pub fn score<'a, C: CandidateInput, M: AsRef<str>>(
        &'a self,
        context: &dyn Lookup,
        candidates: &[C],
        models: &'a [M],
        python: Option<&PythonValues>,
    ) -> Result<(Vec<f32>, Vec<NameVersion<'a>>)> {
        self.score_routed(context, candidates, models, python)
            .map(|(scores, names, _)| (scores, names))
    }

    /// [`Scorer::score`], also returning the request's routing word.
    pub fn score_routed<'a, C: CandidateInput, M: AsRef<str>>(
        &'a self,
        context: &dyn Lookup,
        candidates: &[C],
        models: &'a [M],
        python: Option<&PythonValues>,
    ) -> Result<(Vec<f32>, Vec<NameVersion<'a>>, RoutingWord)> {
        let mut chosen = self.resolve(models)?;
        self.check_count(candidates.len())?;
        let routing = self.route(context, &mut chosen);
        let (scores, names) = self.score_chosen(context, candidates, &chosen, python)?;
        Ok((scores, names, routing))
    }

    /// Puts each routed model's arm in `chosen` (the treatment replaces control where the
    /// request is assigned to it, split mode) and returns the routing word.
    fn route<'a>(
        &'a self,
        context: &dyn Lookup,
        chosen: &mut [(&'a str, &'a Served)],
    ) -> RoutingWord {
        if self.routes.is_empty() {
            return 0;
        }
        let mut word = 0;
        for entry in chosen.iter_mut() {
            let Some(i) = entry.1.route else { continue };
            let route = &self.routes[i];
            let arm = route
                .routing
                .arm(context.get(&route.routing.key), route.treatment.is_some());
            if let (ArmCode::Treatment, Some(treatment)) = (arm, &route.treatment) {
                entry.1 = treatment;
            }
            word |= (arm as u64) << (ROUTE_BITS * i as u32);
        }
        word
    }

    fn score_chosen<'a, C: CandidateInput>(
        &self,
        context: &dyn Lookup,
        candidates: &[C],
        chosen: &[(&'a str, &'a Served)],
        python: Option<&PythonValues>,
    ) -> Result<(Vec<f32>, Vec<NameVersion<'a>>)> {
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
            .map(|(response, count, _)| (response.unwrap_or_default(), count))
    }

    /// Scores, with the treatment version, the models of the request that are under a shadow
    /// experiment and assigned to its treatment: a `ScoreResponse` naming only those models
    /// (treatment versions), or None when there are none. The server calls this off the
    /// response path, for the prediction log; it decodes the request again (cheaper than
    /// keeping the borrowed view alive across the response).
    pub fn score_shadow(
        &self,
        request: &[u8],
        python: Option<&PythonValues>,
    ) -> Result<Option<Vec<u8>>> {
        if !self
            .routes
            .iter()
            .any(|r| r.routing.mode == Mode::Shadow && r.treatment.is_some())
        {
            return Ok(None);
        }
        let request = decode_request(request)?;
        let mut shadowed = Vec::new();
        for (name, served) in self.resolve(&request.models)? {
            let Some(i) = served.route else { continue };
            let route = &self.routes[i];
            let arm = route.routing.arm(
                request.context.get(&route.routing.key),
                route.treatment.is_some(),
            );
            if let (ArmCode::Shadowed, Some(treatment)) = (arm, &route.treatment) {
                shadowed.push((name, treatment));
            }
        }
        if shadowed.is_empty() {
            return Ok(None);
        }
        self.check_count(request.candidates.len())?;
        let (scores, names) =
            self.score_chosen(&request.context, &request.candidates, &shadowed, python)?;
        Ok(Some(encode_response(
            request.request_id,
            &names,
            request.candidates,
            &scores,
        )))
    }

    /// [`Scorer::score_request_counted`], except that a valid request with more work than
    /// `defer_over` candidates scored by every served model (and no more than
    /// `max_candidates`) is not scored: `None` and its count come back, and the caller scores
    /// it elsewhere (the server, on a thread, so that a big request does not stall its event
    /// loop). A request for half the models is deferred at twice the candidates.
    pub fn score_request_unless_over(
        &self,
        request: &[u8],
        python: Option<&PythonValues>,
        defer_over: usize,
    ) -> Result<(Option<Vec<u8>>, usize, RoutingWord)> {
        let request = decode_request(request)?;
        let count = request.candidates.len();
        if count <= self.max_candidates && self.over(count, request.models.len(), defer_over) {
            self.resolve(&request.models)?;
            return Ok((None, count, 0));
        }
        let (scores, names, routing) = self.score_routed(
            &request.context,
            &request.candidates,
            &request.models,
            python,
        )?;
        let response = encode_response(request.request_id, &names, request.candidates, &scores);
        Ok((Some(response), count, routing))
    }

    /// Whether `candidates` scored by `models` models (0: all) is more work than `defer_over`
    /// candidates scored by every served model.
    fn over(&self, candidates: usize, models: usize, defer_over: usize) -> bool {
        let served = self.models.len();
        let width = if models == 0 { served } else { models };
        candidates.saturating_mul(width) > defer_over.saturating_mul(served)
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
            Ok((response, candidates, routing)) => Answer {
                response,
                candidates,
                code: OK,
                routing,
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

/// A model that passed the checks against its spec: fingerprint, hash bits, field count.
fn checked(plan: &FeaturePlan, name: &str, model: Arc<Model>, version: String) -> Result<Served> {
    let spec = plan.model(name).map_err(|_| {
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
    Ok(Served {
        model,
        version,
        plan: spec.clone(),
        route: None,
    })
}

fn encode_response(
    request_id: &str,
    names: &[NameVersion<'_>],
    candidates: Vec<CandidateView<'_>>,
    scores: &[f32],
) -> Vec<u8> {
    let width = names.len().max(1);
    ScoreResponse {
        request_id: request_id.to_owned(),
        models: names
            .iter()
            .map(|(n, v)| ModelVersion {
                name: (*n).to_owned(),
                version: (*v).to_owned(),
            })
            .collect(),
        candidates: candidates
            .into_iter()
            .zip(scores.chunks_exact(width))
            .map(|(c, s)| CandidateScores {
                id: c.id.to_owned(),
                scores: s.to_vec(),
            })
            .collect(),
        error: None,
    }
    .encode_to_vec()
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
        routing: 0,
    }
}
