//! What the fuzz targets of `fuzz/` check, one function per target, written here so that the
//! ordinary `cargo test` replays the checked-in corpus through the very same checks
//! (`tests/corpus.rs`) on the stable toolchain, without libFuzzer.
//!
//! - [`check_loss`]: bytes → an input of any dtype, shape, lengths, labels, options and values
//!   (NaN, ±inf, subnormals, huge), padded or packed targets, sometimes a strided or misshapen
//!   array. The fast CPU loss (one-shot, into a caller's buffer, forward then backward) must fail
//!   exactly when the float64 reference fails, with the same error, and otherwise agree with it.
//! - [`check_align`]: the same inputs through [`rnnt::align`]: the same errors as the loss, and
//!   alignments consistent with the reference (ln P, occupancies, a best path that is a path, is
//!   scored right and is the best).
//! - [`check_npz`]: bytes → an `.npz` file (as they are, or assembled from `.npy` members with
//!   fuzzed headers) → [`rnnt_cases::read_case_from`], which must return an error rather than
//!   panic or allocate what a header claims; what it reads goes through the loss as `rnnt loss`
//!   would run it.
//!
//! Every check panics on a finding, which is how libFuzzer and the test harness see it.

mod bytes;
mod compare;
mod input;
mod npz;

pub use compare::{check_align, check_loss};
pub use npz::check_npz;
