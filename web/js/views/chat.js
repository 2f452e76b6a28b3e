// Chat: the room list (unread counts, presence) and a conversation with
// live delivery over the socket, text, voice and image messages, read
// markers ("Seen"), and editing (15 minutes) and unsending one's own.

import { api, query, uploadMedia, waitForMedia } from '../api.js';
import { h, ago, busy, field, fill, say } from '../ui.js';
import { clipPlayer } from '../player.js';
import { recorderPanel } from '../recorder.js';

/** "online" or "last seen …" of a presence. */
function presenceText(p) {
  if (p.online) return 'online';
  return p.last_seen ? `last seen ${ago(p.last_seen)}` : 'offline';
}

function presenceDot(userId, ctx) {
  const dot = h('span', { class: 'presence', dataset: { user: userId } }, '…');
  const show = (p) => { dot.textContent = presenceText(p); dot.classList.toggle('online', p.online); };
  api('GET', `/v1/users/${userId}/presence`).then(show).catch(() => { dot.textContent = ''; });
  ctx.listen('presence', (p) => { if (p.user_id === userId) show(p); });
  return dot;
}

/** How long after sending a message's text may be edited (the server's window). */
const EDIT_WINDOW_MS = 15 * 60 * 1000;

function preview(m) {
  if (!m) return 'No messages yet';
  if (m.kind === 'voice') return '🎤 Voice message';
  if (m.kind === 'image') return '🖼 Photo';
  return m.text;
}

/** `#/chats`: rooms by last activity; refreshed when a message arrives. */
export async function chatsScreen(_params, ctx) {
  const list = h('ul', { class: 'rooms', 'aria-label': 'Conversations' });
  const load = async () => {
    const page = await api('GET', '/v1/chats?limit=50');
    fill(list, page.items.length ? page.items.map((room) => h('li', { class: room.unread_count ? 'room unread' : 'room' },
      h('a', { href: `#/chats/${room.id}` },
        h('strong', {}, room.other.display_name), ' ',
        room.unread_count ? h('span', { class: 'badge' }, String(room.unread_count), h('span', { class: 'sr' }, ' unread')) : null),
      ' ', presenceDot(room.other.id, ctx),
      h('p', { class: 'last' }, preview(room.last_message), room.last_message ? ` · ${ago(room.last_message.created_at)}` : '')))
      : h('li', { class: 'empty' }, 'No conversations yet: open someone\'s profile and choose Message.'));
  };
  await load();
  for (const kind of ['message.new', 'message.deleted']) ctx.listen(kind, () => load().catch((e) => console.warn(e.message)));
  return h('section', { 'aria-labelledby': 'chats-title' }, h('h1', { id: 'chats-title' }, 'Chats'), list);
}

/** `#/chats/{id}`: the conversation. */
export async function conversationScreen([id], ctx) {
  const rooms = await api('GET', '/v1/chats?limit=100');
  const room = rooms.items.find((r) => r.id === id);
  if (!room) throw new Error('This conversation is not among yours.');
  const log = h('ol', { class: 'messages' });
  const older = h('button', { type: 'button', hidden: true, class: 'secondary' }, 'Older messages');
  const seen = new Map();
  let cursor = null;
  let readUpTo = null;

  const bubble = (m) => {
    const mine = m.sender_id === ctx.me.id;
    const body = [];
    if (m.kind === 'voice' && m.voice) {
      body.push(m.voice.state === 'ready'
        ? clipPlayer(m.voice, { label: `voice message from ${mine ? 'you' : room.other.display_name}` })
        : h('p', { class: 'state' }, 'Voice message processing…'));
    }
    if (m.kind === 'image' && m.image?.image_url) {
      body.push(h('img', { src: m.image.image_url, alt: m.text || 'A photo', width: m.image.width, height: m.image.height, loading: 'lazy' }));
    }
    if (m.text && m.kind === 'text') body.push(h('p', {}, m.text));
    else if (m.text) body.push(h('p', { class: 'caption' }, m.text));
    return h('li', { class: mine ? 'msg mine' : 'msg theirs', dataset: { id: m.id } },
      body, h('time', {}, ago(m.created_at)), m.edited_at ? ' · edited' : null,
      mine ? h('span', { class: 'seen', hidden: true }, ' · Seen') : null,
      mine ? actions(m) : null);
  };
  // Edit (text messages, within the window) and unsend, on my messages.
  const actions = (m) => {
    const unsend = h('button', { type: 'button', class: 'link', 'aria-label': 'Unsend message' }, 'Unsend');
    unsend.addEventListener('click', () => busy(unsend, async () => {
      await api('DELETE', `/v1/chats/${id}/messages/${m.id}`);
      remove(m.id);
    }));
    if (m.kind !== 'text' || Date.now() - m.created_at > EDIT_WINDOW_MS) return h('span', { class: 'actions' }, ' ', unsend);
    const edit = h('button', { type: 'button', class: 'link', 'aria-label': 'Edit message' }, 'Edit');
    edit.addEventListener('click', () => {
      const input = h('input', { name: 'edit', value: m.text, maxlength: 4000, autocomplete: 'off' });
      const save = h('button', { type: 'submit' }, 'Save');
      const form = h('form', { class: 'inline' }, field('New text', input), save);
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        if (!input.value.trim()) return;
        busy(save, async () => replace(await api('PATCH', `/v1/chats/${id}/messages/${m.id}`, { text: input.value })));
      });
      seen.get(m.id)?.append(form);
      input.focus();
    });
    return h('span', { class: 'actions' }, ' ', edit, ' ', unsend);
  };
  const replace = (m) => {
    const old = seen.get(m.id);
    if (!old) return;
    const el = bubble(m);
    seen.set(m.id, el);
    old.replaceWith(el);
    showSeen();
  };
  const remove = (messageId) => {
    seen.get(messageId)?.remove();
    seen.delete(messageId);
    showSeen();
  };
  const showSeen = () => {
    // "Seen" under my newest message at or before the other member's read position.
    const items = [...log.children];
    const upTo = items.findIndex((li) => li.dataset.id === readUpTo);
    let shown = false;
    for (let i = items.length - 1; i >= 0; i--) {
      const mark = items[i].querySelector('.seen');
      if (!mark) continue;
      mark.hidden = shown || upTo < 0 || i > upTo;
      if (!mark.hidden) shown = true;
    }
  };
  const markRead = () => {
    const theirs = [...log.children].filter((li) => li.classList.contains('theirs'));
    const newest = theirs[theirs.length - 1];
    if (newest) api('POST', `/v1/chats/${id}/read`, { message_id: newest.dataset.id }).then(ctx.refreshChats).catch((e) => console.warn(e.message));
  };
  const add = (m, { atTop = false } = {}) => {
    if (seen.has(m.id)) return;
    const el = bubble(m);
    seen.set(m.id, el);
    if (atTop) log.prepend(el); else log.append(el);
  };
  const loadOlder = async () => {
    const page = await api('GET', `/v1/chats/${id}/messages${query({ limit: 30, cursor })}`);
    for (const m of page.items) add(m, { atTop: true });
    cursor = page.next_cursor;
    older.hidden = !cursor;
    if (page.read_up_to && readUpTo === null) readUpTo = page.read_up_to;
    showSeen();
  };
  older.addEventListener('click', () => busy(older, loadOlder));
  await loadOlder();
  markRead();

  ctx.listen('message.new', (m) => {
    if (m.room_id !== id) return;
    add(m);
    log.lastElementChild?.scrollIntoView({ block: 'end' });
    if (m.sender_id !== ctx.me.id) markRead();
    showSeen();
  });
  ctx.listen('message.edited', (m) => { if (m.room_id === id) replace(m); });
  ctx.listen('message.deleted', (d) => { if (d.room_id === id) remove(d.id); });
  ctx.listen('message.read', (r) => {
    if (r.room_id === id && r.user_id === room.other.id) { readUpTo = r.message_id; showSeen(); }
  });

  const send = async (body) => {
    const m = await api('POST', `/v1/chats/${id}/messages`, { client_id: crypto.randomUUID(), ...body });
    add(m);
    showSeen();
    log.lastElementChild?.scrollIntoView({ block: 'end' });
  };
  const screen = h('section', { 'aria-labelledby': 'chat-title', class: 'conversation' },
    h('h1', { id: 'chat-title' }, h('a', { href: `#/users/${room.other.id}` }, room.other.display_name), ' ', presenceDot(room.other.id, ctx)),
    older, h('div', { role: 'log', 'aria-label': `Messages with ${room.other.display_name}` }, log),
    composer(send, ctx));
  requestAnimationFrame(() => log.lastElementChild?.scrollIntoView({ block: 'end' }));
  return screen;
}

/** Text, voice and image sending; voice and pictures are sent once processed. */
function composer(send, ctx) {
  const text = h('input', { name: 'message', autocomplete: 'off', maxlength: 4000 });
  const sendText = h('button', { type: 'submit' }, 'Send');
  const form = h('form', { class: 'inline composer' }, field('Message', text), sendText);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!text.value.trim()) return;
    busy(sendText, async () => { await send({ kind: 'text', text: text.value }); text.value = ''; text.focus(); });
  });
  const status = h('p', { class: 'status', 'aria-live': 'polite' });
  const progress = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'Upload progress' });
  const attach = async (blob, kind) => {
    progress.hidden = false;
    fill(status, 'Uploading…');
    const mediaId = await uploadMedia(blob, (p) => { progress.value = p; });
    progress.hidden = true;
    fill(status, 'Processing…');
    await waitForMedia(mediaId, ctx.events);
    await send({ kind, media_id: mediaId });
    fill(status, '');
  };
  const sendVoice = h('button', { type: 'button', disabled: true }, 'Send voice message');
  const recorder = recorderPanel({ label: 'voice message', maxSeconds: 120, onChange: (b) => { sendVoice.disabled = !b; } });
  sendVoice.addEventListener('click', () => busy(sendVoice, async () => {
    const blob = recorder.blob();
    recorder.reset();
    await attach(blob, 'voice');
  }).then(() => { sendVoice.disabled = !recorder.blob(); }));
  const picture = h('input', { type: 'file', accept: 'image/jpeg,image/png,image/webp' });
  picture.addEventListener('change', () => {
    const file = picture.files[0];
    if (!file) return;
    attach(file, 'image').catch((e) => say(e.message, 'error')).finally(() => { picture.value = ''; });
  });
  return h('div', { class: 'compose-chat' }, form,
    h('div', { class: 'row' }, recorder, sendVoice),
    field('Send a photo', picture), progress, status);
}
