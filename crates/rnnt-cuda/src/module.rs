//! Compiling the kernels with NVRTC on first use, once per (device, element type).
//!
//! The program is compiled by NVRTC ([`crate::nvrtc`]) to machine code (CUBIN) for the device's
//! own architecture (`sm_XY`) and loaded into the device's primary context. Compiled modules are kept for the
//! life of the process in a table keyed by device ordinal and element type.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{self, CudaFunction};
use cudarc::nvrtc::Ptx;
use rnnt::Result;

use crate::context::{cuda_error, guarded};
use crate::element::DeviceElement;
use crate::nvrtc;
use crate::source::{program_source, FRONT_ENTRY, GRAD_ENTRY, LATTICE_ENTRY};

/// The three kernels of one element type, loaded on one device.
#[derive(Debug)]
pub struct Kernels {
    /// The front pass (`rnnt_front`).
    pub front: CudaFunction,
    /// The lattice pass (`rnnt_lattice`).
    pub lattice: CudaFunction,
    /// The gradient pass (`rnnt_grad`).
    pub grad: CudaFunction,
}

type Cache = Mutex<HashMap<(usize, u32), Arc<Kernels>>>;

/// The kernels for element type `F` on `device`, compiled and loaded on the first call.
///
/// # Errors
/// [`rnnt::Error::Unavailable`] when NVRTC cannot be loaded, the program does not compile (the
/// message holds NVRTC's log) or the driver rejects the CUBIN.
pub fn kernels<F: DeviceElement>(device: &Arc<driver::CudaContext>) -> Result<Arc<Kernels>> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = (device.ordinal(), F::KERNEL_ELEM);
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(kernels) = cache.get(&key) {
        return Ok(Arc::clone(kernels));
    }
    let kernels = Arc::new(build::<F>(device)?);
    cache.insert(key, Arc::clone(&kernels));
    Ok(kernels)
}

/// The NVRTC options for a device of compute capability (`major`, `minor`): machine code for
/// that architecture, so that loading needs no PTX JIT (and no driver newer than NVRTC).
pub fn compile_options((major, minor): (i32, i32)) -> Vec<String> {
    vec![
        format!("--gpu-architecture=sm_{major}{minor}"),
        "--std=c++17".into(),
    ]
}

/// Compiles the kernels of element type `F` for compute capability `capability` to a CUBIN.
/// Needs NVRTC but no GPU.
///
/// # Errors
/// [`Error::Unavailable`] when NVRTC cannot be loaded or the program does not compile (the
/// message holds NVRTC's log).
pub fn compile<F: DeviceElement>(capability: (i32, i32)) -> Result<Vec<u8>> {
    nvrtc::compile_cubin(
        &program_source(F::KERNEL_ELEM),
        &format!("rnnt_{}.cu", F::DTYPE),
        &compile_options(capability),
    )
}

fn build<F: DeviceElement>(device: &Arc<driver::CudaContext>) -> Result<Kernels> {
    let capability = device
        .compute_capability()
        .map_err(cuda_error("read the compute capability"))?;
    let cubin = compile::<F>(capability)?;
    let module = guarded("load the compiled kernels", || {
        device.load_module(Ptx::from_binary(cubin))
    })?;
    let load = |entry: &str| {
        module
            .load_function(entry)
            .map_err(cuda_error("find a kernel entry point"))
    };
    Ok(Kernels {
        front: load(FRONT_ENTRY)?,
        lattice: load(LATTICE_ENTRY)?,
        grad: load(GRAD_ENTRY)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_machine_code_for_the_devices_architecture() {
        let options = compile_options((9, 0));
        assert_eq!(options[0], "--gpu-architecture=sm_90");
    }
}
