// The one API client of a page: @meshai/client over gRPC-Web to the origin that served the page, carrying the session.
// A call answered UNAUTHENTICATED (session expired or revoked) signs the page out.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";
import { createMeshClient } from "@meshai/client";
import type { MeshClient } from "@meshai/client";

import { clearSession, sessionToken } from "./session";

const signOutOnUnauthenticated: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } catch (e) {
    if (ConnectError.from(e).code === Code.Unauthenticated && sessionToken()) {
      clearSession();
    }
    throw e;
  }
};

let client: MeshClient | undefined;

/** The page's client (same origin, session token on every call). */
export function api(): MeshClient {
  client ??= createMeshClient({
    baseUrl: window.location.origin,
    token: () => sessionToken(),
    interceptors: [signOutOnUnauthenticated],
  });
  return client;
}
