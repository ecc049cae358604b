//! bidscore's native core.
//!
//! Everything here is plain Rust with its own `cargo test`; the Python extension lives in
//! [`bindings`] alone (feature `python`), which converts types and errors and nothing else.

pub mod hash;

#[cfg(feature = "python")]
mod bindings;
