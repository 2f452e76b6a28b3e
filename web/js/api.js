// The Sori HTTP API as the web app calls it: a bearer session kept in
// localStorage, problem+json errors turned into `ApiError`, uploads straight
// to the signed URL the API returns (with progress), and the event socket.
// Every URL the API hands out (audio, waveform, image, upload) is used as given.

const SESSION_KEY = 'sori.session';

/** A refused request: `status`, the problem's `detail`, and per-field `errors`. */
export class ApiError extends Error {
  constructor(status, problem) {
    const fields = (problem.errors || []).map((e) => `${e.field}: ${e.message}`);
    super([problem.detail || problem.title || `HTTP ${status}`, ...fields].join('; '));
    this.status = status;
    this.problem = problem;
  }
}

/** The signed-in user's `{token, user_id}`, or null. */
export const session = {
  get() {
    try { return JSON.parse(localStorage.getItem(SESSION_KEY)); } catch { return null; }
  },
  set(value) { localStorage.setItem(SESSION_KEY, JSON.stringify(value)); },
  clear() { localStorage.removeItem(SESSION_KEY); },
};

/** Calls the API; resolves to the JSON answer (null for 204), rejects with `ApiError`. */
export async function api(method, path, body, { idempotencyKey } = {}) {
  const headers = { accept: 'application/json' };
  const current = session.get();
  if (current) headers.authorization = `Bearer ${current.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? safeJson(text) : null;
  if (!response.ok) {
    if (response.status === 401 && current) {
      session.clear();
      window.dispatchEvent(new Event('sori:signed-out'));
    }
    throw new ApiError(response.status, data || {});
  }
  return data;
}

function safeJson(text) {
  try { return JSON.parse(text); } catch { return { detail: text }; }
}

/** A query string from the defined values of `params`. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * Uploads a recording or picture: asks for a signed URL, PUTs the bytes
 * there (XMLHttpRequest, for upload progress), and completes it so the
 * pipeline takes it. Resolves to the media id.
 */
export async function uploadMedia(blob, onProgress = () => {}) {
  const contentType = blob.type || 'application/octet-stream';
  const created = await api('POST', '/v1/media', { content_type: contentType, size_bytes: blob.size },
    { idempotencyKey: crypto.randomUUID() });
  await put(created.upload, blob, onProgress);
  await api('POST', `/v1/media/${created.id}/complete`);
  return created.id;
}

function put(upload, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(upload.method, upload.url);
    for (const [name, value] of Object.entries(upload.headers)) {
      // The browser sets the length itself and refuses to be told.
      if (name.toLowerCase() !== 'content-length') xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) { onProgress(1); resolve(); }
      else reject(new Error(`the upload was refused (${xhr.status})`));
    };
    xhr.onerror = () => reject(new Error('the upload failed: the network dropped'));
    xhr.send(blob);
  });
}

/**
 * Resolves when the media is `ready` (rejects with its reason when it
 * failed): on the socket's `media.ready` / `media.failed`, with polling as
 * the fallback for a socket that is down. `onState` hears each state seen.
 */
export function waitForMedia(mediaId, events, onState = () => {}) {
  return new Promise((resolve, reject) => {
    let done = false;
    let timer;
    const finish = (media) => {
      if (done) return;
      onState(media.state);
      if (media.state === 'ready') { done = true; stop(); resolve(media); }
      if (media.state === 'failed') {
        done = true; stop();
        reject(new Error(`processing failed: ${media.reason || 'unknown reason'}`));
      }
    };
    const check = async () => {
      try { finish(await api('GET', `/v1/media/${mediaId}`)); } catch (e) { console.warn(e.message); }
      if (!done) timer = setTimeout(check, 3000);
    };
    const onEvent = (data) => { if (data.media_id === mediaId) check(); };
    const stop = () => {
      clearTimeout(timer);
      events.off('media.ready', onEvent);
      events.off('media.failed', onEvent);
    };
    events.on('media.ready', onEvent);
    events.on('media.failed', onEvent);
    check();
  });
}

/**
 * The event socket (`GET /v1/ws`): `{type, data}` events dispatched to
 * listeners by type, reconnecting with backoff while signed in.
 */
export class Events {
  constructor() {
    this.listeners = new Map();
    this.socket = null;
    this.retry = 1000;
    this.closed = true;
    this.connecting = false;
  }

  /**
   * Opens the socket with a single-use ticket (`POST /v1/ws/ticket`), so the
   * bearer token never goes into a URL.
   */
  async connect() {
    this.closed = false;
    if (!session.get() || this.socket || this.connecting) return;
    this.connecting = true;
    let ticket;
    try {
      ({ ticket } = await api('POST', '/v1/ws/ticket'));
    } catch {
      this.connecting = false;
      this.retryLater();
      return;
    }
    this.connecting = false;
    if (this.closed) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}/v1/ws?ticket=${encodeURIComponent(ticket)}`);
    this.socket = socket;
    socket.onopen = () => { this.retry = 1000; this.emit('open', {}); };
    socket.onmessage = (e) => {
      const event = safeJson(e.data);
      if (event && event.type) this.emit(event.type, event.data);
    };
    socket.onclose = () => {
      this.socket = null;
      this.retryLater();
    };
  }

  retryLater() {
    if (this.closed) return;
    setTimeout(() => this.connect(), this.retry);
    this.retry = Math.min(this.retry * 2, 30000);
  }

  close() {
    this.closed = true;
    if (this.socket) this.socket.close();
    this.socket = null;
  }

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
  }

  off(type, fn) { this.listeners.get(type)?.delete(fn); }

  emit(type, data) {
    for (const fn of this.listeners.get(type) || []) fn(data);
  }
}
