//! Arbitrary bytes as LIBFFM text: parse or refuse with an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = rust_core::libffm::parse(data, "fuzz") {
        for i in 0..d.num_rows() {
            let _ = d.row(i);
        }
    }
});
