// The in-call level meter: how loud the far end (rx) and we (tx) are, from the core's
// `call_level` events. The bars are updated in place, so the panel is not rebuilt five times a second.
import { h } from "./dom";
import { t } from "./i18n";
import type { CallLevelEvent } from "./types";

/** The quietest level the bars show: -60 dBFS is an empty bar, 0 dBFS a full one. */
const FLOOR_DBFS = -60;

/** A level in dBFS as a bar width in whole percent, 0..100. */
export function levelPercent(dbfs: number): number {
  if (!Number.isFinite(dbfs)) return 0;
  const pct = ((dbfs - FLOOR_DBFS) / -FLOOR_DBFS) * 100;
  return Math.round(Math.min(100, Math.max(0, pct)));
}

function setBar(meter: HTMLElement | null, dbfs: number | null): void {
  if (!meter) return;
  const pct = dbfs === null ? 0 : levelPercent(dbfs);
  meter.setAttribute("aria-valuenow", String(pct));
  meter.dataset.dbfs = dbfs === null ? "" : dbfs.toFixed(1);
  const fill = meter.querySelector<HTMLElement>(".level-fill");
  // Through the CSSOM: the content security policy refuses inline style attributes.
  if (fill) fill.style.width = `${pct}%`;
}

function bar(id: string, label: string, cls: string): HTMLElement {
  return h(
    "div",
    { class: `level-row ${cls}` },
    h("span", { class: "level-label", "aria-hidden": "true" }, label),
    h(
      "div",
      { id, class: "level", role: "meter", "aria-label": label, "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0 },
      h("div", { class: "level-fill" }),
    ),
  );
}

/** The two bars of a call, showing `level` (the call's last `call_level` event) if there is one. */
export function renderLevels(level: CallLevelEvent | null): HTMLElement {
  const el = h("div", { id: "call-levels", class: "levels" }, bar("level-rx", t("call.level.rx"), "level-rx"), bar("level-tx", t("call.level.tx"), "level-tx"));
  showLevel(el, level);
  return el;
}

/** Shows `level` in the bars under `root`, when they belong to its call (or clears them for null). */
export function showLevel(root: ParentNode, level: CallLevelEvent | null): void {
  const panel = root.querySelector<HTMLElement>("#in-call");
  if (level && panel && panel.dataset.callId !== level.call_id) return;
  setBar(root.querySelector<HTMLElement>("#level-rx"), level?.rx_dbfs ?? null);
  setBar(root.querySelector<HTMLElement>("#level-tx"), level?.tx_dbfs ?? null);
}
