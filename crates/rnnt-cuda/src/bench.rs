//! Timing on the device: the device-to-device copy bandwidth that sets the floor, and
//! forward+backward times of a batch whose scores and gradient stay on the device.

use std::time::Instant;

use rnnt::{Index, LossInput, Options, Result};

use crate::context::{cuda_error, CudaContext};
use crate::element::DeviceElement;
use crate::host::OnDevice;

/// The best of `repeats` device-to-device copies of `bytes` bytes, as bytes moved per second
/// (each copy reads and writes `bytes`, so 2·`bytes` are counted).
///
/// # Errors
/// [`rnnt::Error::Unavailable`] for a CUDA failure (including too little memory).
pub fn copy_bandwidth(gpu: &CudaContext, bytes: usize, repeats: usize) -> Result<f64> {
    let stream = gpu.device.default_stream();
    let failed = cuda_error("time a device-to-device copy");
    let source = stream.alloc_zeros::<u8>(bytes).map_err(&failed)?;
    let mut target = stream.alloc_zeros::<u8>(bytes).map_err(&failed)?;
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) + 1 {
        stream.synchronize().map_err(&failed)?;
        let start = Instant::now();
        stream.memcpy_dtod(&source, &mut target).map_err(&failed)?;
        stream.synchronize().map_err(&failed)?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(2.0 * bytes as f64 / best)
}

/// Seconds of each of `repeats` forward+backward calls on `input` (copied to the device once,
/// with the gradient written on the device), after one untimed warm-up call that also compiles
/// the kernels. Each time includes the labels' upload and the one synchronisation of forward.
///
/// # Errors
/// As [`CudaContext::loss_and_grad`].
pub fn time_loss_and_grad<F: DeviceElement, I: Index>(
    gpu: &CudaContext,
    input: &LossInput<'_, F, I>,
    options: &Options,
    repeats: usize,
) -> Result<Vec<f64>> {
    let mut buffers = OnDevice::upload(gpu, input, options)?;
    let labels = input.labels();
    let mut times = Vec::with_capacity(repeats);
    for run in 0..repeats + 1 {
        let start = Instant::now();
        buffers.loss_and_grad(&labels, options)?;
        buffers.synchronize()?;
        if run > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    Ok(times)
}
