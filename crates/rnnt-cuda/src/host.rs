//! The loss on host arrays: copy in, forward, backward, copy out. For tests, the CLI and anyone
//! without device buffers of their own.

use ndarray::Array4;
use rnnt::loss::input_name;
use rnnt::{Batch, Error, Index, LossAndGrad, LossInput, Options, Result};

use crate::context::{cuda_error, CudaContext};
use crate::element::DeviceElement;

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
        options.validate()?;
        let batch = Batch::new(input, options.blank, input_name(options))?;
        let host_scores = input
            .logits
            .as_slice()
            .expect("Batch::new checked the layout");
        let stream = self.device.default_stream();
        let scores = stream
            .clone_htod(host_scores)
            .map_err(cuda_error("copy the scores to the device"))?;
        // SAFETY: the kernel writes every element of `grad` before it is read back.
        let grad = unsafe { stream.alloc::<F>(host_scores.len()) }
            .map_err(cuda_error("allocate the gradient"))?;
        let (scores_ptr, _scores_guard) = cudarc::driver::DevicePtr::device_ptr(&scores, &stream);
        let (grad_ptr, _grad_guard) = cudarc::driver::DevicePtr::device_ptr(&grad, &stream);
        let weights = options.reduction.item_weights(1.0, batch.batch_size);
        let dims = input.logits.dim();
        let device_scores = crate::DeviceScores {
            ptr: scores_ptr,
            shape: dims,
        };
        // SAFETY: both buffers hold N elements of F on this device, live until after the final
        // copy (which synchronises the stream), and do not overlap.
        let forward = unsafe {
            let forward = self.forward_batch::<F>(batch, scores_ptr, options, stream.clone())?;
            self.backward::<F>(device_scores, &forward, &weights, grad_ptr)?;
            forward
        };
        let grad = stream
            .clone_dtoh(&grad)
            .map_err(cuda_error("copy the gradient back"))?;
        let grad = Array4::from_shape_vec(dims, grad)
            .map_err(|e| Error::Shape(format!("gradient of shape {dims:?}: {e}")))?;
        Ok(LossAndGrad {
            losses: forward.losses().to_vec(),
            loss: forward.loss(),
            grad,
        })
    }
}
