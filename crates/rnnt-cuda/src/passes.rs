//! Forward and backward on device memory: the launches of the three kernels.
//!
//! Labels and lengths are small and are validated on the host by [`rnnt::Batch`] (the one place
//! where inputs are checked), then copied to the device; the scores and the gradient stay where
//! the caller put them. Between forward and backward the device holds, per node, the row's
//! log-sum-exp and the two arc occupancies (float64), never a B·T·(U+1)·V buffer.

use std::sync::Arc;

use cudarc::driver::{result, sys, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use ndarray::ArrayView1;
use rnnt::batch::non_finite_logit;
use rnnt::loss::input_name;
use rnnt::{Batch, Error, Index, Options, Result, Targets};

use crate::context::{cuda_error, CudaContext};
use crate::element::DeviceElement;
use crate::launch::{checked_sizes, kernel_int, lattice_launch, row_coords, row_launch};
use crate::module::kernels;

/// A C-contiguous (B, T, U+1, V) array of scores (logits or log-probs) in device memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceScores {
    /// The device address of element [0, 0, 0, 0] (torch's `data_ptr()`).
    pub ptr: u64,
    /// (B, T, U+1, V).
    pub shape: (usize, usize, usize, usize),
}

/// The labels and lengths of a loss call, in host memory.
#[derive(Debug, Clone, Copy)]
pub struct LabelsInput<'a, I> {
    /// Labels, padded (B, U) or packed (ΣU_b).
    pub targets: Targets<'a, I>,
    /// (B,) frames per item, 1 ≤ T_b ≤ T.
    pub logit_lengths: ArrayView1<'a, I>,
    /// (B,) labels per item, 0 ≤ U_b ≤ U.
    pub target_lengths: ArrayView1<'a, I>,
}

/// The batch description on the device: per item T_b, U_b, the offset of its labels, and the
/// packed labels.
#[derive(Debug)]
struct ItemBuffers {
    frames: CudaSlice<i32>,
    label_counts: CudaSlice<i32>,
    label_offsets: CudaSlice<i64>,
    labels: CudaSlice<i32>,
}

impl ItemBuffers {
    fn upload(batch: &Batch, stream: &Arc<CudaStream>) -> Result<ItemBuffers> {
        let items = 0..batch.batch_size;
        let frames: Vec<i32> = items
            .clone()
            .map(|b| kernel_int(batch.frames(b), "logit_lengths[b]"))
            .collect::<Result<_>>()?;
        let label_counts: Vec<i32> = items
            .clone()
            .map(|b| kernel_int(batch.labels(b).len(), "target_lengths[b]"))
            .collect::<Result<_>>()?;
        let mut label_offsets = Vec::with_capacity(batch.batch_size);
        let mut labels = Vec::new();
        for b in items {
            label_offsets.push(labels.len() as i64);
            labels.extend(batch.labels(b).iter().map(|&y| y as i32));
        }
        // A device buffer cannot be empty; the kernels never read past ΣU_b labels.
        if labels.is_empty() {
            labels.push(0);
        }
        let upload = cuda_error("copy the lengths and labels to the device");
        Ok(ItemBuffers {
            frames: stream.clone_htod(&frames).map_err(&upload)?,
            label_counts: stream.clone_htod(&label_counts).map_err(&upload)?,
            label_offsets: stream.clone_htod(&label_offsets).map_err(&upload)?,
            labels: stream.clone_htod(&labels).map_err(upload)?,
        })
    }
}

/// The result of [`CudaContext::forward`]: per-item losses on the host, and on the device the
/// O(B·T·U) state that [`CudaContext::backward`] needs.
#[derive(Debug)]
pub struct DeviceForward {
    batch: Batch,
    options: Options,
    kernel_elem: u32,
    stream: Arc<CudaStream>,
    items: ItemBuffers,
    node_lse: CudaSlice<f64>,
    blank_arc: CudaSlice<f64>,
    emit_arc: CudaSlice<f64>,
    log_p: CudaSlice<f64>,
    losses: Vec<f64>,
}

impl DeviceForward {
    /// Per-item losses −log P(y_b|x_b): +inf for an impossible item (0 with `zero_infinity`).
    pub fn losses(&self) -> &[f64] {
        &self.losses
    }

    /// The reported loss after the options' reduction (the sum for `Reduction::None`).
    pub fn loss(&self) -> f64 {
        self.options.reduction.reduce(&self.losses)
    }

    /// The validated batch description.
    pub fn batch(&self) -> &Batch {
        &self.batch
    }
}

/// The sizes every kernel takes, as the kernels' 64-bit integers.
struct KernelShape {
    batch: i64,
    frames: i64,
    positions: i64,
    vocab: i64,
    rows: u64,
}

impl KernelShape {
    fn of<F: DeviceElement>(batch: &Batch) -> Result<KernelShape> {
        let shape = (
            batch.batch_size,
            batch.max_frames,
            batch.label_positions,
            batch.vocab,
        );
        let (rows, _) = checked_sizes(shape, std::mem::size_of::<F>())?;
        Ok(KernelShape {
            batch: batch.batch_size as i64,
            frames: batch.max_frames as i64,
            positions: batch.label_positions as i64,
            vocab: batch.vocab as i64,
            rows,
        })
    }
}

impl CudaContext {
    /// Wraps a raw `CUstream` / `cudaStream_t` handle (0: the legacy default stream) owned by the
    /// caller, for example `torch.cuda.current_stream().cuda_stream`.
    ///
    /// # Safety
    /// `stream` must be 0 or a live stream of this device's primary context, and must outlive
    /// every [`DeviceForward`] made on it.
    pub unsafe fn borrow_stream(&self, stream: u64) -> Arc<CudaStream> {
        // SAFETY: the caller vouches for the handle and its lifetime (see above).
        unsafe { self.device.wrap_borrowed_stream(stream as sys::CUstream) }
    }

    /// Validates the labels and lengths, runs the front pass and the lattice on `stream` and
    /// returns the per-item losses with the state for [`CudaContext::backward`].
    ///
    /// Synchronises `stream` once, to read the losses and the non-finite-input flag.
    ///
    /// # Safety
    /// `scores.ptr` must address a C-contiguous (B, T, U+1, V) array of `F` in this device's
    /// memory, readable by `stream` until this call returns; `stream` as for
    /// [`CudaContext::borrow_stream`].
    ///
    /// # Errors
    /// As [`rnnt::forward`] (the same messages, including a NaN or +inf score within the
    /// lengths), and [`Error::Unavailable`] for a CUDA failure.
    pub unsafe fn forward<F: DeviceElement, I: Index>(
        &self,
        scores: DeviceScores,
        labels: &LabelsInput<'_, I>,
        options: &Options,
        stream: u64,
    ) -> Result<DeviceForward> {
        options.validate()?;
        let batch = Batch::for_shape(
            scores.shape,
            &labels.targets,
            (labels.logit_lengths, labels.target_lengths),
            options.blank,
            input_name(options),
        )?;
        // SAFETY: forwarded from this function's contract.
        unsafe {
            let stream = self.borrow_stream(stream);
            self.forward_batch::<F>(batch, scores.ptr, options, stream)
        }
    }

    /// [`CudaContext::forward`] on an already validated batch.
    ///
    /// # Safety
    /// As [`CudaContext::forward`], with `scores` the address of the batch's scores.
    pub(crate) unsafe fn forward_batch<F: DeviceElement>(
        &self,
        batch: Batch,
        scores: u64,
        options: &Options,
        stream: Arc<CudaStream>,
    ) -> Result<DeviceForward> {
        let kernels = kernels::<F>(&self.device)?;
        let shape = KernelShape::of::<F>(&batch)?;
        let items = ItemBuffers::upload(&batch, &stream)?;
        let nodes = shape.rows as usize;
        let alloc = cuda_error("allocate the per-node buffers");
        let zeros = |n: usize| stream.alloc_zeros::<f64>(n).map_err(&alloc);
        let (mut blank_lp, mut emit_lp, mut node_lse) =
            (zeros(nodes)?, zeros(nodes)?, zeros(nodes)?);
        let mut bad_row = stream
            .clone_htod(&[u64::MAX])
            .map_err(cuda_error("set the non-finite-input flag"))?;
        let blank = kernel_int(batch.blank, "blank")?;
        let fused = i32::from(options.fused_log_softmax);
        let mut front = stream.launch_builder(&kernels.front);
        front
            .arg(&scores)
            .arg(&shape.batch)
            .arg(&shape.frames)
            .arg(&shape.positions)
            .arg(&shape.vocab)
            .arg(&blank)
            .arg(&fused)
            .arg(&items.frames)
            .arg(&items.label_counts)
            .arg(&items.label_offsets)
            .arg(&items.labels)
            .arg(&mut blank_lp)
            .arg(&mut emit_lp)
            .arg(&mut node_lse)
            .arg(&mut bad_row);
        // SAFETY: the arguments match `rnnt_front` in kernels/front.cu one for one; every buffer
        // holds B·T·(U+1) nodes and `scores` B·T·(U+1)·V elements (caller's contract).
        unsafe { front.launch(row_launch(shape.rows)) }
            .map_err(cuda_error("run the front pass"))?;

        let (mut alpha, mut beta) = (zeros(nodes)?, zeros(nodes)?);
        let (mut blank_arc, mut emit_arc) = (zeros(nodes)?, zeros(nodes)?);
        let mut log_p = zeros(batch.batch_size)?;
        let mut lattice = stream.launch_builder(&kernels.lattice);
        lattice
            .arg(&shape.frames)
            .arg(&shape.positions)
            .arg(&items.frames)
            .arg(&items.label_counts)
            .arg(&blank_lp)
            .arg(&emit_lp)
            .arg(&mut alpha)
            .arg(&mut beta)
            .arg(&mut blank_arc)
            .arg(&mut emit_arc)
            .arg(&mut log_p);
        let config: LaunchConfig =
            lattice_launch(batch.batch_size, batch.max_frames, batch.label_positions);
        // SAFETY: the arguments match `rnnt_lattice` in kernels/lattice.cu; one block per item,
        // every node buffer holds B·T·(U+1) values and `log_p` B.
        unsafe { lattice.launch(config) }.map_err(cuda_error("run the lattice pass"))?;

        let read = cuda_error("read the losses back");
        let bad_row = stream.clone_dtoh(&bad_row).map_err(&read)?[0];
        if bad_row != u64::MAX {
            // SAFETY: `bad_row` is a row of the caller's scores (set by the front pass).
            return Err(unsafe { self.non_finite_error::<F>(&batch, scores, bad_row, options) });
        }
        let losses = stream
            .clone_dtoh(&log_p)
            .map_err(read)?
            .into_iter()
            .map(|log_p| match -log_p {
                loss if loss == f64::INFINITY && options.zero_infinity => 0.0,
                loss => loss,
            })
            .collect();
        Ok(DeviceForward {
            batch,
            options: *options,
            kernel_elem: F::KERNEL_ELEM,
            stream,
            items,
            node_lse,
            blank_arc,
            emit_arc,
            log_p,
            losses,
        })
    }

    /// The error naming the first non-finite score of row `row`, read back from the device.
    ///
    /// # Safety
    /// `scores` must address the batch's scores and `row` be one of its rows.
    unsafe fn non_finite_error<F: DeviceElement>(
        &self,
        batch: &Batch,
        scores: u64,
        row: u64,
        options: &Options,
    ) -> Error {
        let mut values = vec![F::zero(); batch.vocab];
        let offset = row * (batch.vocab * std::mem::size_of::<F>()) as u64;
        let copied = self.device.bind_to_thread().and_then(|()| {
            // SAFETY: the row lies within the caller's scores (this function's contract).
            unsafe { result::memcpy_dtoh_sync(&mut values, scores + offset) }
        });
        if let Err(e) = copied {
            return cuda_error("read back a row holding a NaN or +inf")(e);
        }
        let (b, t, u) = row_coords(row, batch.max_frames as u64, batch.label_positions as u64);
        non_finite_logit(
            &values,
            input_name(options),
            (b as usize, t as usize, u as usize),
        )
    }

    /// Writes d objective / d scores into `grad`, given d objective / d loss_b =
    /// `item_weights[b]`, on the stream `forward` ran on, without synchronising it.
    ///
    /// # Safety
    /// `scores` must be the array `forward` was computed from, unchanged; `grad` must address a
    /// writable C-contiguous array of `F` of the same shape that does not overlap it; both must
    /// stay valid until the stream reaches this work.
    ///
    /// # Errors
    /// [`Error::DType`] if `F` is not the element type of the forward call, [`Error::Shape`] if
    /// `scores` or `item_weights` do not match the batch, [`Error::Unavailable`] for a CUDA
    /// failure.
    pub unsafe fn backward<F: DeviceElement>(
        &self,
        scores: DeviceScores,
        forward: &DeviceForward,
        item_weights: &[f64],
        grad: u64,
    ) -> Result<()> {
        let batch = &forward.batch;
        let options = &forward.options;
        if F::KERNEL_ELEM != forward.kernel_elem {
            return Err(Error::DType(format!(
                "{} is {} but forward was computed from another dtype",
                input_name(options),
                F::DTYPE
            )));
        }
        let dims = (
            batch.batch_size,
            batch.max_frames,
            batch.label_positions,
            batch.vocab,
        );
        if scores.shape != dims {
            return Err(Error::Shape(format!(
                "{} has shape {:?} but forward saw {dims:?}",
                input_name(options),
                scores.shape
            )));
        }
        if item_weights.len() != batch.batch_size {
            return Err(Error::Shape(format!(
                "item_weights has {} entries but the batch has B = {} items",
                item_weights.len(),
                batch.batch_size
            )));
        }
        let kernels = kernels::<F>(&self.device)?;
        let shape = KernelShape::of::<F>(batch)?;
        let stream = &forward.stream;
        let weights = stream
            .clone_htod(item_weights)
            .map_err(cuda_error("copy the item weights to the device"))?;
        let blank = kernel_int(batch.blank, "blank")?;
        let fused = i32::from(options.fused_log_softmax);
        let emit_scale = 1.0 + options.fastemit_lambda;
        let clamp = options.clip_bound().unwrap_or(0.0);
        let items = &forward.items;
        let mut launch = stream.launch_builder(&kernels.grad);
        launch
            .arg(&scores.ptr)
            .arg(&grad)
            .arg(&shape.batch)
            .arg(&shape.frames)
            .arg(&shape.positions)
            .arg(&shape.vocab)
            .arg(&blank)
            .arg(&fused)
            .arg(&emit_scale)
            .arg(&clamp)
            .arg(&items.frames)
            .arg(&items.label_counts)
            .arg(&items.label_offsets)
            .arg(&items.labels)
            .arg(&forward.node_lse)
            .arg(&forward.blank_arc)
            .arg(&forward.emit_arc)
            .arg(&forward.log_p)
            .arg(&weights);
        // SAFETY: the arguments match `rnnt_grad` in kernels/grad.cu one for one; the node
        // buffers come from `forward` for this batch; `scores` and `grad` hold B·T·(U+1)·V
        // elements (caller's contract). `weights` is freed stream-ordered after the kernel.
        unsafe { launch.launch(row_launch(shape.rows)) }
            .map_err(cuda_error("run the gradient pass"))?;
        Ok(())
    }
}
