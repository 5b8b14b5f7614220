import type { TabProps } from "./network";

export function WorkloadsTab(_: TabProps) {
  return <p class="muted">Loading…</p>;
}
