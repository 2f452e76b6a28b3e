//! Fuzz target: the Ogg, CAF and WebM muxers, read back by symphonia (see
//! `common/mux_round_trip.rs` for what is built and checked).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../common/mux_round_trip.rs"]
mod mux_round_trip;

fuzz_target!(|data: &[u8]| mux_round_trip::run(data));
