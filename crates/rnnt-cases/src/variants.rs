//! Cases of the transducer variants (`tests/golden-variants/README.md`): every array of a case
//! by name, and the manifest's variant and options.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};

use crate::npy::{Archive, Member};
use crate::{read_manifest, CaseError, ManifestEntry};

/// One array of a case, by its dtype: floats keep theirs, integers are widened to i64.
#[derive(Debug, Clone, PartialEq)]
pub enum NamedArray {
    /// float32.
    F32(ArrayD<f32>),
    /// float64.
    F64(ArrayD<f64>),
    /// int32 or int64, widened.
    Int(ArrayD<i64>),
}

impl NamedArray {
    /// The values as f64 (integers converted).
    pub fn to_f64(&self) -> ArrayD<f64> {
        match self {
            NamedArray::F32(a) => a.mapv(f64::from),
            NamedArray::F64(a) => a.clone(),
            NamedArray::Int(a) => a.mapv(|x| x as f64),
        }
    }

    /// The values as i64, for an integer array.
    pub fn to_i64(&self) -> Option<ArrayD<i64>> {
        match self {
            NamedArray::Int(a) => Some(a.clone()),
            _ => None,
        }
    }
}

/// Every array of the `.npz` file at `path`, by name.
///
/// # Errors
/// [`CaseError`] when the file cannot be read or holds an array of another dtype.
pub fn read_arrays(path: &Path) -> Result<BTreeMap<String, NamedArray>, CaseError> {
    let format = |message: String| CaseError::Format {
        path: path.into(),
        message,
    };
    let file = File::open(path).map_err(|source| CaseError::Io {
        path: path.into(),
        source,
    })?;
    let mut npz = Archive::new(file).map_err(format)?;
    let mut arrays = BTreeMap::new();
    for name in npz.names() {
        let member = npz.required(&name).map_err(format)?;
        arrays.insert(name, named(&member).map_err(format)?);
    }
    Ok(arrays)
}

/// One member as a [`NamedArray`].
fn named(member: &Member) -> Result<NamedArray, String> {
    match member.descr() {
        Some("<f4" | ">f4") => member.array::<f32, IxDyn>("float32").map(NamedArray::F32),
        Some("<f8" | ">f8") => member.array::<f64, IxDyn>("float64").map(NamedArray::F64),
        Some("<i8" | ">i8") => member.array::<i64, IxDyn>("int64").map(NamedArray::Int),
        Some("<i4" | ">i4") => member
            .array::<i32, IxDyn>("int32")
            .map(|a| NamedArray::Int(a.mapv(i64::from))),
        _ => Err(format!(
            "`{}` must be float32, float64, int32 or int64, not {}",
            member.name(),
            member.dtype_text()
        )),
    }
}

/// A manifest entry of the variants' format: the common fields and the variant with its
/// options.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantEntry {
    /// Shape, dtype, blank and tolerances.
    pub entry: ManifestEntry,
    /// `tdt`, `multiblank`, `modified`, `constrained`, `delay_penalty`, `fastemit` (absent:
    /// the standard loss).
    pub variant: Option<String>,
    /// The options object (`durations`, `sigma`, `big_blank_durations`, `delay_penalty`,
    /// `fastemit_lambda`, `rnnt_type`, `terminal_blank`), as JSON.
    pub options: serde_json::Map<String, serde_json::Value>,
}

/// Reads `dir/manifest.json` with each entry's variant and options.
///
/// # Errors
/// As [`read_manifest`].
pub fn read_variant_manifest(dir: &Path) -> Result<BTreeMap<String, VariantEntry>, CaseError> {
    let entries = read_manifest(dir)?;
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|source| CaseError::Io {
        path: path.clone(),
        source,
    })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| CaseError::Format {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(entries
        .into_iter()
        .map(|(name, entry)| {
            let raw = &json[&name];
            let variant = raw
                .get("variant")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned);
            let options = raw
                .get("options")
                .and_then(serde_json::Value::as_object)
                .cloned()
                .unwrap_or_default();
            (
                name,
                VariantEntry {
                    entry,
                    variant,
                    options,
                },
            )
        })
        .collect())
}

/// Writes float64 arrays by name into a new `.npz` file at `path`.
///
/// # Errors
/// [`CaseError::Io`] when the file cannot be written.
pub fn write_arrays(path: &Path, arrays: &[(&str, ArrayD<f64>)]) -> Result<(), CaseError> {
    let io = |e: std::io::Error| CaseError::Io {
        path: path.into(),
        source: e,
    };
    let mut npz = ndarray_npy::NpzWriter::new(File::create(path).map_err(io)?);
    for (name, array) in arrays {
        npz.add_array(*name, array)
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
    }
    npz.finish()
        .map_err(|e| io(std::io::Error::other(e.to_string())))?;
    Ok(())
}
