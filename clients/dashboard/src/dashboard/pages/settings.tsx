import type { TabProps } from "./network";

export function SettingsTab(_: TabProps) {
  return <p class="muted">Loading…</p>;
}
