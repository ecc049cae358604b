//! Arbitrary model files with both checksums made valid, so that mutations reach every field
//! check behind them (dimensions, payload length, rate, reserved bytes, weights) and scoring.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rust_core::model::format::{checksum, HEADER_LEN};
use rust_core::model::Model;

fuzz_target!(|data: &[u8]| {
    let mut file = data.to_vec();
    if file.len() >= HEADER_LEN {
        let payload_sum = checksum(&file[HEADER_LEN..]);
        file[80..88].copy_from_slice(&payload_sum.to_le_bytes());
        let header_sum = checksum(&file[..88]);
        file[88..96].copy_from_slice(&header_sum.to_le_bytes());
    }
    if let Ok(m) = Model::from_bytes(&file) {
        let _ = m.predict_row(&[0, 1, 2000], &[7, u32::MAX, 3], &[1.0, 0.5, 2.0]);
    }
});
