//! The arrays of a fused call, the joiner's activation, and their validation.

use ndarray::{ArrayView1, ArrayView2, ArrayView3, LinalgScalar};

use crate::batch::{Batch, ScoresShape, Targets};
use crate::element::{Float, Index};
use crate::error::{Error, Result};
use crate::options::Options;

/// The element types of the fused joiner: `f32` and `f64`, whose GEMM is `matrixmultiply`'s
/// (through [`ndarray::linalg::general_mat_mul`]). Sealed.
pub trait JointFloat: Float + LinalgScalar + sealed::Sealed {
    /// tanh in the type's own arithmetic (for f32 without a library call, see
    /// [`tanh_f32`](crate::joint::tanh::tanh_f32)).
    fn tanh(self) -> Self;
}

impl JointFloat for f32 {
    #[inline(always)]
    fn tanh(self) -> Self {
        crate::joint::tanh::tanh_f32(self)
    }
}

impl JointFloat for f64 {
    #[inline]
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
}

/// Keeps [`JointFloat`] implemented by this crate's types only.
mod sealed {
    /// The sealing supertrait of [`JointFloat`](super::JointFloat).
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// The joiner's nonlinearity between the sum of its inputs and the output layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// tanh (torchaudio's `RNNTJoiner` default, icefall, NeMo).
    #[default]
    Tanh,
    /// max(0, z).
    Relu,
    /// z itself (no nonlinearity).
    Identity,
}

impl Activation {
    /// act(z), in the type's arithmetic.
    #[inline]
    pub fn apply<F: JointFloat>(self, z: F) -> F {
        match self {
            Activation::Tanh => z.tanh(),
            Activation::Relu if z > <F as Float>::zero() => z,
            Activation::Relu => <F as Float>::zero(),
            Activation::Identity => z,
        }
    }

    /// act'(z) written through the activation's value h = act(z) (which the backward pass has).
    #[inline]
    pub fn derivative_at_value<F: JointFloat>(self, h: F) -> F {
        match self {
            Activation::Tanh => F::one() - h * h,
            Activation::Relu if h > <F as Float>::zero() => F::one(),
            Activation::Relu => <F as Float>::zero(),
            Activation::Identity => F::one(),
        }
    }
}

impl std::str::FromStr for Activation {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        match name {
            "tanh" => Ok(Activation::Tanh),
            "relu" => Ok(Activation::Relu),
            "identity" => Ok(Activation::Identity),
            other => Err(Error::Value(format!(
                "activation = {other:?} is not one of \"tanh\", \"relu\", \"identity\""
            ))),
        }
    }
}

/// The arrays of one fused call, borrowed from the caller (any strides).
#[derive(Debug, Clone, Copy)]
pub struct JointInput<'a, F, I> {
    /// f, (B, T, H): the encoder side of the joiner.
    pub encoder_out: ArrayView3<'a, F>,
    /// g, (B, U+1, H): the predictor side of the joiner.
    pub predictor_out: ArrayView3<'a, F>,
    /// W, (V, H): the joiner's output layer.
    pub weight: ArrayView2<'a, F>,
    /// (V,): the output layer's bias, if it has one.
    pub bias: Option<ArrayView1<'a, F>>,
    /// Labels, padded (B, U) or packed (ΣU_b).
    pub targets: Targets<'a, I>,
    /// (B,) frames per item, 1 ≤ T_b ≤ T.
    pub logit_lengths: ArrayView1<'a, I>,
    /// (B,) labels per item, 0 ≤ U_b ≤ U.
    pub target_lengths: ArrayView1<'a, I>,
    /// The joiner's nonlinearity.
    pub activation: Activation,
}

/// The sizes of a fused call: B, T, U+1, H and V.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JointDims {
    /// B.
    pub batch_size: usize,
    /// T, the padded number of frames.
    pub frames: usize,
    /// U + 1, the padded number of label positions.
    pub positions: usize,
    /// H, the joiner's hidden size.
    pub hidden: usize,
    /// V, the vocabulary size including blank.
    pub vocab: usize,
}

impl<F: Float, I: Index> JointInput<'_, F, I> {
    /// The call's sizes, once the arrays' shapes agree with each other.
    ///
    /// # Errors
    /// [`Error::Shape`] naming the array and sizes at fault.
    pub fn dims(&self) -> Result<JointDims> {
        let (batch_size, frames, hidden) = self.encoder_out.dim();
        let (pred_batch, positions, pred_hidden) = self.predictor_out.dim();
        let (vocab, weight_hidden) = self.weight.dim();
        let shapes = format!(
            "encoder_out {:?}, predictor_out {:?}, weight {:?}",
            self.encoder_out.shape(),
            self.predictor_out.shape(),
            self.weight.shape()
        );
        if pred_batch != batch_size {
            return Err(Error::Shape(format!(
                "predictor_out has B = {pred_batch} items but encoder_out has {batch_size} \
                 ({shapes})"
            )));
        }
        if pred_hidden != hidden {
            return Err(Error::Shape(format!(
                "predictor_out has H = {pred_hidden} features but encoder_out has {hidden} \
                 ({shapes})"
            )));
        }
        if weight_hidden != hidden {
            return Err(Error::Shape(format!(
                "weight has shape ({vocab}, {weight_hidden}) but must be (V, H) with H = \
                 {hidden}, the features of encoder_out ({shapes})"
            )));
        }
        if let Some(bias) = &self.bias {
            if bias.len() != vocab {
                return Err(Error::Shape(format!(
                    "bias has shape ({},) but must be (V,) with V = {vocab} = weight.shape[0]",
                    bias.len()
                )));
            }
        }
        for (size, name) in [
            (batch_size, "encoder_out.shape[0] (B)"),
            (frames, "encoder_out.shape[1] (T)"),
            (positions, "predictor_out.shape[1] (U+1)"),
            (vocab, "weight.shape[0] (V)"),
        ] {
            if size == 0 {
                return Err(Error::Shape(format!(
                    "{name} is 0: must be at least 1 ({shapes})"
                )));
            }
        }
        Ok(JointDims {
            batch_size,
            frames,
            positions,
            hidden,
            vocab,
        })
    }

    /// The options, the shapes, the lengths and the labels checked: the batch description (of
    /// padded (B, T, U+1, V) logits that are never made).
    ///
    /// # Errors
    /// [`Error::Shape`] or [`Error::Value`] naming the argument and value at fault.
    pub fn batch(&self, options: &Options) -> Result<(JointDims, Batch)> {
        options.validate()?;
        let dims = self.dims()?;
        let bounds = [
            (
                self.logit_lengths,
                "logit_lengths",
                dims.frames,
                "T = encoder_out.shape[1]",
            ),
            (
                self.target_lengths,
                "target_lengths",
                dims.positions - 1,
                "U = predictor_out.shape[1] - 1",
            ),
        ];
        for (lengths, name, bound, bound_name) in bounds {
            if let Some((b, len)) = lengths
                .iter()
                .map(|len| len.to_i64())
                .enumerate()
                .find(|&(_, len)| len > bound as i64)
            {
                return Err(Error::Value(format!(
                    "{name}[{b}] = {len} exceeds {bound_name} = {bound}"
                )));
            }
        }
        let shape = ScoresShape::Padded((dims.batch_size, dims.frames, dims.positions, dims.vocab));
        let batch = Batch::for_shape(
            shape,
            &self.targets,
            (self.logit_lengths, self.target_lengths),
            options.blank,
            "encoder_out",
        )?;
        Ok((dims, batch))
    }
}
