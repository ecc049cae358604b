//! The built-in transforms. Each reads input slots and writes one output slot; both the
//! training and the serving path call [`Op::eval`], which is what keeps them identical.

use super::value::{Slot, ValueType};

/// A built-in transform with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `(ts div 3600) mod 24`, Euclidean: negative timestamps still give 0..23.
    HourOfDay,
    /// `((ts div 86400) + 3) mod 7`: 1970-01-01 was a Thursday, Monday = 0.
    DayOfWeek,
    /// Number of edges `<= x` (bisect right); edges strictly increasing.
    Bucketize(Vec<f64>),
    /// `floor(ln(1 + max(x, 0)) / ln(base))`; holds `ln(base)`.
    LogBucket(f64),
    /// `min(max(x, lo), hi)` as a float: a numeric feature held to the range the model knows.
    Clip(f64, f64),
    /// Unicode lower case (`str::to_lowercase`).
    Lower,
    /// Texts of 2 or 3 inputs joined by `^`.
    Cross,
}

impl Op {
    /// The result type.
    #[must_use]
    pub fn output(&self) -> ValueType {
        match self {
            Op::Lower | Op::Cross => ValueType::Str,
            Op::Clip(..) => ValueType::Float,
            _ => ValueType::Int,
        }
    }

    /// Computes the op over `inputs` (slot index and type) into `out`. `scratch` is a reusable
    /// buffer for string results, swapped into the output slot.
    pub(crate) fn eval(
        &self,
        slots: &mut [Slot],
        inputs: &[(usize, ValueType)],
        out: usize,
        scratch: &mut String,
    ) {
        self.eval_with(slots, &[], inputs, out, scratch);
    }

    /// Like [`Op::eval`], but a string input whose `direct[slot]` is set reads that text
    /// instead of its slot's (the training path hashes column strings without copying them
    /// into slots).
    pub(crate) fn eval_with(
        &self,
        slots: &mut [Slot],
        direct: &[Option<&str>],
        inputs: &[(usize, ValueType)],
        out: usize,
        scratch: &mut String,
    ) {
        let Some(&(first, first_ty)) = inputs.first() else {
            return;
        };
        match self {
            Op::HourOfDay => {
                slots[out].int = slots[first].int.div_euclid(3600).rem_euclid(24);
            }
            Op::DayOfWeek => {
                slots[out].int = (slots[first].int.div_euclid(86_400) + 3).rem_euclid(7);
            }
            Op::Bucketize(edges) => {
                let x = slots[first].number(first_ty);
                slots[out].int = edges.partition_point(|&e| e <= x) as i64;
            }
            Op::LogBucket(ln_base) => {
                let x = slots[first].number(first_ty).max(0.0);
                slots[out].int = ((1.0 + x).ln() / ln_base).floor() as i64;
            }
            Op::Clip(lo, hi) => {
                slots[out].float = slots[first].number(first_ty).clamp(*lo, *hi);
            }
            Op::Lower => {
                scratch.clear();
                let s = text_of(slots, direct, first);
                if s.is_ascii() {
                    scratch.push_str(s);
                    scratch.make_ascii_lowercase();
                } else {
                    scratch.push_str(&s.to_lowercase());
                }
                std::mem::swap(&mut slots[out].text, scratch);
            }
            Op::Cross => {
                scratch.clear();
                for (i, &(slot, ty)) in inputs.iter().enumerate() {
                    if i > 0 {
                        scratch.push('^');
                    }
                    match (ty, direct.get(slot)) {
                        (ValueType::Str, Some(Some(s))) => scratch.push_str(s),
                        _ => slots[slot].write_text(ty, scratch),
                    }
                }
                std::mem::swap(&mut slots[out].text, scratch);
            }
        }
    }
}

/// The text of string slot `slot`: its direct text when set, else the slot's.
fn text_of<'s>(slots: &'s [Slot], direct: &[Option<&'s str>], slot: usize) -> &'s str {
    match direct.get(slot) {
        Some(Some(s)) => s,
        _ => &slots[slot].text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_int(op: &Op, ty: ValueType, int: i64, float: f64) -> i64 {
        let mut slots = vec![
            Slot {
                int,
                float,
                text: String::new(),
            },
            Slot::default(),
        ];
        op.eval(&mut slots, &[(0, ty)], 1, &mut String::new());
        slots[1].int
    }

    #[test]
    fn hour_and_day_are_utc_and_euclidean() {
        // 2023-11-14 22:13:20 UTC, a Tuesday.
        assert_eq!(
            run_int(&Op::HourOfDay, ValueType::Int, 1_700_000_000, 0.0),
            22
        );
        assert_eq!(
            run_int(&Op::DayOfWeek, ValueType::Int, 1_700_000_000, 0.0),
            1
        );
        assert_eq!(run_int(&Op::HourOfDay, ValueType::Int, -1, 0.0), 23);
        assert_eq!(run_int(&Op::DayOfWeek, ValueType::Int, -1, 0.0), 2);
        assert_eq!(run_int(&Op::DayOfWeek, ValueType::Int, 4 * 86_400, 0.0), 0);
    }

    #[test]
    fn bucketize_is_bisect_right() {
        let op = Op::Bucketize(vec![0.1, 0.5, 1.0]);
        assert_eq!(run_int(&op, ValueType::Float, 0, 0.0), 0);
        assert_eq!(run_int(&op, ValueType::Float, 0, 0.1), 1);
        assert_eq!(run_int(&op, ValueType::Float, 0, 0.7), 2);
        assert_eq!(run_int(&op, ValueType::Int, 5, 0.0), 3);
    }

    #[test]
    fn clip_holds_values_to_the_range() {
        let op = Op::Clip(0.25, 21.0);
        assert_eq!(op.output(), ValueType::Float);
        for (x, want) in [(-1000.0, 0.25f64), (3.5, 3.5), (1000.0, 21.0), (21.0, 21.0)] {
            let mut slots = vec![Slot::default(), Slot::default()];
            slots[0].float = x;
            op.eval(&mut slots, &[(0, ValueType::Float)], 1, &mut String::new());
            assert_eq!(slots[1].float.to_bits(), want.to_bits(), "{x}");
        }
        let mut slots = vec![Slot::default(), Slot::default()];
        slots[0].int = 99;
        op.eval(&mut slots, &[(0, ValueType::Int)], 1, &mut String::new());
        assert_eq!(slots[1].float.to_bits(), 21.0f64.to_bits());
    }

    #[test]
    fn log_bucket_clamps_negatives() {
        let op = Op::LogBucket(2f64.ln());
        assert_eq!(run_int(&op, ValueType::Float, 0, -5.0), 0);
        assert_eq!(run_int(&op, ValueType::Float, 0, 1.0), 1);
        assert_eq!(run_int(&op, ValueType::Float, 0, 6.0), 2);
        assert_eq!(run_int(&op, ValueType::Int, 1000, 0.0), 9);
    }

    #[test]
    fn lower_and_cross_make_text() {
        let mut slots = vec![
            Slot {
                text: "ÉCOLE.Fr".into(),
                ..Slot::default()
            },
            Slot {
                int: 7,
                ..Slot::default()
            },
            Slot {
                float: 2.5,
                ..Slot::default()
            },
            Slot::default(),
        ];
        let mut scratch = String::new();
        Op::Lower.eval(&mut slots, &[(0, ValueType::Str)], 3, &mut scratch);
        assert_eq!(slots[3].text, "école.fr");
        let inputs = [
            (0, ValueType::Str),
            (1, ValueType::Int),
            (2, ValueType::Float),
        ];
        Op::Cross.eval(&mut slots, &inputs, 3, &mut scratch);
        assert_eq!(slots[3].text, "ÉCOLE.Fr^7^2.5");
    }
}
