// A voice post as a card (player, like, comments, add to a playlist), and
// the post's own screen with its comments, text or voice.

import { api, uploadMedia, waitForMedia } from '../api.js';
import { h, ago, busy, count, say, userLink, field, fill, onScrollEnd, VISIBILITY, visibilitySelect } from '../ui.js';
import { clipPlayer } from '../player.js';
import { recorderPanel } from '../recorder.js';

/** A post's card. `player.play()` is exposed for playing through a list. */
export function postCard(post, ctx, { onEnded } = {}) {
  const plays = h('span', { class: 'plays' }, count(post.play_count, 'play'));
  const player = clipPlayer(post, {
    label: `voice post by ${post.author.display_name}`,
    // A play is counted once per listener per day; the card asks once.
    onFirstPlay: () => api('POST', `/v1/posts/${post.id}/plays`)
      .then((r) => { plays.textContent = count(r.play_count, 'play'); })
      .catch((e) => console.warn(e.message)),
    onEnded,
  });
  const like = h('button', { type: 'button', class: 'like', 'aria-pressed': String(post.liked_by_me) });
  // A toggle button: its name stays "Like", `aria-pressed` says whether it is on.
  const showLike = () => {
    like.replaceChildren(h('span', { 'aria-hidden': 'true' }, '♥ '), `Like ${post.like_count}`);
    like.setAttribute('aria-pressed', String(post.liked_by_me));
  };
  showLike();
  like.addEventListener('click', () => busy(like, async () => {
    const liked = !post.liked_by_me;
    await api(liked ? 'PUT' : 'DELETE', `/v1/posts/${post.id}/like`);
    post.liked_by_me = liked;
    post.like_count += liked ? 1 : -1;
    showLike();
  }));
  const tags = post.tags.map((t) => h('a', { href: `#/explore/${encodeURIComponent(t)}`, class: 'tag' }, `#${t}`));
  const card = h('article', { class: 'post', 'aria-label': `Voice post by ${post.author.display_name}` },
    h('header', {}, userLink(post.author),
      h('span', { class: 'meta' },
        h('time', { datetime: new Date(post.created_at).toISOString() }, ago(post.created_at)),
        post.visibility !== 'public' ? h('span', { class: 'audience' }, ` · ${VISIBILITY[post.visibility]}`) : null,
        post.edited_at ? h('span', { class: 'edited' }, ' · edited') : null)),
    post.caption ? h('p', { class: 'caption' }, post.caption) : null,
    tags.length ? h('p', { class: 'tags' }, tags) : null,
    post.state === 'ready' ? player : h('p', { class: 'state' }, `Processing (${post.state})…`),
    h('footer', {},
      like,
      h('a', { href: `#/posts/${post.id}`, class: 'comments' }, `Comments (${post.comment_count})`),
      addToPlaylist(post, ctx),
      post.author.id === ctx.me.id ? editButton(post, ctx, () => card) : null,
      plays));
  card.player = player;
  return card;
}

/** The author's "Edit": the caption and who hears the post, changed in place. */
function editButton(post, ctx, card) {
  const button = h('button', { type: 'button', 'aria-expanded': 'false' }, 'Edit');
  button.addEventListener('click', () => {
    const caption = h('textarea', { name: 'caption', maxlength: 500, rows: 2 });
    caption.value = post.caption || '';
    const visibility = visibilitySelect('visibility', post.visibility);
    const save = h('button', { type: 'submit' }, 'Save changes');
    const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
    const form = h('form', { class: 'stack edit-post', 'aria-label': 'Edit post' },
      field('Caption', caption), field('Who hears it', visibility), h('p', {}, save, ' ', cancel));
    const close = () => { form.remove(); button.hidden = false; button.setAttribute('aria-expanded', 'false'); button.focus(); };
    cancel.addEventListener('click', close);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      busy(save, async () => {
        const updated = await api('PATCH', `/v1/posts/${post.id}`, { caption: caption.value, visibility: visibility.value });
        card().replaceWith(postCard(updated, ctx));
        say('Post updated.');
      });
    });
    button.hidden = true;
    button.setAttribute('aria-expanded', 'true');
    card().append(form);
    caption.focus();
  });
  return button;
}

/** "Add to playlist": picks one of the caller's playlists. */
function addToPlaylist(post, ctx) {
  const button = h('button', { type: 'button', 'aria-expanded': 'false' }, 'Add to playlist');
  const box = h('span', { class: 'add-to' });
  const wrap = h('span', {}, button, box);
  button.addEventListener('click', () => busy(button, async () => {
    if (box.childElementCount) { box.replaceChildren(); button.setAttribute('aria-expanded', 'false'); return; }
    const lists = await api('GET', `/v1/users/${ctx.me.id}/playlists?limit=50`);
    if (!lists.items.length) { say('Create a playlist first (Playlists).'); return; }
    const select = h('select', { 'aria-label': 'Playlist' },
      lists.items.map((l) => h('option', { value: l.id }, l.title)));
    const add = h('button', { type: 'button' }, 'Add');
    add.addEventListener('click', () => busy(add, async () => {
      await api('POST', `/v1/playlists/${select.value}/items`, { post_id: post.id });
      say(`Added to ${select.selectedOptions[0].textContent}.`);
      box.replaceChildren();
      button.setAttribute('aria-expanded', 'false');
    }));
    box.replaceChildren(select, add);
    button.setAttribute('aria-expanded', 'true');
    select.focus();
  }));
  return wrap;
}

/** `#/posts/{id}`: the post and its comments, with a text or voice reply. */
export async function postScreen([id], ctx) {
  const post = await api('GET', `/v1/posts/${id}`);
  const list = h('ol', { class: 'comments-list', 'aria-label': 'Comments' });
  const sentinel = h('div', { class: 'sentinel' });
  let cursor = null;
  onScrollEnd(sentinel, async () => {
    const page = await api('GET', `/v1/posts/${id}/comments?limit=20${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    for (const c of page.items) list.append(commentItem(c));
    cursor = page.next_cursor;
    return Boolean(cursor);
  }, ctx.signal);
  return h('section', { 'aria-labelledby': 'post-title' },
    h('h1', { id: 'post-title' }, 'Voice post'),
    postCard(post, ctx),
    h('h2', {}, 'Comments'),
    commentForm(post, ctx, (c, old) => {
      const item = commentItem(c);
      if (old) old.replaceWith(item); else list.append(item);
      return item;
    }),
    list, sentinel);
}

function commentItem(c) {
  const body = c.kind === 'voice'
    ? (c.state === 'ready' ? clipPlayer(c, { label: `voice comment by ${c.author.display_name}` }) : h('p', { class: 'state' }, 'Voice comment processing…'))
    : h('p', {}, c.text);
  return h('li', { class: 'comment' }, h('header', {}, userLink(c.author), ' ', h('time', {}, ago(c.created_at))), body);
}

/**
 * A text box and a voice recorder. `show(comment, oldElement?)` puts a new
 * comment on screen (or replaces its processing placeholder) and returns its element.
 */
function commentForm(post, ctx, show) {
  const text = h('input', { type: 'text', name: 'comment', maxlength: 1000, autocomplete: 'off' });
  const send = h('button', { type: 'submit' }, 'Comment');
  const form = h('form', { class: 'comment-form' }, field('Write a comment', text), send);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!text.value.trim()) return;
    busy(send, async () => {
      show(await api('POST', `/v1/posts/${post.id}/comments`, { text: text.value }, { idempotencyKey: crypto.randomUUID() }));
      text.value = '';
    });
  });
  const status = h('p', { class: 'status', 'aria-live': 'polite' });
  const progress = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'Upload progress' });
  const sendVoice = h('button', { type: 'button', disabled: true }, 'Send voice comment');
  const recorder = recorderPanel({ label: 'voice comment', maxSeconds: 120, onChange: (blob) => { sendVoice.disabled = !blob; } });
  sendVoice.addEventListener('click', () => busy(sendVoice, async () => {
    progress.hidden = false;
    const mediaId = await uploadMedia(recorder.blob(), (p) => { progress.value = p; });
    fill(status, 'Processing your voice comment…');
    const comment = await api('POST', `/v1/posts/${post.id}/comments`, { media_id: mediaId }, { idempotencyKey: crypto.randomUUID() });
    const placeholder = show(comment);
    progress.hidden = true;
    recorder.reset();
    const media = await waitForMedia(mediaId, ctx.events);
    const { state, duration_ms, bars, audio_url, audio_urls, waveform_url } = media;
    show({ ...comment, state, duration_ms, bars, audio_url, audio_urls, waveform_url }, placeholder);
    fill(status, 'Voice comment sent.');
  }).then(() => { sendVoice.disabled = !recorder.blob(); }));
  return h('div', { class: 'reply' }, form,
    h('div', { class: 'voice-reply', role: 'group', 'aria-label': 'Voice comment' }, recorder, sendVoice, progress, status));
}
