// Sign in: magic link (mailed, or in the server's outbox when no SMTP is configured), passkey (WebAuthn), OIDC when the
// server has a provider; and the landing pages a magic link and an OIDC provider send the browser back to.
import { MagicLinkDelivery } from "@meshai/client";
import { useEffect, useState } from "preact/hooks";

import { api } from "../../shared/api";
import { navigate, safeNext } from "../../shared/router";
import { setSessionToken } from "../../shared/session";
import { Button, ErrorBanner, Field, Notice, Spinner, useAction, useAsync } from "../../shared/ui";

const NEXT_KEY = "meshai.next";

export function SignInPage({ next }: { next: string }) {
  const options = useAsync(() => api().identity.getSignInOptions({}), []);
  const [email, setEmail] = useState("");
  const [sent, setSent] = useState<string>();
  const { busy, error, on } = useAction();
  const o = options.data;
  // WebAuthn only works on the relying party's host (or a subdomain): "localhost" when the server's URL is an IP address.
  const host = window.location.hostname;
  const passkeyHere = !o || ((host === o.passkeyRpId || host.endsWith("." + o.passkeyRpId)) && o.passkeyOrigins.includes(window.location.origin));
  const passkeyOrigin = o?.passkeyOrigins.find((x) => new URL(x).hostname === o.passkeyRpId);

  const magic = on("magic", async () => {
    sessionStorage.setItem(NEXT_KEY, next);
    await api().identity.startMagicLink({ email });
    setSent(email);
  });

  const passkey = on("passkey", async () => {
    const begin = await api().identity.beginPasskeyLogin({ email });
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(withoutNulls(JSON.parse(begin.optionsJson)));
    const credential = (await navigator.credentials.get({ publicKey })) as PublicKeyCredential | null;
    if (!credential) throw new Error("No passkey was chosen.");
    const done = await api().identity.finishPasskeyLogin({ ceremonyId: begin.ceremonyId, assertionJson: JSON.stringify(credential.toJSON()), clientName: "dashboard" });
    setSessionToken(done.sessionToken);
    navigate(safeNext(next), { replace: true });
  });

  const oidc = on("oidc", async () => {
    sessionStorage.setItem(NEXT_KEY, next);
    const start = await api().identity.startOidcLogin({ redirectUri: window.location.origin + "/signin/oidc" });
    window.location.assign(start.authorizationUrl);
  });

  return (
    <main class="auth">
      <div class="auth-card">
        <div class="auth-brand">
          <img src="/favicon.svg" alt="" width="40" height="40" />
          <h1>Sign in to MeshAI</h1>
          <p>Your private network of devices for AI jobs.</p>
        </div>
        {sent ? (
          <div class="stack">
            <Notice tone="good">
              <strong>Check {sent}.</strong> Open the link in the mail on this device to finish signing in. It works once and expires in 15 minutes.
            </Notice>
            {o?.magicLinkDelivery === MagicLinkDelivery.OUTBOX && (
              <Notice>This server has no mail server configured: the link is written to its outbox folder (<code>&lt;data-dir&gt;/outbox</code>), or run <code>meshnet auth dashboard</code> in a signed-in terminal for a sign-in link.</Notice>
            )}
            <Button variant="ghost" onClick={() => setSent(undefined)}>
              Use another address
            </Button>
          </div>
        ) : (
          <form class="stack" onSubmit={magic}>
            <Field label="Email address">
              {(id) => <input id={id} type="email" required autoComplete="username webauthn" value={email} onInput={(e) => setEmail(e.currentTarget.value)} placeholder="you@example.com" />}
            </Field>
            <Button type="submit" variant="primary" busy={busy === "magic"}>
              Email me a sign-in link
            </Button>
            <div class="divider">
              <span>or</span>
            </div>
            {passkeyHere ? (
              <Button busy={busy === "passkey"} onClick={passkey}>
                Sign in with a passkey
              </Button>
            ) : (
              <Notice>
                Passkeys of this server belong to <strong>{o?.passkeyRpId}</strong>
                {passkeyOrigin && (
                  <>
                    : <a href={passkeyOrigin + "/signin"}>open the dashboard at {passkeyOrigin}</a> to use one
                  </>
                )}
                .
              </Notice>
            )}
            {o?.oidcEnabled && (
              <Button busy={busy === "oidc"} onClick={oidc}>
                Continue with single sign-on
              </Button>
            )}
          </form>
        )}
        <ErrorBanner error={error ?? options.error} />
      </div>
    </main>
  );
}

/** /signin/magic?token=…&next=…: the server's /auth/magic sends a browser sign-in link here. */
export function MagicLinkLanding({ query }: { query: URLSearchParams }) {
  return (
    <Landing
      exchange={async () => {
        const done = await api().identity.completeMagicLink({ token: query.get("token") ?? "", clientName: "dashboard" });
        return done.sessionToken;
      }}
      next={query.get("next") ?? sessionStorage.getItem(NEXT_KEY)}
    />
  );
}

/** /signin/oidc?code=…&state=…: where the OIDC provider sends the browser back. */
export function OidcLanding({ query }: { query: URLSearchParams }) {
  return (
    <Landing
      exchange={async () => {
        const error = query.get("error");
        if (error) throw new Error(`The sign-in provider refused: ${query.get("error_description") ?? error}`);
        const done = await api().identity.completeOidcLogin({ state: query.get("state") ?? "", code: query.get("code") ?? "", clientName: "dashboard" });
        return done.sessionToken;
      }}
      next={sessionStorage.getItem(NEXT_KEY)}
    />
  );
}

function Landing({ exchange, next }: { exchange: () => Promise<string>; next: string | null }) {
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    exchange().then(
      (token) => {
        sessionStorage.removeItem(NEXT_KEY);
        setSessionToken(token);
        navigate(safeNext(next), { replace: true });
      },
      setError,
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  return (
    <main class="auth">
      <div class="auth-card">
        {error ? (
          <div class="stack">
            <h1>That sign-in link did not work</h1>
            <ErrorBanner error={error} />
            <Button variant="primary" onClick={() => navigate("/signin", { replace: true })}>
              Get a new link
            </Button>
          </div>
        ) : (
          <Spinner label="Signing you in" />
        )}
      </div>
    </main>
  );
}

/** WebIDL turns a JSON null into the string "null" for enum members; drop nulls before parsing. */
export function withoutNulls<T>(value: T): T {
  if (Array.isArray(value)) return value.map(withoutNulls) as T;
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null).map(([k, v]) => [k, withoutNulls(v)])) as T;
  }
  return value;
}
