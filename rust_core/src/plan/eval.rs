//! Evaluation shared by both paths: filling a raw slot from text or its default, computing a
//! derived slot, turning a field's slot into a `(field, index, value)` triple. The training
//! and the serving path differ only in where raw values come from.

use super::compile::{Feature, FeatureKind, FieldPlan, ModelPlan};
use super::value::{ParseFault, Slot, Value, ValueType};
use crate::hash;

/// Why a raw value could not be filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    Missing,
    Parse(ParseFault, String),
}

impl Fault {
    pub(crate) fn describe(&self) -> String {
        match self {
            Fault::Missing => "missing required value".to_owned(),
            Fault::Parse(fault, text) => fault.describe(text),
        }
    }
}

/// Reusable buffers of one evaluation (one thread at a time).
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub(crate) slots: Vec<Slot>,
    pub(crate) text: String,
    pub(crate) token: String,
}

impl Scratch {
    pub(crate) fn for_features(n: usize) -> Self {
        let mut s = Self::default();
        s.slots.resize_with(n, Slot::default);
        s
    }
}

pub(crate) fn default_of(feature: &Feature) -> Option<&Value> {
    match &feature.kind {
        FeatureKind::Raw { default, .. } => default.as_ref(),
        FeatureKind::Derived { .. } => None,
    }
}

/// Fills a raw slot from optional wire text: parse it, or take the default.
pub(crate) fn fill_text(
    slot: &mut Slot,
    feature: &Feature,
    text: Option<&str>,
) -> Result<(), Fault> {
    match text {
        Some(t) => slot
            .parse(feature.ty, t)
            .map_err(|f| Fault::Parse(f, t.to_owned())),
        None => fill_default(slot, feature),
    }
}

pub(crate) fn fill_default(slot: &mut Slot, feature: &Feature) -> Result<(), Fault> {
    let value = default_of(feature).ok_or(Fault::Missing)?;
    slot.set_value(value);
    Ok(())
}

/// Computes a derived slot from its (already computed) inputs.
pub(crate) fn eval_derived(feature: &Feature, index: usize, scratch: &mut Scratch) {
    if let FeatureKind::Derived { op, inputs } = &feature.kind {
        op.eval(&mut scratch.slots, inputs, index, &mut scratch.text);
    }
}

/// The `(index, value)` of one field: a categorical field hashes `feature=text` with value 1,
/// a numeric one has the constant index of `feature` and the number as its value (as f32,
/// clamped to the finite f32 range).
#[inline]
pub(crate) fn emit(
    model: &ModelPlan,
    field: &FieldPlan,
    ty: ValueType,
    slots: &[Slot],
    token: &mut String,
) -> (u32, f32) {
    let slot = &slots[field.slot];
    if field.numeric {
        return emit_numeric(field, ty, slot);
    }
    token.clear();
    token.push_str(&field.prefix);
    slot.write_text(ty, token);
    (bucket(model, token), 1.0)
}

/// A numeric field's `(index, value)`, the value clamped to the finite f32 range: a finite
/// f64 beyond it would become an infinite weight multiplier (training refuses those,
/// scoring would return NaN).
#[inline]
pub(crate) fn emit_numeric(field: &FieldPlan, ty: ValueType, slot: &Slot) -> (u32, f32) {
    let value = (slot.number(ty) as f32).clamp(f32::MIN, f32::MAX);
    (field.numeric_index, value)
}

/// The bucket of a whole categorical token (`feature=text`).
#[inline]
pub(crate) fn bucket(model: &ModelPlan, token: &str) -> u32 {
    hash::bucket(token.as_bytes(), model.seed, model.bits)
}
