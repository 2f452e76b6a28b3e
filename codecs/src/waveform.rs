//! The two pictures of a clip a client draws: `waveform.json` in the
//! audiowaveform JSON format (min/max pairs for a scrubber) and 100 bars of
//! 0–31 stored with the media record for the feed.
//!
//! Streaming in bounded memory: samples are folded into "fine" pixels of
//! min, max and energy at 100 pixels per second. Past [`MAX_FINE_PIXELS`]
//! (about 87 minutes at 100 px/s) neighbouring pixels are merged and the
//! fine resolution halves, so memory never exceeds 6 MiB.
//!
//! Output resolution rule: clips up to 20 s keep 100 px/s (at most 2000
//! pixels); longer clips group fine pixels by the smallest whole factor that
//! keeps the JSON at or under [`MAX_JSON_PIXELS`] — about one value per
//! screen pixel of a full-width scrubber.
//!
//! Bars: RMS over 100 equal time slices, on a dB scale from −50 dBFS (0) to
//! 0 dBFS (31). A slice louder than −80 dBFS never shows 0, so quiet speech
//! never looks like silence; digital silence shows 0.

use serde::{Deserialize, Serialize};

/// Fine pixels kept before merging pairs (3 × 4 bytes each: 6 MiB at most).
pub const MAX_FINE_PIXELS: usize = 1 << 19;
/// Largest `length` of the JSON waveform.
pub const MAX_JSON_PIXELS: usize = 2000;
/// Number of bars in the feed summary.
pub const BAR_COUNT: usize = 100;
/// Largest bar value (5 bits).
pub const BAR_MAX: u8 = 31;
const BAR_FLOOR_DB: f64 = -50.0;
/// Slices above this level show at least one step.
const AUDIBLE_DB: f64 = -80.0;

/// The audiowaveform JSON format, version 2, one channel, 8-bit values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudiowaveformJson {
    pub version: u32,
    pub channels: u32,
    pub sample_rate: u32,
    pub samples_per_pixel: u32,
    pub bits: u32,
    /// Number of min/max pairs in `data`.
    pub length: u32,
    /// `[min0, max0, min1, max1, …]`, samples scaled to −128..127.
    pub data: Vec<i8>,
}

/// One fine pixel: extremes and energy of its samples.
#[derive(Debug, Clone, Copy)]
struct Pixel {
    min: f32,
    max: f32,
    sum_sq: f32,
}

impl Pixel {
    const EMPTY: Self = Self {
        min: f32::INFINITY,
        max: f32::NEG_INFINITY,
        sum_sq: 0.0,
    };

    fn merge(self, other: Self) -> Self {
        Self {
            min: self.min.min(other.min),
            max: self.max.max(other.max),
            sum_sq: self.sum_sq + other.sum_sq,
        }
    }
}

/// Accumulates a clip's waveform as samples stream through the pipeline.
pub struct WaveformBuilder {
    sample_rate: u32,
    samples_per_pixel: u64,
    pixels: Vec<Pixel>,
    current: Pixel,
    current_count: u64,
    total_samples: u64,
}

impl WaveformBuilder {
    /// A builder for mono samples at `sample_rate` (48 kHz in the pipeline).
    pub fn new(sample_rate: u32) -> Self {
        Self {
            sample_rate,
            samples_per_pixel: u64::from((sample_rate / 100).max(1)),
            pixels: Vec::new(),
            current: Pixel::EMPTY,
            current_count: 0,
            total_samples: 0,
        }
    }

    /// Adds the next samples of the clip (any chunk size). Non-finite
    /// samples are counted as silence.
    pub fn add(&mut self, mono: &[f32]) {
        let mut rest = mono;
        while !rest.is_empty() {
            let room = self.samples_per_pixel - self.current_count;
            let take = usize::try_from(room).unwrap_or(usize::MAX).min(rest.len());
            let (chunk, tail) = rest.split_at(take);
            self.current = chunk.iter().fold(self.current, |acc, &x| {
                let x = if x.is_finite() { x } else { 0.0 };
                Pixel {
                    min: acc.min.min(x),
                    max: acc.max.max(x),
                    sum_sq: acc.sum_sq + x * x,
                }
            });
            self.current_count += take as u64;
            rest = tail;
            if self.current_count == self.samples_per_pixel {
                self.push_pixel();
            }
        }
        self.total_samples += mono.len() as u64;
    }

    fn push_pixel(&mut self) {
        self.pixels.push(self.current);
        self.current = Pixel::EMPTY;
        self.current_count = 0;
        if self.pixels.len() >= MAX_FINE_PIXELS {
            self.halve_resolution();
        }
    }

    /// Merges neighbouring pixels in place: same memory, half the resolution.
    fn halve_resolution(&mut self) {
        let pairs = self.pixels.len() / 2;
        for i in 0..pairs {
            self.pixels[i] = self.pixels[2 * i].merge(self.pixels[2 * i + 1]);
        }
        self.pixels.truncate(pairs);
        self.samples_per_pixel *= 2;
    }

    /// The JSON waveform and the 100 bars.
    pub fn finish(mut self) -> (AudiowaveformJson, Vec<u8>) {
        if self.current_count > 0 {
            self.pixels.push(self.current);
        }
        let bars = self.bars();
        (self.json(), bars)
    }

    fn json(&self) -> AudiowaveformJson {
        let group = self.pixels.len().div_ceil(MAX_JSON_PIXELS).max(1);
        let mut data = Vec::with_capacity(2 * self.pixels.len().div_ceil(group));
        for chunk in self.pixels.chunks(group) {
            let pixel = chunk.iter().fold(Pixel::EMPTY, |acc, &p| acc.merge(p));
            data.push(to_i8(pixel.min));
            data.push(to_i8(pixel.max));
        }
        let samples_per_pixel = self.samples_per_pixel * group as u64;
        AudiowaveformJson {
            version: 2,
            channels: 1,
            sample_rate: self.sample_rate,
            samples_per_pixel: u32::try_from(samples_per_pixel).unwrap_or(u32::MAX),
            bits: 8,
            length: u32::try_from(data.len() / 2).unwrap_or(u32::MAX),
            data,
        }
    }

    /// RMS level of 100 equal slices of the clip, as 0–31.
    fn bars(&self) -> Vec<u8> {
        let n = self.pixels.len();
        if n == 0 {
            return vec![0; BAR_COUNT];
        }
        let levels: Vec<f64> = (0..BAR_COUNT)
            .map(|bar| {
                let start = bar * n / BAR_COUNT;
                let end = ((bar + 1) * n / BAR_COUNT).max(start + 1).min(n);
                self.slice_rms(start, end)
            })
            .collect();
        let mut bars: Vec<u8> = levels.iter().map(|&rms| bar_value(rms)).collect();
        let loudest = levels.iter().copied().fold(0.0, f64::max);
        if loudest > 0.0 && bars.iter().all(|&b| b == 0) {
            // Very quiet but not silent: show where the sound is.
            for (bar, &rms) in bars.iter_mut().zip(&levels) {
                if rms >= loudest * 0.5 {
                    *bar = 1;
                }
            }
        }
        bars
    }

    /// RMS of fine pixels `start..end`, counting the samples each really holds.
    fn slice_rms(&self, start: usize, end: usize) -> f64 {
        let spp = self.samples_per_pixel;
        let first = start as u64 * spp;
        let last = (end as u64 * spp).min(self.total_samples);
        let count = last.saturating_sub(first);
        if count == 0 {
            return 0.0;
        }
        let energy: f64 = self.pixels[start..end]
            .iter()
            .map(|p| f64::from(p.sum_sq))
            .sum();
        (energy / count as f64).sqrt()
    }
}

fn to_i8(sample: f32) -> i8 {
    if !sample.is_finite() {
        return 0;
    }
    (sample * 127.0).round().clamp(-128.0, 127.0) as i8
}

fn bar_value(rms: f64) -> u8 {
    if rms <= 0.0 {
        return 0;
    }
    let db = 20.0 * rms.log10();
    let scaled = ((db - BAR_FLOOR_DB) / -BAR_FLOOR_DB * f64::from(BAR_MAX)).round();
    let value = scaled.clamp(0.0, f64::from(BAR_MAX)) as u8;
    if db > AUDIBLE_DB {
        value.max(1)
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_scale_end_points() {
        assert_eq!(bar_value(0.0), 0);
        assert_eq!(bar_value(1.0), BAR_MAX);
        assert_eq!(bar_value(10f64.powf(-25.0 / 20.0)), 16); // −25 dB: mid-scale
        assert_eq!(bar_value(10f64.powf(-60.0 / 20.0)), 1); // quiet, not silent
        assert_eq!(bar_value(10f64.powf(-90.0 / 20.0)), 0);
    }

    #[test]
    fn merging_keeps_memory_bounded_and_extremes() {
        let mut builder = WaveformBuilder::new(100); // 1 sample per pixel
        let chunk: Vec<f32> = (0..4096).map(|i| (i % 7) as f32 / 10.0 - 0.3).collect();
        for _ in 0..(MAX_FINE_PIXELS / 4096 * 3) {
            builder.add(&chunk);
        }
        assert!(builder.pixels.len() < MAX_FINE_PIXELS);
        assert!(builder.samples_per_pixel >= 2);
        let (json, _) = builder.finish();
        assert!(json.length as usize <= MAX_JSON_PIXELS);
        assert_eq!(json.data.iter().copied().min(), Some(to_i8(-0.3)));
        assert_eq!(json.data.iter().copied().max(), Some(to_i8(0.3)));
    }
}
