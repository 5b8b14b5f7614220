// A network: its live summary and the tabs of spec ux.screens.network_detail (Devices, Members, Workloads, Ledger,
// Settings). One WatchNetwork stream feeds every tab.
import { Role } from "@meshai/client";
import type { User } from "@meshai/client";

import { credits } from "../../shared/format";
import { Link, navigate } from "../../shared/router";
import { Badge, Dot, ErrorBanner, Notice, Skeleton, TabNav } from "../../shared/ui";
import { useNetworkView } from "../live";
import type { LiveStatus, NetworkView } from "../live";
import { DevicesTab } from "./devices";
import { LedgerTab } from "./ledger";
import { MembersTab } from "./members";
import { SettingsTab } from "./settings";
import { WorkloadsTab } from "./workloads";

const TABS = [
  { id: "devices", label: "Devices" },
  { id: "members", label: "Members" },
  { id: "workloads", label: "Workloads" },
  { id: "ledger", label: "Ledger" },
  { id: "settings", label: "Settings" },
] as const;

export interface TabProps {
  networkId: string;
  view: NetworkView;
  isAdmin: boolean;
  user: User;
  item?: string;
}

export function NetworkPage({ networkId, tab, item, user }: { networkId: string; tab: string; item?: string; user: User }) {
  const view = useNetworkView(networkId);
  const network = view.network;
  const isAdmin = network?.callerRole === Role.ADMIN;
  const online = [...view.devices.values()].filter((d) => d.onlineStatus === 1).length;
  const summary = network?.creditBalanceSummary;
  const props: TabProps = { networkId, view, isAdmin, user, ...(item ? { item } : {}) };

  return (
    <main class="page">
      <nav class="crumbs" aria-label="Breadcrumb">
        <Link href="/">Networks</Link>
        <span aria-hidden="true">/</span>
        <span aria-current="page">{network?.name ?? networkId}</span>
      </nav>
      <div class="page-head">
        <div>
          <h1>{network?.name ?? <span class="skeleton skeleton-title" />}</h1>
          <p class="muted summary-line">
            <span>
              <Dot tone={online > 0 ? "good" : "neutral"} /> {online} of {view.devices.size} devices online
            </span>
            {summary && (
              <span>
                {network?.settings?.credits?.sharedPoolEnabled ?? true ? `Pool ${credits(summary.poolBalanceMicro)}` : `Balance ${credits(summary.callerBalanceMicro)}`} credits
              </span>
            )}
          </p>
        </div>
        <LiveIndicator status={view.status} />
      </div>
      <TabNav label="Network sections" current={tab} onNavigate={navigate} items={TABS.map((t) => ({ id: t.id, label: t.label, href: `/networks/${networkId}/${t.id}` }))} />
      {view.status === "reconnecting" && network && (
        <Notice tone="warn">The connection to the server was lost. This page shows what was known a moment ago and reconnects by itself.</Notice>
      )}
      {view.status === "failed" ? (
        <ErrorBanner error={view.error} />
      ) : !network && view.status !== "reconnecting" ? (
        <Skeleton rows={4} />
      ) : (
        <div class="tab-panel">
          {tab === "devices" && <DevicesTab {...props} />}
          {tab === "members" && <MembersTab {...props} />}
          {tab === "workloads" && <WorkloadsTab {...props} />}
          {tab === "ledger" && <LedgerTab {...props} />}
          {tab === "settings" && <SettingsTab {...props} />}
        </div>
      )}
    </main>
  );
}

function LiveIndicator({ status }: { status: LiveStatus }) {
  const text: Record<LiveStatus, string> = { connecting: "Connecting", live: "Live", reconnecting: "Reconnecting…", failed: "Offline" };
  const tone = status === "live" ? "good" : status === "reconnecting" ? "warn" : status === "failed" ? "bad" : "neutral";
  return (
    <div class="live" role="status" aria-live="polite" data-status={status}>
      <Badge tone={tone}>
        <Dot tone={tone} /> {text[status]}
      </Badge>
    </div>
  );
}
