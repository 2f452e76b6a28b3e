//! libopus's encoder and decoder states, held as plain owned memory so that a
//! state can be copied: the only `unsafe` code of the crate.
//!
//! Why copies: the encode stage decodes every packet as soon as it is made,
//! and where the codec's overshoot breaks the true-peak ceiling it goes back a
//! few frames and encodes them again from the saved encoder state (see
//! [`crate::guard`]). libopus documents both states as "always continuous in
//! memory", so "only a shallow copy is sufficient to copy it (e.g.
//! memcpy())" (`opus.h`): they hold offsets, never pointers into themselves,
//! and their only pointers are to libopus's static tables. The `opus` crate
//! keeps its states behind private raw pointers, so this module calls
//! `audiopus_sys` directly.
//!
//! Every call checks its slice lengths before crossing into C, so no caller
//! can make libopus read or write out of bounds; errors come back as the
//! libopus error code, turned into text by [`error_text`].
#![allow(unsafe_code)]

use audiopus_sys as ffi;
use std::ffi::CStr;
use std::os::raw::c_int;

/// 16-byte aligned storage: libopus lays out its state for `malloc`'s alignment.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Chunk([u8; 16]);

/// Zeroed, aligned memory of at least `bytes` bytes.
fn aligned(bytes: c_int) -> Option<Box<[Chunk]>> {
    let bytes = usize::try_from(bytes).ok().filter(|&b| b > 0)?;
    Some(vec![Chunk([0; 16]); bytes.div_ceil(16)].into_boxed_slice())
}

/// libopus's message for an error code.
pub fn error_text(code: i32) -> String {
    // SAFETY: opus_strerror returns a pointer to a static NUL-terminated
    // string for every code, known or not.
    let text = unsafe { CStr::from_ptr(ffi::opus_strerror(code)) };
    text.to_string_lossy().into_owned()
}

/// The linked libopus's version string, e.g. `libopus 1.3.1`.
pub fn version() -> String {
    // SAFETY: a pointer to a static NUL-terminated string.
    let text = unsafe { CStr::from_ptr(ffi::opus_get_version_string()) };
    text.to_string_lossy().into_owned()
}

fn check(code: c_int) -> Result<c_int, i32> {
    if code < 0 {
        Err(code)
    } else {
        Ok(code)
    }
}

/// An Opus encoder whose whole state is this value: [`Clone`] is a snapshot,
/// [`EncoderState::restore`] goes back to one without allocating.
#[derive(Clone)]
pub struct EncoderState {
    mem: Box<[Chunk]>,
    channels: usize,
}

impl std::fmt::Debug for EncoderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncoderState")
            .field("bytes", &(self.mem.len() * 16))
            .finish()
    }
}

impl EncoderState {
    /// `opus_encoder_init` at `rate` Hz, 1 or 2 channels, an
    /// `OPUS_APPLICATION_*` mode.
    pub fn new(rate: i32, channels: usize, application: i32) -> Result<Self, i32> {
        let ch = c_int::try_from(channels).map_err(|_| ffi::OPUS_BAD_ARG)?;
        if !(1..=2).contains(&ch) {
            return Err(ffi::OPUS_BAD_ARG);
        }
        // SAFETY: a pure size query.
        let size = unsafe { ffi::opus_encoder_get_size(ch) };
        let mut mem = aligned(size).ok_or(ffi::OPUS_ALLOC_FAIL)?;
        // SAFETY: `mem` is aligned and at least `opus_encoder_get_size` bytes.
        check(unsafe { ffi::opus_encoder_init(mem.as_mut_ptr().cast(), rate, ch, application) })?;
        Ok(Self { mem, channels })
    }

    fn ptr(&mut self) -> *mut ffi::OpusEncoder {
        self.mem.as_mut_ptr().cast()
    }

    /// An `OPUS_SET_*` request taking one `opus_int32`.
    pub fn set(&mut self, request: i32, value: i32) -> Result<(), i32> {
        // SAFETY: every SET request we send takes exactly one opus_int32.
        check(unsafe { ffi::opus_encoder_ctl(self.ptr(), request, value) }).map(|_| ())
    }

    /// An `OPUS_GET_*` request answering one `opus_int32`.
    pub fn get(&mut self, request: i32) -> Result<i32, i32> {
        let mut value: i32 = 0;
        // SAFETY: every GET request we send writes exactly one opus_int32
        // through the pointer, which outlives the call.
        check(unsafe { ffi::opus_encoder_ctl(self.ptr(), request, &mut value as *mut i32) })?;
        Ok(value)
    }

    /// Encodes one frame (`pcm.len() / channels` samples per channel, a
    /// duration Opus allows) into `packet`; returns the packet's length.
    pub fn encode_float(&mut self, pcm: &[f32], packet: &mut [u8]) -> Result<usize, i32> {
        let frame = c_int::try_from(pcm.len() / self.channels).map_err(|_| ffi::OPUS_BAD_ARG)?;
        let room = i32::try_from(packet.len()).unwrap_or(i32::MAX);
        // SAFETY: libopus reads `frame * channels` ≤ pcm.len() samples and
        // writes at most `room` = packet.len() bytes.
        let len = check(unsafe {
            ffi::opus_encode_float(self.ptr(), pcm.as_ptr(), frame, packet.as_mut_ptr(), room)
        })?;
        Ok(len as usize)
    }

    /// Becomes a copy of `saved` (a clone of an encoder with the same
    /// channels), reusing this value's memory.
    pub fn restore(&mut self, saved: &EncoderState) {
        self.mem.copy_from_slice(&saved.mem);
    }
}

/// An Opus decoder whose whole state is this value, as [`EncoderState`].
#[derive(Clone)]
pub struct DecoderState {
    mem: Box<[Chunk]>,
    channels: usize,
}

impl std::fmt::Debug for DecoderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecoderState")
            .field("bytes", &(self.mem.len() * 16))
            .finish()
    }
}

impl DecoderState {
    /// `opus_decoder_init` at `rate` Hz, 1 or 2 channels.
    pub fn new(rate: i32, channels: usize) -> Result<Self, i32> {
        let ch = c_int::try_from(channels).map_err(|_| ffi::OPUS_BAD_ARG)?;
        if !(1..=2).contains(&ch) {
            return Err(ffi::OPUS_BAD_ARG);
        }
        // SAFETY: a pure size query.
        let size = unsafe { ffi::opus_decoder_get_size(ch) };
        let mut mem = aligned(size).ok_or(ffi::OPUS_ALLOC_FAIL)?;
        // SAFETY: `mem` is aligned and at least `opus_decoder_get_size` bytes.
        check(unsafe { ffi::opus_decoder_init(mem.as_mut_ptr().cast(), rate, ch) })?;
        Ok(Self { mem, channels })
    }

    /// Decodes one packet into `pcm` (interleaved); returns the samples per
    /// channel written. `pcm` must hold the packet's duration (120 ms is
    /// always enough).
    pub fn decode_float(&mut self, packet: &[u8], pcm: &mut [f32]) -> Result<usize, i32> {
        let len = i32::try_from(packet.len()).map_err(|_| ffi::OPUS_INVALID_PACKET)?;
        let frame = c_int::try_from(pcm.len() / self.channels).map_err(|_| ffi::OPUS_BAD_ARG)?;
        // SAFETY: libopus reads `len` = packet.len() bytes and writes at most
        // `frame * channels` ≤ pcm.len() samples.
        let n = check(unsafe {
            ffi::opus_decode_float(
                self.mem.as_mut_ptr().cast(),
                packet.as_ptr(),
                len,
                pcm.as_mut_ptr(),
                frame,
                0,
            )
        })?;
        Ok(n as usize)
    }

    /// Becomes a copy of `saved` (a clone of a decoder with the same channels).
    pub fn restore(&mut self, saved: &DecoderState) {
        self.mem.copy_from_slice(&saved.mem);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn voice_encoder() -> EncoderState {
        let mut e = EncoderState::new(48_000, 1, ffi::OPUS_APPLICATION_VOIP).unwrap();
        e.set(ffi::OPUS_SET_BITRATE_REQUEST, 32_000).unwrap();
        e
    }

    fn tone(frame: usize, n: usize) -> Vec<f32> {
        (0..frame)
            .map(|i| 0.3 * ((n * frame + i) as f32 * 0.031).sin())
            .collect()
    }

    #[test]
    fn a_restored_encoder_makes_the_same_packets_again() {
        let mut enc = voice_encoder();
        let mut packet = [0u8; 4000];
        for n in 0..10 {
            enc.encode_float(&tone(960, n), &mut packet).unwrap();
        }
        let saved = enc.clone();
        let first: Vec<Vec<u8>> = (10..20)
            .map(|n| {
                let len = enc.encode_float(&tone(960, n), &mut packet).unwrap();
                packet[..len].to_vec()
            })
            .collect();
        enc.restore(&saved);
        for (n, expected) in (10..20).zip(&first) {
            let len = enc.encode_float(&tone(960, n), &mut packet).unwrap();
            assert_eq!(&packet[..len], &expected[..], "frame {n}");
        }
    }

    #[test]
    fn a_restored_decoder_decodes_the_same_samples_again() {
        let mut enc = voice_encoder();
        let mut dec = DecoderState::new(48_000, 1).unwrap();
        let mut packet = [0u8; 4000];
        let mut pcm = vec![0f32; 5760];
        let packets: Vec<Vec<u8>> = (0..6)
            .map(|n| {
                let len = enc.encode_float(&tone(960, n), &mut packet).unwrap();
                packet[..len].to_vec()
            })
            .collect();
        dec.decode_float(&packets[0], &mut pcm).unwrap();
        let saved = dec.clone();
        let mut first = Vec::new();
        for p in &packets[1..] {
            let n = dec.decode_float(p, &mut pcm).unwrap();
            first.extend_from_slice(&pcm[..n]);
        }
        dec.restore(&saved);
        let mut again = Vec::new();
        for p in &packets[1..] {
            let n = dec.decode_float(p, &mut pcm).unwrap();
            again.extend_from_slice(&pcm[..n]);
        }
        assert_eq!(first, again);
    }

    #[test]
    fn bad_arguments_are_errors_not_crashes() {
        assert!(EncoderState::new(48_000, 3, ffi::OPUS_APPLICATION_VOIP).is_err());
        assert!(EncoderState::new(44_100, 1, ffi::OPUS_APPLICATION_VOIP).is_err());
        let mut enc = voice_encoder();
        // 7 samples is no Opus frame duration.
        assert!(enc.encode_float(&[0.0; 7], &mut [0u8; 100]).is_err());
        let mut dec = DecoderState::new(48_000, 1).unwrap();
        let mut pcm = [0f32; 5760];
        assert!(dec.decode_float(&[0xff; 3], &mut pcm).is_err());
        assert!(!error_text(-4).is_empty());
        assert!(version().contains("libopus"));
    }
}
