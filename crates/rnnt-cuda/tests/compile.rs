//! Compiles the kernels with NVRTC for real, for every element type and the GPU generations that
//! matter (A100 sm_80, H100 sm_90). Needs NVRTC (found by name, or by `RNNT_NVRTC_LIBRARY`), not a
//! GPU; prints `skipped: <reason>` where NVRTC is absent.

use rnnt_cuda::module::compile;
use rnnt_cuda::nvrtc;
use rnnt_cuda::source::{FRONT_ENTRY, GRAD_ENTRY, LATTICE_ENTRY};
use rnnt_cuda::DeviceElement;

fn compiles_for<F: DeviceElement>(capability: (i32, i32)) {
    let cubin =
        compile::<F>(capability).unwrap_or_else(|e| panic!("{} {capability:?}: {e}", F::DTYPE));
    assert!(cubin.starts_with(b"\x7fELF"), "a CUBIN is an ELF image");
    for entry in [FRONT_ENTRY, LATTICE_ENTRY, GRAD_ENTRY] {
        assert!(
            cubin.windows(entry.len()).any(|w| w == entry.as_bytes()),
            "{entry} missing from the {} CUBIN",
            F::DTYPE
        );
    }
}

#[test]
fn kernels_compile_for_every_dtype_on_a100_and_h100() {
    if let Err(e) = nvrtc::require_library() {
        eprintln!("skipped: {e}");
        return;
    }
    eprintln!("NVRTC {:?}", nvrtc::version().unwrap());
    for capability in [(8, 0), (9, 0)] {
        compiles_for::<f32>(capability);
        compiles_for::<f64>(capability);
        compiles_for::<half::f16>(capability);
        compiles_for::<half::bf16>(capability);
    }
}

#[test]
fn a_compile_error_returns_nvrtcs_log() {
    if let Err(e) = nvrtc::require_library() {
        eprintln!("skipped: {e}");
        return;
    }
    let err = nvrtc::compile_cubin(
        "extern \"C\" __global__ void broken() { undeclared(); }",
        "broken.cu",
        &["--gpu-architecture=sm_90".into()],
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("broken.cu"), "{message}");
    assert!(message.contains("undeclared"), "{message}");
}
