//! bidscore's native core.
//!
//! Everything here is plain Rust with its own `cargo test`; the Python extension lives in
//! [`bindings`] alone (feature `python`), which converts types and errors and nothing else.

pub mod dataset;
pub mod error;
pub mod ffm;
pub mod hash;
pub mod hugemem;
pub mod libffm;
pub mod lr;
pub mod math;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod quads;
pub mod rng;
pub mod serving;
pub mod shards;
pub mod simd;
pub mod slots;
pub mod train;

#[cfg(feature = "python")]
mod bindings;
