// Settings tab (spec settings_tab): policies (who can run what) with their stored tests, mobile safety defaults, credit
// rates, scheduling, invites/approvals, key rotation and security (API keys, audit log). Admins edit; members read.
import { fromJsonString, toJsonString } from "@bufbuild/protobuf";
import {
  AuditAction,
  AuditExportFormat,
  MemberApprovalMode,
  MobileContributionPolicy,
  PolicyEffect,
  PolicySchema,
  ThermalState,
  Tier,
} from "@meshai/client";
import type { ApiKey, AuditEvent, CreateApiKeyResponse, EvaluatePolicyResponse, Network, Policy, PolicyQuery, RotateNetworkKeysResponse } from "@meshai/client";
import { useEffect, useState } from "preact/hooks";

import { api } from "../../shared/api";
import { credits, dateTime, roleLabel, sensitivityLabel, thermalLabel, tierLabel, toMicro, workloadLabel } from "../../shared/format";
import { Badge, Button, Card, Confirm, CopyButton, ErrorBanner, Field, Notice, Skeleton, download, useAction, useAsync, DataTable } from "../../shared/ui";
import type { TabProps } from "./network";

const SECTIONS = [
  ["policies", "Policies"],
  ["mobile", "Mobile safety"],
  ["credits", "Credit rates"],
  ["approvals", "Invites and approvals"],
  ["security", "Keys and security"],
  ["audit", "Audit log"],
] as const;

export function SettingsTab(props: TabProps) {
  const network = props.view.network;
  if (!network) return <Skeleton rows={3} />;
  return (
    <div class="settings">
      <nav class="settings-nav" aria-label="Settings sections">
        {SECTIONS.map(([id, label]) => (
          <a key={id} href={`#${id}`}>
            {label}
          </a>
        ))}
      </nav>
      <div class="stack">
        {!props.isAdmin && <Notice>Only admins can change these settings; you see them read-only.</Notice>}
        <PolicySection {...props} />
        <MobileSection {...props} network={network} />
        <CreditSection {...props} />
        <ApprovalSection {...props} network={network} />
        <SecuritySection {...props} network={network} />
        {props.isAdmin && <AuditSection {...props} />}
      </div>
    </div>
  );
}

/** A settings section's save: busy, error, and whether the last save went through. */
type SettingsPatch = NonNullable<Parameters<ReturnType<typeof api>["network"]["updateNetworkSettings"]>[0]["settings"]>;

function useSave() {
  const { busy, error, done, run } = useAction();
  const save = (work: () => Promise<unknown>) => run("save", work);
  return {
    busy: busy !== undefined,
    error,
    saved: done !== undefined,
    run: save,
    /** Writes some network settings: only the fields named in paths change (the server checks them with its one rules path). */
    settings: (networkId: string, settings: SettingsPatch, paths: string[]) => save(() => api().network.updateNetworkSettings({ networkId, settings, updateMask: { paths } })),
  };
}

const effectLabel = (e: PolicyEffect) => (e === PolicyEffect.ALLOW ? "Allow" : e === PolicyEffect.DENY ? "Deny" : "—");
const list = <T,>(values: T[], label: (v: T) => string) => (values.length ? values.map(label).join(", ") : "any");

function describeQuery(q: PolicyQuery | undefined): string {
  if (!q) return "";
  const parts = [workloadLabel[q.workloadClass], `${sensitivityLabel[q.sensitivityTag].toLowerCase()} data`, `by ${roleLabel[q.memberRole].toLowerCase()}`, tierLabel[q.deviceTier]];
  if (q.deviceIsMobile) parts.push("mobile");
  if (q.pinned) parts.push("pinned");
  return parts.join(" · ");
}

interface TestRun {
  name: string;
  expect: PolicyEffect;
  result?: EvaluatePolicyResponse;
  error?: unknown;
}

function PolicySection({ networkId, isAdmin }: TabProps) {
  const stored = useAsync(() => api().policy.getPolicy({ networkId }).then((r) => r.policy), [networkId]);
  const [text, setText] = useState("");
  const [parseError, setParseError] = useState<string>();
  const [tests, setTests] = useState<TestRun[]>();
  const save = useSave();
  useEffect(() => {
    if (stored.data) setText(toJsonString(PolicySchema, stored.data, { prettySpaces: 2 }));
  }, [stored.data]);

  const parse = (): Policy | undefined => {
    try {
      const p = fromJsonString(PolicySchema, text);
      p.networkId = networkId;
      setParseError(undefined);
      return p;
    } catch (e) {
      setParseError(`The policy is not valid JSON for meshai.network.v1.Policy: ${(e as Error).message}`);
      return undefined;
    }
  };

  const runTests = async () => {
    const proposed = parse();
    if (!proposed) return;
    setTests(proposed.tests.map((t) => ({ name: t.name, expect: t.expect })));
    const results = await Promise.all(
      proposed.tests.map(async (t): Promise<TestRun> => {
        try {
          return { name: t.name, expect: t.expect, result: await api().policy.evaluatePolicy({ networkId, ...(t.query ? { query: t.query } : {}), proposedPolicy: proposed }) };
        } catch (error) {
          return { name: t.name, expect: t.expect, error };
        }
      }),
    );
    setTests(results);
  };

  const p = stored.data;
  return (
    <Card title="Policies: who can run what">
      <span id="policies" class="anchor-target" />
      <ErrorBanner error={stored.error} onRetry={stored.reload} />
      {!p ? (
        <Skeleton rows={2} />
      ) : (
        <div class="stack">
          <p class="muted">
            Rules are checked in order; the first that matches decides. No match: <strong>{effectLabel(p.defaultEffect)}</strong>. Version {p.version.toString()}. Every save must pass the stored tests.
          </p>
          <DataTable
            label="Policy rules"
            rows={p.rules}
            rowKey={(r) => r.name}
            columns={[
              { label: "Rule", cell: (r) => r.name },
              { label: "Effect", cell: (r) => <Badge tone={r.effect === PolicyEffect.ALLOW ? "good" : "bad"}>{effectLabel(r.effect)}</Badge> },
              { label: "Workloads", cell: (r) => list(r.workloadClasses, (w) => workloadLabel[w]) },
              { label: "Data", cell: (r) => list(r.sensitivityTags, (s) => sensitivityLabel[s]) },
              { label: "Roles", cell: (r) => list(r.memberRoles, (x) => roleLabel[x]) },
              {
                label: "Devices",
                cell: (r) =>
                  [
                    r.deviceTierMin !== Tier.TIER_UNSPECIFIED ? `≥ ${tierLabel[r.deviceTierMin]}` : "",
                    r.deviceIds.length ? `only ${r.deviceIds.join(", ")}` : "",
                    r.requirePinned ? "pinned" : "",
                    r.mobileStateConstraints ? "mobile limits" : "",
                    r.timeOfDay ? `at ${r.timeOfDay}` : "",
                    r.publicModelsOnly ? "public models" : "",
                  ]
                    .filter(Boolean)
                    .join(" · ") || "any",
              },
            ]}
          />
          <Field label="Policy (JSON)" hint="meshai.network.v1.Policy in proto JSON: rules, tests and the default effect. Tests are assertions every save must pass, like ACL tests.">
            {(id, hint) => <textarea id={id} aria-describedby={hint} class="mono policy-editor" rows={14} spellcheck={false} value={text} readOnly={!isAdmin} onInput={(e) => setText(e.currentTarget.value)} />}
          </Field>
          {parseError && <Notice tone="bad">{parseError}</Notice>}
          <div class="row">
            <Button onClick={runTests}>Run stored tests</Button>
            {isAdmin && (
              <>
                <Button
                  variant="primary"
                  busy={save.busy}
                  onClick={() => {
                    const proposed = parse();
                    if (proposed) void save.run(() => api().policy.updatePolicy({ policy: proposed, expectedVersion: p.version }).then(() => stored.reload()));
                  }}
                >
                  Save policy
                </Button>
                <Button variant="ghost" onClick={() => setText(toJsonString(PolicySchema, p, { prettySpaces: 2 }))}>
                  Discard changes
                </Button>
              </>
            )}
          </div>
          <div data-testid="policy-save" role="status" aria-live="polite">
            <ErrorBanner error={save.error} />
            {save.saved && <Notice tone="good">Saved. Every stored test passed.</Notice>}
          </div>
          {tests && (
            <DataTable
              label="Policy test results"
              rows={tests}
              rowKey={(t) => t.name}
              rowProps={(t) => ({ "data-passed": t.result ? String(t.result.effect === t.expect) : "pending" })}
              columns={[
                {
                  label: "Test",
                  cell: (t) => {
                    const passed = t.result?.effect === t.expect;
                    return (
                      <>
                        {t.result ? <Badge tone={passed ? "good" : "bad"}>{passed ? "pass" : "fail"}</Badge> : <Badge>…</Badge>} {t.name}
                        <div class="muted small">{describeQuery(p.tests.find((x) => x.name === t.name)?.query)}</div>
                      </>
                    );
                  },
                },
                { label: "Expected", cell: (t) => effectLabel(t.expect) },
                { label: "Got", cell: (t) => (t.result ? effectLabel(t.result.effect) : t.error ? "error" : "…") },
                {
                  label: "Decided by",
                  cell: (t) => (
                    <>
                      {t.result ? `${t.result.matchedRule}: ${t.result.reason}` : ""}
                      <ErrorBanner error={t.error} />
                    </>
                  ),
                },
              ]}
            />
          )}
        </div>
      )}
    </Card>
  );
}

function MobileSection({ networkId, isAdmin, network }: TabProps & { network: Network }) {
  const current = network.settings?.mobileSafety;
  const [policy, setPolicy] = useState(current?.mobileContributionPolicy ?? MobileContributionPolicy.CHARGING_AND_WIFI_ONLY);
  const [battery, setBattery] = useState(current?.minBatteryPercent ?? 30);
  const [thermal, setThermal] = useState(current?.maxThermalLevel ?? ThermalState.SERIOUS);
  const save = useSave();
  const labels: Record<number, string> = {
    [MobileContributionPolicy.CHARGING_AND_WIFI_ONLY]: "Only while charging and on Wi-Fi (default)",
    [MobileContributionPolicy.CHARGING_ONLY]: "Only while charging",
    [MobileContributionPolicy.ALWAYS]: "Always",
    [MobileContributionPolicy.NEVER]: "Never",
  };
  return (
    <Card title="Mobile safety defaults">
      <span id="mobile" class="anchor-target" />
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          void save.settings(networkId, { mobileSafety: { mobileContributionPolicy: policy, minBatteryPercent: battery, maxThermalLevel: thermal } }, ["mobile_safety"]);
        }}
      >
        <p class="muted">Phones and tablets in this network contribute only under these conditions; each device enforces them itself.</p>
        <div class="grid-3">
          <Field label="Phones contribute">
            {(id) => (
              <select id={id} disabled={!isAdmin} value={policy} onChange={(e) => setPolicy(Number(e.currentTarget.value))}>
                {Object.entries(labels).map(([v, l]) => (
                  <option key={v} value={v}>
                    {l}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field label="Stop below battery (%)">
            {(id) => <input id={id} type="number" min={0} max={100} disabled={!isAdmin} value={battery} onInput={(e) => setBattery(Number(e.currentTarget.value))} />}
          </Field>
          <Field label="Stop at thermal state">
            {(id) => (
              <select id={id} disabled={!isAdmin} value={thermal} onChange={(e) => setThermal(Number(e.currentTarget.value))}>
                {[ThermalState.FAIR, ThermalState.SERIOUS, ThermalState.CRITICAL].map((t) => (
                  <option key={t} value={t}>
                    {thermalLabel[t]}
                  </option>
                ))}
              </select>
            )}
          </Field>
        </div>
        <ErrorBanner error={save.error} />
        {save.saved && <Notice tone="good">Saved.</Notice>}
        {isAdmin && (
          <div class="row-end">
            <Button type="submit" variant="primary" busy={save.busy}>
              Save mobile defaults
            </Button>
          </div>
        )}
      </form>
    </Card>
  );
}

function CreditSection({ networkId, isAdmin }: TabProps) {
  const rates = useAsync(() => api().ledger.getCreditRates({ networkId }), [networkId]);
  const [edits, setEdits] = useState<Record<number, { earn: string; burn: string }>>({});
  const [multiplier, setMultiplier] = useState("");
  const [granularity, setGranularity] = useState("");
  const save = useSave();
  useEffect(() => {
    if (!rates.data) return;
    setEdits(Object.fromEntries(rates.data.tierRates.map((r) => [r.tier, { earn: credits(r.earnMicroPerMin).replace(/,/g, ""), burn: credits(r.burnMicroPerMin).replace(/,/g, "") }])));
    setMultiplier(String(Number(rates.data.multiplierBps) / 10_000));
    setGranularity(String(rates.data.billingGranularityMs));
  }, [rates.data]);
  const submit = (e: Event) => {
    e.preventDefault();
    void save.run(async () => {
      const tierRates = Object.entries(edits).map(([tier, v]) => ({ tier: Number(tier), earnMicroPerMin: toMicro(v.earn), burnMicroPerMin: toMicro(v.burn) }));
      await api().ledger.updateCreditRates({ networkId, tierRates, multiplierBps: BigInt(Math.round(Number(multiplier) * 10_000)), billingGranularityMs: BigInt(Math.round(Number(granularity))) });
      rates.reload();
    });
  };
  return (
    <Card title="Credit rates">
      <span id="credits" class="anchor-target" />
      <ErrorBanner error={rates.error} onRetry={rates.reload} />
      {!rates.data ? (
        <Skeleton rows={2} />
      ) : (
        <form class="stack" onSubmit={submit}>
          <p class="muted">Credits per minute of work by tier: devices earn, jobs burn. Runtime is rounded up to the billing granularity; the multiplier scales every rate.</p>
          <DataTable
            label="Credit rates per tier"
            rows={rates.data.tierRates}
            rowKey={(r) => r.tier}
            columns={[
              { label: "Tier", cell: (r) => tierLabel[r.tier] },
              {
                label: "Earn / min",
                cell: (r) => <input aria-label={`Earn per minute, ${tierLabel[r.tier]}`} inputMode="decimal" disabled={!isAdmin} value={edits[r.tier]?.earn ?? ""} onInput={(e) => setEdits({ ...edits, [r.tier]: { ...edits[r.tier]!, earn: e.currentTarget.value } })} />,
              },
              {
                label: "Burn / min",
                cell: (r) => <input aria-label={`Burn per minute, ${tierLabel[r.tier]}`} inputMode="decimal" disabled={!isAdmin} value={edits[r.tier]?.burn ?? ""} onInput={(e) => setEdits({ ...edits, [r.tier]: { ...edits[r.tier]!, burn: e.currentTarget.value } })} />,
              },
            ]}
          />
          <div class="grid-2">
            <Field label="Multiplier" hint="1 = the spec's rates.">
              {(id, hint) => <input id={id} aria-describedby={hint} inputMode="decimal" disabled={!isAdmin} value={multiplier} onInput={(e) => setMultiplier(e.currentTarget.value)} />}
            </Field>
            <Field label="Billing granularity (ms)" hint="Runtime is rounded up to this.">
              {(id, hint) => <input id={id} aria-describedby={hint} inputMode="numeric" disabled={!isAdmin} value={granularity} onInput={(e) => setGranularity(e.currentTarget.value)} />}
            </Field>
          </div>
          <ErrorBanner error={save.error} />
          {save.saved && <Notice tone="good">Rates saved.</Notice>}
          {isAdmin && (
            <div class="row-end">
              <Button type="submit" variant="primary" busy={save.busy}>
                Save rates
              </Button>
            </div>
          )}
        </form>
      )}
    </Card>
  );
}

function ApprovalSection({ networkId, isAdmin, network }: TabProps & { network: Network }) {
  const s = network.settings;
  const [mode, setMode] = useState(s?.memberApprovalMode || MemberApprovalMode.ADMIN_APPROVES_NEW_MEMBERS);
  const [allow, setAllow] = useState((s?.autoApproveAllowlist ?? []).join("\n"));
  const save = useSave();
  return (
    <Card title="Invites and approvals">
      <span id="approvals" class="anchor-target" />
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          void save.settings(networkId, { memberApprovalMode: mode, autoApproveAllowlist: allow.split(/\s+/).filter(Boolean) }, ["member_approval_mode", "auto_approve_allowlist"]);
        }}
      >
        <p class="muted">
          Email and username invites admit the invitee directly. People who join by a share link wait for an admin (Members tab) unless their address or domain is on the allowlist below.
        </p>
        <Field label="New members from share links">
          {(id) => (
            <select id={id} disabled={!isAdmin} value={mode} onChange={(e) => setMode(Number(e.currentTarget.value))}>
              <option value={MemberApprovalMode.ADMIN_APPROVES_NEW_MEMBERS}>An admin approves each one (default)</option>
              <option value={MemberApprovalMode.AUTO_APPROVE_DOMAIN_OR_ALLOWLIST}>Approve listed domains and addresses automatically</option>
            </select>
          )}
        </Field>
        {mode === MemberApprovalMode.AUTO_APPROVE_DOMAIN_OR_ALLOWLIST && (
          <Field label="Allowlist" hint="One per line: example.com, @example.com or alex@example.com.">
            {(id, hint) => <textarea id={id} aria-describedby={hint} rows={3} disabled={!isAdmin} value={allow} onInput={(e) => setAllow(e.currentTarget.value)} />}
          </Field>
        )}
        <ErrorBanner error={save.error} />
        {save.saved && <Notice tone="good">Saved.</Notice>}
        {isAdmin && (
          <div class="row-end">
            <Button type="submit" variant="primary" busy={save.busy}>
              Save approvals
            </Button>
          </div>
        )}
      </form>
    </Card>
  );
}

function SecuritySection({ networkId, isAdmin, network }: TabProps & { network: Network }) {
  const [rotating, setRotating] = useState(false);
  const [rotated, setRotated] = useState<RotateNetworkKeysResponse>();
  const [days, setDays] = useState(String(network.settings?.keyRotationDays ?? 0));
  const save = useSave();
  const keys = useAsync(() => api().identity.listApiKeys({ networkId }).then((r) => r.apiKeys), [networkId]);
  return (
    <Card title="Keys and security">
      <span id="security" class="anchor-target" />
      <div class="stack">
        <dl class="facts facts-2">
          <div>
            <dt>Certificate authority key</dt>
            <dd class="mono" data-testid="ca-key-id">
              {network.caKeyId}
            </dd>
          </div>
          <div>
            <dt>Control signing key</dt>
            <dd class="mono" data-testid="control-key-id">
              {network.controlKeyId}
            </dd>
          </div>
        </dl>
        <p class="muted">
          Each network has its own CA (signs device certificates) and control key (signs job placements and the recipient lists this dashboard encrypts to). Rotating makes new keys; the old ones keep verifying during a grace window and online devices are re-issued on their next connection.
        </p>
        {rotated && (
          <Notice tone="good">
            New keys {rotated.newCaKeyId} and {rotated.newSigningKeyId}; the old ones stop verifying after {dateTime(rotated.graceEndTime)}.
          </Notice>
        )}
        {isAdmin && (
          <form
            class="row"
            onSubmit={(e) => {
              e.preventDefault();
              void save.settings(networkId, { keyRotationDays: Number(days) }, ["key_rotation_days"]);
            }}
          >
            <Field label="Rotate automatically every (days, 0 = never)">
              {(id) => <input id={id} type="number" min={0} max={3650} value={days} onInput={(e) => setDays(e.currentTarget.value)} />}
            </Field>
            <Button type="submit" busy={save.busy}>
              Save period
            </Button>
            <Button variant="danger" onClick={() => setRotating(true)}>
              Rotate keys now
            </Button>
          </form>
        )}
        <ErrorBanner error={save.error} />
        <Confirm
          open={rotating}
          title="Rotate this network's keys?"
          confirm="Rotate keys"
          onClose={() => setRotating(false)}
          onConfirm={async () => setRotated(await api().network.rotateNetworkKeys({ networkId }))}
        >
          <p>New CA and control keys are created now. Devices keep working; they receive certificates from the new CA on their next connection.</p>
        </Confirm>
        <ApiKeys networkId={networkId} keys={keys.data} error={keys.error} reload={keys.reload} />
      </div>
    </Card>
  );
}

function ApiKeys({ networkId, keys, error, reload }: { networkId: string; keys: ApiKey[] | undefined; error: unknown; reload: () => void }) {
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<string[]>(["jobs"]);
  const [created, setCreated] = useState<CreateApiKeyResponse>();
  const [revoking, setRevoking] = useState<ApiKey>();
  const save = useSave();
  const active = (keys ?? []).filter((k) => !k.revoked);
  return (
    <div class="stack">
      <h3>API keys</h3>
      <p class="muted">For the SDKs and scripts: a key acts as you, in this network only, for the scopes you choose.</p>
      <ErrorBanner error={error} onRetry={reload} />
      {active.length > 0 && (
        <ul class="list" aria-label="API keys">
          {active.map((k) => (
            <li key={k.apiKeyId} class="list-row">
              <div>
                <strong>{k.name}</strong> <span class="mono small">{k.prefix}…</span>
                <div class="muted small">
                  {k.scopes.join(", ")} · created {dateTime(k.createTime)}
                </div>
              </div>
              <Button variant="danger" onClick={() => setRevoking(k)} aria-label={`Revoke API key ${k.name}`}>
                Revoke
              </Button>
            </li>
          ))}
        </ul>
      )}
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          void save.run(async () => {
            setCreated(await api().identity.createApiKey({ networkId, name: name.trim(), scopes }));
            setName("");
            reload();
          });
        }}
      >
        <div class="grid-2">
          <Field label="Key name">{(id) => <input id={id} required maxLength={100} value={name} onInput={(e) => setName(e.currentTarget.value)} placeholder="ci pipeline" />}</Field>
          <fieldset class="checks inline-checks">
            <legend>Scopes</legend>
            {["jobs", "devices:read", "ledger:read"].map((s) => (
              <label key={s} class="check">
                <input type="checkbox" checked={scopes.includes(s)} onChange={(e) => setScopes(e.currentTarget.checked ? [...scopes, s] : scopes.filter((x) => x !== s))} />
                {s}
              </label>
            ))}
          </fieldset>
        </div>
        <ErrorBanner error={save.error} />
        {created && (
          <Notice tone="good">
            <div class="stack">
              <span>Key created. Copy the secret now; it is not shown again.</span>
              <div class="row">
                <input readOnly class="mono" aria-label="API key secret" value={created.secret} onFocus={(e) => e.currentTarget.select()} />
                <CopyButton text={created.secret} />
              </div>
            </div>
          </Notice>
        )}
        <div class="row-end">
          <Button type="submit" busy={save.busy}>
            Create API key
          </Button>
        </div>
      </form>
      <Confirm open={!!revoking} title={`Revoke ${revoking?.name ?? "key"}?`} confirm="Revoke key" onClose={() => setRevoking(undefined)} onConfirm={() => api().identity.revokeApiKey({ apiKeyId: revoking!.apiKeyId }).then(reload)}>
        <p>Calls with this key fail from now on.</p>
      </Confirm>
    </div>
  );
}

const actionLabel = (a: AuditAction) => (AuditAction[a] ?? "event").toLowerCase().replace(/_/g, " ");

function AuditSection({ networkId, view }: TabProps) {
  const [events, setEvents] = useState<AuditEvent[]>([]);
  const [next, setNext] = useState<string | undefined>("");
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const load = async (pageToken: string, reset = false) => {
    setBusy(true);
    try {
      const page = await api().audit.listAuditEvents({ networkId, pageSize: 50, pageToken });
      setEvents((e) => (reset ? page.events : [...e, ...page.events]));
      setNext(page.nextPageToken || undefined);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  useEffect(() => void load("", true), [networkId]);
  const who = (id: string) => view.members.get(id)?.email ?? id;
  const exportAs = async (format: AuditExportFormat) => {
    const parts: Uint8Array<ArrayBuffer>[] = [];
    try {
      for await (const chunk of api().audit.exportAuditEvents({ networkId, format })) parts.push(new Uint8Array(chunk.data));
      download(parts, `audit-${networkId}.${format === AuditExportFormat.CSV ? "csv" : "jsonl"}`, format === AuditExportFormat.CSV ? "text/csv" : "application/x-ndjson");
    } catch (e) {
      setError(e);
    }
  };
  return (
    <Card
      title="Audit log"
      actions={
        <>
          <Button onClick={() => exportAs(AuditExportFormat.JSONL)}>Export JSONL</Button>
          <Button onClick={() => exportAs(AuditExportFormat.CSV)}>Export CSV</Button>
        </>
      }
    >
      <span id="audit" class="anchor-target" />
      <ErrorBanner error={error} />
      <DataTable
        label="Audit events"
        rows={events}
        rowKey={(e) => e.eventId}
        columns={[
          { label: "When", cell: (e) => dateTime(e.time) },
          { label: "Action", cell: (e) => <Badge>{actionLabel(e.action)}</Badge> },
          { label: "Who", cell: (e) => who(e.actorUserId) },
          { label: "Target", cellClass: "mono small", cell: (e) => e.target || "—" },
          { label: "Details", cellClass: "small", cell: (e) => Object.entries(e.details).map(([k, v]) => `${k}=${v}`).join(" · ") || "—" },
        ]}
      />
      {next && (
        <Button busy={busy} onClick={() => load(next)}>
          Load older events
        </Button>
      )}
    </Card>
  );
}
