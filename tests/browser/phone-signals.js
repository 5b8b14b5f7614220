// Init script for the contributor Browser tests (added with context.addInitScript before any page script runs): replaces
// the browser signals the web contributor reads — Battery Status, Network Information (connection type), Compute Pressure
// and Page Visibility — with controllable ones, as a phone would report them. Tests change them with
//   page.evaluate((s) => window.__meshaiSignals.set(s), { charging: false })
// which updates the value AND fires the event a real phone fires (chargingchange, change, visibilitychange, a pressure
// record). Headless Chromium on Linux has no connection type and no battery, so without this the page (correctly) says it
// cannot check those rules.
(() => {
  const state = { level: 0.8, charging: true, type: "wifi", visible: true, pressure: "nominal" };
  const battery = new EventTarget();
  Object.defineProperties(battery, {
    level: { get: () => state.level },
    charging: { get: () => state.charging },
    chargingTime: { get: () => (state.charging ? 0 : Infinity) },
    dischargingTime: { get: () => (state.charging ? Infinity : 3600) },
  });
  Object.defineProperty(Navigator.prototype, "getBattery", { configurable: true, value: () => Promise.resolve(battery) });

  const connection = new EventTarget();
  Object.defineProperties(connection, {
    type: { get: () => state.type },
    effectiveType: { get: () => "4g" },
    downlink: { get: () => 50 },
    rtt: { get: () => 20 },
  });
  Object.defineProperty(Navigator.prototype, "connection", { configurable: true, get: () => connection });

  Object.defineProperty(Document.prototype, "visibilityState", { configurable: true, get: () => (state.visible ? "visible" : "hidden") });
  Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => !state.visible });

  const observers = new Set();
  class PressureObserver {
    constructor(callback) {
      this.callback = callback;
    }
    observe() {
      observers.add(this);
      queueMicrotask(() => this.callback([{ source: "cpu", state: state.pressure, time: performance.now() }], this));
      return Promise.resolve();
    }
    unobserve() {
      observers.delete(this);
    }
    disconnect() {
      observers.delete(this);
    }
  }
  Object.defineProperty(globalThis, "PressureObserver", { configurable: true, writable: true, value: PressureObserver });

  globalThis.__meshaiSignals = {
    get: () => ({ ...state }),
    set(change) {
      const before = { ...state };
      Object.assign(state, change);
      if (before.charging !== state.charging) battery.dispatchEvent(new Event("chargingchange"));
      if (before.level !== state.level) battery.dispatchEvent(new Event("levelchange"));
      if (before.type !== state.type) connection.dispatchEvent(new Event("change"));
      if (before.visible !== state.visible) document.dispatchEvent(new Event("visibilitychange"));
      if (before.pressure !== state.pressure) {
        for (const o of observers) o.callback([{ source: "cpu", state: state.pressure, time: performance.now() }], o);
      }
    },
  };
})();
