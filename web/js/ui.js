// Small DOM helpers the views share: element building, time formats, the
// status line, and links between screens.

/**
 * Builds an element: `h('button', {class: 'x', onclick}, 'Label')`.
 * Attributes starting with `on` become listeners; `null`/`false` ones are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(name, '');
    else el.setAttribute(name, value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** `m:ss` of seconds, to the nearest second (so a clip that ends shows its total). */
export function clock(seconds) {
  const s = Number.isFinite(seconds) ? Math.max(0, Math.round(seconds)) : 0;
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** `1 play`, `2 plays`. */
export function count(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** "5 min ago" style, of Unix milliseconds. */
export function ago(ms) {
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}

/** Tells the user something in the polite live region. */
export function say(message, kind = 'info') {
  const toast = document.getElementById('toast');
  toast.dataset.kind = kind;
  toast.textContent = message;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { toast.textContent = ''; }, 6000);
}

/** A link to a user's profile. */
export function userLink(user) {
  return h('a', { href: `#/users/${user.id}`, class: 'who' },
    h('strong', {}, user.display_name), ' ', h('span', { class: 'handle' }, `@${user.handle}`));
}

/** A form's labelled field: `<label>Text <input …></label>`. */
export function field(label, input) {
  return h('label', { class: 'field' }, h('span', {}, label), input);
}

/** Who may hear a post, as the API names it and as people read it. */
export const VISIBILITY = { public: 'Everyone', followers: 'My followers', private: 'Only me' };

/** A `<select>` of [`VISIBILITY`], named `name`, with `value` chosen. */
export function visibilitySelect(name, value = 'public') {
  const select = h('select', { name },
    Object.entries(VISIBILITY).map(([v, text]) => h('option', { value: v }, text)));
  select.value = value || 'public';
  return select;
}

/** Runs `action` for a button, disabled while it runs, reporting failure. */
export async function busy(button, action) {
  button.disabled = true;
  try {
    return await action();
  } catch (e) {
    say(e.message, 'error');
    return undefined;
  } finally {
    button.disabled = false;
  }
}

/**
 * Calls `load()` whenever `sentinel` scrolls into view, until `load`
 * resolves false (no more pages). Stops when the view goes away.
 */
export function onScrollEnd(sentinel, load, signal) {
  let loading = false;
  let more = true;
  const observer = new IntersectionObserver(async (entries) => {
    if (!entries.some((e) => e.isIntersecting) || loading || !more) return;
    loading = true;
    try { more = await load(); } finally { loading = false; }
    if (!more) observer.disconnect();
    else if (sentinel.getBoundingClientRect().top < innerHeight) {
      // Still in view: the page was short, ask again.
      observer.unobserve(sentinel); observer.observe(sentinel);
    }
  }, { rootMargin: '400px' });
  observer.observe(sentinel);
  signal.addEventListener('abort', () => observer.disconnect());
}
