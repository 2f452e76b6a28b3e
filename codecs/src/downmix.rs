//! Downmix to mono: every later stage (loudness, limiter, Opus) works on one
//! channel, so the decoded layout is folded here, once, per ITU-R BS.775.
//!
//! Coefficients, and why:
//! - stereo → mono: `(L + R) / 2`. Speech recorded in stereo is mostly
//!   correlated between the two channels, so the mono sum at −6 dB keeps it at
//!   the level heard on two speakers instead of doubling it; the loudness
//!   normalization that follows fixes the final level anyway.
//! - 5.1 → stereo (BS.775 Table 2): `L' = L + 0.7071·C + 0.7071·Ls`,
//!   `R' = R + 0.7071·C + 0.7071·Rs`; the LFE is dropped (it carries no speech
//!   and BS.775 leaves it out). Then mono `(L' + R') / 2`.
//! - Other layouts: left-side speakers go to L, right-side to R, centre and
//!   unknown speakers to both at 0.7071 — the same rule generalised.
//! - mono passes through untouched.

use symphonia::core::audio::Channels;

/// −3 dB: how BS.775 folds a centre or surround speaker into a front pair.
pub const MINUS_3DB: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// A loudspeaker position, as far as the downmix and loudness meter care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Speaker {
    FrontLeft,
    FrontRight,
    FrontCenter,
    Lfe,
    BackLeft,
    BackRight,
    SideLeft,
    SideRight,
    /// Any position without its own rule (heights, wide, …): folded like a centre.
    Other,
}

impl Speaker {
    /// Gains `(to_left, to_right)` of this speaker in the BS.775 fold to stereo.
    fn stereo_gains(self) -> (f32, f32) {
        match self {
            Self::FrontLeft => (1.0, 0.0),
            Self::FrontRight => (0.0, 1.0),
            Self::FrontCenter | Self::Other => (MINUS_3DB, MINUS_3DB),
            Self::Lfe => (0.0, 0.0),
            Self::BackLeft | Self::SideLeft => (MINUS_3DB, 0.0),
            Self::BackRight | Self::SideRight => (0.0, MINUS_3DB),
        }
    }
}

/// Speakers of a symphonia channel mask, in the interleaving order symphonia
/// uses (ascending bit order, which is also WAVE order).
pub fn speakers_from_channels(channels: Channels) -> Vec<Speaker> {
    channels.iter().map(speaker_of_channel).collect()
}

fn speaker_of_channel(channel: Channels) -> Speaker {
    match channel {
        Channels::FRONT_LEFT => Speaker::FrontLeft,
        Channels::FRONT_RIGHT => Speaker::FrontRight,
        Channels::FRONT_CENTRE => Speaker::FrontCenter,
        Channels::LFE1 | Channels::LFE2 => Speaker::Lfe,
        Channels::REAR_LEFT => Speaker::BackLeft,
        Channels::REAR_RIGHT => Speaker::BackRight,
        Channels::SIDE_LEFT => Speaker::SideLeft,
        Channels::SIDE_RIGHT => Speaker::SideRight,
        _ => Speaker::Other,
    }
}

/// The layout to assume when a file gives only a channel count: WAVE
/// (`WAVE_FORMAT_EXTENSIBLE` default mask) order, as ffmpeg and browsers do.
pub fn default_speakers(count: usize) -> Vec<Speaker> {
    use Speaker::*;
    let layout: &[Speaker] = match count {
        1 => &[FrontCenter],
        2 => &[FrontLeft, FrontRight],
        3 => &[FrontLeft, FrontRight, FrontCenter],
        4 => &[FrontLeft, FrontRight, BackLeft, BackRight],
        5 => &[FrontLeft, FrontRight, FrontCenter, BackLeft, BackRight],
        6 => &[FrontLeft, FrontRight, FrontCenter, Lfe, BackLeft, BackRight],
        7 => &[
            FrontLeft,
            FrontRight,
            FrontCenter,
            Lfe,
            BackLeft,
            BackRight,
            Other,
        ],
        8 => &[
            FrontLeft,
            FrontRight,
            FrontCenter,
            Lfe,
            BackLeft,
            BackRight,
            SideLeft,
            SideRight,
        ],
        _ => &[],
    };
    if layout.is_empty() {
        vec![Other; count]
    } else {
        layout.to_vec()
    }
}

/// Folds interleaved frames of a fixed layout to mono; holds the per-channel
/// mono weights so the hot loop is one multiply-add per sample.
#[derive(Debug, Clone)]
pub struct Downmixer {
    weights: Vec<f32>,
}

impl Downmixer {
    /// Weights from the layout. A single channel of any kind passes through.
    pub fn new(speakers: &[Speaker]) -> Self {
        let weights = if speakers.len() <= 1 {
            vec![1.0; speakers.len().max(1)]
        } else {
            speakers
                .iter()
                .map(|s| {
                    let (l, r) = s.stereo_gains();
                    (l + r) / 2.0
                })
                .collect()
        };
        Self { weights }
    }

    /// Number of interleaved channels this downmixer expects.
    pub fn channels(&self) -> usize {
        self.weights.len()
    }

    /// The mono weight of each input channel (documents the coefficients).
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// Clears `out` and writes one mono sample per complete input frame (a
    /// trailing partial frame, which a well-formed decoder never produces, is
    /// ignored).
    pub fn process(&mut self, interleaved: &[f32], out: &mut Vec<f32>) {
        out.clear();
        let channels = self.weights.len();
        if channels == 1 {
            out.extend_from_slice(interleaved);
            return;
        }
        out.extend(interleaved.chunks_exact(channels).map(|frame| {
            frame
                .iter()
                .zip(&self.weights)
                .map(|(sample, weight)| sample * weight)
                .sum::<f32>()
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stereo_is_the_mean() {
        let mut d = Downmixer::new(&default_speakers(2));
        let mut out = Vec::new();
        d.process(&[1.0, 0.0, 0.5, 0.5, -1.0, 1.0], &mut out);
        assert_eq!(out.len(), 3);
        for (got, want) in out.iter().zip([0.5, 0.5, 0.0]) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn five_one_follows_bs775() {
        let mut d = Downmixer::new(&default_speakers(6));
        let h = MINUS_3DB;
        let w = d.weights().to_vec();
        let want = [0.5, 0.5, h, 0.0, h / 2.0, h / 2.0];
        for (got, want) in w.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{w:?}");
        }
        let mut out = Vec::new();
        // Only the LFE: nothing comes out.
        d.process(&[0.0, 0.0, 0.0, 1.0, 0.0, 0.0], &mut out);
        assert!(out[0].abs() < 1e-9);
    }

    #[test]
    fn mono_passes_through() {
        let mut d = Downmixer::new(&[Speaker::FrontCenter]);
        let mut out = vec![9.0];
        d.process(&[0.25, -0.5], &mut out);
        assert_eq!(out, vec![0.25, -0.5]);
    }

    #[test]
    fn symphonia_mask_maps_in_order() {
        let mask = Channels::FRONT_LEFT
            | Channels::FRONT_RIGHT
            | Channels::FRONT_CENTRE
            | Channels::LFE1
            | Channels::SIDE_LEFT
            | Channels::SIDE_RIGHT;
        use Speaker::*;
        assert_eq!(
            speakers_from_channels(mask),
            vec![FrontLeft, FrontRight, FrontCenter, Lfe, SideLeft, SideRight]
        );
    }
}
