//! What one processing run writes: three containers of the same Opus packets
//! and the waveform.
//!
//! [`OutputFormat`] is the one place that names them: the file name
//! ([`crate::process::process_file`] writes, the worker uploads under a
//! versioned prefix), the `Content-Type` they are stored and served with, the
//! container and the short stable name clients use (`audio_urls.opus`,
//! `?format=caf`). Everything else (the engine, the worker, the API, the
//! benches and the fuzz targets) iterates [`OutputFormat::ALL`] or
//! [`OutputFormat::AUDIO`] instead of keeping its own list.
//!
//! Content types are plain strings here: naming them costs the engine no HTTP
//! dependency, and keeps them beside the file names they belong to.

use crate::caf::CafOpusWriter;
use crate::error::{CodecError, Result};
use crate::mux::{OpusMuxer, OpusStreamHeader};
use crate::ogg::OggOpusWriter;
use crate::webm::WebmOpusWriter;
use std::io::{Seek, Write};

/// One output of a processing run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// Ogg Opus (RFC 7845): browsers, Android, iOS 18.4+.
    Opus,
    /// Opus in CAF: iOS 11+ (`AVPlayer`) before Ogg support.
    Caf,
    /// Opus in WebM: Safari 17.5+.
    Webm,
    /// The audiowaveform JSON (version 2) for drawing the clip.
    Waveform,
}

/// The container an audio output carries its Opus packets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Container {
    Ogg,
    Caf,
    Webm,
}

impl OutputFormat {
    /// Every output, in the order they are written and uploaded (audio first).
    pub const ALL: [OutputFormat; 4] = [Self::Opus, Self::Caf, Self::Webm, Self::Waveform];
    /// The playable variants. Ogg Opus comes first: its size is the one the
    /// report gives as the output's bytes.
    pub const AUDIO: [OutputFormat; 3] = [Self::Opus, Self::Caf, Self::Webm];

    /// The file name in an output directory and under a store prefix.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Opus => "audio.opus",
            Self::Caf => "audio.caf",
            Self::Webm => "audio.webm",
            Self::Waveform => "waveform.json",
        }
    }

    /// The `Content-Type` it is stored and served with. Ogg says its codec:
    /// players that see only `audio/ogg` may assume Vorbis.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Opus => "audio/ogg; codecs=opus",
            Self::Caf => "audio/x-caf",
            Self::Webm => "audio/webm",
            Self::Waveform => "application/json",
        }
    }

    /// The container of an audio output; `None` for the waveform.
    pub fn container(self) -> Option<Container> {
        match self {
            Self::Opus => Some(Container::Ogg),
            Self::Caf => Some(Container::Caf),
            Self::Webm => Some(Container::Webm),
            Self::Waveform => None,
        }
    }

    /// The stable short name clients and URLs use: the keys of `audio_urls`,
    /// `?format=`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Opus => "opus",
            Self::Caf => "caf",
            Self::Webm => "webm",
            Self::Waveform => "waveform",
        }
    }

    /// The output with this stable name, exactly as [`OutputFormat::name`] gives it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }

    /// The audio variant a client names: any case, and `ogg` as an alias of `opus`.
    pub fn audio_by_name(name: &str) -> Option<Self> {
        let name = name.to_ascii_lowercase();
        let name = if name == "ogg" { "opus" } else { name.as_str() };
        Self::from_name(name).filter(|o| o.container().is_some())
    }

    /// The audio variant of a media type in `Accept` (without parameters).
    pub fn audio_by_media_type(essence: &str) -> Option<Self> {
        match essence.to_ascii_lowercase().as_str() {
            "audio/ogg" | "audio/opus" => Some(Self::Opus),
            "audio/x-caf" => Some(Self::Caf),
            "audio/webm" => Some(Self::Webm),
            _ => None,
        }
    }

    /// The output with this file name.
    pub fn from_file_name(file_name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.file_name() == file_name)
    }

    /// The output a store key (or bare file name) ends with, if any.
    pub fn of_key(key: &str) -> Option<Self> {
        Self::from_file_name(key.rsplit('/').next()?)
    }

    /// Its key under an output prefix (which ends in `/`).
    pub fn key(self, prefix: &str) -> String {
        format!("{prefix}{}", self.file_name())
    }

    /// A muxer writing this audio output's container into `out`. `serial` is
    /// the Ogg stream serial (the other containers have none). The waveform
    /// holds no Opus packets: asking for its muxer is a bug of the caller.
    pub fn opus_muxer<'a, W: Write + Seek + 'a>(
        self,
        out: W,
        header: &OpusStreamHeader,
        frame_samples: u32,
        serial: u32,
    ) -> Result<Box<dyn OpusMuxer + 'a>> {
        Ok(match self.container() {
            Some(Container::Ogg) => Box::new(OggOpusWriter::new(out, header, serial)?),
            Some(Container::Caf) => Box::new(CafOpusWriter::new(out, header, frame_samples)?),
            Some(Container::Webm) => Box::new(WebmOpusWriter::new(out, header)?),
            None => {
                return Err(CodecError::Internal(format!(
                    "{} holds no Opus packets",
                    self.file_name()
                )))
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys_round_trip() {
        for output in OutputFormat::ALL {
            let key = output.key("media/m/v2/");
            assert_eq!(OutputFormat::of_key(&key), Some(output));
            assert_eq!(OutputFormat::of_key(output.file_name()), Some(output));
            assert_eq!(
                OutputFormat::from_file_name(output.file_name()),
                Some(output)
            );
            assert_eq!(OutputFormat::from_name(output.name()), Some(output));
        }
        for output in OutputFormat::AUDIO {
            assert!(output.container().is_some());
            assert_eq!(OutputFormat::audio_by_name(output.name()), Some(output));
            let essence = output.content_type().split(';').next().unwrap();
            assert_eq!(OutputFormat::audio_by_media_type(essence), Some(output));
        }
        assert_eq!(OutputFormat::Waveform.container(), None);
        assert_eq!(OutputFormat::audio_by_name("OGG"), Some(OutputFormat::Opus));
        assert_eq!(OutputFormat::audio_by_name("waveform"), None);
        assert_eq!(OutputFormat::from_name("ogg"), None);
        assert_eq!(OutputFormat::of_key("originals/x"), None);
        assert_eq!(OutputFormat::of_key("media/m/v1/audio.mp3"), None);
    }

    #[test]
    fn only_audio_outputs_have_a_muxer() {
        let header = OpusStreamHeader {
            channels: 1,
            pre_skip: 312,
            input_sample_rate: 48_000,
            vendor: "test".into(),
            tags: Vec::new(),
        };
        let mut buf = Vec::new();
        for output in OutputFormat::AUDIO {
            buf.clear();
            let muxer = output.opus_muxer(std::io::Cursor::new(&mut buf), &header, 960, 1);
            assert!(muxer.is_ok(), "{output:?}");
        }
        let waveform =
            OutputFormat::Waveform.opus_muxer(std::io::Cursor::new(&mut buf), &header, 960, 1);
        assert!(matches!(waveform, Err(CodecError::Internal(_))));
    }
}
