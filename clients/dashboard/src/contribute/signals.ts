// What the browser can tell about the phone, live: Battery Status (charging, level), Network Information (Wi-Fi vs
// cellular), Compute Pressure (thermal/CPU pressure) and Page Visibility. Each API may be missing (Safari and Firefox lack
// most of them; desktop Chromium has no connection type): the field then stays undefined and the contribution rules
// (decideContribution in @meshai/client) treat it as "cannot check" — the safe choice. Also builds the capability report.
import { Platform, ThermalState, WorkloadClass, signalFields } from "@meshai/client";
import type { CapabilityReportSchema, DeviceSignals, InstalledModelSchema } from "@meshai/client";
import type { MessageInitShape } from "@bufbuild/protobuf";

interface BatteryManagerLike extends EventTarget {
  level: number;
  charging: boolean;
}

interface NetworkInformationLike extends EventTarget {
  type?: string;
  downlink?: number;
  rtt?: number;
}

interface PressureRecordLike {
  state: "nominal" | "fair" | "serious" | "critical";
}

interface PressureObserverLike {
  observe(source: "cpu", options?: { sampleInterval?: number }): Promise<void>;
  disconnect(): void;
}

type PressureObserverConstructor = new (callback: (records: PressureRecordLike[]) => void) => PressureObserverLike;

interface NavigatorSignals {
  getBattery?: () => Promise<BatteryManagerLike>;
  connection?: NetworkInformationLike;
  deviceMemory?: number;
  gpu?: { requestAdapter(): Promise<unknown> };
  userAgentData?: { mobile?: boolean; platform?: string; getHighEntropyValues?(hints: string[]): Promise<Record<string, string>> };
}

/** Which of the browser APIs the rules need exist here. */
export interface SignalApis {
  battery: boolean;
  network: boolean;
  pressure: boolean;
  wakeLock: boolean;
}

const pressureStates: Record<PressureRecordLike["state"], ThermalState> = {
  nominal: ThermalState.NOMINAL,
  fair: ThermalState.FAIR,
  serious: ThermalState.SERIOUS,
  critical: ThermalState.CRITICAL,
};

function networkKind(type: string | undefined): DeviceSignals["network"] {
  switch (type) {
    case "wifi":
      return "wifi";
    case "cellular":
      return "cellular";
    case "ethernet":
      return "ethernet";
    case "bluetooth":
    case "wimax":
    case "other":
      return "other";
    default:
      return undefined; // "none", "unknown" or no type at all: the browser does not say
  }
}

/** Watches the signals; calls the listener whenever one changes. */
export class SignalWatcher {
  signals: DeviceSignals = { visible: document.visibilityState === "visible" };
  apis: SignalApis = { battery: false, network: false, pressure: false, wakeLock: "wakeLock" in navigator };
  readonly mobile: boolean;
  private readonly nav = navigator as Navigator & NavigatorSignals;
  private readonly listeners = new Set<() => void>();
  private gpu = false;
  private arch = "";
  private os = "";

  constructor() {
    const ua = navigator.userAgent;
    this.mobile = this.nav.userAgentData?.mobile === true || /Mobi|Android|iPhone|iPad/i.test(ua);
    this.os = this.nav.userAgentData?.platform || (/Android [\d.]+/.exec(ua)?.[0] ?? (/iPhone OS [\d_]+/.exec(ua)?.[0]?.replace(/_/g, ".") ?? navigator.platform));
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  private set(change: Partial<DeviceSignals>): void {
    this.signals = { ...this.signals, ...change };
    this.listeners.forEach((l) => l());
  }

  async start(): Promise<void> {
    document.addEventListener("visibilitychange", () => this.set({ visible: document.visibilityState === "visible" }));

    if (typeof this.nav.getBattery === "function") {
      try {
        const battery = await this.nav.getBattery();
        const read = () => this.set({ battery: { percent: Math.round(battery.level * 100), charging: battery.charging } });
        battery.addEventListener("chargingchange", read);
        battery.addEventListener("levelchange", read);
        this.apis.battery = true;
        read();
      } catch {
        this.apis.battery = false; // blocked by a permissions policy: the rules say "cannot check"
      }
    }

    const connection = this.nav.connection;
    if (connection && "type" in connection) {
      this.apis.network = true;
      const read = () => this.set({ network: networkKind(connection.type) });
      connection.addEventListener("change", read);
      read();
    }

    const Observer = (globalThis as { PressureObserver?: PressureObserverConstructor }).PressureObserver;
    if (Observer) {
      try {
        const observer = new Observer((records) => {
          const last = records.at(-1);
          if (last) this.set({ thermal: pressureStates[last.state] });
        });
        await observer.observe("cpu", { sampleInterval: 2000 });
        this.apis.pressure = true;
      } catch {
        this.apis.pressure = false; // no pressure source on this device
      }
    }

    try {
      this.gpu = Boolean(await this.nav.gpu?.requestAdapter());
    } catch {
      this.gpu = false;
    }
    try {
      this.arch = (await this.nav.userAgentData?.getHighEntropyValues?.(["architecture"]))?.architecture ?? "";
    } catch {
      this.arch = "";
    }
    this.listeners.forEach((l) => l());
  }

  /** The capability report: what the hardware offers and the live state, plus the workloads and models ready here. */
  capabilities(extra: {
    rttMs: number;
    busy: boolean;
    workloads: WorkloadClass[];
    models: MessageInitShape<typeof InstalledModelSchema>[];
  }): MessageInitShape<typeof CapabilityReportSchema> {
    const memory = this.nav.deviceMemory;
    const downlink = this.nav.connection?.downlink;
    return {
      cpuCores: navigator.hardwareConcurrency || 1,
      cpuArch: this.arch,
      ramMb: memory ? BigInt(Math.round(memory * 1024)) : 0n,
      gpuPresent: this.gpu,
      os: this.os,
      platform: Platform.WEB,
      isMobile: this.mobile,
      ...signalFields(this.signals),
      networkRttMs: extra.rttMs,
      downlinkMbps: downlink ? Math.max(1, Math.round(downlink)) : 0,
      idleScore: extra.busy ? 0 : 1,
      workloads: extra.workloads,
      models: extra.models,
    };
  }
}
