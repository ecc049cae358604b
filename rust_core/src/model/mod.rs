//! A trained LR or FFM model: header, weights (owned after training, memory-mapped after
//! load), scoring with calibration for negative downsampling, and the file format.

pub mod format;

// Mapped payloads are read in place as f32, which is the file's little-endian layout only on
// little-endian machines.
#[cfg(target_endian = "big")]
compile_error!(
    "model files are memory-mapped as little-endian f32: big-endian targets are unsupported"
);

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::dataset::{Dataset, Row};
use crate::error::{Error, Result};
use crate::hugemem::HugeBuf;
use crate::simd::Kernel;
use crate::{ffm, lr, math};
use format::HEADER_LEN;

/// Which model a file holds (the header's algorithm code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Algorithm {
    Lr = 1,
    Ffm = 2,
}

impl Algorithm {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Lr => "lr",
            Algorithm::Ffm => "ffm",
        }
    }
}

/// Everything the header records besides lengths and checksums.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub algorithm: Algorithm,
    pub bits: u32,
    pub fields: u32,
    /// Latent size; 0 for LR.
    pub k: u32,
    /// Floats per latent vector, `k` plus zero padding (`k` rounded up to a multiple of 4
    /// when trained by this version; `k` in version-1 files); 0 for LR.
    pub stride: u32,
    /// FFM instance normalisation.
    pub normalize: bool,
    /// SHA-256 of the feature spec.
    pub fingerprint: [u8; 32],
    /// Rate w at which negatives were kept in training (1.0 = none).
    pub downsample_rate: f64,
}

impl Header {
    /// Number of f32 weights in the payload.
    #[must_use]
    pub fn payload_len(&self) -> Option<usize> {
        match self.algorithm {
            Algorithm::Lr => lr::Shape {
                bits: self.bits,
                fields: self.fields,
            }
            .payload_len(),
            Algorithm::Ffm => self.ffm_shape().payload_len(),
        }
    }

    fn ffm_shape(&self) -> ffm::Shape {
        ffm::Shape {
            bits: self.bits,
            fields: self.fields,
            k: self.k,
            stride: self.stride,
            normalize: self.normalize,
        }
    }
}

enum Weights {
    Owned(Vec<f32>),
    /// A mapping of the whole file, the payload from the byte offset.
    Mapped(Mmap, usize),
    /// A private copy in memory advised for huge pages (see [`Model::load_huge`]).
    Huge(HugeBuf),
}

/// A model ready to score. `Send + Sync`: scoring only reads.
pub struct Model {
    header: Header,
    weights: Weights,
    checksum: u64,
    best_epoch: Option<u32>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("header", &self.header)
            .field("checksum", &format_args!("{:016x}", self.checksum))
            .field("mapped", &matches!(self.weights, Weights::Mapped(..)))
            .finish_non_exhaustive()
    }
}

/// The probability corrected for negatives kept at rate `w`: `p / (p + (1 - p) / w)`.
#[inline]
#[must_use]
pub fn calibrate(p: f32, w: f64) -> f32 {
    if w >= 1.0 {
        return p;
    }
    let p = f64::from(p);
    (p / (p + (1.0 - p) / w)) as f32
}

impl Model {
    /// A model from its header and owned weights (validated like a file header).
    pub fn new(header: Header, weights: Vec<f32>) -> Result<Model> {
        let payload: &[u8] = bytemuck::cast_slice(&weights);
        let checksum = format::checksum(payload);
        // Validating through the file parser keeps one definition of a valid model.
        format::parse_header(&format::encode(&header, payload.len() as u64, checksum))?;
        check_weights(&header, &weights)?;
        Ok(Model {
            header,
            weights: Weights::Owned(weights),
            checksum,
            best_epoch: None,
        })
    }

    #[must_use]
    pub fn with_best_epoch(mut self, epoch: Option<u32>) -> Model {
        self.best_epoch = epoch;
        self
    }

    /// A model from a complete file image, fully verified (used by tests and the fuzzer).
    pub fn from_bytes(file: &[u8]) -> Result<Model> {
        let (header, payload) = format::parse(file)?;
        let checksum = payload.checksum;
        let weights = file[payload.offset..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect::<Vec<_>>();
        check_weights(&header, &weights)?;
        Ok(Model {
            header,
            weights: Weights::Owned(weights),
            checksum,
            best_epoch: None,
        })
    }

    /// Memory-maps a model file read-only and verifies header, payload checksum and weights.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let in_file = |e: Error| match e {
            Error::Format(m) => Error::Format(format!("{}: {m}", path.display())),
            e => e,
        };
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len < HEADER_LEN as u64 {
            return Err(in_file(Error::Format(format!(
                "truncated model file: {len} bytes, the header alone is {HEADER_LEN}"
            ))));
        }
        // SAFETY: the mapping is read-only and private to this process's view. Model files are
        // written to a temporary name and renamed into place (`save`, the artifact store), never
        // modified in place, so the bytes cannot change under us; and before any use the whole
        // image is verified below (header fields, header and payload checksums, finite weights).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let (header, payload) = format::parse(&map).map_err(in_file)?;
        // The payload starts at a multiple of 4 bytes (the parser checked the offset) and
        // mappings are page-aligned, so the cast cannot fail on alignment.
        let weights: &[f32] = bytemuck::try_cast_slice(&map[payload.offset..])
            .map_err(|e| in_file(Error::Format(format!("misaligned payload: {e}"))))?;
        check_weights(&header, weights).map_err(in_file)?;
        Ok(Model {
            header,
            weights: Weights::Mapped(map, payload.offset),
            checksum: payload.checksum,
            best_epoch: None,
        })
    }

    /// Loads a model file like [`Model::load`], then copies the weights into private memory
    /// advised for transparent huge pages ([`crate::hugemem`]): scoring a large table then
    /// misses the TLB far less. The copy is private to the process, so a server loads it
    /// before forking its workers, which then share its pages copy-on-write.
    pub fn load_huge(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let mapped = Model::load(path)?;
        // Laid out like the mapping of a version-3 file: latent blocks on 64-byte lines.
        let lined = match mapped.header.algorithm {
            Algorithm::Lr => 0,
            Algorithm::Ffm => mapped.header.ffm_shape().latent_start(),
        };
        let copy = HugeBuf::copy_of(mapped.weights(), lined).map_err(|e| Error::io(path, e))?;
        Ok(Model {
            weights: Weights::Huge(copy),
            ..mapped
        })
    }

    /// Whether the weights are a huge-page copy ([`Model::load_huge`]).
    #[must_use]
    pub fn is_huge(&self) -> bool {
        matches!(self.weights, Weights::Huge(_))
    }

    /// Writes the model atomically: a temporary file in the same directory, fsync, rename.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let payload: &[u8] = bytemuck::cast_slice(self.weights());
        let header = format::encode(&self.header, payload.len() as u64, self.checksum);
        let gap = vec![0u8; format::payload_offset(&self.header) - HEADER_LEN];
        let tmp = temp_path(path);
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&header)?;
            f.write_all(&gap)?;
            f.write_all(payload)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(path, e)
        })
    }

    #[must_use]
    pub fn header(&self) -> &Header {
        &self.header
    }

    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.header.algorithm
    }

    #[must_use]
    pub fn hash_bits(&self) -> u32 {
        self.header.bits
    }

    #[must_use]
    pub fn num_fields(&self) -> u32 {
        self.header.fields
    }

    #[must_use]
    pub fn k(&self) -> u32 {
        self.header.k
    }

    #[must_use]
    pub fn fingerprint(&self) -> [u8; 32] {
        self.header.fingerprint
    }

    #[must_use]
    pub fn downsample_rate(&self) -> f64 {
        self.header.downsample_rate
    }

    /// XXH3-64 of the payload, as recorded in the header.
    #[must_use]
    pub fn checksum(&self) -> u64 {
        self.checksum
    }

    /// The epoch whose weights training kept under early stopping (not stored in files).
    #[must_use]
    pub fn best_epoch(&self) -> Option<u32> {
        self.best_epoch
    }

    #[must_use]
    pub fn is_mapped(&self) -> bool {
        matches!(self.weights, Weights::Mapped(..))
    }

    /// The payload as f32 weights.
    #[must_use]
    pub fn weights(&self) -> &[f32] {
        match &self.weights {
            Weights::Owned(v) => v,
            // `load` checked this cast (length and alignment) and the mapping is immutable,
            // so it cannot fail here.
            Weights::Mapped(m, offset) => bytemuck::cast_slice(&m[*offset..]),
            Weights::Huge(b) => b,
        }
    }

    /// The raw score `t` of a row (before sigmoid and calibration).
    #[inline]
    #[must_use]
    pub fn raw_score(&self, row: Row<'_>) -> f32 {
        self.raw_score_with(Kernel::active(), row)
    }

    /// [`Model::raw_score`] with a given FFM kernel (tests, benchmarks).
    #[inline]
    #[must_use]
    pub fn raw_score_with(&self, kernel: Kernel, row: Row<'_>) -> f32 {
        let w = self.weights();
        let h = &self.header;
        match h.algorithm {
            Algorithm::Lr => lr::score(
                w,
                &lr::Shape {
                    bits: h.bits,
                    fields: h.fields,
                },
                row,
            ),
            Algorithm::Ffm => ffm::score_with(kernel, w, &h.ffm_shape(), row),
        }
    }

    /// The uncalibrated probability of a row.
    #[inline]
    #[must_use]
    pub fn predict_raw(&self, row: Row<'_>) -> f32 {
        math::sigmoid(self.raw_score(row))
    }

    /// The calibrated probability of one row given as parallel slices.
    #[inline]
    #[must_use]
    pub fn predict_row(&self, fields: &[u32], indices: &[u32], values: &[f32]) -> f32 {
        let p = self.predict_raw(Row {
            fields,
            indices,
            values,
        });
        calibrate(p, self.header.downsample_rate)
    }

    /// Calibrated probabilities of every row of a dataset.
    #[must_use]
    pub fn predict(&self, data: &Dataset) -> Vec<f32> {
        self.predict_with(Kernel::active(), data)
    }

    /// [`Model::predict`] with a given FFM kernel (tests, benchmarks).
    #[must_use]
    pub fn predict_with(&self, kernel: Kernel, data: &Dataset) -> Vec<f32> {
        let w = self.header.downsample_rate;
        self.raw_scores(kernel, data, |t| calibrate(math::sigmoid(t), w))
    }

    /// Uncalibrated probabilities of every row (the training objective's scale).
    #[must_use]
    pub fn predict_uncalibrated(&self, data: &Dataset) -> Vec<f32> {
        self.raw_scores(Kernel::active(), data, math::sigmoid)
    }

    /// `f(raw score)` of every row. FFM batches go through [`ffm::score_batch`], which
    /// prefetches upcoming rows' weights; the scores equal [`Model::raw_score`]'s.
    fn raw_scores(&self, kernel: Kernel, data: &Dataset, f: impl Fn(f32) -> f32) -> Vec<f32> {
        let mut out = Vec::with_capacity(data.num_rows());
        match self.header.algorithm {
            Algorithm::Lr => {
                out.extend((0..data.num_rows()).map(|i| f(self.raw_score(data.row(i)))));
            }
            Algorithm::Ffm => {
                let shape = self.header.ffm_shape();
                ffm::score_batch(kernel, self.weights(), &shape, data, |t| out.push(f(t)));
            }
        }
        out
    }
}

/// Every weight is finite and every padding lane of a latent vector is zero (padding that
/// is not zero would change scores: the file is corrupt).
fn check_weights(h: &Header, w: &[f32]) -> Result<()> {
    if let Some(i) = w.iter().position(|x| !x.is_finite()) {
        return Err(Error::Format(format!("weight {i} is not finite")));
    }
    if h.algorithm == Algorithm::Ffm && h.stride > h.k {
        let v0 = (1usize << h.bits) + 1;
        let (k, stride) = (h.k as usize, h.stride as usize);
        let latent = w.get(v0..).unwrap_or_default();
        if let Some(n) = latent
            .chunks_exact(stride)
            .position(|v| v[k..].iter().any(|&x| x != 0.0))
        {
            return Err(Error::Format(format!(
                "latent vector {n} has non-zero padding (lanes {k}..{stride})"
            )));
        }
    }
    Ok(())
}

fn temp_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map_or_else(|| "model".into(), |n| n.to_string_lossy());
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.tmp-{}-{unique}", std::process::id()))
}

#[cfg(test)]
mod tests;
