// A web app on another origin, in real Chromium (Debian's, driven through
// playwright-core), uses every picture and download URL of the accounts
// routes as handed out, with no header added: alice uploads a photo drawn on
// a canvas (red above, blue below) and makes it her avatar, sends bob a
// picture in chat; bob shows her avatar from her profile and from his chat
// list and the picture and its thumbnail in <img> elements (plain, and with
// `crossorigin` drawn to a canvas, as an app that crops or caches does);
// alice exports her data and follows the archive's `download_url` with a
// link, as a user clicking "Download" does, and the download is saved to
// DOWNLOAD_PATH for the test to open.
//
// Run by tests/browser_pictures.rs:
//   node pictures.mjs PAGE_ORIGIN API_BASE DOWNLOAD_PATH < page socket
// Prints one JSON line with what it saw; exits non-zero with the reason on
// stderr when any step fails.

import { runOnAppPage } from './chromium.mjs';

const [pageOrigin, apiBase, downloadPath] = process.argv.slice(2);
if (!apiBase || !pageOrigin || !downloadPath) {
  console.error('usage: node pictures.mjs PAGE_ORIGIN API_BASE DOWNLOAD_PATH');
  process.exit(2);
}
await runOnAppPage(pageOrigin, null, async (page) => {
  const seen = await page.evaluate(pictures, { api: apiBase });
  // The archive's link, clicked: Chromium downloads what the URL serves.
  const started = page.waitForEvent('download', { timeout: 30000 });
  await page.evaluate((url) => {
    const link = document.createElement('a');
    link.href = url;
    link.textContent = 'Download your data';
    document.body.appendChild(link);
    link.click();
  }, seen.download_url);
  const download = await started;
  const failure = await download.failure();
  if (failure) throw new Error(`the archive's download failed: ${failure}`);
  await download.saveAs(downloadPath);
  return { ...seen, download_name: download.suggestedFilename() };
});

// Runs inside the page: what the app does, with fetch and the DOM.
async function pictures({ api }) {
  const call = (method, path, token, body) => window.apiCall(api, method, path, token, body);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const signUp = async (name) => {
    const handle = `${name}${Date.now() % 100000000}`;
    const session = await call('POST', '/v1/auth/signup', null,
      { handle, password: 'correct horse battery', display_name: name });
    return { id: session.user_id, token: session.token, handle };
  };

  // A photo as the app would take it from a file input: a JPEG Blob.
  const photo = async () => {
    const canvas = document.createElement('canvas');
    canvas.width = 600;
    canvas.height = 400;
    const g = canvas.getContext('2d');
    g.fillStyle = '#d00000';
    g.fillRect(0, 0, 600, 200);
    g.fillStyle = '#0000d0';
    g.fillRect(0, 200, 600, 200);
    return new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.9));
  };
  // Upload through the signed URL and complete: the media id.
  const upload = async (token, blob) => {
    const created = await call('POST', '/v1/media', token,
      { content_type: blob.type, size_bytes: blob.size });
    const headers = {};
    for (const [name, value] of Object.entries(created.upload.headers)) {
      if (name.toLowerCase() !== 'content-length') headers[name] = value; // the browser sets it
    }
    const put = await fetch(created.upload.url, { method: created.upload.method, headers, body: blob });
    if (!put.ok) throw new Error(`upload PUT: ${put.status} ${await put.text()}`);
    await call('POST', `/v1/media/${created.id}/complete`, token);
    return created.id;
  };
  // The URL in an <img>, as given; with `crossorigin` it is also drawn to a
  // canvas, which throws if the answer lacks CORS. Size and the colours at
  // a quarter and three quarters of the height.
  const show = async (url, crossOrigin) => {
    const img = document.createElement('img');
    img.alt = '';
    if (crossOrigin) img.crossOrigin = 'anonymous';
    img.src = url;
    document.body.appendChild(img);
    await img.decode();
    const shown = { width: img.naturalWidth, height: img.naturalHeight };
    if (crossOrigin) {
      const canvas = document.createElement('canvas');
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      const g = canvas.getContext('2d');
      g.drawImage(img, 0, 0);
      const at = (y) => Array.from(g.getImageData(canvas.width >> 1, y, 1, 1).data.slice(0, 3));
      shown.top = at(canvas.height >> 2);
      shown.bottom = at((canvas.height * 3) >> 2);
    }
    return shown;
  };
  const showBoth = async (url) => ({ url, plain: await show(url, false), cors: await show(url, true) });

  const alice = await signUp('alice');
  const bob = await signUp('bob');
  const avatarMedia = await upload(alice.token, await photo());
  await call('PUT', '/v1/me/avatar', alice.token, { media_id: avatarMedia });
  const room = await call('POST', '/v1/chats', alice.token, { user_id: bob.id });
  const pictureMedia = await upload(alice.token, await photo());
  await call('POST', `/v1/chats/${room.id}/messages`, alice.token, { kind: 'image', media_id: pictureMedia });

  const profile = await call('GET', `/v1/users/${alice.id}`, bob.token);
  const rooms = await call('GET', '/v1/chats', bob.token);
  const history = await call('GET', `/v1/chats/${room.id}/messages`, bob.token);
  const picture = history.items[0].image;
  const seen = {
    profile_avatar: await showBoth(profile.avatar_url),
    chat_avatar: await showBoth(rooms.items[0].other.avatar_url),
    image: await showBoth(picture.image_url),
    thumbnail: await showBoth(picture.thumbnail_url),
  };

  await call('POST', '/v1/me/export', alice.token);
  const started = performance.now();
  for (;;) {
    const status = await call('GET', '/v1/me/export', alice.token);
    if (status.state === 'ready') return { ...seen, handle: alice.handle, download_url: status.download_url };
    if (status.state === 'failed') throw new Error(`export failed: ${JSON.stringify(status)}`);
    if (performance.now() - started > 60000) throw new Error(`export not ready after 60 s: ${status.state}`);
    await sleep(200);
  }
}
