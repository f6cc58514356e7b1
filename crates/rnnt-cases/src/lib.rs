//! Loss cases in the golden `.npz` format (`tests/golden/README.md`): reading inputs and their
//! float64 truth, writing results, and the per-case tolerances of `manifest.json`.
//!
//! This crate does I/O only; it knows nothing of the loss. Integer arrays are widened to i64 on
//! reading (they are small); score arrays keep their dtype.

mod npy;
pub mod synthetic;
pub mod variants;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use ndarray::{
    Array, Array1, Array2, Array4, ArrayView1, ArrayView2, ArrayView4, Axis, Dimension, Ix4,
};
use ndarray_npy::NpzWriter;

use npy::{Archive, Member};

/// Why a case file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// The file could not be opened or created.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An array is missing, or has a dtype or rank the format does not allow.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the array.
        message: String,
    },
}

/// A score array in its stored dtype: (B, T, U+1, V) padded by default; `D` another rank where a
/// case is read with [`read_case_as`] (2-D: packed (ΣT_b·(U_b+1), V)).
#[derive(Debug, Clone, PartialEq)]
pub enum Scores<D: Dimension = Ix4> {
    /// float32 scores.
    F32(Array<f32, D>),
    /// float64 scores.
    F64(Array<f64, D>),
}

impl<D: Dimension> Scores<D> {
    /// The scores widened to f64.
    pub fn to_f64(&self) -> Array<f64, D> {
        match self {
            Scores::F32(a) => a.mapv(f64::from),
            Scores::F64(a) => a.clone(),
        }
    }

    /// The scores narrowed (or kept) to f32.
    pub fn to_f32(&self) -> Array<f32, D> {
        match self {
            Scores::F32(a) => a.clone(),
            Scores::F64(a) => a.mapv(|x| x as f32),
        }
    }

    /// The dtype's name (`"float32"` or `"float64"`).
    pub fn dtype(&self) -> &'static str {
        match self {
            Scores::F32(_) => "float32",
            Scores::F64(_) => "float64",
        }
    }
}

/// Labels, padded (B, U) or packed (ΣU_b).
#[derive(Debug, Clone, PartialEq)]
pub enum Labels {
    /// (B, U), padded past each item's length.
    Padded(Array2<i64>),
    /// (ΣU_b,), every item's labels end to end.
    Packed(Array1<i64>),
}

/// The float64 truth stored with a golden case (gradients of the scores' rank `D`).
#[derive(Debug, Clone, PartialEq)]
pub struct Truth<D: Dimension = Ix4> {
    /// (B,) per-item losses.
    pub losses: Array1<f64>,
    /// (B, T, U+1, V) d Σ_b loss_b / d logits.
    pub grad_logits: Array<f64, D>,
    /// (B, T, U+1, V) d Σ_b loss_b / d log_probs, log-probs treated as free inputs.
    pub grad_log_probs: Array<f64, D>,
}

/// One case: the loss inputs, and the truth when the file holds it. Its scores are of rank `D`
/// (padded (B, T, U+1, V) by default; see [`read_case_as`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Case<D: Dimension = Ix4> {
    /// Unnormalised scores, if present.
    pub logits: Option<Scores<D>>,
    /// log_softmax of the logits, if present.
    pub log_probs: Option<Scores<D>>,
    /// Labels.
    pub targets: Labels,
    /// (B,) frames per item.
    pub logit_lengths: Array1<i64>,
    /// (B,) labels per item.
    pub target_lengths: Array1<i64>,
    /// The stored blank id, if present.
    pub blank: Option<i64>,
    /// The stored truth, if the file has `losses`, `grad_logits` and `grad_log_probs`.
    pub truth: Option<Truth<D>>,
}

/// Reads a case with (B, T, U+1, V) scores from `path`.
pub fn read_case(path: &Path) -> Result<Case, CaseError> {
    read_case_as::<Ix4>(path)
}

/// Reads a case from `path` whose scores (and truth gradients) have rank `D`: `Ix4` padded,
/// `Ix2` packed, `IxDyn` whatever the file holds.
pub fn read_case_as<D: Dimension>(path: &Path) -> Result<Case<D>, CaseError> {
    let file = File::open(path).map_err(|source| CaseError::Io {
        path: path.into(),
        source,
    })?;
    read_from(file, path)
}

/// Reads a case with (B, T, U+1, V) scores from the `.npz` bytes of `reader`; `path` names it
/// in errors.
///
/// Nothing in the file is trusted: a truncated file, a wrong magic string, a header whose shape
/// needs more bytes than the file holds (or more than memory can address), an object, structured
/// or otherwise unsupported dtype is a [`CaseError::Format`] naming the array, never a panic or an
/// allocation of what the header claims. Big-endian and Fortran-ordered arrays are read (into
/// native, C-ordered arrays).
pub fn read_case_from<R: Read + Seek>(reader: R, path: &Path) -> Result<Case, CaseError> {
    read_from(reader, path)
}

/// [`read_case_from`] with scores (and truth gradients) of rank `D` (see [`read_case_as`]).
fn read_from<D: Dimension, R: Read + Seek>(reader: R, path: &Path) -> Result<Case<D>, CaseError> {
    Archive::new(reader)
        .and_then(|mut npz| read_arrays(&mut npz))
        .map_err(|message| CaseError::Format {
            path: path.into(),
            message,
        })
}

/// The arrays of a case from its archive.
fn read_arrays<R: Read + Seek, D: Dimension>(npz: &mut Archive<R>) -> Result<Case<D>, String> {
    let logits = npz.member("logits")?.map(|m| read_scores(&m)).transpose()?;
    let log_probs = npz
        .member("log_probs")?
        .map(|m| read_scores(&m))
        .transpose()?;
    if logits.is_none() && log_probs.is_none() {
        return Err("holds neither `logits` nor `log_probs`".into());
    }
    let targets = npz.required("targets")?;
    let targets = match targets.ndim() {
        2 => Labels::Padded(read_int(&targets)?),
        1 => Labels::Packed(read_int(&targets)?),
        rank => {
            return Err(format!(
                "`targets` has {rank} dimensions: it must be 2-D (padded) or 1-D (packed)"
            ))
        }
    };
    let logit_lengths = read_int(&npz.required("logit_lengths")?)?;
    let target_lengths = read_int(&npz.required("target_lengths")?)?;
    let names = npz.names();
    let has = |name: &str| names.iter().any(|n| n == name);
    let blank = match npz.member("blank")? {
        Some(blank) => Some(read_int::<ndarray::Ix0>(&blank)?.into_scalar()),
        None => None,
    };
    let truth = if has("losses") && has("grad_logits") && has("grad_log_probs") {
        Some(Truth {
            losses: read_f64(&npz.required("losses")?)?,
            grad_logits: read_f64(&npz.required("grad_logits")?)?,
            grad_log_probs: read_f64(&npz.required("grad_log_probs")?)?,
        })
    } else {
        None
    };
    Ok(Case {
        logits,
        log_probs,
        targets,
        logit_lengths,
        target_lengths,
        blank,
        truth,
    })
}

/// A float32 or float64 array of rank `D`.
fn read_scores<D: Dimension>(member: &Member) -> Result<Scores<D>, String> {
    let rank = D::NDIM.map_or(String::new(), |n| format!("{n}-D "));
    match member.descr() {
        Some("<f4" | ">f4") => member.array(FLOAT32).map(Scores::F32),
        Some("<f8" | ">f8") => member.array(FLOAT64).map(Scores::F64),
        _ => Err(format!(
            "`{}` must be a {rank}float32 or float64 array, not of dtype {}",
            member.name(),
            member.dtype_text()
        )),
    }
}

/// A float64 array of rank `D`.
fn read_f64<D: Dimension>(member: &Member) -> Result<ndarray::Array<f64, D>, String> {
    match member.descr() {
        Some("<f8" | ">f8") => member.array(FLOAT64),
        _ => Err(format!(
            "`{}` must be a float64 array, not of dtype {}",
            member.name(),
            member.dtype_text()
        )),
    }
}

/// An int32 or int64 array of rank `D`, widened to i64.
fn read_int<D: Dimension>(member: &Member) -> Result<ndarray::Array<i64, D>, String> {
    match member.descr() {
        Some("<i8" | ">i8") => member.array("int64"),
        Some("<i4" | ">i4") => member.array::<i32, D>("int32").map(|a| a.mapv(i64::from)),
        _ => Err(format!(
            "`{}` must be an int32 or int64 array, not of dtype {}",
            member.name(),
            member.dtype_text()
        )),
    }
}

/// The dtype names of the score arrays, in messages.
const FLOAT32: &str = "float32";
/// See [`FLOAT32`].
const FLOAT64: &str = "float64";

/// Results of one loss call, as `rnnt loss` writes them.
#[derive(Debug, Clone, PartialEq)]
pub struct LossResult<D: Dimension = Ix4> {
    /// (B,) per-item losses.
    pub losses: Array1<f64>,
    /// The reduced loss.
    pub loss: f64,
    /// d loss / d input, of the input's shape: (B, T, U+1, V) padded, (ΣT_b·(U_b+1), V) packed.
    pub grad: Array<f64, D>,
}

/// Writes `result` to `path` as an .npz with `losses`, `loss` and `grad` (all float64).
pub fn write_result<D: Dimension>(path: &Path, result: &LossResult<D>) -> Result<(), CaseError> {
    let file = File::create(path).map_err(|source| CaseError::Io {
        path: path.into(),
        source,
    })?;
    let format = |e: ndarray_npy::WriteNpzError| CaseError::Format {
        path: path.into(),
        message: e.to_string(),
    };
    let mut npz = NpzWriter::new(file);
    npz.add_array("losses", &result.losses).map_err(format)?;
    npz.add_array("loss", &ndarray::arr0(result.loss))
        .map_err(format)?;
    npz.add_array("grad", &result.grad).map_err(format)?;
    npz.finish().map_err(format)?;
    Ok(())
}

/// Tolerances of one case (`manifest.json`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Relative loss tolerance.
    pub loss_rtol: f64,
    /// Absolute loss tolerance.
    pub loss_atol: f64,
    /// Absolute elementwise gradient tolerance.
    pub grad_atol: f64,
}

impl Tolerance {
    /// The manifest's tolerance for float64 input.
    pub const FLOAT64: Tolerance = Tolerance {
        loss_rtol: 0.0,
        loss_atol: 1e-9,
        grad_atol: 1e-9,
    };

    /// The manifest's tolerance for float32 input.
    pub const FLOAT32: Tolerance = Tolerance {
        loss_rtol: 1e-5,
        loss_atol: 1e-4,
        grad_atol: 1e-4,
    };

    /// Whether `loss` is within tolerance of `truth` (equal infinities pass).
    pub fn loss_ok(&self, loss: f64, truth: f64) -> bool {
        loss == truth || (loss - truth).abs() <= self.loss_atol + self.loss_rtol * truth.abs()
    }
}

/// One manifest entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestEntry {
    /// (B, T, U+1, V).
    pub shape: Vec<usize>,
    /// The stored logits dtype.
    pub dtype: String,
    /// The blank id.
    pub blank: i64,
    /// Tolerances for the stored dtype.
    pub tolerance: Tolerance,
}

/// Reads `dir/manifest.json`, keyed by case name.
pub fn read_manifest(dir: &Path) -> Result<BTreeMap<String, ManifestEntry>, CaseError> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|source| CaseError::Io {
        path: path.clone(),
        source,
    })?;
    let format = |message: String| CaseError::Format {
        path: path.clone(),
        message,
    };
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| format(e.to_string()))?;
    let object = json
        .as_object()
        .ok_or_else(|| format("expected a JSON object".into()))?;
    object
        .iter()
        .map(|(name, entry)| {
            let number = |v: &serde_json::Value, key: &str| {
                v.get(key)
                    .and_then(serde_json::Value::as_f64)
                    .ok_or_else(|| format(format!("{name}: missing number `{key}`")))
            };
            let tol = entry
                .get("tolerance")
                .ok_or_else(|| format(format!("{name}: missing `tolerance`")))?;
            let shape = entry
                .get("shape")
                .and_then(serde_json::Value::as_array)
                .map(|dims| {
                    dims.iter()
                        .filter_map(|d| d.as_u64().map(|d| d as usize))
                        .collect()
                })
                .ok_or_else(|| format(format!("{name}: missing `shape`")))?;
            Ok((
                name.clone(),
                ManifestEntry {
                    shape,
                    dtype: entry
                        .get("dtype")
                        .and_then(|d| d.as_str())
                        .unwrap_or_default()
                        .to_string(),
                    blank: number(entry, "blank")? as i64,
                    tolerance: Tolerance {
                        loss_rtol: number(tol, "loss_rtol")?,
                        loss_atol: number(tol, "loss_atol")?,
                        grad_atol: number(tol, "grad_atol")?,
                    },
                },
            ))
        })
        .collect()
}

/// Packs padded (B, T, U+1, V) scores into (ΣT_b·(U_b+1), V) rows: item b's node (t, u) for
/// t < T_b and u ≤ U_b, frame-major, the items in batch order (optimized_transducer's layout).
/// The padding is dropped.
///
/// # Panics
/// If a length is negative or exceeds the padded sizes, or the lengths do not have B entries.
pub fn pack_scores<A: Clone>(
    padded: ArrayView4<'_, A>,
    logit_lengths: ArrayView1<'_, i64>,
    target_lengths: ArrayView1<'_, i64>,
) -> Array2<A> {
    let (batch, _, _, vocab) = padded.dim();
    assert_eq!(logit_lengths.len(), batch, "logit_lengths has B entries");
    assert_eq!(target_lengths.len(), batch, "target_lengths has B entries");
    let mut values = Vec::new();
    for (b, item) in padded.axis_iter(Axis(0)).enumerate() {
        let (frames, positions) = (logit_lengths[b] as usize, target_lengths[b] as usize + 1);
        for frame in item.axis_iter(Axis(0)).take(frames) {
            for row in frame.axis_iter(Axis(0)).take(positions) {
                values.extend(row.iter().cloned());
            }
        }
    }
    let rows = values.len() / vocab.max(1);
    Array2::from_shape_vec((rows, vocab), values).expect("whole rows of V")
}

/// The inverse of [`pack_scores`]: packed (ΣT_b·(U_b+1), V) rows laid out as padded
/// `(B, T, U+1, V)` scores of sizes `dims`, `fill` in the padding.
///
/// # Panics
/// If the rows do not match the lengths or the lengths exceed `dims`.
pub fn unpack_scores<A: Clone>(
    packed: ArrayView2<'_, A>,
    dims: (usize, usize, usize, usize),
    logit_lengths: ArrayView1<'_, i64>,
    target_lengths: ArrayView1<'_, i64>,
    fill: A,
) -> Array4<A> {
    let mut padded = Array4::from_elem(dims, fill);
    let mut rows = packed.axis_iter(Axis(0));
    for (b, mut item) in padded.axis_iter_mut(Axis(0)).enumerate() {
        let (frames, positions) = (logit_lengths[b] as usize, target_lengths[b] as usize + 1);
        for mut frame in item.axis_iter_mut(Axis(0)).take(frames) {
            for mut row in frame.axis_iter_mut(Axis(0)).take(positions) {
                row.assign(
                    &rows
                        .next()
                        .expect("a row for every node within the lengths"),
                );
            }
        }
    }
    assert!(rows.next().is_none(), "no rows beyond the lengths");
    padded
}
