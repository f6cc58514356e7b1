//! The loss on host arrays: copy in, forward, backward, copy out. For tests, the CLI, the
//! benchmarks and anyone without device buffers of their own.

use cudarc::driver::{CudaSlice, DevicePtr};
use ndarray::Array4;
use rnnt::backend::Dims;
use rnnt::{Error, Forward, Index, Labels, LossAndGrad, LossInput, Options, Result};

use crate::backend::{CudaBackend, DeviceGrad, DeviceScores, DeviceState};
use crate::context::{cuda_error, CudaContext};
use crate::element::DeviceElement;

/// A host batch's scores copied to the device, with a device buffer for their gradient.
pub(crate) struct OnDevice<F> {
    backend: CudaBackend,
    scores: CudaSlice<F>,
    grad: CudaSlice<F>,
    dims: Dims,
}

impl<F: DeviceElement> OnDevice<F> {
    /// Copies `input`'s scores to `gpu` (default stream) and allocates the gradient.
    ///
    /// # Errors
    /// [`Error::Layout`] for strided scores, [`Error::Unavailable`] for a CUDA failure.
    pub(crate) fn upload<I: Index>(
        gpu: &CudaContext,
        input: &LossInput<'_, F, I>,
        options: &Options,
    ) -> Result<OnDevice<F>> {
        let host_scores = input.logits.as_slice().ok_or_else(|| {
            Error::Layout(format!(
                "{} must be C-contiguous (row-major, no strides); make a contiguous copy",
                rnnt::loss::input_name(options)
            ))
        })?;
        let backend = gpu.backend();
        let stream = backend.stream();
        let scores = stream
            .clone_htod(host_scores)
            .map_err(cuda_error("copy the scores to the device"))?;
        // SAFETY: the gradient pass writes every element before anything reads it.
        let grad = unsafe { stream.alloc::<F>(host_scores.len()) }
            .map_err(cuda_error("allocate the gradient"))?;
        Ok(OnDevice {
            backend,
            scores,
            grad,
            dims: input.logits.dim(),
        })
    }

    /// One forward and backward call on the device buffers (the stream is synchronised once, by
    /// forward, and the gradient pass may still be running when this returns).
    ///
    /// # Errors
    /// As [`rnnt::loss_and_grad_with`].
    pub(crate) fn loss_and_grad<I: Index>(
        &mut self,
        labels: &Labels<'_, I>,
        options: &Options,
    ) -> Result<Forward<DeviceState>> {
        let stream = self.backend.stream();
        let (scores_ptr, _scores_guard) = self.scores.device_ptr(stream);
        let (grad_ptr, _grad_guard) = self.grad.device_ptr(stream);
        // SAFETY: both buffers hold the N elements of `dims` on this device, are used only by
        // this backend's stream, live as long as `self` (whose copies back synchronise the
        // stream), and do not overlap.
        let (scores, grad) = unsafe {
            (
                DeviceScores::<F>::new(scores_ptr, self.dims),
                DeviceGrad::<F>::new(grad_ptr, self.dims),
            )
        };
        rnnt::loss_and_grad_with(&self.backend, scores, labels, options, grad)
    }

    /// Waits for the device's work on the buffers to finish.
    ///
    /// # Errors
    /// [`Error::Unavailable`] for a CUDA failure.
    pub(crate) fn synchronize(&self) -> Result<()> {
        self.backend
            .stream()
            .synchronize()
            .map_err(cuda_error("wait for the loss"))
    }

    /// The gradient copied back to the host.
    ///
    /// # Errors
    /// [`Error::Unavailable`] for a CUDA failure.
    pub(crate) fn grad(&self) -> Result<Array4<F>> {
        let grad = self
            .backend
            .stream()
            .clone_dtoh(&self.grad)
            .map_err(cuda_error("copy the gradient back"))?;
        let dims = self.dims;
        Array4::from_shape_vec(dims, grad)
            .map_err(|e| Error::Shape(format!("gradient of shape {dims:?}: {e}")))
    }
}

impl CudaContext {
    /// Losses and the gradient of the reported (reduced) loss, computed on this GPU from host
    /// arrays: the same contract, options and errors as [`rnnt::loss_and_grad`].
    ///
    /// # Errors
    /// As [`rnnt::loss_and_grad`], and [`Error::Unavailable`] for a CUDA failure (including
    /// NVRTC missing).
    pub fn loss_and_grad<F: DeviceElement, I: Index>(
        &self,
        input: &LossInput<'_, F, I>,
        options: &Options,
    ) -> Result<LossAndGrad<F>> {
        let mut buffers = OnDevice::upload(self, input, options)?;
        let forward = buffers.loss_and_grad(&input.labels(), options)?;
        Ok(LossAndGrad {
            losses: forward.losses().to_vec(),
            loss: forward.loss(),
            grad: buffers.grad()?,
        })
    }
}
