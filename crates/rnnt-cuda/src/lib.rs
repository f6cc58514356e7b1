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
//! The passes are a [`rnnt::Backend`], [`CudaBackend`], so the bookkeeping around them (validation,
//! losses, reductions, the checks of a backward call) is the core's. Entry points:
//! [`CudaContext::loss_and_grad`] on host `ndarray` inputs (tests, CLI), and the core's
//! [`rnnt::forward_with`] / [`rnnt::backward_with`] on a [`CudaBackend`] (from
//! [`CudaContext::backend_on_stream`]) with [`DeviceScores`] and [`DeviceGrad`] over device
//! pointers (for callers such as torch, which pass `data_ptr()` and the current stream).

pub mod backend;
pub mod bench;
pub mod context;
pub mod element;
pub mod host;
pub mod launch;
pub mod module;
pub mod nvrtc;
pub mod source;

pub use backend::{CudaBackend, DeviceGrad, DeviceScores, DeviceState};
pub use context::CudaContext;
/// The cudarc version this crate is built against, for callers that manage device memory.
pub use cudarc;
pub use element::DeviceElement;
