// Sori's service worker: keeps the app shell (this version's assets and the
// page) for offline starts. Assets are cached by their content-hash path,
// so a new version never mixes with an old one; the API, media and uploads
// always go to the network.
const VERSION = '{{VERSION}}';
const SHELL = ['/', '/manifest.webmanifest', {{SHELL}}];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(VERSION).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== VERSION).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== location.origin) return;
  if (url.pathname.startsWith('/app/')) {
    event.respondWith(caches.match(event.request).then((hit) => hit || fetch(event.request)));
  } else if (url.pathname === '/') {
    // The page: fresh when online, the cached one offline.
    event.respondWith(fetch(event.request).catch(() => caches.match('/')));
  }
});
