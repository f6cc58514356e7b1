//! The .npz reader of rnnt loss / rnnt align on hostile files, and the loss on what it reads.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rnnt_fuzz::check_npz(data));
