// The bundled web app, served by Sori at `/`, driven as two people would in
// real Chromium (Debian's, through playwright-core; no browser download),
// with a fake microphone playing a speech WAV:
//
//   A signs up and posts a recorded clip; B signs up, finds A by search,
//   follows, sees the post in the feed, plays it to the end, seeks, likes
//   it, leaves a voice comment and a text one; A sees the notifications
//   arrive live; A and B chat (text, voice and a photo, an edit and an
//   unsend) with live delivery; A turns off pushes of likes in her settings
//   and read markers; B explores A's tag, adds the post to a new playlist
//   and plays the playlist; B edits the profile, logs out and back in.
//
// Every screen is checked with axe-core (no serious or critical violation);
// no console error may happen and no request may leave the allowed origins
// (the server's, and the object store's in production). A is at desktop
// width, B at phone width.
//
// Run by tests/webapp.rs:
//   node webapp.mjs BASE_URL FAKE_MIC_WAV ALLOWED_ORIGINS_JSON SCREENSHOT_DIR IMAGE_FILE
// Prints one JSON line of what it saw; exits non-zero with the reason on
// stderr when a step fails.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { loadChromium, launchOptions } from './chromium.mjs';

const [base, wav, allowedJson, shots, imageFile] = process.argv.slice(2);
if (!base || !wav || !allowedJson || !shots || !imageFile) {
  console.error('usage: node webapp.mjs BASE_URL FAKE_MIC_WAV ALLOWED_ORIGINS_JSON SCREENSHOT_DIR IMAGE_FILE');
  process.exit(2);
}
const chromium = await loadChromium();
let axeSource;
try {
  axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
} catch (e) {
  console.error(`axe-core is not installed in tests/browser: run scripts/setup.sh test (${e.message})`);
  process.exit(2);
}

const allowed = new Set([new URL(base).origin, ...JSON.parse(allowedJson)]);
const seen = { audited: [], violations: [], console_errors: [], foreign_requests: [] };
/** While the test takes the network away on purpose, failed loads are expected. */
let offlineOnPurpose = false;
const STEP = 30_000;
const PROCESSING = 120_000;

const browser = await chromium.launch(launchOptions(wav));

/** A person: their own context (storage, session), page and viewport. */
async function person(name, viewport) {
  const context = await browser.newContext({ viewport, permissions: ['microphone'], reducedMotion: 'reduce' });
  context.on('request', (r) => {
    const url = new URL(r.url());
    if ((url.protocol === 'http:' || url.protocol === 'https:') && !allowed.has(url.origin)) {
      seen.foreign_requests.push(`${name}: ${r.url()}`);
    }
  });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP);
  page.on('console', (m) => {
    const expected = offlineOnPurpose && m.text().includes('ERR_INTERNET_DISCONNECTED');
    if (m.type() === 'error' && !expected) seen.console_errors.push(`${name}: ${m.text()}`);
  });
  page.on('pageerror', (e) => seen.console_errors.push(`${name}: ${e.message}`));
  return page;
}

/** axe-core on the screen as it is; serious and critical violations are kept. */
async function audit(page, screen) {
  await page.waitForFunction(() => document.getElementById('main').getAttribute('aria-busy') === 'false');
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
  seen.audited.push(screen);
  for (const v of violations) seen.violations.push(`${screen}: ${v}`);
}

/** Records `ms` of the fake microphone with the recorder whose button is `label`; the meter's highest level. */
async function record(page, label, ms) {
  await page.getByRole('button', { name: label, exact: true }).click();
  const scope = page.locator('.recorder').filter({ has: page.getByRole('button', { name: 'Stop recording' }) });
  const meter = scope.getByRole('meter', { name: 'Microphone level' });
  let loudest = 0;
  const until = Date.now() + ms;
  while (Date.now() < until) {
    loudest = Math.max(loudest, Number(await meter.evaluate((m) => m.value)));
    await page.waitForTimeout(100);
  }
  const timer = await scope.getByRole('timer').textContent();
  await scope.getByRole('button', { name: 'Stop recording' }).click();
  await page.locator('.recorder .preview audio').first().waitFor();
  return { loudest, timer };
}

/** Resolves once the `<audio>` in `locator` has played to its end. */
const ended = (locator, timeout = 60_000) => locator.locator('audio').evaluate((el, ms) => new Promise((resolve, reject) => {
  if (el.ended) { resolve(); return; }
  const timer = setTimeout(() => reject(new Error(`not ended after ${ms} ms (at ${el.currentTime} s)`)), ms);
  el.addEventListener('ended', () => { clearTimeout(timer); resolve(); }, { once: true });
}), timeout);

/** Records and posts a voice clip from the Record screen; waits until it is live. */
async function postClip(page, caption, tags, ms) {
  await go(page, 'Record');
  const recorded = await record(page, 'Record voice post', ms);
  await page.getByLabel('Caption').fill(caption);
  await page.getByLabel('Tags (separated by spaces)').fill(tags);
  await page.getByRole('button', { name: 'Post', exact: true }).click();
  await page.getByText('Your post is live.').waitFor({ timeout: PROCESSING });
  return recorded;
}

/** Unread count shown by a nav badge (0 when hidden). */
const badge = (page, id) => page.evaluate((id) => Number(document.getElementById(id).textContent || 0), id);

const go = (page, linkName) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: linkName }).click();

async function signUp(page, handle, name) {
  await page.goto(base);
  await page.waitForURL(/#\/signup$/);
  await audit(page, 'signup');
  await page.getByLabel('Handle').fill(handle);
  await page.getByLabel('Display name').fill(name);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { name: 'Your feed' }).waitFor();
}

/** Waits until `predicate` (run in the page) is true. */
const until = (page, predicate, arg, timeout = STEP) => page.waitForFunction(predicate, arg, { timeout });

let exitCode = 0;
try {
  const stamp = Date.now() % 1e8;
  const aHandle = `ana${stamp}`;
  const bHandle = `ben${stamp}`;
  const a = await person('A', { width: 1280, height: 860 });
  const b = await person('B', { width: 390, height: 844 });

  // A signs up and posts a recorded clip.
  await signUp(a, aHandle, 'Ana Kim');
  await audit(a, 'feed (empty)');
  await go(a, 'Record');
  await audit(a, 'record');
  const recorded = await postClip(a, 'Morning hello from Ana #sori', 'greetings', 3000);
  seen.meter_loudest = recorded.loudest;
  seen.record_timer = recorded.timer;
  seen.upload_progress = await a.getByRole('progressbar', { name: 'Upload progress', includeHidden: true }).evaluate((p) => p.value);
  await go(a, 'Feed');
  await a.locator('article.post', { hasText: 'Morning hello from Ana' }).waitFor();
  const aNoticesBefore = await badge(a, 'notice-badge');

  // B signs up, finds A, follows.
  await signUp(b, bHandle, 'Ben Park');
  await go(b, 'Search');
  await audit(b, 'search');
  await b.getByLabel('Search people, posts and tags').fill(aHandle);
  await b.getByRole('button', { name: 'Search', exact: true }).click();
  await b.locator('.people').getByRole('link', { name: /Ana Kim/ }).click();
  await b.getByRole('heading', { name: /Ana Kim/ }).waitFor();
  await audit(b, 'profile');
  await b.getByRole('button', { name: 'Follow', exact: true }).click();
  await b.getByRole('button', { name: 'Unfollow' }).waitFor();

  // B's feed: A's post; plays it to the end, seeks, likes it.
  await go(b, 'Feed');
  const post = b.locator('article.post', { hasText: 'Morning hello from Ana' });
  await post.waitFor();
  await audit(b, 'feed');
  await post.getByRole('button', { name: 'Play voice post by Ana Kim' }).click();
  await ended(post);
  const played = await post.locator('audio').evaluate((el) => ({ duration: el.duration, src: el.currentSrc }));
  seen.played_duration = played.duration;
  seen.played_url = played.src;
  seen.time_after_play = await post.locator('.time').textContent();
  const scrubber = post.getByRole('slider', { name: 'Seek in voice post by Ana Kim' });
  await scrubber.focus();
  await b.keyboard.press('Home');
  for (let i = 0; i < 10; i++) await b.keyboard.press('ArrowRight');
  await post.locator('audio').evaluate((el) => new Promise((resolve) => {
    const check = () => (Math.abs(el.currentTime - 1) < 0.15 ? resolve() : setTimeout(check, 50));
    check();
  }));
  seen.seeked_to = await post.locator('audio').evaluate((el) => el.currentTime);
  const like = post.getByRole('button', { name: /^Like/ });
  await like.click();
  await post.locator('button.like[aria-pressed="true"]', { hasText: 'Like 1' }).waitFor();
  await post.getByText('1 play', { exact: true }).waitFor();

  // B comments: a voice comment, then a text one.
  await post.getByRole('link', { name: /Comments/ }).click();
  await b.getByRole('heading', { name: 'Voice post' }).waitFor();
  await record(b, 'Record voice comment', 2000);
  await b.getByRole('button', { name: 'Send voice comment' }).click();
  await b.locator('.comments-list .comment .player').waitFor({ timeout: PROCESSING });
  await b.getByLabel('Write a comment').fill('Lovely voice!');
  await b.getByRole('button', { name: 'Comment', exact: true }).click();
  await b.locator('.comments-list', { hasText: 'Lovely voice!' }).waitFor();
  await audit(b, 'post and comments');

  // A: the notifications arrived live (no reload), then the list.
  await until(a, ([before]) => Number(document.getElementById('notice-badge').textContent || 0) >= before + 3, [aNoticesBefore]);
  seen.a_unread_live = await badge(a, 'notice-badge');
  await go(a, 'Notifications');
  for (const text of ['followed you', 'liked your post', 'commented on your post']) {
    await a.locator('.notices').getByText(text).first().waitFor();
  }
  await audit(a, 'notifications');
  await a.screenshot({ path: join(shots, 'notifications.png') });
  seen.a_unread_after_opening = await badge(a, 'notice-badge');

  // B explores A's tag.
  await b.goto(`${base}/#/feed`);
  await b.locator('article.post').getByRole('link', { name: '#sori' }).first().click();
  await b.getByRole('heading', { name: 'Explore #sori' }).waitFor();
  await b.locator('article.post', { hasText: 'Morning hello from Ana' }).waitFor();
  await b.getByLabel('Order').selectOption('trending');
  await b.locator('article.post', { hasText: 'Morning hello from Ana' }).waitFor();
  await audit(b, 'explore');

  // Chat: B writes, A sees it live, reads it, B sees "Seen".
  await b.locator('article.post', { hasText: 'Morning hello from Ana' }).getByRole('link', { name: /Ana Kim/ }).first().click();
  await b.getByRole('button', { name: 'Message' }).click();
  await b.getByRole('heading', { name: /Ana Kim/ }).waitFor();
  await b.getByLabel('Message', { exact: true }).fill('Hi Ana! Loved your clip.');
  await b.getByRole('button', { name: 'Send', exact: true }).click();
  await until(a, () => document.getElementById('chat-badge').textContent === '1');
  await go(a, 'Chats');
  await a.locator('.room.unread', { hasText: 'Ben Park' }).waitFor();
  await audit(a, 'chats');
  await a.locator('.room').getByRole('link', { name: /Ben Park/ }).click();
  await a.locator('.msg.theirs', { hasText: 'Hi Ana! Loved your clip.' }).waitFor();
  await b.locator('.msg.mine .seen:not([hidden])').waitFor();
  await until(a, () => document.getElementById('chat-badge').textContent === '');
  await audit(b, 'conversation (phone)');

  // A answers with text, voice and a photo; B gets each live.
  await a.getByLabel('Message', { exact: true }).fill('Thanks Ben! Here is a voice note.');
  await a.getByRole('button', { name: 'Send', exact: true }).click();
  await b.locator('.msg.theirs', { hasText: 'Thanks Ben!' }).waitFor();
  await record(a, 'Record voice message', 2000);
  await a.getByRole('button', { name: 'Send voice message' }).click();
  const voice = b.locator('.msg.theirs .player');
  await voice.waitFor({ timeout: PROCESSING });
  await voice.getByRole('button', { name: /^Play voice message/ }).click();
  await ended(voice);
  seen.voice_message_duration = await voice.locator('audio').evaluate((el) => el.duration);
  await a.getByLabel('Send a photo').setInputFiles(imageFile);
  const photo = b.locator('.msg.theirs img');
  await photo.waitFor({ timeout: PROCESSING });
  await until(b, () => document.querySelector('.msg.theirs img')?.naturalWidth > 0);
  seen.photo_width = await photo.evaluate((img) => img.naturalWidth);
  await a.locator('.msg.mine img').waitFor();
  // A fixes a message and unsends another; B's conversation follows live.
  const thanks = a.locator('.msg.mine', { hasText: 'Thanks Ben!' });
  await thanks.getByRole('button', { name: 'Edit message' }).click();
  await thanks.getByLabel('New text').fill('Thanks Ben! Here is a voice note and a photo.');
  await thanks.getByRole('button', { name: 'Save' }).click();
  await b.locator('.msg.theirs', { hasText: 'a voice note and a photo.' }).filter({ hasText: 'edited' }).waitFor();
  await a.getByLabel('Message', { exact: true }).fill('Oops, wrong chat');
  await a.getByRole('button', { name: 'Send', exact: true }).click();
  await b.locator('.msg.theirs', { hasText: 'Oops, wrong chat' }).waitFor();
  await a.locator('.msg.mine', { hasText: 'Oops, wrong chat' }).getByRole('button', { name: 'Unsend message' }).click();
  await b.locator('.msg.theirs', { hasText: 'Oops, wrong chat' }).waitFor({ state: 'detached' });
  await a.locator('.msg.mine', { hasText: 'Oops, wrong chat' }).waitFor({ state: 'detached' });
  seen.edited_and_unsent_live = true;
  await audit(a, 'conversation');
  await a.screenshot({ path: join(shots, 'conversation.png') });

  // B posts a clip too (at phone width), makes a playlist of both posts,
  // reorders it by dragging and from the keyboard, and plays it through.
  await postClip(b, 'Ben says hi back', 'sori', 2000);
  await go(b, 'Playlists');
  await audit(b, 'playlists');
  await b.getByLabel('New playlist').fill('Favourites');
  await b.getByRole('button', { name: 'Create playlist' }).click();
  await b.getByRole('heading', { name: 'Favourites' }).waitFor();
  await go(b, 'Feed');
  for (const caption of ['Morning hello from Ana', 'Ben says hi back']) {
    const card = b.locator('article.post', { hasText: caption });
    await card.getByRole('button', { name: 'Add to playlist' }).click();
    await card.getByLabel('Playlist').selectOption({ label: 'Favourites' });
    await card.getByRole('button', { name: 'Add', exact: true }).click();
    await b.getByText('Added to Favourites.').waitFor();
    await b.evaluate(() => { document.getElementById('toast').textContent = ''; });
  }
  await b.screenshot({ path: join(shots, 'feed.png') });
  await go(b, 'Playlists');
  await b.getByRole('link', { name: 'Favourites' }).click();
  const rows = b.locator('.playlist > li');
  const order = () => rows.evaluateAll((lis) => lis.map((li) => li.querySelector('.caption').textContent));
  await rows.nth(1).waitFor();
  await audit(b, 'playlist');
  seen.playlist_added = await order();
  await rows.nth(1).dragTo(rows.nth(0), { targetPosition: { x: 40, y: 5 } });
  await b.getByText('Order saved.').waitFor();
  await b.reload();
  await rows.nth(1).waitFor();
  seen.playlist_dragged = await order();
  await b.getByRole('button', { name: /^Move ".*" down$/ }).first().click();
  await b.getByText('Order saved.').waitFor();
  seen.playlist_keyboard = await order();
  await b.getByRole('button', { name: 'Play all' }).click();
  await ended(rows.nth(0));
  await b.locator('.playlist > li:nth-child(2) audio').evaluate((el) => new Promise((resolve) => {
    const check = () => (!el.paused ? resolve() : setTimeout(check, 50));
    check();
  }));
  seen.playlist_played_through = true;

  // The app shell starts offline from the service worker's cache.
  seen.service_worker = await b.evaluate(async () => (await navigator.serviceWorker.ready).active.state);
  offlineOnPurpose = true;
  await b.context().setOffline(true);
  await b.reload();
  await b.getByRole('heading', { name: 'You are offline' }).waitFor();
  await b.context().setOffline(false);
  offlineOnPurpose = false;
  await b.getByRole('button', { name: 'Try again' }).click();
  await b.getByRole('navigation', { name: 'Main' }).waitFor();
  seen.offline_start = true;

  // B edits the profile and logs out.
  await go(b, 'Ben Park');
  await audit(b, 'profile editor');
  await b.getByLabel('Bio').fill('I listen more than I talk.');
  await b.getByRole('button', { name: 'Save profile' }).click();
  await b.getByText('Profile saved.').waitFor();
  await b.getByRole('button', { name: 'Log out' }).click();
  await b.getByRole('heading', { name: 'Log in to Sori' }).waitFor();
  await audit(b, 'login');
  seen.logged_out = await b.evaluate(() => localStorage.getItem('sori.session') === null);
  await b.getByLabel('Handle').fill(bHandle);
  await b.getByLabel('Password').fill('correct horse battery');
  await b.getByRole('button', { name: 'Log in' }).click();
  await b.locator('article.post', { hasText: 'Morning hello from Ana' }).waitFor();
  seen.logged_back_in = true;

  // A turns private; B, no longer following, asks; A approves from the notifications.
  await go(a, 'Ana Kim');
  await a.getByLabel('Private account: I approve my followers').check();
  await a.getByRole('button', { name: 'Save profile' }).click();
  await a.getByText('Profile saved.').waitFor();
  await b.locator('article.post', { hasText: 'Morning hello from Ana' }).getByRole('link', { name: /Ana Kim/ }).first().click();
  await b.getByText('private account').waitFor();
  await b.getByRole('button', { name: 'Unfollow' }).click();
  await b.getByRole('button', { name: 'Ask to follow' }).click();
  await b.getByRole('button', { name: 'Requested (cancel)' }).waitFor();
  await go(a, 'Notifications');
  const request = a.locator('.notices li', { hasText: 'asks to follow you' }).first();
  await audit(a, 'follow request');
  await request.getByRole('button', { name: 'Approve' }).click();
  await request.getByText('Approved.').waitFor();
  await b.reload();
  await b.getByRole('button', { name: 'Unfollow' }).waitFor();
  seen.follow_request_approved = true;

  // A keeps likes in her notifications but stops their pushes; it holds after a reload.
  await go(a, 'Ana Kim');
  await a.getByLabel('Likes: pushed to my phone').uncheck();
  await a.getByRole('button', { name: 'Save notification settings' }).click();
  await a.getByText('Notification settings saved.').waitFor();
  await audit(a, 'notification settings');
  await a.screenshot({ path: join(shots, 'settings.png'), fullPage: true });
  await a.reload();
  await a.getByLabel('Likes: in my notifications').waitFor();
  seen.like_switches_after_reload = [
    await a.getByLabel('Likes: in my notifications').isChecked(),
    await a.getByLabel('Likes: pushed to my phone').isChecked(),
    await a.getByLabel('Comments: pushed to my phone').isChecked(),
  ];

  // A fixes her caption and lets only her followers hear the post.
  await go(a, 'Feed');
  const mine = a.locator('article.post', { hasText: 'Morning hello from Ana' }).first();
  await mine.getByRole('button', { name: 'Edit' }).click();
  await mine.getByLabel('Caption').fill('Morning hello from Ana, fixed');
  await mine.getByLabel('Who hears it').selectOption('followers');
  await audit(a, 'edit post');
  await mine.getByRole('button', { name: 'Save changes' }).click();
  const edited = a.locator('article.post', { hasText: 'Morning hello from Ana, fixed' }).first();
  await edited.locator('.edited').waitFor();
  seen.post_after_edit = await edited.locator('header').textContent();
  await a.screenshot({ path: join(shots, 'edited.png') });

  console.log(JSON.stringify(seen));
} catch (e) {
  console.error(`web app path failed: ${e.stack || e}\nseen so far: ${JSON.stringify(seen)}`);
  exitCode = 1;
} finally {
  await browser.close();
}
process.exit(exitCode);
