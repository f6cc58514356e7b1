//! Arrays passed from Python as descriptors, and the `ndarray` views built over them.
//!
//! The Python package describes every NumPy array and torch CPU tensor by an [`ArrayDesc`]: the
//! address of its first element, its shape, its dtype name and whether it is C-contiguous. No data
//! is copied: the views below alias the caller's memory. The Python side keeps each array alive
//! and unmodified for the whole call (it holds the references on its stack, and the autograd
//! context holds the saved tensors), so a view never outlives its buffer.
//!
//! Everything that can be checked here is checked before a view exists: the dtype against the
//! element type, the rank, C-contiguity, a non-null and aligned address, and a total size that
//! fits in `isize` bytes.

use std::mem::{align_of, size_of};
use std::ops::Range;
use std::ptr::NonNull;

use ndarray::{ArrayView, ArrayViewMut, Dimension, IntoDimension};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

/// One array as the Python side describes it: `(address, shape, dtype name, C-contiguous)`.
#[derive(Debug, Clone)]
pub struct ArrayDesc {
    /// Address of element 0 (NumPy `__array_interface__["data"][0]`, torch `data_ptr()`).
    pub address: usize,
    /// The shape, outermost axis first.
    pub shape: Vec<usize>,
    /// The dtype's name without a framework prefix: `"float32"`, `"bfloat16"`, `"int64"`.
    pub dtype: String,
    /// Whether the elements are laid out row-major with no gaps.
    pub c_contiguous: bool,
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

impl<'a, 'py> FromPyObject<'a, 'py> for ArrayDesc {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let (address, shape, dtype, c_contiguous) = obj.extract()?;
        Ok(ArrayDesc {
            address,
            shape,
            dtype,
            c_contiguous,
        })
    }
}

impl ArrayDesc {
    /// Whether the bytes of the two arrays intersect, for descriptors of accepted dtypes (the
    /// span assumes C-contiguity, which is checked before any view is built). Unknown dtypes
    /// count as non-overlapping: they are rejected before any memory is read.
    pub fn overlaps(&self, other: &ArrayDesc) -> bool {
        match (self.byte_range(), other.byte_range()) {
            (Some(a), Some(b)) => {
                !a.is_empty() && !b.is_empty() && a.start < b.end && b.start < a.end
            }
            _ => false,
        }
    }

    /// The address range of the elements, if the dtype is one the module accepts.
    fn byte_range(&self) -> Option<Range<usize>> {
        let element_size = match self.dtype.as_str() {
            "float64" | "int64" => 8,
            "float32" | "int32" => 4,
            "float16" | "bfloat16" => 2,
            _ => return None,
        };
        let bytes = self
            .shape
            .iter()
            .fold(element_size, |acc: usize, &n| acc.saturating_mul(n));
        Some(self.address..self.address.saturating_add(bytes))
    }

    /// The dtype of a floating-point argument `name`, or a `TypeError` naming it.
    pub fn float_dtype(&self, name: &str) -> PyResult<FloatDtype> {
        match self.dtype.as_str() {
            "float32" => Ok(FloatDtype::F32),
            "float64" => Ok(FloatDtype::F64),
            "float16" => Ok(FloatDtype::F16),
            "bfloat16" => Ok(FloatDtype::BF16),
            other => Err(PyTypeError::new_err(format!(
                "{name} has dtype {other}; expected float32, float64, float16 or bfloat16"
            ))),
        }
    }

    /// The dtype of an integer argument `name`, or a `TypeError` naming it.
    pub fn index_dtype(&self, name: &str) -> PyResult<IndexDtype> {
        match self.dtype.as_str() {
            "int32" => Ok(IndexDtype::I32),
            "int64" => Ok(IndexDtype::I64),
            other => Err(PyTypeError::new_err(format!(
                "{name} has dtype {other}; expected int32 or int64"
            ))),
        }
    }

    /// Checks that this descriptor can back a view of `T` (named `dtype`) with `rank` axes: the
    /// dtype matches,
    /// the memory is C-contiguous, the address is non-null and aligned (unless the array is
    /// empty) and the byte size fits in `isize`. Returns the number of elements.
    fn check<T>(&self, name: &str, dtype: &str, rank: usize) -> PyResult<usize> {
        if self.dtype != dtype {
            return Err(PyTypeError::new_err(format!(
                "{name} has dtype {} but {dtype} was expected",
                self.dtype
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
        if len > 0 && (self.address == 0 || !self.address.is_multiple_of(align_of::<T>())) {
            return Err(PyValueError::new_err(format!(
                "{name} has address {:#x}, not a valid aligned address for {dtype}",
                self.address
            )));
        }
        Ok(len)
    }

    /// The address to build a view from: the caller's for a non-empty array, a dangling aligned
    /// one for an empty array (whose address may be 0 and is never read).
    fn pointer<T>(&self, len: usize) -> *mut T {
        if len == 0 {
            NonNull::<T>::dangling().as_ptr()
        } else {
            self.address as *mut T
        }
    }

    /// A read-only view of `D::NDIM` axes over the described memory, whose elements must be `T`,
    /// named `dtype` (checked against the descriptor).
    ///
    /// # Safety
    /// If the checks pass, `address` must point to `shape.product()` initialised elements of
    /// `dtype` that stay alive, and are not written through any other path, for `'a`.
    pub unsafe fn view<'a, T, D: Dimension>(
        &self,
        name: &str,
        dtype: &str,
    ) -> PyResult<ArrayView<'a, T, D>> {
        let rank = D::NDIM.expect("fixed-rank views only");
        let len = self.check::<T>(name, dtype, rank)?;
        let dim =
            D::from_dimension(&self.shape.as_slice().into_dimension()).expect("rank checked above");
        // SAFETY: `check` verified the dtype, rank, C-contiguity (so the default row-major strides
        // describe the memory), a non-null aligned address and an in-range byte size; empty arrays
        // get a dangling aligned pointer that is never dereferenced. The caller guarantees the
        // memory is live and not mutated for 'a.
        Ok(unsafe { ArrayView::from_shape_ptr(dim, self.pointer::<T>(len) as *const T) })
    }

    /// A writable view of `D::NDIM` axes over the described memory.
    ///
    /// # Safety
    /// As [`ArrayDesc::view`], and no other view or reference aliases the memory for `'a`.
    pub unsafe fn view_mut<'a, T, D: Dimension>(
        &self,
        name: &str,
        dtype: &str,
    ) -> PyResult<ArrayViewMut<'a, T, D>> {
        let rank = D::NDIM.expect("fixed-rank views only");
        let len = self.check::<T>(name, dtype, rank)?;
        let dim =
            D::from_dimension(&self.shape.as_slice().into_dimension()).expect("rank checked above");
        // SAFETY: as in `view`; in addition the caller guarantees exclusive access for 'a.
        Ok(unsafe { ArrayViewMut::from_shape_ptr(dim, self.pointer::<T>(len)) })
    }
}
