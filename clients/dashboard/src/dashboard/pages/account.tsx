// The signed-in person: approve a terminal's device-code sign-in (`meshnet auth login`), add a passkey, and see or revoke
// their sessions.
import type { Passkey, User } from "@meshai/client";
import { useState } from "preact/hooks";

import { api } from "../../shared/api";
import { dateTime } from "../../shared/format";
import { Badge, Button, Card, ErrorBanner, Field, Notice, Skeleton, useAction, useAsync } from "../../shared/ui";
import { withoutNulls } from "./signin";

export function AccountPage({ user, code: initialCode }: { user: User; code: string }) {
  const [code, setCode] = useState(initialCode);
  const [approved, setApproved] = useState<string>();
  const { busy, error, on } = useAction();
  const [passkey, setPasskey] = useState<Passkey>();
  const [passkeyName, setPasskeyName] = useState("This browser");
  const sessions = useAsync(() => api().identity.listSessions({}).then((r) => r.sessions), []);

  const approve = on("approve", async () => {
    const userCode = code.trim().toUpperCase();
    await api().identity.approveDeviceLogin({ userCode });
    setApproved(userCode);
    setCode("");
  });

  const addPasskey = on("passkey", async () => {
    const begin = await api().identity.beginPasskeyRegistration({ passkeyName });
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(withoutNulls(JSON.parse(begin.optionsJson)));
    const credential = (await navigator.credentials.create({ publicKey })) as PublicKeyCredential | null;
    if (!credential) throw new Error("No passkey was created.");
    const done = await api().identity.finishPasskeyRegistration({ ceremonyId: begin.ceremonyId, attestationJson: JSON.stringify(credential.toJSON()) });
    if (done.passkey) setPasskey(done.passkey);
  });

  return (
    <main class="page narrow">
      <div class="page-head">
        <div>
          <h1>{user.displayName || user.username}</h1>
          <p class="muted">
            {user.email} · @{user.username} · since {dateTime(user.createTime)}
          </p>
        </div>
      </div>
      <ErrorBanner error={error} />
      <div class="stack">
        <Card title="Approve a terminal sign-in">
          <form class="stack" onSubmit={approve}>
            <p class="muted">
              <code>meshnet auth login</code> shows a code like <code>ABCD-EFGH</code>. Enter it to sign that terminal in as you. Only approve codes you started yourself.
            </p>
            <div class="row">
              <Field label="Code from the terminal">
                {(id) => <input id={id} required value={code} class="mono" autoComplete="off" onInput={(e) => setCode(e.currentTarget.value)} placeholder="ABCD-EFGH" />}
              </Field>
              <Button type="submit" variant="primary" busy={busy === "approve"}>
                Approve sign-in
              </Button>
            </div>
            {approved && <Notice tone="good">Approved {approved}. The terminal finishes signing in within a second.</Notice>}
          </form>
        </Card>
        <Card title="Passkeys">
          <form class="stack" onSubmit={addPasskey}>
            <p class="muted">Sign in with this device's screen lock or a security key instead of a mailed link.</p>
            <div class="row">
              <Field label="Passkey name">{(id) => <input id={id} value={passkeyName} onInput={(e) => setPasskeyName(e.currentTarget.value)} maxLength={100} />}</Field>
              <Button type="submit" busy={busy === "passkey"}>
                Add a passkey
              </Button>
            </div>
            {passkey && (
              <Notice tone="good">
                <span data-testid="passkey-added">Passkey “{passkey.name}” added.</span>
              </Notice>
            )}
          </form>
        </Card>
        <Card title="Sessions">
          <ErrorBanner error={sessions.error} onRetry={sessions.reload} />
          {!sessions.data ? (
            <Skeleton rows={2} />
          ) : (
            <ul class="list" aria-label="Sessions">
              {sessions.data.map((s) => (
                <li key={s.sessionId} class="list-row">
                  <div>
                    <strong>{s.clientName || "session"}</strong> {s.revoked && <Badge tone="bad">revoked</Badge>}
                    <div class="muted small">
                      {s.sessionId} · signed in {dateTime(s.createTime)} · expires {dateTime(s.expireTime)}
                    </div>
                  </div>
                  {!s.revoked && (
                    <Button variant="danger" aria-label={`Revoke session ${s.sessionId}`} onClick={on("revoke", async () => (await api().identity.revokeSession({ sessionId: s.sessionId }), sessions.reload()))}>
                      Revoke
                    </Button>
                  )}
                </li>
              ))}
            </ul>
          )}
        </Card>
      </div>
    </main>
  );
}
