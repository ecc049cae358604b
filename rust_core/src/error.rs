//! The crate's one error type. The Python bindings convert it once, at the edge:
//! [`Error::Format`] becomes `rust_core.ModelFormatError`, [`Error::Data`] becomes
//! `rust_core.DataError`, [`Error::InvalidArgument`] a `ValueError`, [`Error::Io`] an
//! `OSError`; the scorer's bindings map [`Error::BadRequest`] and [`Error::NotFound`] to
//! `rust_core.ScoreError` codes.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A model file is truncated, corrupted or not a model file at all.
    #[error("{0}")]
    Format(String),
    /// Training or scoring data is malformed (the message names where).
    #[error("{0}")]
    Data(String),
    /// A parameter is out of range.
    #[error("{0}")]
    InvalidArgument(String),
    /// A scoring request is malformed: no or too many candidates, a missing or unparsable
    /// feature (gRPC `INVALID_ARGUMENT`; the message names model, candidate and feature).
    #[error("{0}")]
    BadRequest(String),
    /// A scoring request names a model that is not served (gRPC `NOT_FOUND`).
    #[error("{0}")]
    NotFound(String),
    /// The caller's progress callback asked training to stop (or failed).
    #[error("training stopped by the progress callback")]
    Interrupted,
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
