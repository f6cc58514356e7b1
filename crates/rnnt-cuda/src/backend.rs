//! The CUDA backend: the launches of the three kernels behind [`rnnt::Backend`].
//!
//! Labels and lengths are small and are validated on the host by the shared bookkeeping of
//! [`rnnt::forward_with`] (the one place where inputs are checked), then copied to the device;
//! the scores and the gradient stay where the caller put them. Between forward and backward the
//! device holds, per node, the row's log-sum-exp and the two arc occupancies (float64), never a
//! B·T·(U+1)·V buffer.

use std::marker::PhantomData;
use std::sync::Arc;

use cudarc::driver::{result, sys, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use rnnt::backend::{Dims, ScoresShape};
use rnnt::batch::non_finite_logit;
use rnnt::loss::input_name;
use rnnt::{Backend, Batch, Error, Options, Result};

use crate::context::{cuda_error, CudaContext};
use crate::element::DeviceElement;
use crate::launch::{checked_sizes, kernel_int, lattice_launch, row_coords, row_launch};
use crate::module::kernels;

/// A C-contiguous (B, T, U+1, V) array of scores (logits or log-probs) of `F` in device
/// memory, borrowed for `'a`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceScores<'a, F> {
    ptr: u64,
    shape: Dims,
    _borrow: PhantomData<&'a [F]>,
}

impl<F: DeviceElement> DeviceScores<'_, F> {
    /// The scores at device address `ptr` (element [0, 0, 0, 0], e.g. torch's `data_ptr()`),
    /// of sizes `shape` = (B, T, U+1, V).
    ///
    /// # Safety
    /// `ptr` must address a C-contiguous array of `shape` elements of `F` in the memory of the
    /// device the scores are used on, not written while any stream may still run work on them
    /// for this borrow.
    pub unsafe fn new(ptr: u64, shape: Dims) -> Self {
        DeviceScores {
            ptr,
            shape,
            _borrow: PhantomData,
        }
    }
}

/// A writable C-contiguous (B, T, U+1, V) buffer of `F` in device memory for a gradient,
/// borrowed exclusively for `'a`.
#[derive(Debug, PartialEq, Eq)]
pub struct DeviceGrad<'a, F> {
    ptr: u64,
    shape: Dims,
    _borrow: PhantomData<&'a mut [F]>,
}

impl<F: DeviceElement> DeviceGrad<'_, F> {
    /// The buffer at device address `ptr`, of sizes `shape` = (B, T, U+1, V).
    ///
    /// # Safety
    /// `ptr` must address a writable array of `shape` elements of `F` in the memory of the device
    /// it is used on, that overlaps no scores it is computed from and that nothing else reads or
    /// writes until the stream of the call has reached the gradient pass's work.
    pub unsafe fn new(ptr: u64, shape: Dims) -> Self {
        DeviceGrad {
            ptr,
            shape,
            _borrow: PhantomData,
        }
    }
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

/// What the CUDA backend keeps between forward and backward, on the device: per node the row's
/// log-sum-exp and the two arc occupancies, per item ln P; and the stream forward ran on, which
/// backward runs on too.
#[derive(Debug)]
pub struct DeviceState {
    stream: Arc<CudaStream>,
    items: ItemBuffers,
    node_lse: CudaSlice<f64>,
    blank_arc: CudaSlice<f64>,
    emit_arc: CudaSlice<f64>,
    log_p: CudaSlice<f64>,
}

/// The CUDA backend: one device and the stream its forward passes run on.
#[derive(Debug, Clone)]
pub struct CudaBackend {
    gpu: CudaContext,
    stream: Arc<CudaStream>,
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
    /// The sizes of `batch`, whose scores must be padded: the kernels index (B, T, U+1, V).
    fn of<F: DeviceElement>(batch: &Batch) -> Result<KernelShape> {
        if batch.is_packed() {
            return Err(Error::Unavailable(
                "packed logits are not supported on CUDA yet: pass (B, T, U+1, V) padded ones"
                    .to_string(),
            ));
        }
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
    /// The CUDA backend on this device's default (legacy) stream.
    pub fn backend(&self) -> CudaBackend {
        CudaBackend {
            gpu: self.clone(),
            stream: self.device.default_stream(),
        }
    }

    /// The CUDA backend on a raw `CUstream` / `cudaStream_t` handle (0: the legacy default
    /// stream) owned by the caller, for example `torch.cuda.current_stream().cuda_stream`.
    ///
    /// # Safety
    /// `stream` must be 0 or a live stream of this device's primary context, and must outlive
    /// the backend and every forward result made with it.
    pub unsafe fn backend_on_stream(&self, stream: u64) -> CudaBackend {
        // SAFETY: the caller vouches for the handle and its lifetime (see above).
        let stream = unsafe { self.device.wrap_borrowed_stream(stream as sys::CUstream) };
        CudaBackend {
            gpu: self.clone(),
            stream,
        }
    }
}

impl CudaBackend {
    /// The stream the forward passes run on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
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
        let copied = self.gpu.device.bind_to_thread().and_then(|()| {
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
}

impl<F: DeviceElement> Backend<F> for CudaBackend {
    type Scores<'a> = DeviceScores<'a, F>;
    type Grad<'a> = DeviceGrad<'a, F>;
    type State = DeviceState;

    fn scores_dims(scores: &DeviceScores<'_, F>, _name: &str) -> Result<ScoresShape> {
        Ok(ScoresShape::Padded(scores.shape))
    }

    fn grad_dims(grad: &DeviceGrad<'_, F>) -> Result<ScoresShape> {
        Ok(ScoresShape::Padded(grad.shape))
    }

    /// Synchronises the stream once, to read the losses and the non-finite-input flag.
    fn forward(
        &self,
        batch: &Batch,
        options: &Options,
        scores: DeviceScores<'_, F>,
    ) -> Result<(DeviceState, Vec<f64>)> {
        let stream = self.stream.clone();
        let scores = scores.ptr;
        let kernels = kernels::<F>(&self.gpu.device)?;
        let shape = KernelShape::of::<F>(batch)?;
        let items = ItemBuffers::upload(batch, &stream)?;
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
        // holds B·T·(U+1) nodes and `scores` B·T·(U+1)·V elements (the contracts of `DeviceScores::new` and `DeviceGrad::new`).
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
            return Err(unsafe { self.non_finite_error::<F>(batch, scores, bad_row, options) });
        }
        let log_p_host = stream.clone_dtoh(&log_p).map_err(read)?;
        let state = DeviceState {
            stream,
            items,
            node_lse,
            blank_arc,
            emit_arc,
            log_p,
        };
        Ok((state, log_p_host))
    }

    /// Runs on the stream forward ran on, without synchronising it.
    fn backward(
        &self,
        batch: &Batch,
        options: &Options,
        scores: DeviceScores<'_, F>,
        forward: &DeviceState,
        item_weights: &[f64],
        grad: DeviceGrad<'_, F>,
    ) -> Result<()> {
        let kernels = kernels::<F>(&self.gpu.device)?;
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
            .arg(&grad.ptr)
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
        // elements (the contracts of `DeviceScores::new` and `DeviceGrad::new`). `weights` is freed stream-ordered after the kernel.
        unsafe { launch.launch(row_launch(shape.rows)) }
            .map_err(cuda_error("run the gradient pass"))?;
        Ok(())
    }
}
