//! The training path: typed columns (borrowed straight from Arrow buffers) to CSR, one pass
//! over the rows, no per-row allocation once the buffers are warm.

use std::collections::HashMap;

use super::compile::{FeatureKind, FeaturePlan, Source};
use super::eval::{emit, eval_derived, fill_default, fill_text, Fault, Scratch};
use super::value::ValueType;
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
fn str_at<'a>(offsets: Offsets<'_>, text: &'a str, base: usize, row: usize) -> Option<&'a str> {
    let (a, b) = (offsets.get(row)?, offsets.get(row + 1)?);
    text.get(a.checked_sub(base)?..b.checked_sub(base)?)
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
        let nnz = num_rows * model.fields.len();
        let mut csr = Csr {
            indptr: Vec::with_capacity(num_rows + 1),
            fields: Vec::with_capacity(nnz),
            indices: Vec::with_capacity(nnz),
            values: Vec::with_capacity(nnz),
        };
        csr.indptr.push(0);
        let mut scratch = Scratch::for_features(self.features.len());
        for row in 0..num_rows {
            for (slot, column, valid) in &inputs {
                let feature = &self.features[*slot];
                let target = &mut scratch.slots[*slot];
                let filled = if valid.is_some_and(|v| !v[row]) {
                    fill_default(target, feature)
                } else {
                    match column {
                        Checked::Str {
                            offsets,
                            text,
                            base,
                        } => {
                            let s = str_at(*offsets, text, *base, row).ok_or_else(|| {
                                column_error(
                                    &feature.name,
                                    &format!("row {}: corrupt string offsets", row + 1),
                                )
                            })?;
                            target.set_str(s);
                            Ok(())
                        }
                        Checked::Int(values) => {
                            if feature.ty == ValueType::Float {
                                target.float = values[row] as f64;
                            } else {
                                target.int = values[row];
                            }
                            Ok(())
                        }
                        Checked::Float(values) => target
                            .set_float(values[row])
                            .map_err(|f| Fault::Parse(f, values[row].to_string())),
                        Checked::Text(values) => fill_text(target, feature, values[row].as_deref()),
                    }
                };
                filled.map_err(|fault| {
                    let at = row + 1;
                    Error::Data(format!(
                        "column {}, row {at}: {}",
                        feature.name,
                        fault.describe()
                    ))
                })?;
            }
            for &slot in &slots {
                let feature = &self.features[slot];
                if matches!(feature.kind, FeatureKind::Derived { .. }) {
                    eval_derived(feature, slot, &mut scratch);
                }
            }
            for (pos, field) in model.fields.iter().enumerate() {
                let ty = self.features[field.slot].ty;
                let (index, value) = emit(model, field, ty, &scratch.slots, &mut scratch.token);
                csr.fields.push(pos as u32);
                csr.indices.push(index);
                csr.values.push(value);
            }
            csr.indptr.push(csr.indices.len() as u64);
        }
        Ok(csr)
    }
}
