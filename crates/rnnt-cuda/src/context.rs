//! Opening a GPU: loading the driver at run time, choosing the device, reporting why not.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use cudarc::driver::{self, DriverError};
use rnnt::{Error, Result};

/// A CUDA device ready to run the loss: its (primary) context, shared with every other user of the
/// device in the process, torch included.
#[derive(Debug, Clone)]
pub struct CudaContext {
    pub(crate) device: Arc<driver::CudaContext>,
}

impl CudaContext {
    /// Opens device `ordinal` (0 is the first GPU).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when no CUDA driver library can be loaded, the driver fails to start
    /// or there is no CUDA device (the message says which); [`Error::Value`] when `ordinal` is not
    /// below the number of devices.
    pub fn new(ordinal: usize) -> Result<CudaContext> {
        require_driver_library()?;
        let count = guarded("count the CUDA devices", driver::CudaContext::device_count)?;
        if count <= 0 {
            return Err(Error::Unavailable(
                "no CUDA device found: the CUDA driver is installed but reports no GPU".into(),
            ));
        }
        if ordinal >= count as usize {
            return Err(Error::Value(format!(
                "device = {ordinal} is out of range: {count} CUDA device(s) found (0..{count})"
            )));
        }
        let device = guarded("open the CUDA device", || driver::CudaContext::new(ordinal))?;
        // Every buffer of a call lives on the call's one stream, so cudarc's cross-stream event
        // bookkeeping would only add work.
        // SAFETY: buffers are allocated, used and freed on a single stream per call; the caller
        // orders that stream with its own work (documented on `forward` / `backward`).
        unsafe { device.disable_event_tracking() };
        Ok(CudaContext { device })
    }

    /// The underlying cudarc context (the device's primary context), to allocate device memory or
    /// make streams for [`CudaContext::forward`] / [`CudaContext::backward`].
    pub fn device(&self) -> &Arc<driver::CudaContext> {
        &self.device
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.device.ordinal()
    }

    /// The device's name, e.g. `"NVIDIA H100 80GB HBM3"`.
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the driver call fails.
    pub fn name(&self) -> Result<String> {
        self.device
            .name()
            .map_err(cuda_error("read the device name"))
    }

    /// The compute capability (major, minor), e.g. (9, 0) for an H100.
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the driver call fails.
    pub fn compute_capability(&self) -> Result<(i32, i32)> {
        self.device
            .compute_capability()
            .map_err(cuda_error("read the compute capability"))
    }
}

/// Checks that the CUDA driver library can be loaded, without the panic cudarc raises when a
/// dynamically loaded library is missing.
pub fn require_driver_library() -> Result<()> {
    // SAFETY: only tries to open the library under the names cudarc knows; no symbol is called.
    let present = catch_unwind(|| unsafe { driver::sys::is_culib_present() }).unwrap_or(false);
    if present {
        Ok(())
    } else {
        Err(Error::Unavailable(format!(
            "no CUDA driver found: could not load the CUDA driver library (tried {}); install the \
             NVIDIA driver or add the folder holding libcuda to LD_LIBRARY_PATH",
            cudarc::get_lib_name_candidates("cuda")[..2].join(", ")
        )))
    }
}

/// Runs a driver call, turning both its error and a panic of cudarc's loader (a symbol missing
/// from an old driver) into [`Error::Unavailable`] naming `what` was being done.
pub(crate) fn guarded<T>(what: &str, call: impl FnOnce() -> Result<T, DriverError>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(result) => result.map_err(cuda_error(what)),
        Err(panic) => Err(Error::Unavailable(format!(
            "cannot {what}: {}",
            panic_message(panic.as_ref())
        ))),
    }
}

/// The text of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "the CUDA library loader panicked".into())
}

/// Maps a driver error to [`Error::Unavailable`] naming the failed step.
pub(crate) fn cuda_error(what: &str) -> impl Fn(DriverError) -> Error + '_ {
    move |e| Error::Unavailable(format!("CUDA error while trying to {what}: {e}"))
}
