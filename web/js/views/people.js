// Search (people, posts and tags), notifications with their unread count,
// and the caller's own profile.

import { api, query, session } from '../api.js';
import { h, ago, busy, field, fill, say, userLink, visibilitySelect } from '../ui.js';
import { postCard } from './posts.js';

/** `#/search`: people by handle or name, posts by caption, and a tag. */
export function searchScreen(_params, ctx) {
  const input = h('input', { type: 'search', name: 'q', maxlength: 50, autocomplete: 'off' });
  const button = h('button', { type: 'submit' }, 'Search');
  const form = h('form', { role: 'search', class: 'inline' }, field('Search people, posts and tags', input), button);
  const results = h('div', { class: 'results', 'aria-live': 'polite' });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = input.value.trim();
    if (!q) return;
    busy(button, async () => {
      const [users, posts] = await Promise.all([
        api('GET', `/v1/search${query({ q, kind: 'users', limit: 20 })}`),
        api('GET', `/v1/search${query({ q, kind: 'posts', limit: 10 })}`),
      ]);
      const tag = q.replace(/^#/, '');
      fill(results,
        h('h2', {}, 'People'),
        users.items.length
          ? h('ul', { class: 'people' }, users.items.map((u) => h('li', {}, userLink(u))))
          : h('p', { class: 'empty' }, 'Nobody by that name.'),
        /^\w{1,30}$/.test(tag) ? h('p', {}, h('a', { href: `#/explore/${encodeURIComponent(tag)}` }, `Posts tagged #${tag}`)) : null,
        h('h2', {}, 'Posts'),
        posts.items.length
          ? h('div', { class: 'timeline' }, posts.items.map((p) => postCard(p, ctx)))
          : h('p', { class: 'empty' }, 'No posts match.'));
    });
  });
  return h('section', { 'aria-labelledby': 'search-title' }, h('h1', { id: 'search-title' }, 'Search'), form, results);
}

const NOTICE_TEXT = {
  follow: 'followed you',
  like: 'liked your post',
  comment: 'commented on your post',
  mention: 'mentioned you',
  follow_request: 'asks to follow you',
  follow_accepted: 'accepted your request to follow',
  'media.ready': 'Your clip is ready',
  'media.failed': 'Your clip could not be processed',
  announcement: 'Announcement',
};

/** "Mina", "Mina and 1 other", "Mina and 3 others" for a grouped item. */
function who(n) {
  const others = n.actor_count - 1;
  if (others < 1) return userLink(n.actor);
  return [userLink(n.actor), ` and ${others} ${others === 1 ? 'other' : 'others'}`];
}

function notice(n) {
  const what = NOTICE_TEXT[n.kind] || n.kind;
  const target = n.post_id ? h('a', { href: `#/posts/${n.post_id}` }, 'see the post') : null;
  return h('li', { class: n.read ? 'notice' : 'notice unread' },
    n.actor ? [who(n), ' ', what] : what,
    n.body?.reason ? `: ${n.body.reason}` : '',
    n.body?.text ? `: ${n.body.text}` : '',
    target ? [' — ', target] : '',
    ' ', h('time', {}, ago(n.created_at)),
    n.kind === 'follow_request' && n.actor ? requestAnswers(n.actor) : null,
    n.kind === 'announcement' ? dismissButton(n) : null);
}

/** Removes an announcement from the list for good. */
function dismissButton(n) {
  const button = h('button', { type: 'button', class: 'link' }, 'Dismiss');
  button.addEventListener('click', () => busy(button, async () => {
    await api('DELETE', `/v1/notifications/${n.id}`).catch((e) => { if (e.status !== 404) throw e; });
    button.closest('li').remove();
  }));
  return [' ', button];
}

/** Approve and Decline buttons for a follow request; gone once answered. */
function requestAnswers(actor) {
  const answers = h('span', { class: 'answers' });
  for (const [label, verb, done] of [['Approve', 'approve', 'Approved.'], ['Decline', 'decline', 'Declined.']]) {
    const button = h('button', { type: 'button', class: 'link' }, label);
    button.addEventListener('click', () => busy(button, async () => {
      // 404: answered already (here or on another device).
      await api('POST', `/v1/me/follow-requests/${actor.id}/${verb}`).catch((e) => { if (e.status !== 404) throw e; });
      fill(answers, ` ${done}`);
    }));
    answers.append(' ', button);
  }
  return answers;
}

/**
 * `#/notifications`: newest first, a post's likes (comments, mentions) and
 * a day's new followers grouped into one line; opening the screen marks
 * them read, and a new one redraws the first page.
 */
export async function notificationsScreen(_params, ctx) {
  const list = h('ol', { class: 'notices', 'aria-label': 'Notifications' });
  const more = h('button', { type: 'button', hidden: true }, 'Older notifications');
  let cursor = null;
  const load = async () => {
    const page = await api('GET', `/v1/notifications${query({ limit: 20, cursor, grouped: true })}`);
    list.append(...page.items.map(notice));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    if (!list.childElementCount) list.append(h('li', { class: 'empty' }, 'No notifications yet.'));
  };
  more.addEventListener('click', () => busy(more, load));
  await load();
  const markRead = () => api('POST', '/v1/notifications/read', {}).then(ctx.setUnread).catch((e) => console.warn(e.message));
  markRead();
  // The event carries ids; the grouped lines (with names) come from the API.
  ctx.listen('notification', async () => {
    cursor = null;
    fill(list);
    await load();
    markRead();
  });
  return h('section', { 'aria-labelledby': 'notices-title' }, h('h1', { id: 'notices-title' }, 'Notifications'), list, more);
}

/** The kinds of notification a user can switch, as the settings name them. */
const NOTICE_KINDS = [
  ['follow', 'New followers'], ['follow_request', 'Follow requests'], ['like', 'Likes'],
  ['comment', 'Comments'], ['mention', 'Mentions'], ['message', 'Chat messages'], ['media', 'My clips processed'],
];

/** A table of switches per kind (in the list, pushed) saved with one PUT. */
async function noticeSettings() {
  const settings = await api('GET', '/v1/me/notification-settings');
  const box = (kind, channel, label) => {
    const input = h('input', { type: 'checkbox', name: `${kind}.${channel}`, 'aria-label': label });
    input.checked = settings[kind][channel];
    // Chat messages are never in the list: only their push switches.
    if (kind === 'message' && channel === 'inbox') input.disabled = true;
    return input;
  };
  const rows = NOTICE_KINDS.map(([kind, text]) => h('tr', {},
    h('th', { scope: 'row' }, text),
    h('td', {}, box(kind, 'inbox', `${text}: in my notifications`)),
    h('td', {}, box(kind, 'push', `${text}: pushed to my phone`))));
  const table = h('table', { class: 'switches' },
    h('caption', {}, 'What I am told'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Kind'), h('th', { scope: 'col' }, 'In notifications'),
      h('th', { scope: 'col' }, 'Pushed'))),
    h('tbody', {}, rows));
  const save = h('button', { type: 'submit' }, 'Save notification settings');
  const form = h('form', { class: 'stack notice-settings', 'aria-label': 'Notification settings' }, table, save);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(save, async () => {
      const body = {};
      for (const [kind] of NOTICE_KINDS) {
        body[kind] = { push: form.elements[`${kind}.push`].checked };
        if (kind !== 'message') body[kind].inbox = form.elements[`${kind}.inbox`].checked;
      }
      await api('PUT', '/v1/me/notification-settings', body);
      say('Notification settings saved.');
    });
  });
  return form;
}

/** `#/me`: edit the display name and bio, what I am told, and sign out. */
export async function meScreen(_params, ctx) {
  const name = h('input', { name: 'display_name', value: ctx.me.display_name, maxlength: 50, required: true });
  const bio = h('textarea', { name: 'bio', maxlength: 300, rows: 3 });
  bio.value = ctx.me.bio || '';
  const visibility = visibilitySelect('default_visibility', ctx.me.default_visibility);
  const locked = h('input', { type: 'checkbox', name: 'private' });
  locked.checked = Boolean(ctx.me.private);
  const presence = h('input', { type: 'checkbox', name: 'show_presence' });
  presence.checked = ctx.me.show_presence !== false;
  const save = h('button', { type: 'submit' }, 'Save profile');
  const form = h('form', { class: 'stack' }, field('Display name', name), field('Bio', bio),
    field('Who hears new posts', visibility), field('Private account: I approve my followers', locked),
    field('Show chat partners when I am online', presence), save);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(save, async () => {
      Object.assign(ctx.me, await api('PATCH', '/v1/me', {
        display_name: name.value, bio: bio.value, default_visibility: visibility.value,
        show_presence: presence.checked, private: locked.checked,
      }));
      document.getElementById('me-link').textContent = ctx.me.display_name;
      say('Profile saved.');
    });
  });
  const logout = h('button', { type: 'button', class: 'secondary' }, 'Log out');
  logout.addEventListener('click', () => busy(logout, async () => {
    await api('POST', '/v1/auth/logout').catch(() => {});
    session.clear();
    window.dispatchEvent(new Event('sori:signed-out'));
  }));
  return h('section', { 'aria-labelledby': 'me-title' },
    h('h1', { id: 'me-title' }, 'Your profile'),
    h('p', {}, `Signed in as @${ctx.me.handle}. `, h('a', { href: `#/users/${ctx.me.id}` }, 'See your public profile')),
    form, await noticeSettings(), h('p', {}, logout));
}
