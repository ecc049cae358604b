//! Arbitrary bytes as a model file: the parser must refuse or accept, never panic, and an
//! accepted model must score without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rust_core::model::Model;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Model::from_bytes(data) {
        let _ = m.predict_row(&[0, 1, 2000], &[7, u32::MAX, 3], &[1.0, 0.5, 2.0]);
    }
});
