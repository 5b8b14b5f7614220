import type { TabProps } from "./network";

export function MembersTab(_: TabProps) {
  return <p class="muted">Loading…</p>;
}
