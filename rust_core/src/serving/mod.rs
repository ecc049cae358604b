//! The serving engine: a `bidscore.v1.ScoreRequest` (decoded zero-copy by [`wire`], checked
//! against prost's decoding in the tests) is validated,
//! tokenised once per request with the feature plan, scored by every requested model and
//! encoded as a `ScoreResponse`.

pub mod experiment;
pub mod proto;
mod scorer;
pub mod wire;

pub use scorer::{
    status_name, Answer, ExperimentSpec, RoutingWord, Scorer, DEFAULT_MAX_CANDIDATES, OK,
};

#[cfg(test)]
mod tests;
