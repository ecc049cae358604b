//! Sparse training and scoring data in CSR form: per row a run of `(field, index, value)`
//! triples, a label and an optional importance weight.
//!
//! The arrays are either owned (`Vec`) or borrowed from a foreign owner such as a numpy
//! array held by the Python bindings ([`Buf::from_foreign`]); either way every accessor
//! hands out plain read-only slices, validated once at construction.

use std::any::Any;
use std::ops::Deref;

use crate::error::{Error, Result};

/// Largest number of fields a dataset or model may have.
pub const MAX_FIELDS: u32 = 1024;

/// A read-only array, owned or borrowed from a foreign owner kept alive alongside it.
pub struct Buf<T: 'static> {
    inner: Inner<T>,
}

enum Inner<T: 'static> {
    Owned(Vec<T>),
    Foreign {
        ptr: *const T,
        len: usize,
        _owner: Box<dyn Any + Send + Sync>,
    },
}

// SAFETY: a `Buf` only ever hands out shared `&[T]`. The owned variant is a `Vec`; the
// foreign variant points at memory that `_owner` keeps alive and that, by the contract of
// `from_foreign`, nobody mutates while the `Buf` exists. Sharing `&[T]` across threads is
// sound exactly when `T: Sync`.
unsafe impl<T: Sync> Send for Buf<T> {}
// SAFETY: see `Send` above: only shared, read-only access is ever given out.
unsafe impl<T: Sync> Sync for Buf<T> {}

impl<T> Buf<T> {
    /// A buffer owning its elements.
    #[must_use]
    pub fn from_vec(v: Vec<T>) -> Self {
        Buf {
            inner: Inner::Owned(v),
        }
    }

    /// A buffer viewing `len` elements at `ptr`, kept alive by `owner`.
    ///
    /// # Safety
    /// `ptr` must be non-null, aligned for `T` and point at `len` initialised elements that
    /// stay valid for as long as `owner` lives, and nothing may write to them while the
    /// returned `Buf` (or anything built from it) exists.
    pub unsafe fn from_foreign(
        ptr: *const T,
        len: usize,
        owner: Box<dyn Any + Send + Sync>,
    ) -> Self {
        Buf {
            inner: Inner::Foreign {
                ptr,
                len,
                _owner: owner,
            },
        }
    }
}

impl<T> Deref for Buf<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.inner {
            Inner::Owned(v) => v,
            // SAFETY: guaranteed by the contract of `from_foreign` (valid, aligned, alive
            // while `_owner` is, never written while we exist).
            Inner::Foreign { ptr, len, .. } => unsafe { std::slice::from_raw_parts(*ptr, *len) },
        }
    }
}

/// One row's features: parallel slices of field ids, hashed indices and values.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    pub fields: &'a [u32],
    pub indices: &'a [u32],
    pub values: &'a [f32],
}

/// A validated CSR dataset.
pub struct Dataset {
    indptr: Buf<u64>,
    fields: Buf<u32>,
    indices: Buf<u32>,
    values: Buf<f32>,
    labels: Buf<f32>,
    weights: Option<Buf<f32>>,
    num_fields: u32,
    num_features: u64,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("rows", &self.num_rows())
            .field("nnz", &self.nnz())
            .field("num_fields", &self.num_fields)
            .field("num_features", &self.num_features)
            .finish_non_exhaustive()
    }
}

impl Dataset {
    /// A dataset owning its arrays; see [`Dataset::from_bufs`] for what is validated.
    pub fn from_owned(
        indptr: Vec<u64>,
        fields: Vec<u32>,
        indices: Vec<u32>,
        values: Vec<f32>,
        labels: Vec<f32>,
        weights: Option<Vec<f32>>,
    ) -> Result<Dataset> {
        Self::from_bufs(
            Buf::from_vec(indptr),
            Buf::from_vec(fields),
            Buf::from_vec(indices),
            Buf::from_vec(values),
            Buf::from_vec(labels),
            weights.map(Buf::from_vec),
        )
    }

    /// Validates the CSR structure: `indptr` has one entry per row plus one, starts at 0,
    /// never decreases and ends at the number of non-zeros; the three non-zero arrays have
    /// equal length; field ids are below [`MAX_FIELDS`]; values are finite; labels lie in
    /// `[0, 1]`; weights (one per row) are finite and non-negative.
    pub fn from_bufs(
        indptr: Buf<u64>,
        fields: Buf<u32>,
        indices: Buf<u32>,
        values: Buf<f32>,
        labels: Buf<f32>,
        weights: Option<Buf<f32>>,
    ) -> Result<Dataset> {
        let n = labels.len();
        let nnz = fields.len();
        if indptr.len() != n + 1 {
            return Err(Error::Data(format!(
                "indptr has {} entries, expected rows + 1 = {}",
                indptr.len(),
                n + 1
            )));
        }
        if indices.len() != nnz || values.len() != nnz {
            return Err(Error::Data(format!(
                "fields, indices and values differ in length: {}, {}, {}",
                nnz,
                indices.len(),
                values.len()
            )));
        }
        if indptr[0] != 0 {
            return Err(Error::Data(format!(
                "indptr[0] is {}, expected 0",
                indptr[0]
            )));
        }
        if let Some(i) = indptr.windows(2).position(|w| w[1] < w[0]) {
            return Err(Error::Data(format!("indptr decreases at row {i}")));
        }
        if indptr[n] != nnz as u64 {
            return Err(Error::Data(format!(
                "indptr ends at {}, expected the number of non-zeros {nnz}",
                indptr[n]
            )));
        }
        let mut max_field = None::<u32>;
        for (pos, &f) in fields.iter().enumerate() {
            if f >= MAX_FIELDS {
                return Err(Error::Data(format!(
                    "field id {f} at non-zero {pos} is out of range (at most {MAX_FIELDS} fields)"
                )));
            }
            max_field = max_field.max(Some(f));
        }
        if let Some(pos) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::Data(format!(
                "value at non-zero {pos} is not finite"
            )));
        }
        if let Some(row) = labels.iter().position(|y| !(0.0..=1.0).contains(y)) {
            return Err(Error::Data(format!(
                "label of row {row} is {}, expected a value in [0, 1]",
                labels[row]
            )));
        }
        if let Some(w) = &weights {
            if w.len() != n {
                return Err(Error::Data(format!(
                    "weights has {} entries, expected one per row ({n})",
                    w.len()
                )));
            }
            if let Some(row) = w.iter().position(|x| !x.is_finite() || *x < 0.0) {
                return Err(Error::Data(format!(
                    "weight of row {row} is {}, expected a finite value >= 0",
                    w[row]
                )));
            }
        }
        let num_features = indices.iter().max().map_or(0, |&m| u64::from(m) + 1);
        Ok(Dataset {
            num_fields: max_field.map_or(0, |f| f + 1),
            num_features,
            indptr,
            fields,
            indices,
            values,
            labels,
            weights,
        })
    }

    #[must_use]
    pub fn num_rows(&self) -> usize {
        self.labels.len()
    }

    #[must_use]
    pub fn nnz(&self) -> usize {
        self.fields.len()
    }

    /// One more than the largest field id (0 when there are no non-zeros).
    #[must_use]
    pub fn num_fields(&self) -> u32 {
        self.num_fields
    }

    /// One more than the largest feature index (0 when there are no non-zeros).
    #[must_use]
    pub fn num_features(&self) -> u64 {
        self.num_features
    }

    #[must_use]
    pub fn labels(&self) -> &[f32] {
        &self.labels
    }

    #[must_use]
    pub fn weights(&self) -> Option<&[f32]> {
        self.weights.as_deref()
    }

    /// Importance weight of row `i` (1 without weights).
    #[must_use]
    #[inline]
    pub fn weight(&self, i: usize) -> f32 {
        self.weights.as_ref().map_or(1.0, |w| w[i])
    }

    /// The features of row `i`. Panics if `i >= num_rows()`.
    #[must_use]
    #[inline]
    pub fn row(&self, i: usize) -> Row<'_> {
        let (a, b) = (self.indptr[i] as usize, self.indptr[i + 1] as usize);
        Row {
            fields: &self.fields[a..b],
            indices: &self.indices[a..b],
            values: &self.values[a..b],
        }
    }

    /// Starts fetching where row `i` is (its offsets), so that a [`Dataset::prefetch_row`] of
    /// it a few rows later does not wait for them: in shuffled order they are a cache miss
    /// of their own. Panics if `i >= num_rows()`.
    #[inline]
    pub fn prefetch_offsets(&self, i: usize) {
        prefetch_lines(self.indptr[i..].as_ptr().cast(), 16);
    }

    /// Starts fetching row `i`'s features and label (a hint for drivers that visit rows in
    /// random order). Panics if `i >= num_rows()`.
    #[inline]
    pub fn prefetch_row(&self, i: usize) {
        let row = self.row(i);
        let bytes = row.fields.len() * 4;
        prefetch_lines(row.fields.as_ptr().cast(), bytes);
        prefetch_lines(row.indices.as_ptr().cast(), bytes);
        prefetch_lines(row.values.as_ptr().cast(), bytes);
        prefetch_lines(self.labels[i..].as_ptr().cast(), 4);
    }
}

/// Asks the CPU to bring the cache lines of `bytes` bytes from `p` into L1. A hint only:
/// a prefetch never faults, reads nothing the program can observe and changes no memory, so
/// any address is fine (it is never dereferenced). A no-op off x86-64.
#[inline]
pub fn prefetch_lines(p: *const u8, bytes: usize) {
    // Every 64 bytes from the start, then the last byte: covers each line the range touches
    // whatever its alignment, without computing it (at most one line is hinted twice).
    let mut at = 0;
    while at < bytes {
        prefetch_line(p.wrapping_add(at));
        at += 64;
    }
    prefetch_line(p.wrapping_add(bytes.saturating_sub(1)));
}

/// [`prefetch_lines`] for the line that holds `p`.
#[inline]
pub fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: PREFETCHT0 is a hint: it never faults (not even on unmapped or null
        // addresses), has no architecturally visible effect on memory or registers, and SSE
        // is part of the x86-64 baseline, so the instruction always exists.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Result<Dataset> {
        Dataset::from_owned(
            vec![0, 2, 3],
            vec![0, 1, 2],
            vec![5, 9, 1],
            vec![1.0, 0.5, 2.0],
            vec![1.0, 0.0],
            None,
        )
    }

    #[test]
    fn rows_and_shape() {
        let d = tiny().unwrap();
        assert_eq!(d.num_rows(), 2);
        assert_eq!(d.num_fields(), 3);
        assert_eq!(d.num_features(), 10);
        let r = d.row(0);
        assert_eq!(r.fields, &[0, 1]);
        assert_eq!(r.indices, &[5, 9]);
        assert_eq!(d.row(1).values, &[2.0]);
        assert!((d.weight(1) - 1.0).abs() < f32::EPSILON);
    }

    #[test]
    fn rejects_bad_structure() {
        let bad = |indptr: Vec<u64>, labels: Vec<f32>, weights: Option<Vec<f32>>| {
            Dataset::from_owned(
                indptr,
                vec![0, 1, 2],
                vec![5, 9, 1],
                vec![1.0; 3],
                labels,
                weights,
            )
            .unwrap_err()
            .to_string()
        };
        assert!(bad(vec![0, 2], vec![1.0, 0.0], None).contains("indptr has 2 entries"));
        assert!(bad(vec![1, 2, 3], vec![1.0, 0.0], None).contains("indptr[0]"));
        assert!(bad(vec![0, 3, 2], vec![1.0, 0.0], None).contains("decreases at row 1"));
        assert!(bad(vec![0, 1, 2], vec![1.0, 0.0], None).contains("ends at 2"));
        assert!(bad(vec![0, 2, 3], vec![2.0, 0.0], None).contains("label of row 0"));
        assert!(bad(vec![0, 2, 3], vec![1.0, 0.0], Some(vec![1.0])).contains("weights has 1"));
        assert!(bad(vec![0, 2, 3], vec![1.0, 0.0], Some(vec![1.0, -1.0])).contains("row 1"));
        let e = Dataset::from_owned(
            vec![0, 1],
            vec![MAX_FIELDS],
            vec![0],
            vec![1.0],
            vec![0.0],
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("field id 1024"));
        let e = Dataset::from_owned(
            vec![0, 1],
            vec![0],
            vec![0],
            vec![f32::NAN],
            vec![0.0],
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not finite"));
    }

    #[test]
    fn foreign_buffer_reads_through() {
        let v: Vec<u32> = vec![3, 4, 5];
        let owner = Box::new(v);
        let (ptr, len) = (owner.as_ptr(), owner.len());
        // SAFETY: the Vec's heap buffer is moved with its box into the Buf and never written.
        let buf = unsafe { Buf::from_foreign(ptr, len, owner) };
        assert_eq!(&*buf, &[3, 4, 5]);
    }
}
