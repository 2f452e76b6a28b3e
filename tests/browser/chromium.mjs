// What both browser scripts share: Debian's Chromium (never a download),
// playwright-core, and the launch options with a fake microphone.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM = process.env.SORI_TEST_CHROMIUM || '/usr/bin/chromium';

/** playwright-core's `chromium`, or exit 2 with what to install. */
export async function loadChromium() {
  if (!existsSync(CHROMIUM)) {
    console.error(`no Chromium at ${CHROMIUM}: run scripts/setup.sh test (apt package chromium)`);
    process.exit(2);
  }
  try {
    return (await import('playwright-core')).chromium;
  } catch (e) {
    console.error(`playwright-core is not installed in tests/browser: run scripts/setup.sh test (${e.message})`);
    process.exit(2);
  }
}

/** Launch options: headless, the fake microphone playing `wav` (if given), autoplay allowed. */
export function launchOptions(wav) {
  return {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      // The machine has no network and no sandboxing support; these keep
      // Chromium from waiting on connections it cannot make.
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      ...(wav ? [`--use-file-for-fake-audio-capture=${wav}`] : []),
      '--autoplay-policy=no-user-gesture-required',
    ],
  };
}

/**
 * Runs in every page: `window.apiCall(api, method, path, token, body)`, a
 * JSON call of the API at `api` as a web app makes it (bearer token, JSON
 * body); the parsed answer, or an error naming the status and body.
 */
function installApiCall() {
  window.apiCall = async (api, method, path, token, body) => {
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const r = await fetch(api + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
}

/**
 * Serves an empty page at `origin` (`http://127.0.0.1:PORT`, an app's own
 * origin, another than the API's) on the listening socket the test handed
 * over as standard input, opens it in Chromium with the fake microphone
 * playing `wav` (or none) and `window.apiCall` installed, runs `use(page)`,
 * prints its answer as one JSON line, and exits: 0, or 1 with the reason on
 * stderr. The test bound the socket before starting Sori, so no other
 * process could take the port meanwhile.
 */
export async function runOnAppPage(origin, wav, use) {
  const chromium = await loadChromium();
  const html = '<!doctype html><meta charset="utf-8"><title>Sori web app</title><body></body>';
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd: 0 }, resolve);
  });
  const profile = mkdtempSync(join(tmpdir(), 'sori-chromium-'));
  const options = { ...launchOptions(wav), acceptDownloads: true };
  const context = await chromium.launchPersistentContext(profile, options);
  let exitCode = 0;
  try {
    await context.addInitScript(installApiCall);
    const page = context.pages()[0] || await context.newPage();
    page.on('console', (m) => console.error(`page: ${m.text()}`));
    await page.goto(`${origin}/`);
    console.log(JSON.stringify(await use(page)));
  } catch (e) {
    console.error(`browser path failed: ${e.stack || e}`);
    exitCode = 1;
  } finally {
    await context.close();
    server.close();
    rmSync(profile, { recursive: true, force: true });
  }
  process.exit(exitCode);
}
