//! Experiment routing: which arm (control or treatment version) scores a request for a model
//! under a running experiment.
//!
//! Why here and not in Python: the arm depends on one context value of the request, and the
//! request is parsed only in Rust (zero-copy, [`super::wire`]). Routing in Python would parse
//! every request a second time (with upb: ~10-30 µs for a 10-candidate request) before calling
//! Rust; here it costs one binary search in the already-decoded context and one `BLAKE2b` of a
//! few bytes (~100 ns). The assignment contract is `bidscore.experiments.bucket`/`assign`:
//! the first 8 bytes of BLAKE2b-64(utf8(salt) + 0x1f + utf8(value)), big-endian, / 2^64;
//! treatment iff that is below `share`; a missing or empty key value goes to control.

use blake2::digest::consts::U8;
use blake2::{Blake2b, Digest};

/// `BLAKE2b` with an 8-byte digest (the digest length is part of `BLAKE2`'s parameter block, so
/// this is not a truncated BLAKE2b-512; it equals Python's `hashlib.blake2b(digest_size=8)`).
type Blake2b64 = Blake2b<U8>;

/// A point in [0, 1) for the key value, uniform over values and fixed for (salt, value):
/// exactly `bidscore.experiments.bucket(salt, value)` (same f64, bit for bit).
#[must_use]
pub fn bucket(salt: &str, value: &str) -> f64 {
    let digest = Blake2b64::new()
        .chain_update(salt.as_bytes())
        .chain_update([0x1f])
        .chain_update(value.as_bytes())
        .finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest);
    // Python: int.from_bytes(digest, "big") / 2.0**64 converts the integer to the nearest
    // double (ties to even), as `as f64` does, then divides exactly by a power of two.
    u64::from_be_bytes(bytes) as f64 / 18_446_744_073_709_551_616.0
}

/// How the treatment is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `ab` and `canary`: the treatment's share of requests is answered by the treatment.
    Split,
    /// `shadow`: every request is answered by control; the treatment's share is also scored
    /// off the response path ([`super::Scorer::score_shadow`]).
    Shadow,
}

impl Mode {
    /// `"ab"`, `"canary"` or `"shadow"` (the registry's spelling).
    #[must_use]
    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "ab" | "canary" => Some(Mode::Split),
            "shadow" => Some(Mode::Shadow),
            _ => None,
        }
    }
}

/// The arm of one request for one routed model, as reported to the caller: 3 bits per route
/// in [`super::Scorer`]'s routing word (route `i` at bits `3i..3i+3`; 0 = the request did not
/// ask for that model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ArmCode {
    /// Scored by control, assigned to control.
    Control = 1,
    /// Scored by the treatment (split mode).
    Treatment = 2,
    /// Scored by control because the request has no (or an empty) value for the key.
    KeyMissing = 3,
    /// Scored by control; assigned to the treatment in shadow mode, so the treatment scores it
    /// off the response path.
    Shadowed = 4,
}

/// Bits per route in the routing word, and so at most this many routes per scorer.
pub const ROUTE_BITS: u32 = 3;
pub const MAX_ROUTES: usize = (u64::BITS / ROUTE_BITS) as usize;

/// An experiment's routing for one model, without its treatment model.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    pub experiment: String,
    pub mode: Mode,
    /// The request context key whose value assigns the arm.
    pub key: String,
    pub salt: String,
    /// Share of key values assigned to the treatment, in (0, 1].
    pub share: f64,
}

impl Routing {
    /// The arm of a request whose context has `value` for the key. `treatment_loaded` false
    /// (a degraded experiment: the server could not load the treatment) sends everything to
    /// control, still counting missing keys.
    #[must_use]
    pub fn arm(&self, value: Option<&str>, treatment_loaded: bool) -> ArmCode {
        let value = match value {
            Some(v) if !v.is_empty() => v,
            _ => return ArmCode::KeyMissing,
        };
        if !treatment_loaded || bucket(&self.salt, value) >= self.share {
            return ArmCode::Control;
        }
        match self.mode {
            Mode::Split => ArmCode::Treatment,
            Mode::Shadow => ArmCode::Shadowed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_matches_the_python_contract() {
        // hashlib.blake2b(salt.encode() + b"\x1f" + value.encode(), digest_size=8), big-endian
        // / 2**64, computed with CPython 3.11.
        let vectors = [
            ("s", "u1", 0.117_909_461_399_185_98),
            ("salt-1", "user-42", 0.277_863_303_133_457_3),
            ("", "x", 0.365_187_185_973_249),
            ("exp", "ü", 0.191_434_820_079_230_46),
        ];
        for (salt, value, want) in vectors {
            assert_eq!(
                bucket(salt, value).to_bits(),
                f64::to_bits(want),
                "{salt} {value}"
            );
        }
    }

    #[test]
    fn share_splits_values_and_missing_keys_go_to_control() {
        let route = Routing {
            experiment: "e".into(),
            mode: Mode::Split,
            key: "user_id".into(),
            salt: "s".into(),
            share: 0.1,
        };
        let n = 20_000;
        let treated = (0..n)
            .filter(|i| route.arm(Some(&format!("u{i}")), true) == ArmCode::Treatment)
            .count();
        let share = treated as f64 / f64::from(n);
        assert!((share - 0.1).abs() < 0.01, "{share}");
        assert_eq!(route.arm(None, true), ArmCode::KeyMissing);
        assert_eq!(route.arm(Some(""), true), ArmCode::KeyMissing);
        // "u1" has bucket 0.1179 under salt "s": control at 0.1, treatment at 0.2.
        assert_eq!(route.arm(Some("u1"), true), ArmCode::Control);
        let wider = Routing {
            share: 0.2,
            ..route.clone()
        };
        assert_eq!(wider.arm(Some("u1"), true), ArmCode::Treatment);
        assert_eq!(wider.arm(Some("u1"), false), ArmCode::Control);
        let shadow = Routing {
            mode: Mode::Shadow,
            ..wider
        };
        assert_eq!(shadow.arm(Some("u1"), true), ArmCode::Shadowed);
    }
}
