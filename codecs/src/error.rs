//! The one error type of the audio engine.

use std::io;

/// What went wrong while probing, decoding or encoding.
///
/// Recoverability, for a caller deciding between "fail the job" and "retry":
/// - [`CodecError::Unsupported`], [`CodecError::InvalidInput`] and
///   [`CodecError::LimitExceeded`] are properties of the input: retrying the
///   same bytes gives the same answer. Their message is a one-line reason fit
///   to show a user.
/// - [`CodecError::Io`] comes from the reader or writer handed in and may be
///   transient (a network-backed reader, a full disk).
/// - [`CodecError::Encoder`] and [`CodecError::Internal`] are bugs or resource
///   problems on our side, never the user's fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A format or codec we recognise but do not decode (AMR, HE-AAC, video-only…).
    #[error("unsupported input: {0}")]
    Unsupported(String),
    /// Bytes that are not usable audio: garbage, empty, truncated before any audio.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The input breaks a configured limit (size, duration, channels, sample rate).
    #[error("{what} {actual} exceeds the limit of {limit}")]
    LimitExceeded {
        what: &'static str,
        actual: String,
        limit: String,
    },
    /// Reading the input or writing an output failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// libopus refused a setting or a frame.
    #[error("opus encoder: {0}")]
    Encoder(String),
    /// A broken invariant inside the engine.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CodecError {
    /// True when the input itself is at fault, so retrying cannot help.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            Self::Unsupported(_) | Self::InvalidInput(_) | Self::LimitExceeded { .. }
        )
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = CodecError> = std::result::Result<T, E>;
