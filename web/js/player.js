// A voice clip as every screen shows it: the waveform (the 100 bars at
// first, the waveform JSON at the scrubber's resolution once it is in
// view), play/pause, a scrubber that seeks, and elapsed/total time. The
// audio variant is the first this browser can play, and its URL is used
// exactly as the API gave it. One clip plays at a time.

import { h, clock } from './ui.js';

let playing = null;

/** Which of the API's `audio_urls` this browser plays: Ogg Opus, else WebM, else CAF. */
export function pickAudioUrl(clip) {
  const urls = clip.audio_urls || {};
  const probe = document.createElement('audio');
  const choices = [
    ['opus', 'audio/ogg; codecs="opus"'],
    ['webm', 'audio/webm; codecs="opus"'],
    ['caf', 'audio/x-caf; codecs="opus"'],
  ];
  for (const [variant, type] of choices) {
    if (urls[variant] && probe.canPlayType(type)) return urls[variant];
  }
  return clip.audio_url;
}

const waveforms = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (entry.isIntersecting) {
      waveforms.unobserve(entry.target);
      entry.target.dispatchEvent(new Event('sori:visible'));
    }
  }
}, { rootMargin: '200px' });

/**
 * A player for `clip` (`audio_url`, `audio_urls`, `waveform_url`, `bars`,
 * `duration_ms`). `onFirstPlay` runs once, the first time it starts
 * playing; `onEnded` each time it plays to the end. The element has a
 * `play()` method, for playing through a list.
 */
export function clipPlayer(clip, { label = 'clip', onFirstPlay, onEnded } = {}) {
  const total = (clip.duration_ms || 0) / 1000;
  const audio = h('audio', { preload: 'none' });
  const button = h('button', { type: 'button', class: 'play', 'aria-label': `Play ${label}` }, '▶');
  const canvas = h('canvas', { class: 'wave', 'aria-hidden': 'true', height: 48 });
  const scrubber = h('input', {
    type: 'range', min: 0, max: Math.max(1, Math.round(total * 10)), value: 0, step: 1,
    class: 'scrub', 'aria-label': `Seek in ${label}`,
  });
  const time = h('span', { class: 'time' }, `0:00 / ${clock(total)}`);
  const el = h('div', { class: 'player' }, button, h('div', { class: 'track' }, canvas, scrubber), time, audio);
  let peaks = (clip.bars || []).map((b) => b / 31);
  let started = false;

  const draw = () => {
    const width = Math.max(1, Math.round(canvas.clientWidth * devicePixelRatio));
    const height = Math.round(48 * devicePixelRatio);
    if (canvas.width !== width) canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext('2d');
    ctx.clearRect(0, 0, width, height);
    if (!peaks.length) return;
    const position = total ? audio.currentTime / total : 0;
    const styles = getComputedStyle(el);
    const step = width / peaks.length;
    for (let i = 0; i < peaks.length; i++) {
      const x = i * step;
      ctx.fillStyle = x / width < position ? styles.getPropertyValue('--played') : styles.getPropertyValue('--unplayed');
      const bar = Math.max(1, peaks[i] * height);
      ctx.fillRect(x, (height - bar) / 2, Math.max(1, step - (step > 3 ? 1 : 0)), bar);
    }
  };
  const show = () => {
    const now = audio.currentTime || 0;
    scrubber.value = Math.round(now * 10);
    const text = `${clock(now)} / ${clock(total)}`;
    time.textContent = text;
    scrubber.setAttribute('aria-valuetext', text);
    draw();
  };
  const ensureSource = () => {
    if (!audio.src) audio.src = pickAudioUrl(clip);
  };

  button.addEventListener('click', () => (audio.paused ? el.play() : audio.pause()));
  scrubber.addEventListener('input', () => {
    ensureSource();
    audio.currentTime = Number(scrubber.value) / 10;
    show();
  });
  audio.addEventListener('play', () => {
    if (playing && playing !== audio) playing.pause();
    playing = audio;
    button.textContent = '❚❚';
    button.setAttribute('aria-label', `Pause ${label}`);
    if (!started) { started = true; onFirstPlay?.(); }
  });
  audio.addEventListener('pause', () => {
    button.textContent = '▶';
    button.setAttribute('aria-label', `Play ${label}`);
  });
  audio.addEventListener('timeupdate', show);
  audio.addEventListener('ended', () => { show(); onEnded?.(); });
  audio.addEventListener('error', () => { time.textContent = 'cannot play this clip'; });
  canvas.addEventListener('sori:visible', async () => {
    draw();
    if (!clip.waveform_url) return;
    try {
      peaks = await fetchPeaks(clip.waveform_url, canvas.clientWidth / 3);
      draw();
    } catch (e) {
      console.warn(`waveform: ${e.message}`);
    }
  });
  waveforms.observe(canvas);
  new ResizeObserver(draw).observe(canvas);

  el.play = () => { ensureSource(); return audio.play().catch((e) => console.warn(e.message)); };
  el.audio = audio;
  return el;
}

/**
 * The waveform JSON (audiowaveform version 2: min/max pairs) reduced to
 * `columns` peaks between 0 and 1.
 */
async function fetchPeaks(url, columns) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const wave = await response.json();
  const channels = wave.channels || 1;
  const scale = 2 ** ((wave.bits || 8) - 1);
  const pairs = Math.floor(wave.data.length / (2 * channels));
  const n = Math.max(1, Math.min(pairs, Math.round(columns)));
  const peaks = new Array(n).fill(0);
  for (let p = 0; p < pairs; p++) {
    const i = Math.min(n - 1, Math.floor((p * n) / pairs));
    for (let c = 0; c < channels; c++) {
      const min = wave.data[2 * (p * channels + c)];
      const max = wave.data[2 * (p * channels + c) + 1];
      peaks[i] = Math.max(peaks[i], Math.abs(min) / scale, Math.abs(max) / scale);
    }
  }
  const top = Math.max(...peaks, 1e-6);
  return peaks.map((v) => v / top);
}
