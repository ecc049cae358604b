//! Request scratch buffers kept between calls: after a few requests every slot's text buffer
//! has its working size, and tokenising allocates nothing. Shared by concurrent callers.

use std::sync::{Mutex, PoisonError};

use super::compile::FeaturePlan;
use super::request::RequestScratch;

/// Buffers kept for reuse; more concurrent calls than this just allocate their own.
const KEEP: usize = 64;

#[derive(Debug, Default)]
pub struct ScratchPool {
    buffers: Mutex<Vec<RequestScratch>>,
}

impl ScratchPool {
    /// Runs `f` with a scratch for `plan`, taken from the pool and given back afterwards.
    pub fn with<T>(&self, plan: &FeaturePlan, f: impl FnOnce(&mut RequestScratch) -> T) -> T {
        // A poisoned lock only means another caller panicked while pushing or popping; the
        // buffers are plain memory, so keep using them.
        let taken = self
            .buffers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut scratch = taken.unwrap_or_else(|| plan.request_scratch());
        let out = f(&mut scratch);
        let mut buffers = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        if buffers.len() < KEEP {
            buffers.push(scratch);
        }
        out
    }
}
