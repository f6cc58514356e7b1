//! The one error type of the crate.
//!
//! Every message names the argument at fault and the offending value, in the letters used throughout
//! the project (B, T, U, V, `blank`), so that a user can act on it without reading the source, e.g.
//! `targets[3][7] = 29 is out of range for V = 29`.

/// Why a loss could not be computed. Front ends map [`Error::DType`] to a type error and every
/// other variant to a value error, keeping the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An argument has the wrong rank or shape, or disagrees with another argument's shape.
    #[error("{0}")]
    Shape(String),
    /// An argument holds a value outside its allowed range: a label, a length, `blank`, an option,
    /// or a NaN / +inf logit.
    #[error("{0}")]
    Value(String),
    /// An argument's memory is not laid out as required (C-contiguous).
    #[error("{0}")]
    Layout(String),
    /// An argument has an element type the loss does not accept.
    #[error("{0}")]
    DType(String),
    /// The requested backend cannot run here (for example CUDA without a GPU or driver).
    #[error("{0}")]
    Unavailable(String),
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
