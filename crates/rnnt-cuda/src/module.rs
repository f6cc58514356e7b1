//! Compiling the kernels with NVRTC on first use, once per (device, element type).
//!
//! The program is compiled to PTX for the device's own virtual architecture (`compute_XY`), which
//! the driver turns into machine code when the module is loaded. Compiled modules are kept for the
//! life of the process in a table keyed by device ordinal and element type.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{self, CudaFunction};
use cudarc::nvrtc::{self, CompileOptions};
use rnnt::{Error, Result};

use crate::context::{cuda_error, guarded, panic_message};
use crate::element::DeviceElement;
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
/// [`Error::Unavailable`] when NVRTC cannot be loaded, the program does not compile (the message
/// holds NVRTC's log) or the driver rejects the PTX (for example a driver older than NVRTC).
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

/// The NVRTC options for a device of compute capability (`major`, `minor`).
pub fn compile_options(dtype: &str, (major, minor): (i32, i32)) -> CompileOptions {
    CompileOptions {
        options: vec![
            format!("--gpu-architecture=compute_{major}{minor}"),
            "--std=c++17".into(),
        ],
        name: Some(format!("rnnt_{dtype}.cu")),
        ..Default::default()
    }
}

fn build<F: DeviceElement>(device: &Arc<driver::CudaContext>) -> Result<Kernels> {
    require_nvrtc_library()?;
    let capability = device
        .compute_capability()
        .map_err(cuda_error("read the compute capability"))?;
    let options = compile_options(F::DTYPE, capability);
    let source = program_source(F::KERNEL_ELEM);
    let ptx = catch_unwind(AssertUnwindSafe(|| {
        nvrtc::compile_ptx_with_opts(&source, options)
    }))
    .map_err(|panic| {
        Error::Unavailable(format!(
            "cannot compile the {} kernels: {}",
            F::DTYPE,
            panic_message(panic.as_ref())
        ))
    })?
    .map_err(|e| {
        Error::Unavailable(format!(
            "NVRTC failed to compile the {} kernels: {e}",
            F::DTYPE
        ))
    })?;
    let module = guarded(
        "load the compiled kernels (is the driver older than NVRTC?)",
        || device.load_module(ptx),
    )?;
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

/// Checks that the NVRTC library can be loaded, without cudarc's panic when it is missing.
pub fn require_nvrtc_library() -> Result<()> {
    // SAFETY: only tries to open the library under the names cudarc knows; no symbol is called.
    let present = catch_unwind(|| unsafe { nvrtc::sys::is_culib_present() }).unwrap_or(false);
    if present {
        Ok(())
    } else {
        Err(Error::Unavailable(format!(
            "no NVRTC found: could not load the CUDA runtime compiler library (tried {}, ...); \
             install the CUDA toolkit's NVRTC (or the `nvidia-cuda-nvrtc-cu12` wheel) and add its \
             folder to LD_LIBRARY_PATH",
            cudarc::get_lib_name_candidates("nvrtc")[..2].join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_for_the_devices_own_virtual_architecture() {
        let options = compile_options("bfloat16", (9, 0));
        assert!(options
            .options
            .contains(&"--gpu-architecture=compute_90".to_string()));
        assert_eq!(options.name.as_deref(), Some("rnnt_bfloat16.cu"));
    }
}
