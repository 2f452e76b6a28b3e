//! Hostile input: ~200 deterministic mutations of the fixtures (bit flips,
//! truncations, overwritten runs, damaged headers) through `Decoder::open` and
//! a full drain. None may panic past the decoder, hang, or produce absurd
//! amounts of audio; each either decodes or ends with a one-line error.
#![allow(clippy::unwrap_used)]

use sori_codecs::decode::Decoder;
use sori_codecs::Limits;
use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const SOURCES: [&str; 11] = [
    "speech-mono-16k.m4a",
    "speech-mono-44k-moov-after-mdat.m4a",
    "speech-stereo-44k.mp3",
    "speech-mono-48k.opus",
    "speech-mono-48k-mediarecorder.webm",
    "speech-stereo-44k.ogg",
    "speech-mono-22k.flac",
    "speech-mono-8k-u8.wav",
    "speech-mono-44k.caf",
    "speech-mono-44k.aiff",
    "speech-mono-44k-alac.m4a",
];

/// xorshift64*: a tiny deterministic PRNG so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(original: &[u8], kind: usize, rng: &mut Rng) -> Vec<u8> {
    let mut data = original.to_vec();
    let len = data.len();
    match kind {
        // A few random bit flips anywhere.
        0 => {
            for _ in 0..1 + rng.below(20) {
                let at = rng.below(len);
                data[at] ^= 1 << rng.below(8);
            }
        }
        // Damage in the header region, where parsers trust sizes and counts.
        1 => {
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(len.min(600));
                data[at] = rng.next() as u8;
            }
        }
        // Truncation at a random point.
        2 => data.truncate(rng.below(len)),
        // A run of random bytes overwriting the middle.
        3 => {
            let at = rng.below(len);
            let run = (1 + rng.below(2000)).min(len - at);
            for byte in &mut data[at..at + run] {
                *byte = rng.next() as u8;
            }
        }
        // Size fields pushed to extremes: 0xFF runs.
        4 => {
            let at = rng.below(len.min(4096));
            let run = (1 + rng.below(8)).min(len - at);
            data[at..at + run].fill(0xFF);
        }
        // A chunk of the file repeated or removed.
        _ => {
            let at = rng.below(len);
            let run = rng.below(len - at);
            if rng.below(2) == 0 {
                data.drain(at..at + run);
            } else {
                let copy = data[at..at + run.min(5000)].to_vec();
                data.splice(at..at, copy);
            }
        }
    }
    data
}

/// Decodes everything; returns frames or the error text.
fn drain(bytes: Vec<u8>) -> Result<u64, String> {
    let limits = Limits::default();
    let mut decoder =
        Decoder::open(Box::new(Cursor::new(bytes)), None, &limits).map_err(|e| e.to_string())?;
    let mut blocks = 0u64;
    loop {
        match decoder.next_block() {
            Ok(Some(_)) => blocks += 1,
            Ok(None) => return Ok(decoder.frames_decoded()),
            Err(e) => return Err(e.to_string()),
        }
        assert!(blocks < 1_000_000, "runaway decode");
    }
}

#[test]
fn mutated_fixtures_never_panic_or_hang() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let mut rng = Rng(0x5EED_F50A);
    let (mut decoded, mut failed) = (0, 0);
    for round in 0..200 {
        let name = SOURCES[round % SOURCES.len()];
        let original =
            std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("missing fixture {name}: {e}"));
        let kind = rng.below(6);
        let bytes = mutate(&original, kind, &mut rng);
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| drain(bytes)));
        let elapsed = started.elapsed();
        let result =
            outcome.unwrap_or_else(|_| panic!("round {round} ({name}, mutation {kind}) panicked"));
        assert!(
            elapsed < Duration::from_secs(10),
            "round {round} ({name}, mutation {kind}) took {elapsed:?}"
        );
        match result {
            Ok(frames) => {
                // Bounded output: no mutation may invent minutes of audio.
                assert!(frames < 48_000 * 60, "round {round}: {frames} frames");
                decoded += 1;
            }
            Err(text) => {
                assert!(
                    !text.contains('\n') && !text.is_empty(),
                    "round {round}: {text:?}"
                );
                failed += 1;
            }
        }
    }
    println!("decoded {decoded}, failed {failed}");
    // Both outcomes occur: the mutations are neither all harmless nor all fatal.
    assert!(
        decoded > 20 && failed > 5,
        "decoded {decoded}, failed {failed}"
    );
}
