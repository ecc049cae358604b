//! The serving path: one request (a context and N candidates) to one token set per candidate
//! per model. Context slots and context fields' tokens are computed once per request; only
//! candidate-level slots and fields are computed per candidate.

use std::collections::HashMap;
use std::hash::BuildHasher;

use super::compile::{FeatureKind, FeaturePlan, ModelPlan, Source};
use super::eval::{emit, eval_derived, fill_text, Fault, Scratch};
use crate::error::{Error, Result};

/// Raw values by feature name, as text (a request's context or one candidate's features).
pub trait Lookup {
    fn get(&self, key: &str) -> Option<&str>;
}

impl<S: BuildHasher> Lookup for HashMap<String, String, S> {
    fn get(&self, key: &str) -> Option<&str> {
        HashMap::get(self, key).map(String::as_str)
    }
}

impl Lookup for std::collections::BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        std::collections::BTreeMap::get(self, key).map(String::as_str)
    }
}

/// A candidate: its raw values and an id used in error messages.
pub trait CandidateInput: Lookup {
    fn id(&self) -> &str;
}

/// Python property values: feature name -> one value per candidate (`None`: missing).
pub type PythonValues = HashMap<String, Vec<Option<String>>>;

/// Reusable per-request state; one per thread at a time.
#[derive(Debug, Default)]
pub struct RequestScratch {
    eval: Scratch,
    context_done: Vec<bool>,
    candidate_done: Vec<bool>,
    /// Per requested model: the context fields' `(index, value)`, by field position.
    context_tokens: Vec<Vec<(u32, f32)>>,
    pub(crate) fields: Vec<u32>,
    pub(crate) indices: Vec<u32>,
    pub(crate) values: Vec<f32>,
}

fn where_(model: &ModelPlan, candidate: Option<(usize, &str)>, feature: &str) -> String {
    match candidate {
        None => format!("model {}, context, feature {feature}", model.name),
        Some((i, "")) => format!("model {}, candidate #{i}, feature {feature}", model.name),
        Some((i, id)) => format!(
            "model {}, candidate {id:?} (#{i}), feature {feature}",
            model.name
        ),
    }
}

impl FeaturePlan {
    /// Fresh scratch sized for this plan.
    #[must_use]
    pub fn request_scratch(&self) -> RequestScratch {
        let n = self.features.len();
        RequestScratch {
            eval: Scratch::for_features(n),
            context_done: vec![false; n],
            candidate_done: vec![false; n],
            ..RequestScratch::default()
        }
    }

    /// Tokenises one request for `models` (plan models, in output order), calling
    /// `sink(model_position, candidate_index, fields, indices, values)` for every candidate
    /// and model. Errors (`BadRequest`) name the model, the candidate and the feature.
    pub fn tokenize_request<C: CandidateInput>(
        &self,
        models: &[&ModelPlan],
        context: &dyn Lookup,
        candidates: &[C],
        python: Option<&PythonValues>,
        scratch: &mut RequestScratch,
        mut sink: impl FnMut(usize, usize, &[u32], &[u32], &[f32]),
    ) -> Result<()> {
        if scratch.context_done.len() != self.features.len() {
            *scratch = self.request_scratch();
        }
        let python = self.check_python(models, python, candidates.len())?;
        scratch.context_done.fill(false);
        scratch.context_tokens.resize_with(models.len(), Vec::new);
        for (m, model) in models.iter().enumerate() {
            for &slot in &model.context_slots {
                if !scratch.context_done[slot] {
                    self.fill_slot(slot, context, None, &python, scratch)
                        .map_err(|f| {
                            Error::BadRequest(format!(
                                "{}: {}",
                                where_(model, None, &self.features[slot].name),
                                f.describe()
                            ))
                        })?;
                    scratch.context_done[slot] = true;
                }
            }
            let tokens = &mut scratch.context_tokens[m];
            tokens.clear();
            for field in &model.fields {
                tokens.push(if field.per_candidate {
                    (0, 0.0)
                } else {
                    let ty = self.features[field.slot].ty;
                    emit(
                        model,
                        field,
                        ty,
                        &scratch.eval.slots,
                        &mut scratch.eval.token,
                    )
                });
            }
        }
        // Field ids are the same for every candidate: `0..fields` of each model.
        let widest = models.iter().map(|m| m.fields.len()).max().unwrap_or(0);
        scratch.fields.clear();
        scratch.fields.extend(0..widest as u32);
        for (c, candidate) in candidates.iter().enumerate() {
            scratch.candidate_done.fill(false);
            for (m, model) in models.iter().enumerate() {
                for &slot in &model.candidate_slots {
                    if !scratch.candidate_done[slot] {
                        self.fill_slot(slot, candidate, Some(c), &python, scratch)
                            .map_err(|f| {
                                let at = where_(
                                    model,
                                    Some((c, candidate.id())),
                                    &self.features[slot].name,
                                );
                                Error::BadRequest(format!("{at}: {}", f.describe()))
                            })?;
                        scratch.candidate_done[slot] = true;
                    }
                }
                scratch.indices.clear();
                scratch.values.clear();
                for (field, &context) in model.fields.iter().zip(&scratch.context_tokens[m]) {
                    let (index, value) = if field.per_candidate {
                        let ty = self.features[field.slot].ty;
                        emit(
                            model,
                            field,
                            ty,
                            &scratch.eval.slots,
                            &mut scratch.eval.token,
                        )
                    } else {
                        context
                    };
                    scratch.indices.push(index);
                    scratch.values.push(value);
                }
                let fields = &scratch.fields[..model.fields.len()];
                sink(m, c, fields, &scratch.indices, &scratch.values);
            }
        }
        Ok(())
    }

    /// Python values by slot; every Python feature the models reach must be present, with one
    /// value per candidate.
    fn check_python<'v>(
        &self,
        models: &[&ModelPlan],
        python: Option<&'v PythonValues>,
        n: usize,
    ) -> Result<Vec<Option<&'v [Option<String>]>>> {
        let mut by_slot = vec![None; self.features.len()];
        for model in models {
            for &slot in &model.candidate_slots {
                let feature = &self.features[slot];
                if !matches!(
                    feature.kind,
                    FeatureKind::Raw {
                        source: Source::Python,
                        ..
                    }
                ) {
                    continue;
                }
                let values = python.and_then(|p| p.get(&feature.name)).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "model {}: feature {} is a Python property: pass its values",
                        model.name, feature.name
                    ))
                })?;
                if values.len() != n {
                    return Err(Error::InvalidArgument(format!(
                        "Python feature {} has {} values for {n} candidates",
                        feature.name,
                        values.len()
                    )));
                }
                by_slot[slot] = Some(values.as_slice());
            }
        }
        Ok(by_slot)
    }

    fn fill_slot(
        &self,
        slot: usize,
        values: &dyn Lookup,
        candidate: Option<usize>,
        python: &[Option<&[Option<String>]>],
        scratch: &mut RequestScratch,
    ) -> std::result::Result<(), Fault> {
        let feature = &self.features[slot];
        match &feature.kind {
            FeatureKind::Raw {
                source: Source::Python,
                ..
            } => {
                let text = candidate.and_then(|c| python[slot].and_then(|v| v[c].as_deref()));
                fill_text(&mut scratch.eval.slots[slot], feature, text)
            }
            FeatureKind::Raw { .. } => fill_text(
                &mut scratch.eval.slots[slot],
                feature,
                values.get(&feature.name),
            ),
            FeatureKind::Derived { .. } => {
                eval_derived(feature, slot, &mut scratch.eval);
                Ok(())
            }
        }
    }
}
