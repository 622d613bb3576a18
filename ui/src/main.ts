import "./styles.css";
import { App } from "./app";
import { TauriBackend } from "./backend-tauri";
import { byId } from "./dom";

void new App(new TauriBackend(), byId("app")).start();
