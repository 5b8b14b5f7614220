import { render } from "preact";

import "../shared/styles.css";
import "./contribute.css";
import { ContributeApp } from "./app";
import { Contributor } from "./engine";

const contributor = new Contributor();
render(<ContributeApp contributor={contributor} />, document.getElementById("app")!);
void contributor.start();

// Installable to the home screen: the service worker caches the page's shell only (never the API, jobs or models).
if ("serviceWorker" in navigator) {
  void navigator.serviceWorker.register("/contribute-sw.js", { scope: "/contribute" }).catch(() => undefined);
}
