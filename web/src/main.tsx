import { render } from "preact";

import { App } from "./views/App";
import { applyPickedTheme } from "./theme";
import "./styles.css";

applyPickedTheme();
render(<App />, document.getElementById("app")!);
