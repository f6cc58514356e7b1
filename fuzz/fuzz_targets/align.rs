//! rnnt::align on any input: the loss's errors, and alignments consistent with the reference.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rnnt_fuzz::check_align(data));
