// /invite?token=…: the link an admin sent. Accepting joins the network (or waits for an admin's approval).
import { MemberState } from "@meshai/client";
import { useState } from "preact/hooks";

import { api } from "../../shared/api";
import { navigate } from "../../shared/router";
import { Button, ErrorBanner, Notice } from "../../shared/ui";

export function InvitePage({ token }: { token: string }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [pending, setPending] = useState(false);
  const accept = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const res = await api().network.acceptInvite({ inviteToken: token });
      if (res.member?.state === MemberState.ACTIVE) navigate(`/networks/${res.member.networkId}/devices`, { replace: true });
      else setPending(true);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="page narrow">
      <div class="card stack">
        <h1>You are invited to a MeshAI network</h1>
        {pending ? (
          <Notice tone="good">Request sent. An admin of the network approves new members; it appears in your network list once they do.</Notice>
        ) : (
          <>
            <p>Joining lets you run workloads on the network's devices and add your own. Only accept invites from people you trust.</p>
            <div class="row">
              <Button variant="primary" busy={busy} onClick={accept} disabled={!token}>
                Accept invite
              </Button>
              <Button onClick={() => navigate("/")}>Not now</Button>
            </div>
          </>
        )}
        <ErrorBanner error={error} />
      </div>
    </main>
  );
}
