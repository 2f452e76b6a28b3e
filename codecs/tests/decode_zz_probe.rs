#![allow(clippy::unwrap_used)]
use sori_codecs::decode::Decoder;
use sori_codecs::Limits;
use std::path::Path;
use std::process::Command;
#[test]
fn probe() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".md") {
            continue;
        }
        match Decoder::open_path(&p, &Limits::default()) {
            Err(e) => println!("{name}: ERR {e:?}"),
            Ok(mut d) => {
                let info = d.info().clone();
                let mut all = Vec::new();
                let res = loop {
                    match d.next_block() {
                        Ok(Some(b)) => all.extend_from_slice(b),
                        Ok(None) => break Ok(()),
                        Err(e) => break Err(e),
                    }
                };
                let ch = info.channels as usize;
                let out = Command::new("ffmpeg")
                    .args(["-v", "error", "-i"])
                    .arg(&p)
                    .args(["-map", "0:a:0", "-f", "f32le", "-acodec", "pcm_f32le", "-"])
                    .output()
                    .unwrap();
                let refs: Vec<f32> = out
                    .stdout
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                let n = all.len().min(refs.len());
                let (mut e, mut s) = (0.0f64, 0.0f64);
                for i in 0..n {
                    e += ((all[i] - refs[i]) as f64).powi(2);
                    s += (refs[i] as f64).powi(2);
                }
                println!("{name}: {} {} {} Hz {} ch {:?} hint {:?} frames {} ffmpeg {} skipped {} end {:?} snr {:.1} dB", info.container, info.codec, info.sample_rate, ch, info.speakers.len(), info.duration_hint, d.frames_decoded(), refs.len()/ch.max(1), d.skipped_packets(), res.err(), 10.0*(s/e.max(1e-20)).log10());
            }
        }
    }
}
