//! Loss cases in the golden `.npz` format (`tests/golden/README.md`): reading inputs and their
//! float64 truth, writing results, and the per-case tolerances of `manifest.json`.
//!
//! This crate does I/O only; it knows nothing of the loss. Integer arrays are widened to i64 on
//! reading (they are small); score arrays keep their dtype.

pub mod synthetic;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use ndarray::{
    Array, Array0, Array1, Array2, Array4, ArrayView1, ArrayView2, ArrayView4, Axis, Dimension,
    Ix4, OwnedRepr,
};
use ndarray_npy::{NpzReader, NpzWriter, ReadNpzError};

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
    let format = |message: String| CaseError::Format {
        path: path.into(),
        message,
    };
    let mut npz =
        NpzReader::new(file).map_err(|e| format(format!("not a readable .npz file: {e}")))?;
    let names = npz.names().map_err(|e| format(e.to_string()))?;
    let has = |name: &str| names.iter().any(|n| n == name);
    let mut read_scores = |name: &str| -> Result<Option<Scores<D>>, CaseError> {
        if !has(name) {
            return Ok(None);
        }
        read_f32_or_f64(&mut npz, name).map(Some).map_err(format)
    };
    let logits = read_scores("logits")?;
    let log_probs = read_scores("log_probs")?;
    if logits.is_none() && log_probs.is_none() {
        return Err(format("holds neither `logits` nor `log_probs`".into()));
    }
    let required = |name: &str| {
        if has(name) {
            Ok(())
        } else {
            Err(format(format!("missing array `{name}`")))
        }
    };
    required("targets")?;
    required("logit_lengths")?;
    required("target_lengths")?;
    let targets = match read_int::<_, ndarray::Ix2>(&mut npz, "targets") {
        Ok(padded) => Labels::Padded(padded),
        Err(_) => Labels::Packed(read_int::<_, ndarray::Ix1>(&mut npz, "targets").map_err(
            |e| {
                format(format!(
                    "{e}; `targets` must be 2-D (padded) or 1-D (packed)"
                ))
            },
        )?),
    };
    let logit_lengths = read_int(&mut npz, "logit_lengths").map_err(format)?;
    let target_lengths = read_int(&mut npz, "target_lengths").map_err(format)?;
    let blank = if has("blank") {
        let blank: Array0<i64> = read_int(&mut npz, "blank").map_err(format)?;
        Some(blank.into_scalar())
    } else {
        None
    };
    let truth = if has("losses") && has("grad_logits") && has("grad_log_probs") {
        Some(Truth {
            losses: read_f64(&mut npz, "losses").map_err(format)?,
            grad_logits: read_f64(&mut npz, "grad_logits").map_err(format)?,
            grad_log_probs: read_f64(&mut npz, "grad_log_probs").map_err(format)?,
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

fn read_f32_or_f64<R: Read + Seek, D: Dimension>(
    npz: &mut NpzReader<R>,
    name: &str,
) -> Result<Scores<D>, String> {
    let rank = D::NDIM.map_or(String::new(), |n| format!("{n}-D "));
    match npz.by_name::<OwnedRepr<f32>, _>(name) {
        Ok(a) => Ok(Scores::F32(a)),
        Err(ReadNpzError::Npy(_)) => npz
            .by_name::<OwnedRepr<f64>, _>(name)
            .map(Scores::F64)
            .map_err(|e| format!("`{name}` must be a {rank}float32 or float64 array: {e}")),
        Err(e) => Err(format!("`{name}`: {e}")),
    }
}

fn read_f64<R: Read + Seek, D: Dimension>(
    npz: &mut NpzReader<R>,
    name: &str,
) -> Result<ndarray::Array<f64, D>, String> {
    npz.by_name::<OwnedRepr<f64>, D>(name).map_err(|e| {
        format!(
            "`{name}` must be a float64 array of rank {}: {e}",
            D::NDIM.unwrap_or(0)
        )
    })
}

fn read_int<R: Read + Seek, D: Dimension>(
    npz: &mut NpzReader<R>,
    name: &str,
) -> Result<ndarray::Array<i64, D>, String> {
    match npz.by_name::<OwnedRepr<i64>, D>(name) {
        Ok(a) => Ok(a),
        Err(ReadNpzError::Npy(_)) => npz
            .by_name::<OwnedRepr<i32>, D>(name)
            .map(|a| a.mapv(i64::from))
            .map_err(|e| {
                format!(
                    "`{name}` must be an int32 or int64 array of rank {}: {e}",
                    D::NDIM.unwrap_or(0)
                )
            }),
        Err(e) => Err(format!("`{name}`: {e}")),
    }
}

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
