import type { TabProps } from "./network";

export function LedgerTab(_: TabProps) {
  return <p class="muted">Loading…</p>;
}
