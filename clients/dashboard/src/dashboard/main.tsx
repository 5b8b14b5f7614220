import { render } from "preact";

import "../shared/styles.css";
import { App } from "./app";

render(<App />, document.getElementById("app")!);
