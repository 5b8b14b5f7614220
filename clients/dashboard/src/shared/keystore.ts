// Key material a page keeps across reloads, in IndexedDB (database "meshai", store "keys"), as raw bytes for the @noble
// primitives of @meshai/client. The dashboard keeps its submitter X25519 key here, so results of jobs submitted earlier
// from this browser can still be opened; a browser device (the contributor page) keeps its device keys the same way.
// Keys never leave the browser; clearing site data forgets them (results sealed to a forgotten key cannot be opened).
import { generateX25519KeyPair, x25519PublicKey } from "@meshai/client";
import type { X25519KeyPair } from "@meshai/client";

const DB = "meshai";
const STORE = "keys";

function openDb(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error("IndexedDB unavailable"));
  });
}

function tx<T>(mode: IDBTransactionMode, run: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  return openDb().then(
    (db) =>
      new Promise<T>((resolve, reject) => {
        const request = run(db.transaction(STORE, mode).objectStore(STORE));
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error ?? new Error("IndexedDB request failed"));
      }).finally(() => db.close()),
  );
}

/** Raw bytes stored under `name`, or undefined. */
export function loadKey(name: string): Promise<Uint8Array | undefined> {
  return tx<unknown>("readonly", (s) => s.get(name)).then((v) => (v instanceof Uint8Array ? v : undefined));
}

/** Stores raw bytes under `name` (replacing what was there). */
export function storeKey(name: string, bytes: Uint8Array): Promise<void> {
  return tx("readwrite", (s) => s.put(bytes, name)).then(() => undefined);
}

/**
 * Any structured-cloneable value stored under `name` (a non-extractable WebCrypto CryptoKey survives here without its
 * private half ever being readable by script), or undefined.
 */
export function loadValue<T>(name: string): Promise<T | undefined> {
  return tx<unknown>("readonly", (s) => s.get(name)).then((v) => (v === undefined ? undefined : (v as T)));
}

/** Stores a structured-cloneable value under `name` (replacing what was there). */
export function storeValue(name: string, value: unknown): Promise<void> {
  return tx("readwrite", (s) => s.put(value, name)).then(() => undefined);
}

/** Forgets the key stored under `name`. */
export function deleteKey(name: string): Promise<void> {
  return tx("readwrite", (s) => s.delete(name)).then(() => undefined);
}

const pending = new Map<string, Promise<X25519KeyPair>>();

/** The X25519 key pair stored under `name`, created (and stored) on first use. */
export function x25519Key(name: string): Promise<X25519KeyPair> {
  let result = pending.get(name);
  if (!result) {
    result = (async () => {
      const stored = await loadKey(name);
      if (stored?.length === 32) {
        return { privateKey: stored, publicKey: x25519PublicKey(stored) };
      }
      const fresh = generateX25519KeyPair();
      await storeKey(name, fresh.privateKey);
      return fresh;
    })();
    pending.set(name, result);
  }
  return result;
}
