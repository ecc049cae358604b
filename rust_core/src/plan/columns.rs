//! The training path: typed columns (borrowed straight from Arrow buffers) to CSR, one pass
//! over the rows, no per-row allocation once the buffers are warm.

use std::collections::HashMap;

use super::compile::{Feature, FeatureKind, FeaturePlan, Source};
use super::eval::{bucket, emit_numeric, fill_default, fill_text, Fault, Scratch};
use super::value::{Slot, ValueType};
use crate::error::{Error, Result};

/// Arrow string offsets: `int32` for `string`, `int64` for `large_string`.
#[derive(Debug, Clone, Copy)]
pub enum Offsets<'a> {
    I32(&'a [i32]),
    I64(&'a [i64]),
}

impl Offsets<'_> {
    fn len(&self) -> usize {
        match self {
            Offsets::I32(o) => o.len(),
            Offsets::I64(o) => o.len(),
        }
    }

    fn get(&self, i: usize) -> Option<usize> {
        match self {
            Offsets::I32(o) => usize::try_from(*o.get(i)?).ok(),
            Offsets::I64(o) => usize::try_from(*o.get(i)?).ok(),
        }
    }
}

/// The values of one column.
#[derive(Debug, Clone, Copy)]
pub enum ColumnData<'a> {
    /// Arrow string layout: row `i` is `data[offsets[i]..offsets[i + 1]]`.
    Str {
        offsets: Offsets<'a>,
        data: &'a [u8],
    },
    Int(&'a [i64]),
    Float(&'a [f64]),
    /// Text to parse as the feature's type; `None` is missing (Python property values).
    Text(&'a [Option<String>]),
}

/// One input column with an optional validity mask (`false` = null = missing).
#[derive(Debug, Clone, Copy)]
pub struct Column<'a> {
    pub data: ColumnData<'a>,
    pub valid: Option<&'a [bool]>,
}

/// Tokens of many rows in CSR form: row `i` is `indptr[i]..indptr[i + 1]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Csr {
    pub indptr: Vec<u64>,
    pub fields: Vec<u32>,
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

/// A column checked against its feature, with string data validated as UTF-8 once.
enum Checked<'a> {
    Str {
        offsets: Offsets<'a>,
        text: &'a str,
        base: usize,
    },
    Int(&'a [i64]),
    Float(&'a [f64]),
    Text(&'a [Option<String>]),
}

fn column_error(name: &str, msg: &str) -> Error {
    Error::Data(format!("column {name}: {msg}"))
}

fn check<'a>(name: &str, ty: ValueType, column: &Column<'a>, n: usize) -> Result<Checked<'a>> {
    if let Some(valid) = column.valid {
        if valid.len() != n {
            return Err(column_error(
                name,
                &format!("validity has {} rows, expected {n}", valid.len()),
            ));
        }
    }
    let rows = |len: usize| -> Result<()> {
        if len == n {
            Ok(())
        } else {
            Err(column_error(name, &format!("has {len} rows, expected {n}")))
        }
    };
    let wrong = |got: &str| column_error(name, &format!("is {got}, the feature is {}", ty.name()));
    Ok(match (column.data, ty) {
        (ColumnData::Text(values), _) => {
            rows(values.len())?;
            Checked::Text(values)
        }
        (ColumnData::Str { offsets, data }, ValueType::Str) => {
            rows(offsets.len().saturating_sub(1))?;
            if offsets.len() == 0 {
                return Err(column_error(name, "string offsets are empty"));
            }
            let (Some(base), Some(end)) = (offsets.get(0), offsets.get(n)) else {
                return Err(column_error(name, "negative string offset"));
            };
            let bytes = data
                .get(base..end)
                .ok_or_else(|| column_error(name, "string offsets exceed the data buffer"))?;
            let text = std::str::from_utf8(bytes).map_err(|e| {
                column_error(
                    name,
                    &format!("invalid UTF-8 at byte {}", base + e.valid_up_to()),
                )
            })?;
            Checked::Str {
                offsets,
                text,
                base,
            }
        }
        (ColumnData::Int(values), ValueType::Int | ValueType::Float) => {
            rows(values.len())?;
            Checked::Int(values)
        }
        (ColumnData::Float(values), ValueType::Float) => {
            rows(values.len())?;
            Checked::Float(values)
        }
        (ColumnData::Str { .. }, _) => return Err(wrong("str")),
        (ColumnData::Int(_), _) => return Err(wrong("int")),
        (ColumnData::Float(_), _) => return Err(wrong("float")),
    })
}

/// Row `row` of a checked string column (`text` starts at byte `base` of the data buffer).
#[inline]
fn str_at<'a>(offsets: Offsets<'_>, text: &'a str, base: usize, row: usize) -> Option<&'a str> {
    let (a, b) = (offsets.get(row)?, offsets.get(row + 1)?);
    text.get(a.checked_sub(base)?..b.checked_sub(base)?)
}

/// Why one row's value of a column could not be read.
enum RowFault {
    Offsets,
    Value(Fault),
}

/// Fills `target` from row `row` of a checked column. A string is not copied into the slot:
/// it is returned, for fields and ops to read straight from the Arrow buffer.
#[inline]
fn fill_value<'a>(
    feature: &Feature,
    column: &Checked<'a>,
    row: usize,
    target: &mut Slot,
) -> std::result::Result<Option<&'a str>, RowFault> {
    match column {
        Checked::Str {
            offsets,
            text,
            base,
        } => {
            return str_at(*offsets, text, *base, row)
                .map(Some)
                .ok_or(RowFault::Offsets);
        }
        Checked::Int(values) => {
            if feature.ty == ValueType::Float {
                target.float = values[row] as f64;
            } else {
                target.int = values[row];
            }
        }
        Checked::Float(values) => target
            .set_float(values[row])
            .map_err(|f| RowFault::Value(Fault::Parse(f, values[row].to_string())))?,
        Checked::Text(values) => {
            fill_text(target, feature, values[row].as_deref()).map_err(RowFault::Value)?;
        }
    }
    Ok(None)
}

impl FeaturePlan {
    /// Tokenises `num_rows` rows of `columns` (raw feature name -> column; Python properties as
    /// `Text` columns) for `model`. Errors name the column and the row (1-based, as the
    /// readers count data rows).
    pub fn tokenize_columns(
        &self,
        model: &str,
        columns: &HashMap<String, Column<'_>>,
        num_rows: usize,
    ) -> Result<Csr> {
        let model = self.model(model)?;
        let mut slots: Vec<usize> = model.context_slots.clone();
        slots.extend(&model.candidate_slots);
        slots.sort_unstable();
        let mut inputs = Vec::new();
        for &slot in &slots {
            let feature = &self.features[slot];
            if let FeatureKind::Raw { source, .. } = feature.kind {
                let column = columns.get(&feature.name).ok_or_else(|| {
                    let what = if source == Source::Python {
                        "Python property"
                    } else {
                        "column"
                    };
                    Error::Data(format!(
                        "{what} {} is missing (model {} needs it)",
                        feature.name, model.name
                    ))
                })?;
                let checked = check(&feature.name, feature.ty, column, num_rows)?;
                inputs.push((slot, checked, column.valid));
            }
        }
        let derived: Vec<usize> = slots
            .iter()
            .copied()
            .filter(|&slot| matches!(self.features[slot].kind, FeatureKind::Derived { .. }))
            .collect();
        // Per field: its value type, and a token buffer holding `feature=` that each row
        // truncates back to the prefix and appends its text to.
        let types: Vec<ValueType> = model
            .fields
            .iter()
            .map(|f| self.features[f.slot].ty)
            .collect();
        let mut tokens: Vec<String> = model.fields.iter().map(|f| f.prefix.clone()).collect();
        let mut direct: Vec<Option<&str>> = vec![None; self.features.len()];
        let width = model.fields.len();
        let nnz = num_rows * width;
        let mut csr = Csr {
            indptr: Vec::with_capacity(num_rows + 1),
            fields: Vec::new(),
            indices: Vec::with_capacity(nnz),
            values: Vec::with_capacity(nnz),
        };
        csr.indptr.push(0);
        let mut scratch = Scratch::for_features(self.features.len());
        for row in 0..num_rows {
            for (slot, column, valid) in &inputs {
                let feature = &self.features[*slot];
                direct[*slot] = None;
                let target = &mut scratch.slots[*slot];
                let filled = if valid.is_some_and(|v| !v[row]) {
                    fill_default(target, feature).map_err(RowFault::Value)
                } else {
                    fill_value(feature, column, row, target).map(|s| direct[*slot] = s)
                };
                filled.map_err(|fault| match fault {
                    RowFault::Offsets => column_error(
                        &feature.name,
                        &format!("row {}: corrupt string offsets", row + 1),
                    ),
                    RowFault::Value(fault) => Error::Data(format!(
                        "column {}, row {}: {}",
                        feature.name,
                        row + 1,
                        fault.describe()
                    )),
                })?;
            }
            for &slot in &derived {
                if let FeatureKind::Derived { op, inputs } = &self.features[slot].kind {
                    op.eval_with(&mut scratch.slots, &direct, inputs, slot, &mut scratch.text);
                }
            }
            for ((field, &ty), token) in model.fields.iter().zip(&types).zip(&mut tokens) {
                let slot = &scratch.slots[field.slot];
                let (index, value) = if field.numeric {
                    emit_numeric(field, ty, slot)
                } else {
                    // Same token as `emit`: the prefix, then the value's text.
                    token.truncate(field.prefix.len());
                    match direct[field.slot] {
                        Some(s) => token.push_str(s),
                        None => slot.write_text(ty, token),
                    }
                    (bucket(model, token), 1.0)
                };
                csr.indices.push(index);
                csr.values.push(value);
            }
            csr.indptr.push(csr.indices.len() as u64);
        }
        // Every row has one token per field, in field order.
        let pattern: Vec<u32> = (0..width as u32).collect();
        csr.fields = pattern.repeat(num_rows);
        Ok(csr)
    }
}
