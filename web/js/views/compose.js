// `#/record`: record a voice post, listen back, add a caption and tags,
// upload straight to the store (with progress), and follow processing
// until the clip is ready.

import { api, uploadMedia, waitForMedia } from '../api.js';
import { h, busy, field, fill, visibilitySelect } from '../ui.js';
import { recorderPanel } from '../recorder.js';

const STATE_TEXT = {
  queued: 'Waiting for a worker…',
  processing: 'Processing: normalizing loudness and encoding…',
  ready: 'Ready.',
};

export function composeScreen(_params, ctx) {
  const caption = h('textarea', { name: 'caption', maxlength: 500, rows: 2 });
  const tags = h('input', { name: 'tags', autocomplete: 'off', placeholder: 'e.g. morning coffee' });
  const visibility = visibilitySelect('visibility', ctx.me.default_visibility);
  const post = h('button', { type: 'submit', disabled: true }, 'Post');
  const recorder = recorderPanel({ label: 'voice post', onChange: (blob) => { post.disabled = !blob; } });
  const progress = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'Upload progress' });
  const status = h('p', { class: 'status', 'aria-live': 'polite' });
  const form = h('form', { class: 'stack' },
    recorder,
    field('Caption', caption),
    field('Tags (separated by spaces)', tags),
    field('Who can hear it', visibility),
    post, progress, status);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(post, async () => {
      progress.hidden = false;
      fill(status, 'Uploading…');
      const mediaId = await uploadMedia(recorder.blob(), (p) => {
        progress.value = p;
        fill(status, `Uploading… ${Math.round(p * 100)} %`);
      });
      const created = await api('POST', '/v1/posts', {
        media_id: mediaId,
        caption: caption.value,
        tags: tags.value.split(/[\s,]+/).map((t) => t.replace(/^#/, '')).filter(Boolean),
        visibility: visibility.value,
      }, { idempotencyKey: crypto.randomUUID() });
      progress.hidden = true;
      recorder.reset();
      caption.value = '';
      tags.value = '';
      await waitForMedia(mediaId, ctx.events, (state) => fill(status, STATE_TEXT[state] || `State: ${state}`));
      fill(status, 'Your post is live. ', h('a', { href: `#/posts/${created.id}` }, 'Open it'));
    }).then(() => { post.disabled = !recorder.blob(); });
  });
  return h('section', { 'aria-labelledby': 'compose-title' }, h('h1', { id: 'compose-title' }, 'Record a voice post'), form);
}
