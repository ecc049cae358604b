//! Evaluation metrics used by training (validation loss) and tests.

use crate::math::logloss as row_logloss;

/// Mean weighted log loss of probabilities `p` against labels `y`.
#[must_use]
pub fn logloss(p: &[f32], y: &[f32], weights: Option<&[f32]>) -> f64 {
    let (mut sum, mut wsum) = (0.0f64, 0.0f64);
    for (i, (&p, &y)) in p.iter().zip(y).enumerate() {
        let w = weights.map_or(1.0, |w| w[i]);
        sum += row_logloss(p, y, w);
        wsum += f64::from(w);
    }
    if wsum > 0.0 {
        sum / wsum
    } else {
        0.0
    }
}

/// Area under the ROC curve (ties count one half); `None` without both classes.
#[must_use]
pub fn auc(p: &[f32], y: &[f32]) -> Option<f64> {
    let mut order: Vec<usize> = (0..p.len().min(y.len())).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let (mut rank_sum, mut pos) = (0.0f64, 0.0f64);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j < order.len() && p[order[j]].total_cmp(&p[order[i]]).is_eq() {
            j += 1;
        }
        // Tied scores share the mean of their 1-based ranks i+1..=j.
        let mid = (i + 1 + j) as f64 / 2.0;
        for &o in &order[i..j] {
            if y[o] > 0.5 {
                rank_sum += mid;
                pos += 1.0;
            }
        }
        i = j;
    }
    let neg = order.len() as f64 - pos;
    (pos > 0.0 && neg > 0.0).then(|| (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_known_values() {
        assert_eq!(auc(&[0.1, 0.2, 0.3, 0.4], &[0.0, 0.0, 1.0, 1.0]), Some(1.0));
        assert_eq!(auc(&[0.4, 0.3, 0.2, 0.1], &[0.0, 0.0, 1.0, 1.0]), Some(0.0));
        assert_eq!(auc(&[0.5, 0.5], &[0.0, 1.0]), Some(0.5));
        let a = auc(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0]).unwrap();
        assert!((a - 0.75).abs() < 1e-12);
        assert_eq!(auc(&[0.1], &[1.0]), None);
    }

    #[test]
    fn logloss_known_values() {
        let ll = logloss(&[0.5, 0.5], &[1.0, 0.0], None);
        assert!((ll - std::f64::consts::LN_2).abs() < 1e-9);
        let ll = logloss(&[0.9, 0.5], &[1.0, 0.0], Some(&[1.0, 0.0]));
        assert!((ll + 0.9f32.ln() as f64).abs() < 1e-6);
    }
}
