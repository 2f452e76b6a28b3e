// Recording a voice clip in the browser: MediaRecorder (WebM/Opus where
// supported, MP4 elsewhere — Safari), a level meter and a timer while
// recording, then a preview to listen to before sending.

import { h, clock, say } from './ui.js';

/** The first recording type this browser's MediaRecorder supports. */
function recordingType() {
  const types = ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus', 'audio/mp4', 'audio/webm'];
  return types.find((t) => window.MediaRecorder && MediaRecorder.isTypeSupported(t)) || '';
}

/**
 * A recorder panel. `onChange(blob|null)` hears each finished recording
 * (and null when it is discarded). Recording stops by itself after
 * `maxSeconds`.
 */
export function recorderPanel({ label = 'voice clip', maxSeconds = 300, onChange = () => {} } = {}) {
  const button = h('button', { type: 'button', class: 'record' }, `Record ${label}`);
  const meter = h('meter', { min: 0, max: 1, value: 0, 'aria-label': 'Microphone level' });
  const timer = h('span', { class: 'timer', role: 'timer', 'aria-label': 'Recording time' }, '0:00');
  const preview = h('div', { class: 'preview' });
  const el = h('div', { class: 'recorder' }, h('div', { class: 'row' }, button, meter, timer), preview);
  let recorder = null;
  let blob = null;

  const start = async () => {
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (e) {
      say(`The microphone is not available: ${e.message}`, 'error');
      return;
    }
    const type = recordingType();
    recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
    const chunks = [];
    const levels = levelMeter(stream, meter);
    const began = performance.now();
    const tick = setInterval(() => {
      const seconds = (performance.now() - began) / 1000;
      timer.textContent = clock(seconds);
      if (seconds >= maxSeconds) recorder.stop();
    }, 250);
    recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
    recorder.onstop = () => {
      clearInterval(tick);
      levels.stop();
      stream.getTracks().forEach((t) => t.stop());
      blob = new Blob(chunks, { type: recorder.mimeType || type });
      recorder = null;
      button.textContent = `Record ${label} again`;
      button.setAttribute('aria-pressed', 'false');
      const url = URL.createObjectURL(blob);
      preview.replaceChildren(h('audio', { controls: true, src: url, 'aria-label': `Preview of the ${label}` }));
      onChange(blob);
    };
    recorder.start(250);
    blob = null;
    onChange(null);
    preview.replaceChildren();
    button.textContent = 'Stop recording';
    button.setAttribute('aria-pressed', 'true');
  };

  button.addEventListener('click', () => (recorder ? recorder.stop() : start()));
  el.reset = () => { blob = null; preview.replaceChildren(); timer.textContent = '0:00'; button.textContent = `Record ${label}`; };
  el.blob = () => blob;
  return el;
}

/** Drives `meter` from the stream's level until `stop()`. */
function levelMeter(stream, meter) {
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 1024;
  context.createMediaStreamSource(stream).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  let frame;
  const update = () => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    const rms = Math.sqrt(sum / samples.length);
    // −60 dBFS … 0 dBFS onto 0 … 1.
    meter.value = Math.max(0, Math.min(1, 1 + (20 * Math.log10(rms + 1e-9)) / 60));
    frame = requestAnimationFrame(update);
  };
  update();
  return {
    stop() { cancelAnimationFrame(frame); meter.value = 0; context.close(); },
  };
}
