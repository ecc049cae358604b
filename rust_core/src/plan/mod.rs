//! The feature plan: the JSON that `features/` compiles from a Python schema, executed here
//! for both paths (docs/architecture.md, "Feature plan").
//!
//! - [`FeaturePlan::tokenize_columns`]: training, typed columns to CSR.
//! - [`FeaturePlan::tokenize_request`]: serving, one request to tokens per candidate.
//!
//! Both fill the same slots with the same [`eval`] functions and [`ops::Op`]s, which is what
//! makes their `(field, index, value)` triples identical.

mod columns;
mod compile;
mod eval;
mod ops;
mod pool;
mod request;
mod value;

pub use columns::{Column, ColumnData, Csr, Offsets};
pub use compile::{Feature, FeatureKind, FeaturePlan, FieldPlan, ModelPlan, Source, PLAN_VERSION};
pub use ops::Op;
pub use pool::ScratchPool;
pub use request::{CandidateInput, Lookup, PythonValues, RequestScratch};
pub use value::{Value, ValueType};

#[cfg(test)]
mod tests;
