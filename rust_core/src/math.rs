//! The link function and the loss shared by LR and FFM (training, scoring and metrics).

/// The logistic function: probability of a raw score `t`.
#[inline]
#[must_use]
pub fn sigmoid(t: f32) -> f32 {
    1.0 / (1.0 + (-t).exp())
}

/// Weighted log loss of one prediction, in f64 for accumulation. `p` is clamped to
/// `[1e-15, 1 - 1e-15]` so that a confident mistake costs a large finite loss.
#[inline]
#[must_use]
pub fn logloss(p: f32, y: f32, weight: f32) -> f64 {
    let p = f64::from(p).clamp(1e-15, 1.0 - 1e-15);
    let y = f64::from(y);
    -f64::from(weight) * (y * p.ln() + (1.0 - y) * (1.0 - p).ln())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_and_logloss() {
        assert!((sigmoid(0.0) - 0.5).abs() < f32::EPSILON);
        assert!((sigmoid(2.0) + sigmoid(-2.0) - 1.0).abs() < 1e-6);
        assert!((logloss(0.5, 1.0, 1.0) - std::f64::consts::LN_2).abs() < 1e-12);
        assert!((logloss(0.5, 0.0, 2.0) - 2.0 * std::f64::consts::LN_2).abs() < 1e-12);
        assert!(logloss(0.0, 1.0, 1.0).is_finite());
        assert!(logloss(0.3, 1.0, 0.0).abs() < f64::EPSILON);
    }
}
