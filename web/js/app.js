// The Sori web app: a hash router over the screens, the signed-in user,
// the event socket shared by every screen, and the unread badges.

import { api, session, ApiError, Events } from './api.js';
import { h, fill, say } from './ui.js';
import { loginScreen, signupScreen } from './views/auth.js';
import { feedScreen, exploreScreen, userScreen } from './views/feed.js';
import { postScreen } from './views/posts.js';
import { composeScreen } from './views/compose.js';
import { searchScreen, notificationsScreen, meScreen } from './views/people.js';
import { playlistsScreen, playlistScreen } from './views/playlists.js';
import { chatsScreen, conversationScreen } from './views/chat.js';

const ROUTES = {
  feed: feedScreen,
  explore: exploreScreen,
  users: userScreen,
  posts: postScreen,
  record: composeScreen,
  search: searchScreen,
  notifications: notificationsScreen,
  me: meScreen,
  playlists: (params, ctx) => (params.length ? playlistScreen(params, ctx) : playlistsScreen(params, ctx)),
  chats: (params, ctx) => (params.length ? conversationScreen(params, ctx) : chatsScreen(params, ctx)),
};
const PUBLIC_ROUTES = { login: loginScreen, signup: signupScreen };

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const events = new Events();
let me = null;
let current = null;

/** A nav badge: the count, read out with its link ("Chats 2"); hidden at 0. */
function badge(id, count) {
  const el = document.getElementById(id);
  el.textContent = count ? String(count) : '';
  el.hidden = !count;
}

// The unread badge. Answers can cross: a count asked for before the list
// marked everything read may arrive after; each new count outdates the
// answers still on their way.
let unreadAsked = 0;
const setUnread = (r) => { unreadAsked += 1; badge('notice-badge', r.unread_count); };
function refreshUnread() {
  const asked = ++unreadAsked;
  api('GET', '/v1/notifications?limit=1')
    .then((r) => { if (asked === unreadAsked) setUnread(r); })
    .catch(() => {});
}

async function refreshChats() {
  const rooms = await api('GET', '/v1/chats?limit=100');
  badge('chat-badge', rooms.items.reduce((n, r) => n + r.unread_count, 0));
}

/** Renders the screen the hash names; each screen gets a context that ends with it. */
async function route() {
  const [name = '', ...params] = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const signedIn = Boolean(me);
  const screen = signedIn ? ROUTES[name] : PUBLIC_ROUTES[name];
  if (!screen) { location.replace(signedIn ? '#/feed' : '#/signup'); return; }
  for (const link of nav.querySelectorAll('a')) {
    if (link.getAttribute('href') === `#/${name}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const ctx = {
    me, events, signal: controller.signal, setUnread, refreshChats,
    listen(type, fn) {
      events.on(type, fn);
      controller.signal.addEventListener('abort', () => events.off(type, fn));
    },
  };
  main.setAttribute('aria-busy', 'true');
  try {
    const view = await screen(params, ctx);
    if (controller.signal.aborted) return;
    fill(main, view);
    document.title = `${view.querySelector('h1')?.textContent || 'Sori'} · Sori`;
  } catch (e) {
    if (controller.signal.aborted) return;
    fill(main, h('section', {}, h('h1', {}, 'Something went wrong'), h('p', { role: 'alert' }, e.message)));
  } finally {
    main.setAttribute('aria-busy', 'false');
  }
  if (name !== 'chats' || params.length) main.focus({ preventScroll: true });
}

/**
 * Loads the signed-in user. Offline (the page came from the service
 * worker's cache), says so and offers to retry instead of signing out.
 */
async function signIn() {
  try {
    me = await api('GET', '/v1/me');
  } catch (e) {
    me = null;
    if (!(e instanceof ApiError)) { offline(); return false; }
  }
  nav.hidden = !me;
  if (!me) { events.close(); return true; }
  document.getElementById('me-link').textContent = me.display_name;
  events.connect();
  refreshUnread();
  refreshChats().catch(() => {});
  return true;
}

function offline() {
  const retry = h('button', { type: 'button' }, 'Try again');
  retry.addEventListener('click', async () => { if (await signIn()) route(); });
  fill(main, h('section', { 'aria-labelledby': 'offline-title' },
    h('h1', { id: 'offline-title' }, 'You are offline'),
    h('p', {}, 'Sori cannot reach the server. Your session is kept; try again when you are back online.'),
    retry));
}

events.on('notification', () => {
  if (!location.hash.startsWith('#/notifications')) refreshUnread();
});
events.on('message.new', (m) => {
  if (m.sender_id !== me?.id && !location.hash.startsWith(`#/chats/${m.room_id}`)) refreshChats().catch(() => {});
});
events.on('media.failed', () => say('A clip could not be processed: see Notifications.', 'error'));

window.addEventListener('hashchange', route);
window.addEventListener('sori:signed-in', async () => {
  await signIn();
  if (location.hash === '#/feed') route(); else location.hash = '#/feed';
});
window.addEventListener('sori:signed-out', () => {
  me = null;
  nav.hidden = true;
  events.close();
  location.hash = '#/login';
});

if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/sw.js').catch((e) => console.warn(`offline support: ${e.message}`));
}

if (!session.get() || (await signIn())) route();
