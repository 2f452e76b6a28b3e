//! Getting bytes to symphonia safely: the size cap on any source, the MP4
//! repairs of [`super::mp4`], the container sniff, and the guarded probe.

use super::{crashed, mp4, sniff};
use crate::error::{CodecError, Result};
use crate::profile::Limits;
use std::io::{self, Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSource, MediaSourceStream, ReadBytes, SeekBuffered};
use symphonia::core::meta::{Limit, MetadataOptions};
use symphonia::core::probe::Hint;

/// Metadata (tags, cover art) kept by symphonia, bytes: bounds memory.
const MAX_METADATA_BYTES: usize = 1 << 20;

pub(super) fn check_size(len: u64, limits: &Limits) -> Result<()> {
    if len > limits.max_bytes {
        return Err(CodecError::LimitExceeded {
            what: "file size",
            actual: format!("{len} bytes"),
            limit: format!("{} bytes", limits.max_bytes),
        });
    }
    Ok(())
}

/// The size limit hit while reading (the total length was not known upfront).
pub(super) fn size_error(max_bytes: u64) -> CodecError {
    CodecError::LimitExceeded {
        what: "file size",
        actual: "more bytes".into(),
        limit: format!("{max_bytes} bytes"),
    }
}

/// Reads the first bytes to name the container and refuse headers symphonia
/// would choke on (see [`sniff::header_problem`]), then rewinds the stream.
pub(super) fn sniff_container(
    stream: &mut MediaSourceStream,
    limits: &Limits,
) -> Result<&'static str> {
    let max_bytes = limits.max_bytes;
    let mut head = [0u8; 64];
    let mut filled = 0;
    while filled < head.len() {
        match ReadBytes::read_buf(stream, &mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::FileTooLarge => return Err(size_error(max_bytes)),
            Err(e) => return Err(CodecError::Io(e)),
        }
    }
    if filled == 0 {
        return Err(CodecError::InvalidInput("empty file".into()));
    }
    stream.seek_buffered_rev(filled);
    if let Some(problem) = sniff::header_problem(&head[..filled], limits) {
        return Err(problem);
    }
    Ok(sniff::container_name(&head[..filled]))
}

pub(super) fn probe(
    stream: MediaSourceStream,
    ext_hint: Option<&str>,
    max_bytes: u64,
    container: &str,
) -> Result<Box<dyn FormatReader>> {
    let mut hint = Hint::new();
    if let Some(ext) = ext_hint {
        hint.with_extension(ext);
    }
    let format_options = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let metadata_options = MetadataOptions {
        limit_metadata_bytes: Limit::Maximum(MAX_METADATA_BYTES),
        limit_visual_bytes: Limit::Maximum(MAX_METADATA_BYTES),
    };
    let probed = catch_unwind(AssertUnwindSafe(|| {
        symphonia::default::get_probe().format(&hint, stream, &format_options, &metadata_options)
    }))
    .map_err(|_| crashed("probe"))?;
    match probed {
        Ok(probed) => Ok(probed.format),
        Err(SymphoniaError::IoError(e)) if e.kind() == io::ErrorKind::FileTooLarge => {
            Err(size_error(max_bytes))
        }
        Err(SymphoniaError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Err(CodecError::InvalidInput(if container == "unknown" {
                "not an audio format we recognise".into()
            } else {
                format!("{container} file truncated before any audio")
            }))
        }
        Err(SymphoniaError::Unsupported(_)) => Err(CodecError::InvalidInput(
            "not an audio format we recognise".into(),
        )),
        Err(e) => Err(CodecError::InvalidInput(format!("unreadable file: {e}"))),
    }
}

/// A source that refuses to read past `max` bytes, whatever the container
/// claims: bounds what a hostile or unbounded stream can make us read.
pub(super) struct ByteCap {
    inner: Box<dyn MediaSource>,
    pos: u64,
    max: u64,
    /// Bytes shown instead of the source's at an offset (a repaired atom size).
    patch: Option<(u64, Vec<u8>)>,
}

impl ByteCap {
    /// Wraps `inner`, refusing to read past `max` bytes.
    pub(super) fn new(inner: Box<dyn MediaSource>, max: u64) -> Self {
        Self {
            inner,
            pos: 0,
            max,
            patch: None,
        }
    }

    fn overlay(&self, buf: &mut [u8], at: u64) {
        let Some((offset, bytes)) = &self.patch else {
            return;
        };
        for (i, byte) in bytes.iter().enumerate() {
            let abs = offset + i as u64;
            if abs >= at && abs < at + buf.len() as u64 {
                buf[(abs - at) as usize] = *byte;
            }
        }
    }
}

/// For a seekable MP4, reads the edit list, repairs a truncated `mdat` and
/// refuses sample tables claiming more entries than they hold (see [`mp4`]);
/// leaves the source rewound. Other inputs are untouched. (Uploads are
/// always files, so seekable; a non-seekable MP4 stream skips these checks.)
pub(super) fn prepare_mp4(source: &mut ByteCap) -> Result<Option<mp4::Edit>> {
    let Some(len) = source.inner.byte_len() else {
        return Ok(None);
    };
    if !source.inner.is_seekable() {
        return Ok(None);
    }
    let mut head = [0u8; 12];
    let is_mp4 = source.inner.read_exact(&mut head).is_ok() && &head[4..8] == b"ftyp";
    let scan = if is_mp4 {
        // A malformed atom tree only costs the trim: symphonia reports the rest.
        mp4::scan(&mut source.inner, len).unwrap_or_default()
    } else {
        mp4::Scan::default()
    };
    if let Some(reason) = scan.refusal {
        return Err(CodecError::InvalidInput(reason));
    }
    source.inner.seek(SeekFrom::Start(0))?;
    source.pos = 0;
    source.patch = scan.size_patch;
    Ok(scan.edit)
}

impl Read for ByteCap {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.max {
            // Reading at the cap is fine if the source is also at its end.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::new(io::ErrorKind::FileTooLarge, "size limit")),
            };
        }
        let room = usize::try_from(self.max - self.pos).unwrap_or(usize::MAX);
        let len = buf.len().min(room);
        let n = self.inner.read(&mut buf[..len])?;
        self.overlay(&mut buf[..n], self.pos);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ByteCap {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = self.inner.seek(pos)?;
        Ok(self.pos)
    }
}

impl MediaSource for ByteCap {
    fn is_seekable(&self) -> bool {
        self.inner.is_seekable()
    }

    fn byte_len(&self) -> Option<u64> {
        self.inner.byte_len()
    }
}
