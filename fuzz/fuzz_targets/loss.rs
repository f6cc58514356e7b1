//! Validation, forward, backward and loss_and_grad on any input, against the float64 reference.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rnnt_fuzz::check_loss(data));
