//! Which FFM kernel runs: chosen once per process from the CPU's features (runtime
//! dispatch), or forced with the `BIDSCORE_KERNEL` environment variable (tests, and
//! reproducing a result on another path).
//!
//! | kernel | scoring | training |
//! | --- | --- | --- |
//! | `scalar` | one lane at a time, the reference the others are tested against | same, with the approximate `AdaGrad` step |
//! | `legacy` | the SSE kernels of format version 1 (chunks of 4 or 8 lanes when k allows, else one lane) | the same, unpadded latent vectors, exact `AdaGrad` step (sqrt and division): the baseline of `bench/` |
//! | `sse` | as `legacy` | padded latent vectors, 4 SSE lanes, approximate `AdaGrad` step |
//! | `avx2` | AVX2 + FMA, 8 lanes (4 for a k = 4 tail) | same |
//! | `avx512` | AVX-512F, 16 lanes (then 8, 4) | same |
//!
//! Every path is deterministic: single-threaded training on one path is bit-for-bit
//! reproducible. Paths differ in rounding (fused multiply-adds, summation order), so scores
//! agree across paths to about 1e-6 relative, not bit for bit.

use std::sync::OnceLock;

/// An FFM kernel family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kernel {
    Scalar,
    Legacy,
    Sse,
    Avx2,
    Avx512,
}

/// The environment variable that forces a kernel (`auto` or unset: the best available).
pub const ENV: &str = "BIDSCORE_KERNEL";

impl Kernel {
    pub const ALL: [Kernel; 5] = [
        Kernel::Scalar,
        Kernel::Legacy,
        Kernel::Sse,
        Kernel::Avx2,
        Kernel::Avx512,
    ];

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Legacy => "legacy",
            Kernel::Sse => "sse",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
        }
    }

    #[must_use]
    pub fn from_name(name: &str) -> Option<Kernel> {
        Kernel::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether this CPU can run the kernel.
    #[must_use]
    pub fn available(self) -> bool {
        match self {
            Kernel::Scalar | Kernel::Legacy | Kernel::Sse => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                Kernel::Avx2.available() && std::arch::is_x86_feature_detected!("avx512f")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx2 | Kernel::Avx512 => false,
        }
    }

    /// The kernel runtime dispatch picks on this CPU. AVX-512 is available as a forced
    /// path but not picked: measured on this project's machines (see docs/benchmarks.md),
    /// it did not beat AVX2 on these memory-bound loops.
    #[must_use]
    pub fn best() -> Kernel {
        if Kernel::Avx2.available() {
            Kernel::Avx2
        } else {
            Kernel::Sse
        }
    }

    /// The kernel this process uses: `BIDSCORE_KERNEL` if set to an available kernel,
    /// else [`Kernel::best`]. Read once.
    #[must_use]
    pub fn active() -> Kernel {
        choice().0
    }

    /// The kernel that runs when `self` is asked for: itself if this CPU has it, else the
    /// best one below it.
    #[must_use]
    pub fn or_fallback(self) -> Kernel {
        if self.available() {
            self
        } else if self == Kernel::Avx512 && Kernel::Avx2.available() {
            Kernel::Avx2
        } else {
            Kernel::Sse
        }
    }

    /// Whether training with this kernel pads latent vectors to a multiple of 4 lanes.
    #[must_use]
    pub fn pads(self) -> bool {
        self != Kernel::Legacy
    }
}

fn choice() -> &'static (Kernel, String) {
    static CHOICE: OnceLock<(Kernel, String)> = OnceLock::new();
    CHOICE.get_or_init(|| {
        let requested = std::env::var(ENV).unwrap_or_default();
        let requested = requested.trim().to_ascii_lowercase();
        if requested.is_empty() || requested == "auto" {
            return (Kernel::best(), "auto".into());
        }
        match Kernel::from_name(&requested) {
            Some(k) if k.available() => (k, format!("{ENV}={requested}")),
            Some(k) => (
                k.or_fallback(),
                format!("{ENV}={requested} (not supported by this CPU)"),
            ),
            None => (
                Kernel::best(),
                format!("{ENV}={requested} (unknown kernel, ignored)"),
            ),
        }
    })
}

/// What the dispatch saw and chose: `(chosen kernel, how it was chosen, available kernels,
/// CPU features)`.
#[must_use]
pub fn report() -> (Kernel, String, Vec<Kernel>, Vec<(&'static str, bool)>) {
    let (k, how) = choice();
    let available = Kernel::ALL.into_iter().filter(|k| k.available()).collect();
    (*k, how.clone(), available, cpu_features())
}

fn cpu_features() -> Vec<(&'static str, bool)> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        vec![
            ("sse2", has!("sse2")),
            ("avx", has!("avx")),
            ("avx2", has!("avx2")),
            ("fma", has!("fma")),
            ("avx512f", has!("avx512f")),
        ]
    }
    #[cfg(not(target_arch = "x86_64"))]
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_fallbacks_are_available() {
        for k in Kernel::ALL {
            assert_eq!(Kernel::from_name(k.name()), Some(k));
            assert!(k.or_fallback().available());
        }
        assert!(Kernel::best().available());
        assert!(Kernel::active().available());
    }
}
