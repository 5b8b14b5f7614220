// The live view of one network: WatchNetwork's snapshot, then its deltas applied in serial order. The stream is
// re-opened with backoff when it breaks (server restart, network change) or stays silent past the keepalive, and a gap in
// the serial forces a fresh snapshot. Screens read the state; nothing here polls.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Balances, Device, Job, Member, Network } from "@meshai/client";
import { useEffect, useState } from "preact/hooks";

import { api } from "../shared/api";

export type LiveStatus = "connecting" | "live" | "reconnecting" | "failed";

export interface NetworkView {
  status: LiveStatus;
  /** Set when the stream failed for good (not a member, guest) or while reconnecting. */
  error?: unknown;
  serial: bigint;
  network?: Network;
  devices: Map<string, Device>;
  jobs: Map<string, Job>;
  members: Map<string, Member>;
  balances?: Balances;
  /** Frames received on this page (for tests and the "live" indicator). */
  frames: number;
}

const empty = (): NetworkView => ({ status: "connecting", serial: 0n, devices: new Map(), jobs: new Map(), members: new Map(), frames: 0 });

/** Silence longer than this (the server sends a frame at least every 15 s) means the stream is dead. */
const SILENCE_MS = 40_000;
const BACKOFF_MS = [500, 1000, 2000, 5000, 10_000];

export function useNetworkView(networkId: string): NetworkView {
  const [view, setView] = useState<NetworkView>(empty);

  useEffect(() => {
    let stopped = false;
    let controller: AbortController | undefined;
    let attempt = 0;
    setView(empty());

    const run = async () => {
      while (!stopped) {
        controller = new AbortController();
        let watchdog = setTimeout(() => controller?.abort(), SILENCE_MS);
        let last = 0n;
        try {
          for await (const frame of api().network.watchNetwork({ networkId }, { signal: controller.signal })) {
            clearTimeout(watchdog);
            watchdog = setTimeout(() => controller?.abort(), SILENCE_MS);
            if (!frame.snapshot && frame.serial !== last + 1n) {
              throw new Error(`serial gap (${last} → ${frame.serial}); resubscribing`);
            }
            last = frame.serial;
            attempt = 0;
            setView((v) => {
              const next: NetworkView = frame.snapshot ? { ...empty(), frames: v.frames } : { ...v, devices: new Map(v.devices), jobs: new Map(v.jobs), members: new Map(v.members) };
              next.status = "live";
              next.error = undefined;
              next.serial = frame.serial;
              next.frames = v.frames + 1;
              if (frame.network) next.network = frame.network;
              if (frame.balances) next.balances = frame.balances;
              for (const d of frame.devicesChanged) next.devices.set(d.deviceId, d);
              for (const id of frame.devicesRemoved) next.devices.delete(id);
              for (const m of frame.membersChanged) next.members.set(m.userId, m);
              for (const id of frame.membersRemoved) next.members.delete(id);
              if (frame.jobsChanged.length > 0) {
                // Newest first: merge and re-sort by creation time.
                for (const j of frame.jobsChanged) next.jobs.set(j.jobId, j);
                next.jobs = new Map([...next.jobs.entries()].sort(([, a], [, b]) => Number((b.createTime?.seconds ?? 0n) - (a.createTime?.seconds ?? 0n)) || b.jobId.localeCompare(a.jobId)));
              }
              return next;
            });
          }
          if (stopped) return;
          throw new Error("the stream ended");
        } catch (e) {
          if (stopped) return;
          const code = ConnectError.from(e).code;
          if (code === Code.NotFound || code === Code.PermissionDenied || code === Code.Unauthenticated || code === Code.InvalidArgument) {
            setView((v) => ({ ...v, status: "failed", error: e }));
            return;
          }
          setView((v) => ({ ...v, status: "reconnecting", error: e }));
          await new Promise((r) => setTimeout(r, BACKOFF_MS[Math.min(attempt++, BACKOFF_MS.length - 1)]));
        } finally {
          clearTimeout(watchdog);
        }
      }
    };
    void run();
    return () => {
      stopped = true;
      controller?.abort();
    };
  }, [networkId]);

  return view;
}
