// The network list (spec ux.screens.network_list: networks, online device count, credit balance summary) and the
// create-network flow (spec create_network: name, visibility, billing_mode, with the signup defaults shown).
import { BillingMode, NetworkVisibility } from "@meshai/client";
import type { Network } from "@meshai/client";
import { useEffect, useState } from "preact/hooks";

import { api } from "../../shared/api";
import { credits, roleLabel } from "../../shared/format";
import { Link, navigate } from "../../shared/router";
import { Badge, Button, Dialog, Dot, Empty, ErrorBanner, Field, Skeleton, useAsync } from "../../shared/ui";

const REFRESH_MS = 5000;

export function NetworksPage() {
  const list = useAsync(() => api().network.listNetworks({ pageSize: 100 }).then((r) => r.networks), []);
  const [creating, setCreating] = useState(false);
  useEffect(() => {
    const t = setInterval(() => document.visibilityState === "visible" && list.reload(), REFRESH_MS);
    return () => clearInterval(t);
  }, [list.reload]);

  return (
    <main class="page">
      <div class="page-head">
        <div>
          <h1>Networks</h1>
          <p class="muted">Private meshes of your devices. Jobs never leave the network they run in.</p>
        </div>
        <Button variant="primary" onClick={() => setCreating(true)}>
          Create network
        </Button>
      </div>
      <ErrorBanner error={list.error} onRetry={list.reload} />
      {!list.data ? (
        list.loading && <Skeleton rows={3} />
      ) : list.data.length === 0 ? (
        <Empty
          title="No networks yet"
          action={
            <Button variant="primary" onClick={() => setCreating(true)}>
              Create your first network
            </Button>
          }
        >
          A network is a trust boundary: its devices, members, policies and credits belong to it alone. Create one, then add a device with a link or QR code.
        </Empty>
      ) : (
        <ul class="network-grid" aria-label="Your networks">
          {list.data.map((n) => (
            <NetworkCard key={n.networkId} network={n} />
          ))}
        </ul>
      )}
      <CreateNetworkDialog open={creating} onClose={() => setCreating(false)} />
    </main>
  );
}

function NetworkCard({ network: n }: { network: Network }) {
  const summary = n.creditBalanceSummary;
  const pool = n.settings?.credits?.sharedPoolEnabled ?? true;
  return (
    <li class="card network-card">
      <Link href={`/networks/${n.networkId}/devices`} class="network-link">
        <span class="network-name">{n.name}</span>
        <Badge>{roleLabel[n.callerRole]}</Badge>
      </Link>
      <dl class="facts">
        <div>
          <dt>Online devices</dt>
          <dd data-testid="online-count">
            <Dot tone={n.onlineDevicesCount > 0 ? "good" : "neutral"} /> {n.onlineDevicesCount}
          </dd>
        </div>
        <div>
          <dt>{pool ? "Shared pool" : "Your balance"}</dt>
          <dd>{credits(pool ? summary?.poolBalanceMicro : summary?.callerBalanceMicro)} credits</dd>
        </div>
        <div>
          <dt>Minted / burned</dt>
          <dd>
            {credits(summary?.mintedTotalMicro)} / {credits(summary?.burnedTotalMicro)}
          </dd>
        </div>
      </dl>
    </li>
  );
}

function CreateNetworkDialog({ open, onClose }: { open: boolean; onClose: () => void }) {
  const [name, setName] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const res = await api().network.createNetwork({ name: name.trim(), visibility: NetworkVisibility.PRIVATE, billingMode: BillingMode.CREDITS_INTERNAL });
      onClose();
      setName("");
      navigate(`/networks/${res.network!.networkId}/devices`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={open} title="Create a network" onClose={onClose}>
      <form class="stack" onSubmit={submit}>
        <Field label="Name" hint="Shown to everyone you invite. You can have several networks (home lab, team, family).">
          {(id, hint) => <input id={id} aria-describedby={hint} required maxLength={64} value={name} onInput={(e) => setName(e.currentTarget.value)} placeholder="Home lab" />}
        </Field>
        <div class="grid-2">
          <Field label="Visibility" hint="Only private networks exist in v1.">
            {(id, hint) => (
              <select id={id} aria-describedby={hint} value="private" required>
                <option value="private">Private</option>
              </select>
            )}
          </Field>
          <Field label="Billing" hint="Devices earn credits, jobs burn them.">
            {(id, hint) => (
              <select id={id} aria-describedby={hint} value="credits_internal" required>
                <option value="credits_internal">Internal credits</option>
              </select>
            )}
          </Field>
        </div>
        <details class="defaults">
          <summary>Defaults applied to the new network</summary>
          <ul>
            <li>You are its admin; the default policies apply (sensitive data admin-only or on pinned devices, no sensitive data on phones, guests public only).</li>
            <li>Phones contribute only while charging and on Wi-Fi; they stop on heat and low battery.</li>
            <li>Privacy: private network only. Workloads visible to members. Devices discovered through the control plane.</li>
            <li>New members wait for an admin's approval. A starting grant of credits goes to the shared pool.</li>
          </ul>
        </details>
        <ErrorBanner error={error} />
        <div class="row-end">
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" busy={busy}>
            Create network
          </Button>
        </div>
      </form>
    </Dialog>
  );
}
