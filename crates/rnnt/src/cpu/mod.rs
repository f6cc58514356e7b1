//! The CPU backend: the three passes of DESIGN.md §3, parallel over the batch with rayon.
//!
//! - [`front`]: reads the logits once and keeps three numbers per node;
//! - [`lattice`]: α/β in f64 per item;
//! - [`grad`]: reads the logits again and writes the gradient once.
//!
//! Whole-row arithmetic is confined to [`kernels`], where vectorised versions drop in.

pub mod front;
pub mod grad;
pub mod kernels;
pub mod lattice;
pub mod memory;
pub mod pool;
pub mod simd;
pub mod triad;
