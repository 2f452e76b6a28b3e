// A web app on another origin, in real Chromium (Debian's, driven through
// playwright-core; no browser is downloaded), goes the user's whole path
// against a running Sori API: sign up, record from the fake microphone with
// MediaRecorder, POST /v1/media, PUT the recording to the returned URL,
// complete, wait for ready, post, read the feed, then play the item's
// `audio_url` as given in an <audio> element to `ended` (its duration must
// be finite), seek, and fetch a byte range of it cross-origin.
//
// Run by tests/browser_playback.rs:
//   node playback.mjs PAGE_ORIGIN API_BASE FAKE_MIC_WAV RECORD_MS < page socket
// Prints one JSON line with what it measured; exits non-zero with the reason
// on stderr when any step fails.

import { runOnAppPage } from './chromium.mjs';

const [pageOrigin, apiBase, wav, recordMs] = process.argv.slice(2);
if (!apiBase || !pageOrigin || !wav || !recordMs) {
  console.error('usage: node playback.mjs PAGE_ORIGIN API_BASE FAKE_MIC_WAV RECORD_MS');
  process.exit(2);
}
await runOnAppPage(pageOrigin, wav,
  (page) => page.evaluate(userPath, { api: apiBase, recordMs: Number(recordMs) }));

// Runs inside the page: everything a web app does, with fetch and the DOM.
async function userPath({ api, recordMs }) {
  const call = (method, path, token, body) => window.apiCall(api, method, path, token, body);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const event = (el, name, ms) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${name} in ${ms} ms (error ${el.error && el.error.code})`)), ms);
    el.addEventListener(name, () => { clearTimeout(timer); resolve(); }, { once: true });
    el.addEventListener('error', () => { clearTimeout(timer); reject(new Error(`media error ${el.error && el.error.code}: ${el.error && el.error.message}`)); }, { once: true });
  });

  const handle = `web${Date.now() % 100000000}`;
  const { token } = await call('POST', '/v1/auth/signup', null,
    { handle, password: 'correct horse battery', display_name: 'Web' });

  // Record from the (fake) microphone, as the app's record button would.
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const recorder = new MediaRecorder(stream, { mimeType: 'audio/webm;codecs=opus' });
  const chunks = [];
  recorder.ondataavailable = (e) => chunks.push(e.data);
  const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
  recorder.start(250);
  await sleep(recordMs);
  recorder.stop();
  await stopped;
  stream.getTracks().forEach((t) => t.stop());
  const recording = new Blob(chunks, { type: recorder.mimeType });

  // Upload straight to the store through the signed URL, then complete.
  const created = await call('POST', '/v1/media', token,
    { content_type: recording.type, size_bytes: recording.size });
  const upload = created.upload;
  const headers = {};
  for (const [name, value] of Object.entries(upload.headers)) {
    if (name.toLowerCase() !== 'content-length') headers[name] = value; // the browser sets it
  }
  const put = await fetch(upload.url, { method: upload.method, headers, body: recording });
  if (!put.ok) throw new Error(`upload PUT: ${put.status} ${await put.text()}`);
  await call('POST', `/v1/media/${created.id}/complete`, token);
  const started = performance.now();
  let media;
  for (;;) {
    media = await call('GET', `/v1/media/${created.id}`, token);
    if (media.state === 'ready') break;
    if (media.state === 'failed') throw new Error(`processing failed: ${media.reason}`);
    if (performance.now() - started > 60000) throw new Error(`not ready after 60 s: ${media.state}`);
    await sleep(100);
  }
  const readyMs = performance.now() - started;

  const post = await call('POST', '/v1/posts', token, { media_id: created.id, caption: 'from the browser' });
  const feed = await call('GET', '/v1/feed', token);
  const item = feed.items.find((i) => i.id === post.id);
  if (!item) throw new Error('the post is not in the feed');
  if (!item.audio_url) throw new Error(`no audio_url in ${JSON.stringify(item)}`);

  // Play the URL as given: no header can be added to an <audio> element.
  const audio = document.createElement('audio');
  audio.preload = 'auto';
  document.body.appendChild(audio);
  const metadata = event(audio, 'loadedmetadata', 20000);
  audio.src = item.audio_url;
  await metadata;
  const ended = event(audio, 'ended', 60000);
  await audio.play();
  await ended;
  const duration = audio.duration;
  // Seek back into the middle, as a listener scrubbing would.
  const target = duration / 2;
  const seeked = event(audio, 'seeked', 20000);
  audio.currentTime = target;
  await seeked;
  const seekedTo = audio.currentTime;
  const seekable = audio.seekable.length ? audio.seekable.end(0) : 0;

  // The same URL in a cross-origin fetch, one byte range.
  const ranged = await fetch(item.audio_url, { headers: { range: 'bytes=0-3' } });
  const magic = new TextDecoder().decode(await ranged.arrayBuffer());

  return {
    recorded_type: recording.type,
    recorded_bytes: recording.size,
    ready_ms: Math.round(readyMs),
    item_duration_ms: item.duration_ms,
    audio_url: item.audio_url,
    duration,
    ended: true,
    seeked_to: seekedTo,
    seekable_end: seekable,
    range_status: ranged.status,
    range_magic: magic,
  };
}
