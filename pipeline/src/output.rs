//! What one processing attempt leaves in the store: three containers of the
//! same Opus packets and the waveform, each under the attempt's versioned
//! prefix (see [`crate::store::output_prefix`]).
//!
//! [`Output`] is the one place that names them: the file name (the engine's
//! own constants), the `Content-Type` they are stored and served with, and
//! the short name clients use (`audio_urls.opus`, `?format=caf`). The worker
//! uploads [`Output::ALL`]; the API signs URLs for them and picks one by name
//! or by `Accept`.
//!
//! It lives here rather than in `sori-codecs` so the engine stays free of
//! HTTP notions such as content types.

use sori_codecs::process::{CAF_FILE, OGG_FILE, WAVEFORM_FILE, WEBM_FILE};

/// One processed output of a media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Output {
    /// Ogg Opus (RFC 7845): browsers, Android, iOS 18.4+.
    Opus,
    /// Opus in CAF: iOS 11+ (`AVPlayer`) before Ogg support.
    Caf,
    /// Opus in WebM: Safari 17.5+.
    Webm,
    /// The audiowaveform JSON (version 2) for drawing the clip.
    Waveform,
}

impl Output {
    /// Every output, in the order the worker uploads them (audio first).
    pub const ALL: [Output; 4] = [Self::Opus, Self::Caf, Self::Webm, Self::Waveform];
    /// The playable variants.
    pub const AUDIO: [Output; 3] = [Self::Opus, Self::Caf, Self::Webm];

    /// The file name under the version prefix (as the engine writes it).
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Opus => OGG_FILE,
            Self::Caf => CAF_FILE,
            Self::Webm => WEBM_FILE,
            Self::Waveform => WAVEFORM_FILE,
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

    /// The short name clients use: the keys of `audio_urls`, `?format=`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Opus => "opus",
            Self::Caf => "caf",
            Self::Webm => "webm",
            Self::Waveform => "waveform",
        }
    }

    /// The audio variant a client names (`ogg` is an alias of `opus`), any case.
    pub fn audio_by_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "opus" | "ogg" => Some(Self::Opus),
            "caf" => Some(Self::Caf),
            "webm" => Some(Self::Webm),
            _ => None,
        }
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

    /// The output a key (or bare file name) ends with, if any.
    pub fn of_key(key: &str) -> Option<Self> {
        let name = key.rsplit('/').next()?;
        Self::ALL.into_iter().find(|o| o.file_name() == name)
    }

    /// Its key under an output prefix (which ends in `/`).
    pub fn key(self, prefix: &str) -> String {
        format!("{prefix}{}", self.file_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys_round_trip() {
        for output in Output::ALL {
            let key = output.key("media/m/v2/");
            assert_eq!(Output::of_key(&key), Some(output));
            assert_eq!(Output::of_key(output.file_name()), Some(output));
        }
        for output in Output::AUDIO {
            assert_eq!(Output::audio_by_name(output.name()), Some(output));
            let essence = output.content_type().split(';').next().unwrap();
            assert_eq!(Output::audio_by_media_type(essence), Some(output));
        }
        assert_eq!(Output::audio_by_name("OGG"), Some(Output::Opus));
        assert_eq!(Output::audio_by_name("waveform"), None);
        assert_eq!(Output::of_key("originals/x"), None);
        assert_eq!(Output::of_key("media/m/v1/audio.mp3"), None);
    }
}
