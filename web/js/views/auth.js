// Sign up and log in: each stores the session and opens the feed.

import { api, session } from '../api.js';
import { h, busy, field, say } from '../ui.js';

function authForm(kind) {
  const signup = kind === 'signup';
  const handle = h('input', { name: 'handle', autocomplete: 'username', required: true, pattern: '\\w{3,30}' });
  const name = signup ? h('input', { name: 'display_name', autocomplete: 'name', required: true, maxlength: 50 }) : null;
  const password = h('input', {
    name: 'password', type: 'password', required: true, minlength: 8,
    autocomplete: signup ? 'new-password' : 'current-password',
  });
  const submit = h('button', { type: 'submit' }, signup ? 'Create account' : 'Log in');
  const form = h('form', { class: 'stack auth' },
    field('Handle', handle), name ? field('Display name', name) : null, field('Password', password), submit);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(submit, async () => {
      const body = { handle: handle.value.trim(), password: password.value };
      if (signup) body.display_name = name.value.trim();
      const created = await api('POST', signup ? '/v1/auth/signup' : '/v1/auth/login', body);
      session.set({ token: created.token, user_id: created.user_id });
      window.dispatchEvent(new Event('sori:signed-in'));
    }).catch((e) => say(e.message, 'error'));
  });
  return form;
}

export function loginScreen() {
  return h('section', { 'aria-labelledby': 'login-title', class: 'narrow' },
    h('h1', { id: 'login-title' }, 'Log in to Sori'),
    authForm('login'),
    h('p', {}, 'New here? ', h('a', { href: '#/signup' }, 'Create an account')));
}

export function signupScreen() {
  return h('section', { 'aria-labelledby': 'signup-title', class: 'narrow' },
    h('h1', { id: 'signup-title' }, 'Join Sori'),
    h('p', {}, 'Share your voice: short clips, a feed of people you follow, and voice chat.'),
    authForm('signup'),
    h('p', {}, 'Have an account? ', h('a', { href: '#/login' }, 'Log in')));
}
