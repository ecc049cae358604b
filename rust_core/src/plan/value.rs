//! Typed feature values: parsing wire text to a declared type, and a value's token text.

use std::fmt::Write as _;

/// The declared type of a raw feature, or the result type of a derived one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Str,
    Int,
    Float,
}

impl ValueType {
    pub(crate) fn parse_name(name: &str) -> Option<Self> {
        match name {
            "str" => Some(Self::Str),
            "int" => Some(Self::Int),
            "float" => Some(Self::Float),
            _ => None,
        }
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Str => "str",
            Self::Int => "int",
            Self::Float => "float",
        }
    }
}

/// An owned value, used for defaults.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
}

/// Why a text did not parse as its declared type: not an int, not a float, a float that is
/// NaN or infinite, or one beyond the f32 range (finite as f64, infinite as the f32 the
/// models compute with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseFault {
    Int,
    Float,
    NonFinite,
    BeyondF32,
}

impl ParseFault {
    pub(crate) fn describe(self, text: &str) -> String {
        match self {
            Self::Int => format!("{text:?} does not parse as int"),
            Self::Float => format!("{text:?} does not parse as float"),
            Self::NonFinite => format!("{text:?} is not a finite float"),
            Self::BeyondF32 => format!("{text:?} is beyond the float32 range (|x| > 3.4e38)"),
        }
    }
}

/// The value of one feature for the row or candidate at hand. The type is fixed per feature,
/// so only the matching member is meaningful; keeping all three lets the text buffer be
/// reused from row to row without allocating.
#[derive(Debug, Clone, Default)]
pub struct Slot {
    pub(crate) int: i64,
    pub(crate) float: f64,
    pub(crate) text: String,
}

impl Slot {
    pub(crate) fn set_str(&mut self, s: &str) {
        self.text.clear();
        self.text.push_str(s);
    }

    pub(crate) fn set_value(&mut self, value: &Value) {
        match value {
            Value::Str(s) => self.set_str(s),
            Value::Int(i) => self.int = *i,
            Value::Float(f) => self.float = *f,
        }
    }

    /// Parses wire text into the slot as `ty`.
    pub(crate) fn parse(&mut self, ty: ValueType, text: &str) -> Result<(), ParseFault> {
        match ty {
            ValueType::Str => self.set_str(text),
            ValueType::Int => self.int = text.parse().map_err(|_| ParseFault::Int)?,
            ValueType::Float => {
                let f: f64 = text.parse().map_err(|_| ParseFault::Float)?;
                self.set_float(f)?;
            }
        }
        Ok(())
    }

    /// Stores a float, refusing NaN and infinities, and values that only f64 holds: they
    /// would poison a numeric weight and have no useful bucket. Training and serving both
    /// store through here, so both refuse the same values.
    pub(crate) fn set_float(&mut self, f: f64) -> Result<(), ParseFault> {
        if !f.is_finite() {
            return Err(ParseFault::NonFinite);
        }
        if (f as f32).is_infinite() {
            return Err(ParseFault::BeyondF32);
        }
        self.float = f;
        Ok(())
    }

    /// The value as a number (numeric fields and numeric ops).
    pub(crate) fn number(&self, ty: ValueType) -> f64 {
        match ty {
            ValueType::Int => self.int as f64,
            ValueType::Float => self.float,
            ValueType::Str => 0.0,
        }
    }

    /// Appends the value's token text: strings as they are, ints in decimal, floats in Rust's
    /// shortest round-trip `Display` (`1.5`, `0.1`, `3`).
    pub(crate) fn write_text(&self, ty: ValueType, out: &mut String) {
        match ty {
            ValueType::Str => out.push_str(&self.text),
            ValueType::Int => out.push_str(itoa::Buffer::new().format(self.int)),
            ValueType::Float => {
                // Writing to a String cannot fail.
                let _ = write!(out, "{}", self.float);
            }
        }
    }
}

/// Parses a plan default (JSON) as `ty`; `None` when the JSON value does not fit the type.
pub(crate) fn default_from_json(ty: ValueType, json: &serde_json::Value) -> Option<Value> {
    match (ty, json) {
        (ValueType::Str, serde_json::Value::String(s)) => Some(Value::Str(s.clone())),
        (ValueType::Int, serde_json::Value::Number(n)) => n.as_i64().map(Value::Int),
        (ValueType::Float, serde_json::Value::Number(n)) => {
            n.as_f64().filter(|f| f.is_finite()).map(Value::Float)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(ty: ValueType, slot: &Slot) -> String {
        let mut out = String::new();
        slot.write_text(ty, &mut out);
        out
    }

    #[test]
    fn float_text_is_shortest_display() {
        let mut slot = Slot::default();
        for (input, expected) in [
            ("1.5", "1.5"),
            ("0.1", "0.1"),
            ("3", "3"),
            ("3.0", "3"),
            ("1e20", "100000000000000000000"),
            ("-0.0", "-0"),
        ] {
            slot.parse(ValueType::Float, input).unwrap();
            assert_eq!(text(ValueType::Float, &slot), expected);
        }
    }

    #[test]
    fn int_text_is_decimal() {
        let mut slot = Slot::default();
        slot.parse(ValueType::Int, "-42").unwrap();
        assert_eq!(text(ValueType::Int, &slot), "-42");
    }

    #[test]
    fn bad_numbers_are_refused() {
        let mut slot = Slot::default();
        assert_eq!(slot.parse(ValueType::Int, "1.5"), Err(ParseFault::Int));
        assert_eq!(slot.parse(ValueType::Int, " 1"), Err(ParseFault::Int));
        assert_eq!(slot.parse(ValueType::Float, "abc"), Err(ParseFault::Float));
        assert_eq!(
            slot.parse(ValueType::Float, "1e39"),
            Err(ParseFault::BeyondF32)
        );
        assert_eq!(
            slot.parse(ValueType::Float, "-1e39"),
            Err(ParseFault::BeyondF32)
        );
        assert_eq!(slot.parse(ValueType::Float, "3e38"), Ok(()));
        assert_eq!(
            slot.parse(ValueType::Float, "nan"),
            Err(ParseFault::NonFinite)
        );
        assert_eq!(
            slot.parse(ValueType::Float, "inf"),
            Err(ParseFault::NonFinite)
        );
    }

    #[test]
    fn defaults_must_fit_their_type() {
        let j = serde_json::json!(3);
        assert_eq!(default_from_json(ValueType::Int, &j), Some(Value::Int(3)));
        assert_eq!(
            default_from_json(ValueType::Float, &j),
            Some(Value::Float(3.0))
        );
        assert_eq!(default_from_json(ValueType::Str, &j), None);
        assert_eq!(
            default_from_json(ValueType::Int, &serde_json::json!(1.5)),
            None
        );
    }
}
