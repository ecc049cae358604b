//! The plan JSON (docs/architecture.md, "Feature plan") compiled to a typed, indexed form.
//! Every feature gets a slot index; derived features come after their inputs, so evaluating
//! slots in index order is always valid.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::ops::Op;
use super::value::{default_from_json, Value, ValueType};
use crate::error::{Error, Result};
use crate::hash;

/// The plan format version this executor understands.
pub const PLAN_VERSION: u32 = 1;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanJson {
    version: u32,
    raw: Vec<RawJson>,
    derived: Vec<DerivedJson>,
    models: BTreeMap<String, ModelJson>,
}

#[derive(Deserialize)]
struct RawJson {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    source: String,
    default: serde_json::Value,
}

#[derive(Deserialize)]
struct DerivedJson {
    name: String,
    op: String,
    inputs: Vec<String>,
    #[serde(default)]
    params: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelJson {
    seed: u64,
    bits: u32,
    fields: Vec<FieldJson>,
    #[serde(default)]
    fingerprint: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldJson {
    feature: String,
    kind: String,
}

/// Where a raw value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The request context: once per request.
    Context,
    /// An ad candidate: once per candidate.
    Candidate,
    /// A Python `@property`, computed by the caller and passed in as text.
    Python,
}

/// How a feature's value is produced.
#[derive(Debug, Clone)]
pub enum FeatureKind {
    /// A raw input; `None` default means required.
    Raw {
        source: Source,
        default: Option<Value>,
    },
    /// A built-in transform of earlier slots.
    Derived {
        op: Op,
        inputs: Vec<(usize, ValueType)>,
    },
}

/// One feature of the plan.
#[derive(Debug, Clone)]
pub struct Feature {
    pub name: String,
    pub ty: ValueType,
    pub kind: FeatureKind,
    /// True when the value can differ between the candidates of one request.
    pub per_candidate: bool,
}

/// One field of a model.
#[derive(Debug, Clone)]
pub struct FieldPlan {
    pub slot: usize,
    pub numeric: bool,
    /// `feature=`, the token prefix of a categorical field.
    pub prefix: String,
    /// The bucket of the token `feature` of a numeric field (constant).
    pub numeric_index: u32,
    pub per_candidate: bool,
}

/// One model: its fields, hashing parameters and the slots it needs, in evaluation order.
#[derive(Debug, Clone)]
pub struct ModelPlan {
    pub name: String,
    pub seed: u64,
    pub bits: u32,
    pub fingerprint: String,
    pub fields: Vec<FieldPlan>,
    /// Context-level slots this model reaches, ascending (= evaluation order).
    pub context_slots: Vec<usize>,
    /// Candidate-level slots this model reaches, ascending.
    pub candidate_slots: Vec<usize>,
}

/// A compiled feature plan, shared by the training and the serving path.
#[derive(Debug, Clone)]
pub struct FeaturePlan {
    pub(crate) features: Vec<Feature>,
    pub(crate) by_name: HashMap<String, usize>,
    pub(crate) models: BTreeMap<String, ModelPlan>,
}

fn bad(msg: &str) -> Error {
    Error::InvalidArgument(format!("feature plan: {msg}"))
}

impl FeaturePlan {
    /// Parses and checks a plan.
    pub fn from_json(json: &str) -> Result<Self> {
        let plan: PlanJson = serde_json::from_str(json).map_err(|e| bad(&e.to_string()))?;
        if plan.version != PLAN_VERSION {
            return Err(bad(&format!(
                "version {} is not supported (this build reads version {PLAN_VERSION})",
                plan.version
            )));
        }
        let mut out = FeaturePlan {
            features: Vec::new(),
            by_name: HashMap::new(),
            models: BTreeMap::new(),
        };
        for raw in plan.raw {
            out.add_raw(raw)?;
        }
        for derived in plan.derived {
            out.add_derived(derived)?;
        }
        if plan.models.is_empty() {
            return Err(bad("no models"));
        }
        for (name, model) in plan.models {
            let compiled = out.compile_model(&name, model)?;
            out.models.insert(name, compiled);
        }
        Ok(out)
    }

    fn insert(&mut self, feature: Feature) -> Result<()> {
        if self.by_name.contains_key(&feature.name) {
            return Err(bad(&format!("feature {:?} is defined twice", feature.name)));
        }
        self.by_name
            .insert(feature.name.clone(), self.features.len());
        self.features.push(feature);
        Ok(())
    }

    fn add_raw(&mut self, raw: RawJson) -> Result<()> {
        let ty = ValueType::parse_name(&raw.ty).ok_or_else(|| {
            bad(&format!(
                "feature {:?}: unknown type {:?}",
                raw.name, raw.ty
            ))
        })?;
        let source = match raw.source.as_str() {
            "context" => Source::Context,
            "candidate" => Source::Candidate,
            "derived_python" => Source::Python,
            other => {
                return Err(bad(&format!(
                    "feature {:?}: unknown source {other:?}",
                    raw.name
                )))
            }
        };
        let default = if raw.default.is_null() {
            None
        } else {
            Some(default_from_json(ty, &raw.default).ok_or_else(|| {
                bad(&format!(
                    "feature {:?}: default {} is not a {}",
                    raw.name,
                    raw.default,
                    ty.name()
                ))
            })?)
        };
        self.insert(Feature {
            name: raw.name,
            ty,
            kind: FeatureKind::Raw { source, default },
            per_candidate: source != Source::Context,
        })
    }

    fn add_derived(&mut self, d: DerivedJson) -> Result<()> {
        let name = d.name;
        let mut inputs = Vec::with_capacity(d.inputs.len());
        let mut per_candidate = false;
        for input in &d.inputs {
            let &slot = self.by_name.get(input).ok_or_else(|| {
                bad(&format!(
                    "feature {name:?}: input {input:?} is not defined before it"
                ))
            })?;
            let f = &self.features[slot];
            per_candidate |= f.per_candidate;
            inputs.push((slot, f.ty));
        }
        let op = parse_op(&name, &d.op, &d.params)?;
        let arity_ok = match op {
            Op::Cross => (2..=3).contains(&inputs.len()),
            _ => inputs.len() == 1,
        };
        if !arity_ok {
            return Err(bad(&format!(
                "feature {name:?}: {} takes another number of inputs",
                d.op
            )));
        }
        let types_ok = inputs.iter().all(|&(_, ty)| match op {
            Op::HourOfDay | Op::DayOfWeek => ty == ValueType::Int,
            Op::Bucketize(_) | Op::LogBucket(_) | Op::Clip(..) => ty != ValueType::Str,
            Op::Lower => ty == ValueType::Str,
            Op::Cross => true,
        });
        if !types_ok {
            return Err(bad(&format!(
                "feature {name:?}: {} does not accept its input types",
                d.op
            )));
        }
        let ty = op.output();
        self.insert(Feature {
            name,
            ty,
            kind: FeatureKind::Derived { op, inputs },
            per_candidate,
        })
    }

    fn compile_model(&self, name: &str, model: ModelJson) -> Result<ModelPlan> {
        if model.bits == 0 || model.bits > hash::MAX_BITS {
            return Err(bad(&format!(
                "model {name}: bits must be in 1..={}",
                hash::MAX_BITS
            )));
        }
        if model.fields.is_empty() {
            return Err(bad(&format!("model {name}: no fields")));
        }
        let mut reached = vec![false; self.features.len()];
        let mut fields = Vec::with_capacity(model.fields.len());
        for field in &model.fields {
            let &slot = self.by_name.get(&field.feature).ok_or_else(|| {
                bad(&format!(
                    "model {name}: unknown feature {:?}",
                    field.feature
                ))
            })?;
            let feature = &self.features[slot];
            let numeric = match field.kind.as_str() {
                "categorical" => false,
                "numeric" if feature.ty != ValueType::Str => true,
                "numeric" => {
                    return Err(bad(&format!(
                        "model {name}: numeric field {:?} is a str",
                        field.feature
                    )))
                }
                other => return Err(bad(&format!("model {name}: unknown field kind {other:?}"))),
            };
            self.mark_reached(slot, &mut reached);
            fields.push(FieldPlan {
                slot,
                numeric,
                prefix: format!("{}=", field.feature),
                numeric_index: hash::bucket(field.feature.as_bytes(), model.seed, model.bits),
                per_candidate: feature.per_candidate,
            });
        }
        let slots = reached
            .iter()
            .enumerate()
            .filter(|(_, r)| **r)
            .map(|(i, _)| i);
        let (candidate_slots, context_slots) = slots.partition(|&i| self.features[i].per_candidate);
        Ok(ModelPlan {
            name: name.to_owned(),
            seed: model.seed,
            bits: model.bits,
            fingerprint: model.fingerprint,
            fields,
            context_slots,
            candidate_slots,
        })
    }

    fn mark_reached(&self, slot: usize, reached: &mut [bool]) {
        if reached[slot] {
            return;
        }
        reached[slot] = true;
        if let FeatureKind::Derived { inputs, .. } = &self.features[slot].kind {
            for &(input, _) in inputs {
                self.mark_reached(input, reached);
            }
        }
    }

    /// A model of the plan.
    pub fn model(&self, name: &str) -> Result<&ModelPlan> {
        self.models.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.models.keys().map(String::as_str).collect();
            Error::NotFound(format!(
                "model {name:?} is not in the feature plan (it has {known:?})"
            ))
        })
    }

    /// Model names, sorted.
    pub fn model_names(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    /// Every feature, in slot order.
    #[must_use]
    pub fn features(&self) -> &[Feature] {
        &self.features
    }
}

fn parse_op(
    name: &str,
    op: &str,
    params: &serde_json::Map<String, serde_json::Value>,
) -> Result<Op> {
    let number = |key: &str| params.get(key).and_then(serde_json::Value::as_f64);
    Ok(match op {
        "hour_of_day" => Op::HourOfDay,
        "day_of_week" => Op::DayOfWeek,
        "lower" => Op::Lower,
        "cross" => Op::Cross,
        "bucketize" => {
            let edges: Option<Vec<f64>> = params
                .get("edges")
                .and_then(serde_json::Value::as_array)
                .and_then(|a| a.iter().map(serde_json::Value::as_f64).collect());
            match edges {
                Some(e)
                    if !e.is_empty()
                        && e.iter().all(|x| x.is_finite())
                        && e.windows(2).all(|w| w[0] < w[1]) =>
                {
                    Op::Bucketize(e)
                }
                _ => {
                    return Err(bad(&format!(
                        "feature {name:?}: bucketize needs strictly increasing finite edges"
                    )))
                }
            }
        }
        "log_bucket" => match number("base") {
            Some(base) if base.is_finite() && base > 1.0 => Op::LogBucket(base.ln()),
            _ => {
                return Err(bad(&format!(
                    "feature {name:?}: log_bucket needs a base > 1"
                )))
            }
        },
        "clip" => match (number("lo"), number("hi")) {
            (Some(lo), Some(hi)) if lo.is_finite() && hi.is_finite() && lo <= hi => {
                Op::Clip(lo, hi)
            }
            _ => {
                return Err(bad(&format!(
                    "feature {name:?}: clip needs finite lo <= hi"
                )))
            }
        },
        other => return Err(bad(&format!("feature {name:?}: unknown op {other:?}"))),
    })
}
