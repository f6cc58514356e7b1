//! The CPU backend: the three passes of DESIGN.md §3, parallel over the batch with rayon.
//!
//! - [`front`]: reads the logits once and keeps four numbers per node;
//! - [`lattice`]: α/β in f64 per item;
//! - [`grad`]: reads the logits again and writes the gradient once (or turns the softmax terms
//!   that the front pass stored in the gradient buffer into the gradient, in place).
//!
//! Whole-row arithmetic is confined to [`kernels`], which calls the runtime-dispatched SIMD code
//! of [`simd`] for f32 and f64. The front and gradient passes split their work into runs of frames
//! across the whole batch (so one long item still uses every thread); the lattice runs per item:
//! a small one over probabilities frame by frame, α and β in lock-step, a larger one in log
//! space, α and β concurrently (or in lock-step on one thread for a single band), each along
//! anti-diagonals through vector instructions. For batches of
//! small items whose gradient stays in cache, `loss_and_grad_into` runs the three passes item by
//! item instead, each item's on one thread. [`huge_pages`] holds
//! the page advice for large gradients, [`node_buffers`] the pool that reuses per-node buffers
//! across calls, [`threads`] the thread pools, and [`triad`] the bandwidth measurement that the
//! cost floor is quoted against.

pub mod backend;
pub mod front;
pub mod grad;
pub mod huge_pages;
pub mod kernels;
pub mod lattice;
pub mod node_buffers;
pub mod simd;
pub mod threads;
pub mod triad;
