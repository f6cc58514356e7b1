//! Core errors as Python exceptions.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::PyErr;

/// Maps a core error to `TypeError` (a bad dtype) or `ValueError` (anything else), keeping the
/// core's message, which names the argument and the value at fault.
pub fn to_py_err(error: rnnt::Error) -> PyErr {
    match error {
        rnnt::Error::DType(message) => PyTypeError::new_err(message),
        other => PyValueError::new_err(other.to_string()),
    }
}
