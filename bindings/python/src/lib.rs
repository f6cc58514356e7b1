//! `rnnt._rnnt`, the native module of the Python package `rnnt`.
//!
//! This crate only converts: NumPy arrays and torch CPU tensors, read through DLPack
//! ([`dlpack`]), into `ndarray` views ([`array`]), options into [`rnnt::Options`], and core errors
//! into Python exceptions ([`errors`]). The loss itself is [`rnnt::forward`] and
//! [`rnnt::backward`] ([`loss`]), run with the GIL released; alignments are [`rnnt::align()`]
//! ([`mod@align`]). The module is private (call the public `rnnt` API, which converts array-likes
//! and non-contiguous arrays first), but checks every argument itself: no Python value makes it
//! read memory the producer did not lend it.

mod align;
mod array;
mod dlpack;
mod errors;
mod loss;
mod variant;

use pyo3::prelude::*;

/// The native module: `forward`, `backward` and the `ForwardState` they share,
/// `loss_and_grad_into` (both in one call) and `STREAM_MIN_BYTES` (below which that call keeps
/// the softmax terms in the gradient between its passes); `align`.
#[pymodule]
fn _rnnt(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("STREAM_MIN_BYTES", rnnt::STREAM_MIN_BYTES)?;
    module.add_class::<loss::ForwardState>()?;
    module.add_function(wrap_pyfunction!(loss::forward, module)?)?;
    module.add_function(wrap_pyfunction!(loss::backward, module)?)?;
    module.add_function(wrap_pyfunction!(loss::loss_and_grad_into, module)?)?;
    module.add_class::<align::ItemAlignment>()?;
    module.add_function(wrap_pyfunction!(align::align, module)?)?;
    Ok(())
}
