//! # rnnt-cuda — the RNN-T loss on NVIDIA GPUs
//!
//! The three passes of DESIGN.md §3 as CUDA kernels, over the same validated [`rnnt::Batch`] as
//! the CPU backend:
//! - **front** (`kernels/front.cu`): one warp per (b, t, u) row, one read of the row with 16-byte
//!   loads, giving the row's log-sum-exp and the blank / next-label log-probabilities per node;
//!   NaN and +inf within the lengths are reported through a flag, padding rows are not read;
//! - **lattice** (`kernels/lattice.cu`): α/β in float64, one block per item, along anti-diagonals,
//!   then the blank and emission arc occupancies of every node;
//! - **gradient** (`kernels/grad.cu`): one more read of every row and one write of the gradient,
//!   w_b · clip(c·softmax − arcs), zeros in padding and for impossible items.
//!
//! Nothing about CUDA is needed to build this crate: the driver (`libcuda`) and NVRTC are loaded
//! when first used (cudarc's `dynamic-loading`, and [`nvrtc`]), and the kernels, kept here as CUDA C source, are
//! compiled by NVRTC on first use and cached per device and element type ([`module`]). Where no
//! driver or device is present, [`CudaContext::new`] returns [`rnnt::Error::Unavailable`] with the
//! reason.
//!
//! Entry points: [`CudaContext::loss_and_grad`] on host `ndarray` inputs (tests, CLI), and
//! [`CudaContext::forward`] / [`CudaContext::backward`] on device pointers and a CUDA stream (for
//! the Python bindings, which pass torch's `data_ptr()` and current stream).

pub mod bench;
pub mod context;
pub mod element;
pub mod host;
pub mod launch;
pub mod module;
pub mod nvrtc;
pub mod passes;
pub mod source;

pub use context::CudaContext;
/// The cudarc version this crate is built against, for callers that manage device memory.
pub use cudarc;
pub use element::DeviceElement;
pub use passes::{DeviceForward, DeviceScores, LabelsInput};
