// What both browser scripts share: Debian's Chromium (never a download),
// playwright-core, and the launch options with a fake microphone.

import { existsSync } from 'node:fs';

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

/** Launch options: headless, the fake microphone playing `wav`, autoplay allowed. */
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
      `--use-file-for-fake-audio-capture=${wav}`,
      '--autoplay-policy=no-user-gesture-required',
    ],
  };
}
