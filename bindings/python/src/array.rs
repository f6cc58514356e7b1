//! Arrays lent by Python through DLPack, and the `ndarray` views built over them.
//!
//! Every array argument of the module is an object with `__dlpack__` (a NumPy array, a torch CPU
//! tensor) or a DLPack capsule. [`Array::import`] asks it for a capsule (the versioned protocol
//! first, which carries a read-only flag), takes ownership of the managed tensor in it and holds
//! it until the call ends: the producer keeps its memory alive until then, including while the GIL
//! is released, and the tensor is released exactly once, when the [`Array`] drops. No data is
//! copied: the views alias the producer's memory.
//!
//! Everything the capsule says is checked before a view exists: the device (CPU only), the
//! shape, C-contiguity from the strides, the byte offset, the dtype against the element type, a
//! non-null aligned data pointer for a non-empty array, a byte size that fits in `isize` and, for
//! an array to be written, the read-only flag. Arguments of any other kind are a `TypeError` or a
//! `ValueError` naming the argument.
//!
//! What cannot be checked is the producer's word: that the capsule describes memory it owns, and
//! that nothing writes or frees that memory during the call (another thread resizing a torch
//! tensor in place, say). Every DLPack consumer trusts its producer that far.

use std::mem::{align_of, size_of};
use std::ops::Range;
use std::ptr::NonNull;

use ndarray::{ArrayView, ArrayViewMut, Dimension, IntoDimension, ShapeBuilder};
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict};
use pyo3::{ffi, intern};

use crate::dlpack::{
    DLDataType, DLManagedTensor, DLManagedTensorVersioned, DLPackVersion, DLTensor, CODE_BFLOAT,
    CODE_FLOAT, CODE_INT, DEVICE_CPU, FLAG_READ_ONLY, LEGACY, MAJOR_VERSION, USED_LEGACY,
    USED_VERSIONED, VERSIONED,
};

/// The most axes an array may declare (NumPy's limit); more is a corrupt description.
const MAX_DIMS: usize = 64;

/// An element type the module reads or writes, with the DLPack type that denotes it.
pub trait Scalar: Copy + Send + Sync + 'static {
    /// The DLPack data type of this element type.
    const DTYPE: DLDataType;
}

impl Scalar for f32 {
    const DTYPE: DLDataType = DLDataType::scalar(CODE_FLOAT, 32);
}
impl Scalar for f64 {
    const DTYPE: DLDataType = DLDataType::scalar(CODE_FLOAT, 64);
}
impl Scalar for half::f16 {
    const DTYPE: DLDataType = DLDataType::scalar(CODE_FLOAT, 16);
}
impl Scalar for half::bf16 {
    const DTYPE: DLDataType = DLDataType::scalar(CODE_BFLOAT, 16);
}
impl Scalar for i32 {
    const DTYPE: DLDataType = DLDataType::scalar(CODE_INT, 32);
}
impl Scalar for i64 {
    const DTYPE: DLDataType = DLDataType::scalar(CODE_INT, 64);
}

/// The floating-point dtypes accepted for logits / log-probs (and written for the gradient).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatDtype {
    /// float32
    F32,
    /// float64
    F64,
    /// float16 (IEEE half)
    F16,
    /// bfloat16
    BF16,
}

/// The integer dtypes accepted for targets and lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexDtype {
    /// int32
    I32,
    /// int64
    I64,
}

/// A managed tensor this module has taken from its capsule, released when dropped.
enum Owner {
    /// From a `"dltensor_versioned"` capsule.
    Versioned(NonNull<DLManagedTensorVersioned>),
    /// From a `"dltensor"` capsule.
    Legacy(NonNull<DLManagedTensor>),
}

impl Owner {
    /// Takes the managed tensor out of `capsule`, renaming the capsule as used so that its
    /// destructor leaves the tensor to this owner. `name` is the argument's, for messages.
    fn take(capsule: &Bound<'_, PyCapsule>, name: &str) -> PyResult<Owner> {
        let (unused, used) = if capsule.is_valid_checked(Some(VERSIONED)) {
            (VERSIONED, USED_VERSIONED)
        } else if capsule.is_valid_checked(Some(LEGACY)) {
            (LEGACY, USED_LEGACY)
        } else {
            let label = match capsule.name() {
                // SAFETY: the name pointer comes from the live capsule and is read at once,
                // before any Python code can run and change it.
                Ok(Some(capsule_name)) => unsafe { capsule_name.as_cstr() }
                    .to_string_lossy()
                    .into_owned(),
                _ => String::from("(no name)"),
            };
            return Err(PyTypeError::new_err(format!(
                "{name} gave a capsule named {label:?}, not an unused DLPack tensor \
                 (\"dltensor_versioned\" or \"dltensor\")"
            )));
        };
        let pointer = capsule.pointer_checked(Some(unused))?;
        // SAFETY: `capsule` is a live capsule object and `used` a 'static C string, as
        // PyCapsule_SetName requires (the capsule keeps the pointer, not a copy).
        if unsafe { ffi::PyCapsule_SetName(capsule.as_ptr(), used.as_ptr()) } != 0 {
            return Err(PyErr::fetch(capsule.py()));
        }
        // From here the capsule's destructor no longer releases the tensor; the owner does.
        Ok(if unused == VERSIONED {
            Owner::Versioned(pointer.cast())
        } else {
            Owner::Legacy(pointer.cast())
        })
    }

    /// The tensor and the producer's flags (none for the unversioned protocol), once the
    /// version is one this module reads.
    fn tensor(&self, name: &str) -> PyResult<(&DLTensor, u64)> {
        match self {
            Owner::Versioned(managed) => {
                // SAFETY: the capsule named "dltensor_versioned" holds a DLManagedTensorVersioned,
                // alive until its deleter runs (when `self` drops). Its first field, the version,
                // is laid out the same in every major version: only it is read (at offset 0 of a
                // `repr(C)` struct) until it is known to be this module's.
                let version = unsafe { managed.cast::<DLPackVersion>().read() };
                if version.major != MAJOR_VERSION {
                    return Err(PyValueError::new_err(format!(
                        "{name} is a DLPack {}.{} tensor; this module reads version \
                         {MAJOR_VERSION}.x",
                        version.major, version.minor
                    )));
                }
                // SAFETY: as above, and the version says the whole struct is laid out as declared.
                let managed = unsafe { managed.as_ref() };
                Ok((&managed.dl_tensor, managed.flags))
            }
            // SAFETY: the capsule named "dltensor" holds a DLManagedTensor, alive until its
            // deleter runs (when `self` drops).
            Owner::Legacy(managed) => Ok((unsafe { &managed.as_ref().dl_tensor }, 0)),
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // SAFETY: this owner took the tensor from its capsule (renamed as used, so the capsule
        // will not release it) and is dropped once, so the deleter runs exactly once. Only the
        // `deleter` field is read, through a raw place (DLPack keeps `version`, `manager_ctx` and
        // `deleter` where they are in every major version, so this holds for a tensor whose
        // version was refused too). The GIL is held: arrays are dropped by the native functions
        // after the detached part returns.
        unsafe {
            match self {
                Owner::Versioned(managed) => {
                    if let Some(deleter) = (*managed.as_ptr()).deleter {
                        deleter(managed.as_ptr());
                    }
                }
                Owner::Legacy(managed) => {
                    if let Some(deleter) = (*managed.as_ptr()).deleter {
                        deleter(managed.as_ptr());
                    }
                }
            }
        }
    }
}

/// One array lent through DLPack and checked as far as its description goes (see the module
/// docs); [`Array::view`] and [`Array::view_mut`] check the rest against the element type.
pub struct Array {
    /// Keeps the producer's memory alive; releases it on drop.
    _owner: Owner,
    /// The shape, outermost axis first.
    shape: Vec<usize>,
    /// The element type.
    dtype: DLDataType,
    /// Whether the elements are laid out row-major with no gaps.
    c_contiguous: bool,
    /// The strides in elements (row-major ones when the producer gave none).
    strides: Vec<i64>,
    /// Address of the first element (`data + byte_offset`); may be anything for an empty array.
    address: usize,
    /// Whether the producer forbids writes.
    read_only: bool,
}

/// What to call `obj`'s type in messages.
fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| String::from("?"), |n| n.to_string())
}

impl Array {
    /// Reads `obj`, argument `name`, through DLPack: `obj` is a DLPack capsule, or an object whose
    /// `__dlpack__(max_version=(1, 0))` (or, where the producer knows no `max_version`,
    /// `__dlpack__()`) returns one. The array must be in CPU memory.
    pub fn import(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Array> {
        let capsule = Self::export(obj, name)?;
        let owner = Owner::take(&capsule, name)?;
        Self::describe(owner, name)
    }

    /// The capsule `obj` lends its memory through.
    fn export<'py>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<Bound<'py, PyCapsule>> {
        if let Ok(capsule) = obj.cast::<PyCapsule>() {
            return Ok(capsule.clone());
        }
        let py = obj.py();
        let method = obj.getattr(intern!(py, "__dlpack__")).map_err(|_| {
            PyTypeError::new_err(format!(
                "{name} must be a NumPy array or a CPU tensor (an object with __dlpack__), not {}",
                type_name(obj)
            ))
        })?;
        let kwargs = PyDict::new(py);
        kwargs.set_item(intern!(py, "max_version"), (MAJOR_VERSION, 0))?;
        let exported = match method.call((), Some(&kwargs)) {
            Err(error) if error.is_instance_of::<PyTypeError>(py) => method.call0(),
            other => other,
        }
        .map_err(|error| {
            if !error.is_instance_of::<PyException>(py) {
                return error; // KeyboardInterrupt, SystemExit: not the array's fault
            }
            let wrapped = PyValueError::new_err(format!(
                "{name} ({}) cannot lend its memory through DLPack: {error}",
                type_name(obj)
            ));
            wrapped.set_cause(py, Some(error));
            wrapped
        })?;
        exported.cast_into::<PyCapsule>().map_err(|error| {
            PyTypeError::new_err(format!(
                "{name}.__dlpack__() returned {}, not a DLPack capsule",
                type_name(error.into_inner().as_any())
            ))
        })
    }

    /// Checks the tensor `owner` holds as far as its description goes and records it.
    fn describe(owner: Owner, name: &str) -> PyResult<Array> {
        let (tensor, flags) = owner.tensor(name)?;
        if tensor.device.device_type != DEVICE_CPU {
            return Err(PyValueError::new_err(format!(
                "{name} is on {}: rnnt reads arrays in CPU memory only",
                tensor.device
            )));
        }
        let ndim = usize::try_from(tensor.ndim)
            .ok()
            .filter(|&ndim| ndim <= MAX_DIMS)
            .ok_or_else(|| {
                PyValueError::new_err(format!("{name} has {} dimensions", tensor.ndim))
            })?;
        let shape = axes(tensor.shape, ndim, name, "shape")?;
        let shape: Vec<usize> = shape
            .iter()
            .map(|&n| usize::try_from(n))
            .collect::<Result<_, _>>()
            .map_err(|_| PyValueError::new_err(format!("{name} has shape {shape:?}")))?;
        let strides = if tensor.strides.is_null() {
            row_major_strides(&shape)
        } else {
            axes(tensor.strides, ndim, name, "strides")?
        };
        let c_contiguous = is_c_contiguous(&shape, &strides);
        let address = usize::try_from(tensor.byte_offset)
            .ok()
            .and_then(|offset| (tensor.data as usize).checked_add(offset))
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "{name} has byte offset {} past the address space",
                    tensor.byte_offset
                ))
            })?;
        let dtype = tensor.dtype;
        Ok(Array {
            _owner: owner,
            shape,
            dtype,
            c_contiguous,
            strides,
            address,
            read_only: flags & FLAG_READ_ONLY != 0,
        })
    }

    /// The shape, outermost axis first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type's name, as NumPy and torch write it.
    pub fn dtype_name(&self) -> String {
        self.dtype.to_string()
    }

    /// Whether the bytes of the two arrays may intersect: their spans intersect, unless both are
    /// rows of one pitch over the same outer shape whose column ranges are disjoint (the two
    /// heads of one NeMo joint tensor).
    pub fn overlaps(&self, other: &Array) -> bool {
        let (a, b) = (self.byte_range(), other.byte_range());
        let spans_meet = !a.is_empty() && !b.is_empty() && a.start < b.end && b.start < a.end;
        spans_meet && !self.interleaves(other)
    }

    /// Whether `self` and `other` are rows of one pitch (the same outer shape and strides, in
    /// bytes) whose column ranges within a pitch do not intersect.
    fn interleaves(&self, other: &Array) -> bool {
        let rank = self.shape.len();
        if rank < 2 || other.shape.len() != rank || self.element_bytes() != other.element_bytes() {
            return false;
        }
        let outer = rank - 1;
        if self.shape[..outer] != other.shape[..outer]
            || self.strides[..outer] != other.strides[..outer]
        {
            return false;
        }
        let size = self.element_bytes() as i64;
        let pitch = self.strides[outer - 1].saturating_mul(size);
        if pitch <= 0 || self.strides[outer] != 1 || other.strides[outer] != 1 {
            return false;
        }
        let (pitch, first, second) = (pitch as usize, self, other);
        let width = |a: &Array| a.shape[outer] * a.element_bytes();
        // Column offsets within one pitch, measured from the lower address.
        let (low, high) = if first.address <= second.address {
            (first, second)
        } else {
            (second, first)
        };
        let offset = (high.address - low.address) % pitch;
        offset >= width(low) && offset + width(high) <= pitch
    }

    /// Bytes per element.
    fn element_bytes(&self) -> usize {
        (usize::from(self.dtype.bits) * usize::from(self.dtype.lanes)).div_ceil(8)
    }

    /// The addresses the elements span, by their strides (saturating: an array too large for
    /// the address space is refused before it is read).
    fn byte_range(&self) -> Range<usize> {
        if self.shape.contains(&0) {
            return self.address..self.address;
        }
        let last = self
            .shape
            .iter()
            .zip(&self.strides)
            .fold(0usize, |acc, (&n, &stride)| {
                acc.saturating_add((n - 1).saturating_mul(stride.unsigned_abs() as usize))
            });
        let bytes = last.saturating_add(1).saturating_mul(self.element_bytes());
        self.address..self.address.saturating_add(bytes)
    }

    /// The dtype of a floating-point argument `name`, or a `TypeError` naming it.
    pub fn float_dtype(&self, name: &str) -> PyResult<FloatDtype> {
        match self.dtype {
            t if t == f32::DTYPE => Ok(FloatDtype::F32),
            t if t == f64::DTYPE => Ok(FloatDtype::F64),
            t if t == half::f16::DTYPE => Ok(FloatDtype::F16),
            t if t == half::bf16::DTYPE => Ok(FloatDtype::BF16),
            other => Err(PyTypeError::new_err(format!(
                "{name} has dtype {other}; expected float32, float64, float16 or bfloat16"
            ))),
        }
    }

    /// The dtype of an integer argument `name`, or a `TypeError` naming it.
    pub fn index_dtype(&self, name: &str) -> PyResult<IndexDtype> {
        match self.dtype {
            t if t == i32::DTYPE => Ok(IndexDtype::I32),
            t if t == i64::DTYPE => Ok(IndexDtype::I64),
            other => Err(PyTypeError::new_err(format!(
                "{name} has dtype {other}; expected int32 or int64"
            ))),
        }
    }

    /// Checks that this array can back a view of `T` with `rank` axes: the dtype matches, the
    /// memory is C-contiguous, the address is non-null and aligned (unless the array is empty)
    /// and the byte size fits in `isize`. Returns the pointer to build the view from: the
    /// array's, or a dangling aligned one for an empty array (whose address is never read).
    fn check<T: Scalar>(&self, name: &str, rank: usize) -> PyResult<*mut T> {
        if self.dtype != T::DTYPE {
            return Err(PyTypeError::new_err(format!(
                "{name} has dtype {} but {} was expected",
                self.dtype,
                T::DTYPE
            )));
        }
        if self.shape.len() != rank {
            return Err(PyValueError::new_err(format!(
                "{name} has {} dimensions (shape {:?}) but {rank} were expected",
                self.shape.len(),
                self.shape
            )));
        }
        if !self.c_contiguous {
            return Err(PyValueError::new_err(format!(
                "{name} must be C-contiguous (row-major, no strides)"
            )));
        }
        let len = self
            .shape
            .iter()
            .try_fold(1usize, |acc, &n| acc.checked_mul(n))
            .filter(|&len| {
                len.checked_mul(size_of::<T>())
                    .is_some_and(|b| b <= isize::MAX as usize)
            })
            .ok_or_else(|| {
                PyValueError::new_err(format!("{name} has shape {:?}: too large", self.shape))
            })?;
        if len == 0 {
            return Ok(NonNull::<T>::dangling().as_ptr());
        }
        if self.address == 0 || !self.address.is_multiple_of(align_of::<T>()) {
            return Err(PyValueError::new_err(format!(
                "{name} has address {:#x}, not a valid aligned address for {}",
                self.address,
                T::DTYPE
            )));
        }
        Ok(self.address as *mut T)
    }

    /// The dimension of a view with `D::NDIM` axes over this array (whose rank is checked).
    fn dim<D: Dimension>(&self) -> D {
        D::from_dimension(&self.shape.as_slice().into_dimension()).expect("rank checked before")
    }

    /// A read-only view of `D::NDIM` axes over the array, argument `name`, whose elements must be
    /// `T`; it borrows the array, so it cannot outlive the producer's memory.
    pub fn view<T: Scalar, D: Dimension>(&self, name: &str) -> PyResult<ArrayView<'_, T, D>> {
        let rank = D::NDIM.expect("fixed-rank views only");
        let pointer = self.check::<T>(name, rank)?;
        // SAFETY: `check` verified the dtype, the rank, C-contiguity (so the default row-major
        // strides describe the memory), a non-null aligned address and an in-range byte size; an
        // empty array gets a dangling aligned pointer that is never dereferenced. The producer
        // keeps the memory alive while `self` holds its managed tensor, for the view's lifetime.
        Ok(unsafe { ArrayView::from_shape_ptr(self.dim::<D>(), pointer as *const T) })
    }

    /// A writable view of `D::NDIM` axes over the array, argument `name`, which the producer must
    /// not have marked read-only. The caller checks that it shares no byte with any array viewed
    /// at the same time ([`Array::overlaps`]).
    pub fn view_mut<T: Scalar, D: Dimension>(
        &mut self,
        name: &str,
    ) -> PyResult<ArrayViewMut<'_, T, D>> {
        if self.read_only {
            return Err(PyValueError::new_err(format!(
                "{name} is read-only: pass a writable array"
            )));
        }
        let rank = D::NDIM.expect("fixed-rank views only");
        let pointer = self.check::<T>(name, rank)?;
        // SAFETY: as in `view`, and the producer allows writes; `&mut self` makes this the only
        // view of this array, and the caller checked that no other array it views overlaps it.
        Ok(unsafe { ArrayViewMut::from_shape_ptr(self.dim::<D>(), pointer) })
    }
}

impl Array {
    /// Checks that this array can back a strided view of `T` with `rank` axes (the heads of a
    /// variant's call): as [`Array::check`] but with any non-negative strides whose last one is 1;
    /// the core checks that the rows share one pitch. Returns the pointer and the strides.
    fn check_strided<T: Scalar>(&self, name: &str, rank: usize) -> PyResult<(*mut T, Vec<usize>)> {
        if self.dtype != T::DTYPE {
            return Err(PyTypeError::new_err(format!(
                "{name} has dtype {} but {} was expected",
                self.dtype,
                T::DTYPE
            )));
        }
        if self.shape.len() != rank {
            return Err(PyValueError::new_err(format!(
                "{name} has {} dimensions (shape {:?}) but {rank} were expected",
                self.shape.len(),
                self.shape
            )));
        }
        let strides: Vec<usize> = self
            .strides
            .iter()
            .map(|&s| usize::try_from(s))
            .collect::<Result<_, _>>()
            .map_err(|_| {
                PyValueError::new_err(format!(
                    "{name} has negative strides {:?}: make a copy",
                    self.strides
                ))
            })?;
        // No two elements at one address: each axis steps past everything inside it.
        let mut inner_span = 0usize;
        for (&extent, &stride) in self.shape.iter().zip(&strides).rev() {
            if extent > 1 && stride <= inner_span {
                return Err(PyValueError::new_err(format!(
                    "{name} has shape {:?} and strides {:?}, under which elements overlap or \
                     are not rows of one pitch: make a contiguous copy",
                    self.shape, self.strides
                )));
            }
            inner_span =
                inner_span.saturating_add((extent.saturating_sub(1)).saturating_mul(stride));
        }
        let span = self.byte_range();
        if span.end - span.start > isize::MAX as usize || span.end == usize::MAX {
            return Err(PyValueError::new_err(format!(
                "{name} has shape {:?}: too large",
                self.shape
            )));
        }
        if self.shape.contains(&0) {
            return Ok((NonNull::<T>::dangling().as_ptr(), strides));
        }
        if self.address == 0 || !self.address.is_multiple_of(align_of::<T>()) {
            return Err(PyValueError::new_err(format!(
                "{name} has address {:#x}, not a valid aligned address for {}",
                self.address,
                T::DTYPE
            )));
        }
        Ok((self.address as *mut T, strides))
    }

    /// A read-only strided view (see [`Array::check_strided`]).
    pub fn view_strided<T: Scalar, D: Dimension>(
        &self,
        name: &str,
    ) -> PyResult<ArrayView<'_, T, D>> {
        let (pointer, strides) = self.check_strided::<T>(name, D::NDIM.expect("fixed rank"))?;
        let shape = self.dim::<D>().strides(
            D::from_dimension(&strides.as_slice().into_dimension()).expect("rank checked"),
        );
        // SAFETY: `check_strided` verified the dtype, the rank, non-negative strides, an aligned
        // non-null address and a byte span that fits in isize; the producer's description says
        // every element at these strides lies in its memory, kept alive while `self` holds it.
        Ok(unsafe { ArrayView::from_shape_ptr(shape, pointer as *const T) })
    }

    /// A writable strided view; the caller checks that it shares no byte with any array viewed
    /// at the same time ([`Array::overlaps`]).
    pub fn view_mut_strided<T: Scalar, D: Dimension>(
        &mut self,
        name: &str,
    ) -> PyResult<ArrayViewMut<'_, T, D>> {
        if self.read_only {
            return Err(PyValueError::new_err(format!(
                "{name} is read-only: pass a writable array"
            )));
        }
        let (pointer, strides) = self.check_strided::<T>(name, D::NDIM.expect("fixed rank"))?;
        let shape = self.dim::<D>().strides(
            D::from_dimension(&strides.as_slice().into_dimension()).expect("rank checked"),
        );
        // SAFETY: as in `view_strided`, and the producer allows writes; `&mut self` makes this the
        // only view of this array, and the caller checked that no other array it views overlaps
        // it (the core refuses strides under which two elements would share an address).
        Ok(unsafe { ArrayViewMut::from_shape_ptr(shape, pointer) })
    }
}

/// Row-major strides (in elements) of `shape`.
fn row_major_strides(shape: &[usize]) -> Vec<i64> {
    let mut strides = vec![1i64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1].saturating_mul(shape[i + 1] as i64);
    }
    strides
}

/// The `ndim` entries of a tensor's `shape` or `strides` (`what`), copied out of the producer's
/// memory.
fn axes(pointer: *const i64, ndim: usize, name: &str, what: &str) -> PyResult<Vec<i64>> {
    if ndim == 0 {
        return Ok(Vec::new());
    }
    if pointer.is_null() {
        return Err(PyValueError::new_err(format!(
            "{name} has {ndim} dimensions but no {what}"
        )));
    }
    // SAFETY: a DLTensor of `ndim` > 0 axes points `shape` (and `strides`, when not null) to
    // `ndim` integers owned by the managed tensor, which is alive; non-null was checked.
    Ok(unsafe { std::slice::from_raw_parts(pointer, ndim) }.to_vec())
}

/// Whether `strides` (in elements) lay `shape` out row-major with no gaps. Axes of extent 1 may
/// have any stride, and an empty array is contiguous whatever its strides.
fn is_c_contiguous(shape: &[usize], strides: &[i64]) -> bool {
    if shape.contains(&0) {
        return true;
    }
    let mut expected: i64 = 1;
    for (&extent, &stride) in shape.iter().zip(strides).rev() {
        if extent != 1 && stride != expected {
            return false;
        }
        match i64::try_from(extent)
            .ok()
            .and_then(|e| expected.checked_mul(e))
        {
            Some(next) => expected = next,
            None => return false,
        }
    }
    true
}
