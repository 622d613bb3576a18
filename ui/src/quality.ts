// The in-call quality line, from the core's `call_stats` events (every 5 s): jitter, loss and the
// jitter buffer's delay. Updated in place, like the level meter, so the panel is not rebuilt.
import { h } from "./dom";
import { currentLang, t } from "./i18n";
import type { CallStatsEvent } from "./types";

function figure(value: number, digits: number): string {
  return value.toLocaleString(currentLang(), { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** The quality text of `stats`; a dash before the first report. */
export function qualityText(stats: CallStatsEvent | null): string {
  if (!stats) return t("call.quality.none");
  return t("call.quality.value", {
    jitter: figure(stats.jitter_ms, 0),
    loss: figure(stats.loss_pct, 1),
    buffer: figure(stats.buffer_ms, 0),
  });
}

/** The `dd` of the quality fact, showing `stats` (the call's last `call_stats` event) if any. */
export function renderQuality(stats: CallStatsEvent | null): HTMLElement {
  const el = h("dd", { id: "call-quality", title: t("call.quality.hint") });
  fill(el, stats);
  return el;
}

/** Shows `stats` in the quality fact under `root`, when it belongs to the call on screen. */
export function showQuality(root: ParentNode, stats: CallStatsEvent): void {
  const panel = root.querySelector<HTMLElement>("#in-call");
  const el = root.querySelector<HTMLElement>("#call-quality");
  if (!panel || !el || panel.dataset.callId !== stats.call_id) return;
  fill(el, stats);
}

function fill(el: HTMLElement, stats: CallStatsEvent | null): void {
  el.textContent = qualityText(stats);
  el.dataset.jitterMs = stats ? String(stats.jitter_ms) : "";
  el.dataset.lossPct = stats ? String(stats.loss_pct) : "";
  el.dataset.bufferMs = stats ? String(stats.buffer_ms) : "";
}
