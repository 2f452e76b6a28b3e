// Playlists: the caller's list and a form to create one; a playlist's
// screen plays its posts through in order and lets the owner reorder them
// by dragging (or with the Up/Down buttons, from the keyboard) and remove them.

import { api } from '../api.js';
import { h, busy, count, field, say } from '../ui.js';
import { postCard } from './posts.js';

/** `#/playlists`: the caller's playlists, newest first, and a new one. */
export async function playlistsScreen(_params, ctx) {
  const page = await api('GET', `/v1/users/${ctx.me.id}/playlists?limit=100`);
  const title = h('input', { name: 'title', required: true, maxlength: 100 });
  const isPublic = h('input', { type: 'checkbox', name: 'public' });
  const create = h('button', { type: 'submit' }, 'Create playlist');
  const form = h('form', { class: 'inline' }, field('New playlist', title),
    h('label', { class: 'check' }, isPublic, ' Public'), create);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(create, async () => {
      const made = await api('POST', '/v1/playlists', { title: title.value, public: isPublic.checked });
      location.hash = `#/playlists/${made.id}`;
    });
  });
  const list = page.items.length
    ? h('ul', { class: 'playlists' }, page.items.map((l) => h('li', {},
      h('a', { href: `#/playlists/${l.id}` }, l.title), ` · ${count(l.item_count, 'post')}${l.public ? ' · public' : ''}`)))
    : h('p', { class: 'empty' }, 'No playlists yet.');
  return h('section', { 'aria-labelledby': 'playlists-title' }, h('h1', { id: 'playlists-title' }, 'Playlists'), form, list);
}

/** `#/playlists/{id}`: play through, reorder, remove. */
export async function playlistScreen([id], ctx) {
  const playlist = await api('GET', `/v1/playlists/${id}`);
  const mine = playlist.owner.id === ctx.me.id;
  const list = h('ol', { class: 'playlist', 'aria-label': 'Posts in this playlist' });
  const rows = () => [...list.children];
  const playFrom = (index) => rows()[index]?.card.player.play();

  const save = async () => {
    await api('PUT', `/v1/playlists/${id}/items`, { post_ids: rows().map((r) => r.dataset.post) });
    say('Order saved.');
  };
  const move = (row, offset) => {
    const all = rows();
    const to = all.indexOf(row) + offset;
    if (to < 0 || to >= all.length) return;
    if (offset < 0) all[to].before(row); else all[to].after(row);
    save().catch((e) => say(e.message, 'error'));
  };

  playlist.items.forEach((post, index) => {
    const card = postCard(post, ctx, { onEnded: () => playFrom(rows().indexOf(row) + 1) });
    const row = h('li', { dataset: { post: post.id }, draggable: mine ? 'true' : null }, card);
    row.card = card;
    if (mine) {
      const label = post.caption || `post ${index + 1}`;
      const up = h('button', { type: 'button', 'aria-label': `Move "${label}" up` }, '↑');
      const down = h('button', { type: 'button', 'aria-label': `Move "${label}" down` }, '↓');
      const remove = h('button', { type: 'button', 'aria-label': `Remove "${label}" from the playlist` }, 'Remove');
      up.addEventListener('click', () => { move(row, -1); up.focus(); });
      down.addEventListener('click', () => { move(row, 1); down.focus(); });
      remove.addEventListener('click', () => busy(remove, async () => {
        await api('DELETE', `/v1/playlists/${id}/items/${post.id}`);
        row.remove();
      }));
      row.append(h('div', { class: 'reorder' }, up, down, remove));
      dragToReorder(row, list, save);
    }
    list.append(row);
  });

  const playAll = h('button', { type: 'button' }, 'Play all');
  playAll.addEventListener('click', () => playFrom(0));
  return h('section', { 'aria-labelledby': 'playlist-title' },
    h('h1', { id: 'playlist-title' }, playlist.title),
    playlist.description ? h('p', {}, playlist.description) : null,
    h('p', {}, `${count(playlist.item_count, 'post')} by `, playlist.owner.display_name, ' ',
      playlist.items.length ? playAll : null),
    playlist.items.length ? list : h('p', { class: 'empty' }, 'Empty: add posts with "Add to playlist" on any post.'));
}

/** HTML drag and drop within `list`: rows move as the pointer passes; `save()` once dropped, if the order changed. */
function dragToReorder(row, list, save) {
  const order = () => [...list.children].map((r) => r.dataset.post).join();
  row.addEventListener('dragstart', (e) => {
    list.dragging = { row, before: order() };
    row.classList.add('dragging');
    e.dataTransfer.effectAllowed = 'move';
    e.dataTransfer.setData('text/plain', row.dataset.post);
  });
  row.addEventListener('dragover', (e) => {
    const dragged = list.dragging?.row;
    if (!dragged) return;
    e.preventDefault();
    if (dragged === row) return;
    const { top, height } = row.getBoundingClientRect();
    if (e.clientY < top + height / 2) row.before(dragged); else row.after(dragged);
  });
  row.addEventListener('drop', (e) => e.preventDefault());
  row.addEventListener('dragend', () => {
    row.classList.remove('dragging');
    const changed = list.dragging && list.dragging.before !== order();
    list.dragging = null;
    if (changed) save().catch((err) => say(err.message, 'error'));
  });
}
