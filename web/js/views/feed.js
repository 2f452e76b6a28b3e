// The timelines: the home feed, explore (newest or trending, by tag), and a user's
// profile with their posts; each scrolls on the API's keyset cursor.

import { api, query } from '../api.js';
import { h, busy, count, field, onScrollEnd } from '../ui.js';
import { postCard } from './posts.js';

/** A list of post cards from `path`, loading the next page near its end. */
export function timeline(path, params, ctx, emptyText) {
  // `role=feed` once it holds articles: an empty feed is invalid ARIA.
  const list = h('div', { class: 'timeline' });
  const sentinel = h('div', { class: 'sentinel' });
  // Outside the feed: a feed holds articles only.
  const empty = h('p', { class: 'empty', hidden: true }, emptyText);
  let cursor = null;
  let shown = 0;
  onScrollEnd(sentinel, async () => {
    list.setAttribute('aria-busy', 'true');
    const page = await api('GET', path + query({ ...params, limit: 10, cursor }));
    list.setAttribute('aria-busy', 'false');
    if (page.items.length) { list.setAttribute('role', 'feed'); list.setAttribute('aria-label', 'Posts'); }
    for (const post of page.items) {
      const card = postCard(post, ctx);
      card.setAttribute('aria-posinset', String(++shown));
      list.append(card);
    }
    cursor = page.next_cursor;
    if (!cursor && !shown) empty.hidden = false;
    return Boolean(cursor);
  }, ctx.signal);
  return h('div', {}, list, empty, sentinel);
}

/** `#/feed`: the caller and everyone they follow, newest first. */
export function feedScreen(_params, ctx) {
  return h('section', { 'aria-labelledby': 'feed-title' },
    h('h1', { id: 'feed-title' }, 'Your feed'),
    h('p', {}, h('a', { href: '#/record', class: 'button' }, 'Record a voice post')),
    timeline('/v1/feed', {}, ctx, 'Nothing here yet: follow people (Search) or record a post.'));
}

/**
 * `#/explore` and `#/explore/{tag}`: every public post, or those with a
 * tag, newest first or trending.
 */
export function exploreScreen([tag], ctx) {
  const input = h('input', { type: 'search', name: 'tag', value: tag || '', autocomplete: 'off' });
  const form = h('form', { role: 'search', class: 'inline' }, field('Tag', input), h('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = `#/explore/${encodeURIComponent(input.value.replace(/^#/, '').trim())}`;
  });
  const sort = h('select', { name: 'sort' },
    h('option', { value: 'recent' }, 'Newest first'), h('option', { value: 'trending' }, 'Trending'));
  const posts = h('div', {});
  const show = () => posts.replaceChildren(
    timeline('/v1/explore', { tag, sort: sort.value }, ctx, tag ? `No posts tagged #${tag} yet.` : 'No posts yet.'));
  sort.addEventListener('change', show);
  show();
  return h('section', { 'aria-labelledby': 'explore-title' },
    h('h1', { id: 'explore-title' }, tag ? `Explore #${tag}` : 'Explore'),
    form, field('Order', sort), posts);
}

/**
 * A button that turns `user[flag]` on (PUT `path`) and off (DELETE), its
 * name `labels[0]` while off and `labels[1]` while on.
 */
function toggle(user, flag, labels, path) {
  const button = h('button', { type: 'button', class: 'secondary' });
  const show = () => { button.textContent = labels[user[flag] ? 1 : 0]; };
  show();
  button.addEventListener('click', () => busy(button, async () => {
    await api(user[flag] ? 'DELETE' : 'PUT', path);
    user[flag] = !user[flag];
    show();
  }));
  return button;
}

/** `#/users/{id}`: a profile, follow/unfollow, message, and their posts. */
export async function userScreen([id], ctx) {
  const user = await api('GET', `/v1/users/${id}`);
  const mine = user.id === ctx.me.id;
  const counts = h('p', { class: 'counts' });
  const showCounts = () => {
    counts.textContent = `${count(user.post_count, 'post')} · ${count(user.follower_count, 'follower')} · ${user.following_count} following`;
  };
  showCounts();
  const actions = h('p', { class: 'actions' });
  if (!mine) {
    const follow = h('button', { type: 'button' });
    const showFollow = () => {
      const on = user.followed_by_me || user.requested_by_me;
      follow.textContent = user.followed_by_me ? 'Unfollow'
        : user.requested_by_me ? 'Requested (cancel)'
          : user.private ? 'Ask to follow' : 'Follow';
      follow.setAttribute('aria-pressed', String(on));
    };
    showFollow();
    follow.addEventListener('click', () => busy(follow, async () => {
      if (user.followed_by_me || user.requested_by_me) {
        await api('DELETE', `/v1/users/${user.id}/follow`);
        if (user.followed_by_me) user.follower_count -= 1;
        user.followed_by_me = false;
        user.requested_by_me = false;
      } else if (user.private) {
        // A private account approves its followers: this is a request.
        await api('PUT', `/v1/users/${user.id}/follow`);
        user.requested_by_me = true;
      } else {
        await api('PUT', `/v1/users/${user.id}/follow`);
        user.followed_by_me = true;
        user.follower_count += 1;
      }
      showFollow();
      showCounts();
    }));
    const message = h('button', { type: 'button' }, 'Message');
    message.addEventListener('click', () => busy(message, async () => {
      const room = await api('POST', '/v1/chats', { user_id: user.id });
      location.hash = `#/chats/${room.id}`;
    }));
    const mute = toggle(user, 'muted_by_me', ['Mute', 'Unmute'], `/v1/users/${user.id}/mute`);
    const block = toggle(user, 'blocked_by_me', ['Block', 'Unblock'], `/v1/users/${user.id}/block`);
    actions.append(follow, ' ', message, ' ', mute, ' ', block);
  } else {
    actions.append(h('a', { href: '#/me', class: 'button' }, 'Edit profile'));
  }
  return h('section', { 'aria-labelledby': 'user-title' },
    h('h1', { id: 'user-title' }, user.display_name, ' ', h('span', { class: 'handle' }, `@${user.handle}`),
      user.private ? h('span', { class: 'audience' }, ' · private account') : null),
    user.bio ? h('p', { class: 'bio' }, user.bio) : null,
    counts, actions,
    h('h2', {}, 'Posts'),
    timeline(`/v1/users/${user.id}/posts`, {}, ctx, 'No posts yet.'));
}
