// The signed-in browser session: an opaque bearer token (stored hashed on the server, revocable at once) kept in
// localStorage so a reload stays signed in. Everything the page script can read, an injected script could too: the
// server's Content-Security-Policy (no inline or foreign scripts) is what keeps other scripts out.

const KEY = "meshai.session";
const listeners = new Set<() => void>();

export function sessionToken(): string | undefined {
  try {
    return localStorage.getItem(KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

export function setSessionToken(token: string): void {
  localStorage.setItem(KEY, token);
  listeners.forEach((l) => l());
}

export function clearSession(): void {
  localStorage.removeItem(KEY);
  listeners.forEach((l) => l());
}

/** Calls `listener` when this tab signs in or out (and when another tab does). */
export function onSessionChange(listener: () => void): () => void {
  listeners.add(listener);
  const storage = (e: StorageEvent) => e.key === KEY && listener();
  window.addEventListener("storage", storage);
  return () => {
    listeners.delete(listener);
    window.removeEventListener("storage", storage);
  };
}
