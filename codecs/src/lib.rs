//! Sori's audio engine: everything between the bytes a phone recorded and the
//! Opus streams, loudness figures and waveform the service hands out.
//!
//! The crate is pure and synchronous: readers and byte slices in, samples and
//! bytes out. No async runtime, no database, no network. Every stage streams
//! in bounded memory so a 60-minute input costs what a 6-second one does.
//!
//! Stages, in the order a job runs them:
//! [`decode`] (probe + symphonia + libopus) → [`downmix`] (ITU-R BS.775 to mono)
//! → [`resample`] (rubato, to 48 kHz) → [`loudness`] (BS.1770-4 / EBU R128)
//! → [`limiter`] (look-ahead true-peak) → [`encode`] (libopus encoder)
//! → [`ogg`] / [`caf`] / [`webm`] (containers) and [`waveform`] / [`analysis`].
//! [`process`] wires them into the two-pass chain and returns a [`report::Report`];
//! [`OutputFormat`] names the files it writes.

pub mod analysis;
pub mod caf;
pub mod decode;
pub mod downmix;
pub mod encode;
pub mod error;
pub mod gain;
pub mod guard;
pub mod libopus;
pub mod limiter;
pub mod loudness;
pub mod mux;
pub mod ogg;
pub mod output_format;
pub mod process;
pub mod profile;
pub mod report;
pub mod resample;
pub mod waveform;
pub mod webm;

pub use error::CodecError;
pub use output_format::OutputFormat;
pub use profile::{Limits, Profile};

/// Every output of the chain is 48 kHz: Opus's native rate.
pub const OUTPUT_RATE: u32 = 48_000;
