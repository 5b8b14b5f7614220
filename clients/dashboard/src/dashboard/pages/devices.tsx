// Devices tab (spec devices_tab): every device card field, live from WatchNetwork; pin workloads here, disable
// contribution, remove device; and "add device" with the QR code, the invite link and device-code approval.
import { OnlineStatus, WorkloadClass } from "@meshai/client";
import type { CreateJoinTokenResponse, Device } from "@meshai/client";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";

import { api } from "../../shared/api";
import { ago, contributionLabel, dateTime, onlineLabel, platformLabel, runnableWorkloads, thermalLabel, tierLabel, workloadLabel } from "../../shared/format";
import { Badge, Button, Confirm, CopyButton, Dialog, Dot, Empty, ErrorBanner, Field, Notice, useTick } from "../../shared/ui";
import type { TabProps } from "./network";

export function DevicesTab({ networkId, view, isAdmin, user }: TabProps) {
  const [adding, setAdding] = useState(false);
  const now = useTick(5000);
  const devices = [...view.devices.values()].sort((a, b) => Number(b.onlineStatus === OnlineStatus.ONLINE) - Number(a.onlineStatus === OnlineStatus.ONLINE) || a.name.localeCompare(b.name));
  return (
    <>
      <div class="section-head">
        <h2>Devices</h2>
        <Button variant="primary" onClick={() => setAdding(true)}>
          Add device
        </Button>
      </div>
      {devices.length === 0 ? (
        <Empty
          title="No devices in this network yet"
          action={
            <Button variant="primary" onClick={() => setAdding(true)}>
              Add your first device
            </Button>
          }
        >
          Install the agent on a laptop, desktop or GPU box and join it with a link or QR code. It appears here the moment it connects.
        </Empty>
      ) : (
        <ul class="device-grid" aria-label="Devices">
          {devices.map((d) => (
            <DeviceCard key={d.deviceId} device={d} networkId={networkId} canManage={isAdmin || d.ownerUserId === user.userId} now={now} />
          ))}
        </ul>
      )}
      <AddDeviceDialog open={adding} onClose={() => setAdding(false)} networkId={networkId} devices={view.devices} />
    </>
  );
}

const onlineTone = (s: OnlineStatus) => (s === OnlineStatus.ONLINE ? "good" : s === OnlineStatus.REVOKED ? "bad" : "neutral");

function DeviceCard({ device: d, networkId, canManage, now }: { device: Device; networkId: string; canManage: boolean; now: number }) {
  const [pinning, setPinning] = useState(false);
  const [removing, setRemoving] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const caps = d.capabilities;
  const battery = d.batteryStateIfMobile;
  const revoked = d.onlineStatus === OnlineStatus.REVOKED;

  const toggleContribution = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await api().device.updateDevice({ networkId, deviceId: d.deviceId, contributionEnabled: !d.contributionEnabled });
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <li class={`card device-card ${revoked ? "is-revoked" : ""}`} data-device-id={d.deviceId} data-online={onlineLabel[d.onlineStatus]}>
      <header class="device-head">
        <div>
          <h3 class="device-name">{d.name}</h3>
          <div class="muted small">
            {platformLabel[d.platform]}
            {caps?.cpuArch ? ` · ${caps.cpuArch}` : ""}
          </div>
          <div class="muted mono tiny ellipsis" title={d.deviceId}>
            {d.deviceId}
          </div>
        </div>
        <Badge tone={onlineTone(d.onlineStatus)} title={`Last seen ${dateTime(d.lastSeenTime)}`}>
          <Dot tone={onlineTone(d.onlineStatus)} /> <span class="device-status">{onlineLabel[d.onlineStatus]}</span>
        </Badge>
      </header>
      <dl class="facts facts-2">
        <div>
          <dt>Capability</dt>
          <dd>{tierLabel[d.capabilityTier]}</dd>
        </div>
        <div>
          <dt>Latency</dt>
          <dd>{d.onlineStatus === OnlineStatus.ONLINE ? `${d.latencyEstimate} ms` : "—"}</dd>
        </div>
        <div>
          <dt>Battery</dt>
          <dd>{battery ? `${battery.percent}%${battery.charging ? " · charging" : battery.pluggedIn ? " · plugged in" : ""}` : caps?.isMobile ? "Unknown" : "Mains power"}</dd>
        </div>
        <div>
          <dt>Thermal</dt>
          <dd>{d.thermalStateIfAvailable ? thermalLabel[d.thermalStateIfAvailable] : "No sensor"}</dd>
        </div>
        <div>
          <dt>Contribution</dt>
          <dd>
            {contributionLabel[d.contributionMode]} · {d.contributionEnabled ? "on" : "paused"}
          </dd>
        </div>
        <div>
          <dt>Last seen</dt>
          <dd>{d.onlineStatus === OnlineStatus.ONLINE ? "now" : ago(d.lastSeenTime, now)}</dd>
        </div>
      </dl>
      {caps && (
        <p class="muted small">
          {caps.cpuCores} cores · {Math.round(Number(caps.ramMb) / 1024)} GiB RAM{caps.gpuPresent ? ` · GPU ${Math.round(Number(caps.gpuVramMb) / 1024)} GiB` : ""} · runs{" "}
          {caps.workloads.length ? caps.workloads.map((w) => workloadLabel[w]).join(", ") : "no workloads yet"}
        </p>
      )}
      {d.pinnedWorkloads.length > 0 && (
        <div class="chips" aria-label="Pinned workloads">
          {d.pinnedWorkloads.map((w) => (
            <Badge key={w} tone="info">
              Pinned: {workloadLabel[w]}
            </Badge>
          ))}
        </div>
      )}
      <ErrorBanner error={error} />
      {canManage && !revoked && (
        <footer class="card-foot">
          <Button onClick={() => setPinning(true)}>Pin workloads here</Button>
          <Button busy={busy} onClick={toggleContribution}>
            {d.contributionEnabled ? "Disable contribution" : "Enable contribution"}
          </Button>
          <Button variant="danger" onClick={() => setRemoving(true)}>
            Remove
          </Button>
        </footer>
      )}
      <PinDialog open={pinning} onClose={() => setPinning(false)} device={d} networkId={networkId} />
      <Confirm
        open={removing}
        title={`Remove ${d.name}?`}
        confirm="Remove device"
        onClose={() => setRemoving(false)}
        onConfirm={() => api().device.revokeDevice({ networkId, deviceId: d.deviceId, reason: "removed in the dashboard" })}
      >
        <p>Its certificate is revoked and its connection is cut at once. To come back, the device must join again with a new link and be approved.</p>
      </Confirm>
    </li>
  );
}

function PinDialog({ open, onClose, device, networkId }: { open: boolean; onClose: () => void; device: Device; networkId: string }) {
  const [chosen, setChosen] = useState<Set<WorkloadClass>>(new Set(device.pinnedWorkloads));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  // The choice starts from the device's pins each time the dialog opens. The card stays live while it is open (every
  // heartbeat brings a new Device), and that must not undo what the user has ticked before saving.
  const pinned = useRef(device.pinnedWorkloads);
  pinned.current = device.pinnedWorkloads;
  useEffect(() => {
    if (open) setChosen(new Set(pinned.current));
  }, [open]);
  const save = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await api().device.updateDevice(chosen.size ? { networkId, deviceId: device.deviceId, pinnedWorkloads: [...chosen] } : { networkId, deviceId: device.deviceId, clearPinnedWorkloads: true });
      onClose();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog
      open={open}
      title={`Pin workloads to ${device.name}`}
      onClose={onClose}
      footer={
        <>
          <Button onClick={onClose}>Cancel</Button>
          <Button variant="primary" busy={busy} onClick={save}>
            Save
          </Button>
        </>
      }
    >
      <p class="muted">Policies can require pinned devices (e.g. sensitive data only here). A pinned-device job for these workloads may run on this device.</p>
      <fieldset class="checks">
        <legend>Workloads</legend>
        {runnableWorkloads.map((w) => (
          <label key={w} class="check">
            <input
              type="checkbox"
              checked={chosen.has(w)}
              onChange={(e) => {
                const next = new Set(chosen);
                if (e.currentTarget.checked) next.add(w);
                else next.delete(w);
                setChosen(next);
              }}
            />
            {workloadLabel[w]}
          </label>
        ))}
      </fieldset>
      <ErrorBanner error={error} />
    </Dialog>
  );
}

function AddDeviceDialog({ open, onClose, networkId, devices }: { open: boolean; onClose: () => void; networkId: string; devices: Map<string, Device> }) {
  const [mode, setMode] = useState<"link" | "code">("link");
  const [join, setJoin] = useState<CreateJoinTokenResponse>();
  const [qr, setQr] = useState<string>();
  const [error, setError] = useState<unknown>();
  const [code, setCode] = useState("");
  const [approved, setApproved] = useState(false);
  const [busy, setBusy] = useState(false);
  const known = useRef<Set<string>>(new Set());

  useEffect(() => {
    if (!open) return;
    known.current = new Set(devices.keys());
    setJoin(undefined);
    setQr(undefined);
    setError(undefined);
    setApproved(false);
    setCode("");
    api()
      .device.createJoinToken({ networkId, ttlSeconds: 3600, maxUses: 1 })
      .then(async (res) => {
        setJoin(res);
        const QRCode = await import("qrcode");
        const svg = await QRCode.toString(res.joinLink, { type: "svg", margin: 1, errorCorrectionLevel: "M" });
        setQr("data:image/svg+xml;charset=utf-8," + encodeURIComponent(svg));
      }, setError);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [open, networkId]);

  const joined = useMemo(() => [...devices.values()].filter((d) => !known.current.has(d.deviceId)), [devices, open]);

  const approve = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await api().device.approveDevicePairing({ userCode: code.trim().toUpperCase(), networkId });
      setApproved(true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog open={open} title="Add a device" onClose={onClose} wide>
      <div class="segmented" role="tablist" aria-label="How the device joins">
        <button type="button" role="tab" aria-selected={mode === "link"} class={mode === "link" ? "seg seg-on" : "seg"} onClick={() => setMode("link")}>
          QR code or link
        </button>
        <button type="button" role="tab" aria-selected={mode === "code"} class={mode === "code" ? "seg seg-on" : "seg"} onClick={() => setMode("code")}>
          Device code
        </button>
      </div>
      {mode === "link" ? (
        <div class="join">
          <div class="qr">{qr ? <img src={qr} alt="QR code of the join link" width="220" height="220" /> : <div class="skeleton qr-skeleton" />}</div>
          <div class="stack">
            <p>Scan the code with the device, or run this on it (the link works once, for an hour, and pins this server's certificate):</p>
            {join && (
              <>
                <Field label="Join link">{(id) => <input id={id} readOnly value={join.joinLink} class="mono" data-testid="join-link" onFocus={(e) => e.currentTarget.select()} />}</Field>
                <div class="row">
                  <CopyButton text={join.joinLink} label="Copy link" />
                  <CopyButton text={`meshai-agent join '${join.joinLink}' && meshai-agent run`} label="Copy command" />
                </div>
                <pre class="code">meshai-agent join '{join.joinLink}'{"\n"}meshai-agent run</pre>
              </>
            )}
          </div>
        </div>
      ) : (
        <form class="stack" onSubmit={approve}>
          <p>
            On the device run <code>meshai-agent pair --server {window.location.origin}</code>; it shows a short code. Enter it here to let the device into this network.
          </p>
          <Field label="Code shown by the device">
            {(id) => <input id={id} required value={code} onInput={(e) => setCode(e.currentTarget.value)} placeholder="ABCD-EFGH" autoComplete="off" class="mono" />}
          </Field>
          <Button type="submit" variant="primary" busy={busy}>
            Approve device
          </Button>
          {approved && <Notice tone="good">Approved. The device finishes joining by itself and shows up below.</Notice>}
        </form>
      )}
      <ErrorBanner error={error} />
      <div class="join-status" role="status" aria-live="polite">
        {joined.length > 0 ? (
          joined.map((d) => (
            <Notice key={d.deviceId} tone="good">
              <strong>{d.name}</strong> joined and is {onlineLabel[d.onlineStatus].toLowerCase()}.
            </Notice>
          ))
        ) : (
          <p class="muted small">
            <span class="spinner spinner-sm" aria-hidden="true" /> Waiting for the device to connect…
          </p>
        )}
      </div>
    </Dialog>
  );
}
