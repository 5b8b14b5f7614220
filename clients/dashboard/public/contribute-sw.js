// Service worker of the contributor page (scope /contribute): keeps the page's shell — its HTML and the hashed /assets it
// loads — so the installed app opens without a network. Never caches the API (gRPC-Web calls are POSTs), job data, model
// files (/models/… are verified against the signed manifest and cached by the page itself) or ONNX Runtime's WebAssembly.
const CACHE = "meshai-contribute-shell-v1";

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.add("/contribute")).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("meshai-contribute-shell-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname === "/contribute") {
    // The page: network first (a new version applies at once), the cached shell when offline.
    event.respondWith(
      fetch(request)
        .then((response) => {
          if (response.ok) void caches.open(CACHE).then((cache) => cache.put("/contribute", response.clone()));
          return response;
        })
        .catch(() => caches.match("/contribute").then((cached) => cached ?? Response.error())),
    );
    return;
  }
  if (url.pathname.startsWith("/assets/") && !url.pathname.startsWith("/assets/ort-")) {
    // Hashed, immutable assets: cache first.
    event.respondWith(
      caches.match(request).then(
        (cached) =>
          cached ??
          fetch(request).then((response) => {
            if (response.ok) void caches.open(CACHE).then((cache) => cache.put(request, response.clone()));
            return response;
          }),
      ),
    );
  }
});
