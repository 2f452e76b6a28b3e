//! Probe + demux + decode of arbitrary bytes, with the production limits,
//! through the downmix and the resampler: the front of every job.
//!
//! Fails (and libFuzzer saves the input) when anything panics past the
//! decoder's guards, when an error is not a one-line input reason, or when
//! the decoder hands out more audio than the duration limit allows or blocks
//! that are not whole frames.
//!
//! symphonia panics on some hostile inputs; the decoder catches those and
//! refuses the file with a reason, which is the behaviour under test. So a
//! panic counts as a crash only when it escapes the decoder: libfuzzer-sys's
//! hook (which aborts on any panic, even a caught one) is replaced by one
//! that remembers the message, printed if the panic reaches this target.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sori_codecs::decode::Decoder;
use sori_codecs::downmix::Downmixer;
use sori_codecs::resample::Resampler;
use sori_codecs::Limits;
use std::cell::RefCell;
use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

fuzz_target!(|data: &[u8]| {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            LAST_PANIC.with(|last| *last.borrow_mut() = info.to_string());
        }))
    });
    if catch_unwind(AssertUnwindSafe(|| decode_all(data))).is_err() {
        LAST_PANIC.with(|last| eprintln!("panic escaped the decoder: {}", last.borrow()));
        std::process::abort();
    }
});

fn decode_all(data: &[u8]) {
    let limits = Limits::default();
    let mut decoder = match Decoder::open(Box::new(Cursor::new(data.to_vec())), None, &limits) {
        Ok(decoder) => decoder,
        Err(e) => return check_error(&e),
    };
    let info = decoder.info().clone();
    assert!(
        info.channels >= 1 && info.channels <= limits.max_channels,
        "{info:?}"
    );
    assert!(
        (limits.min_sample_rate..=limits.max_sample_rate).contains(&info.sample_rate),
        "{info:?}"
    );
    let channels = usize::from(info.channels);
    let max_frames = limits.max_duration.as_secs() * u64::from(info.sample_rate);
    let mut downmix = Downmixer::new(&info.speakers);
    assert_eq!(downmix.channels(), channels, "{info:?}");
    let mut resampler = Resampler::new(info.sample_rate).expect("a validated rate resamples");
    let (mut mono, mut resampled) = (Vec::new(), Vec::new());
    loop {
        match decoder.next_block() {
            Ok(Some(block)) => {
                assert_eq!(block.len() % channels, 0, "partial frame in a block");
                downmix.process(block, &mut mono);
                resampled.clear();
                if let Err(e) = resampler.process(&mono, &mut resampled) {
                    panic!("resampler failed on decoded audio: {e}");
                }
            }
            Ok(None) => break,
            Err(e) => return check_error(&e),
        }
        // The limit holds while decoding, whatever the header said.
        assert!(decoder.frames_decoded() <= max_frames + (1 << 16));
    }
    resampled.clear();
    resampler.finish(&mut resampled).expect("resampler flush");
}

/// Every refusal is the input's fault, with a one-line reason for the user.
fn check_error(e: &sori_codecs::CodecError) {
    let text = e.to_string();
    assert!(e.is_input_error(), "not an input error: {text}");
    assert!(!text.is_empty() && !text.contains('\n'), "{text:?}");
}
