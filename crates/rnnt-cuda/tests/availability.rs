//! Runs on every machine: opening a GPU either works or fails with a clear `Unavailable` error,
//! never a panic.

use rnnt::Error;
use rnnt_cuda::CudaContext;

#[test]
fn opening_a_gpu_works_or_says_why_not() {
    match CudaContext::new(0) {
        Ok(gpu) => {
            let name = gpu.name().expect("an open device has a name");
            eprintln!("CUDA device 0 is {name}");
            let beyond = CudaContext::new(1 << 20).unwrap_err();
            assert!(
                matches!(&beyond, Error::Value(m) if m.starts_with("device = 1048576 is out of range")),
                "{beyond:?}"
            );
        }
        Err(Error::Unavailable(message)) => {
            eprintln!("no GPU here: {message}");
            assert!(
                message.starts_with("no CUDA driver found")
                    || message.starts_with("no CUDA device found")
                    || message.contains("CUDA error"),
                "unclear message: {message}"
            );
        }
        Err(other) => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn a_missing_driver_library_is_an_error_value_naming_the_library() {
    match rnnt_cuda::context::require_driver_library() {
        Ok(()) => eprintln!("skipped: a CUDA driver library is installed here"),
        Err(Error::Unavailable(message)) => {
            assert!(message.starts_with("no CUDA driver found"), "{message}");
            assert!(message.contains("libcuda.so"), "{message}");
            assert!(message.contains("LD_LIBRARY_PATH"), "{message}");
        }
        Err(other) => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn a_missing_nvrtc_library_is_an_error_value_naming_the_library() {
    match rnnt_cuda::nvrtc::require_library() {
        Ok(()) => eprintln!("skipped: an NVRTC library is installed here"),
        Err(Error::Unavailable(message)) => {
            assert!(message.starts_with("no NVRTC found"), "{message}");
            assert!(message.contains("libnvrtc.so.13"), "{message}");
            assert!(message.contains("RNNT_NVRTC_LIBRARY"), "{message}");
        }
        Err(other) => panic!("expected Unavailable, got {other:?}"),
    }
}
