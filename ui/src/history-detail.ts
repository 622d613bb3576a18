// The details of one call of the history, in a dialog over the Phone screen: when and how it went
// and, for a call the AI assistant had, what it collected (the summary: the reason for calling and
// the details the caller gave) and what was said (caller and assistant lines with their times).
// Opened from the history row; closed with Escape, its buttons or a click beside it. The focus
// stays in it while it is open and goes back to the row after.
//
// The history card is rebuilt whenever the history changes (every call event), so which call is
// open lives here and the card puts the dialog back each time (`renderOpenDetail`), where it was
// scrolled to.
import { clock } from "./call-format";
import { h } from "./dom";
import { currentLang, t, tCode } from "./i18n";
import type { CallRecord, TranscriptLine } from "./types";

/** Whether the AI assistant had the call: it left a transcript or a summary. */
export function aiHandled(r: CallRecord): boolean {
  return r.transcript.length > 0 || (r.summary ?? "").trim() !== "";
}

/** The open dialog: its call (as last read), how to call back, and how far it is scrolled. */
interface OpenDetail {
  record: CallRecord;
  live: boolean;
  callBack: (r: CallRecord) => void;
  scroll: number;
}

let open: OpenDetail | null = null;

const OVERLAY_ID = "history-detail-overlay";
/** What can take the focus inside the dialog, for keeping Tab in it. */
const FOCUSABLE = "button:not([disabled]), [href], input:not([disabled]), select, textarea, [tabindex]:not([tabindex='-1'])";

/** Opens the details of `r` over the screen; the history card `card` holds the dialog. */
export function openDetail(r: CallRecord, live: boolean, callBack: (r: CallRecord) => void, card: Element | null): void {
  document.getElementById(OVERLAY_ID)?.remove();
  open = { record: r, live, callBack, scroll: 0 };
  const overlay = renderDetail(open);
  (card ?? document.body).append(overlay);
  overlay.querySelector<HTMLElement>("#history-detail")?.focus();
}

/** The open dialog again for a rebuilt history card, with the call as `records` now has it. */
export function renderOpenDetail(records: CallRecord[] | null, live: Set<string>): HTMLElement | null {
  if (!open) return null;
  const current = open;
  const now = records?.find((r) => r.id === current.record.id);
  // A call that scrolled out of the list stays readable as it was.
  if (now) current.record = now;
  current.live = live.has(current.record.call_id);
  const overlay = renderDetail(current);
  // The card is put in place right after it is built: then the old scroll position can be set.
  queueMicrotask(() => {
    const body = overlay.querySelector<HTMLElement>("#history-detail-body");
    if (body) body.scrollTop = current.scroll;
  });
  return overlay;
}

/** Closes the dialog; the focus goes back to the call's row. */
export function closeDetail(): void {
  const was = open;
  open = null;
  document.getElementById(OVERLAY_ID)?.remove();
  if (!was) return;
  const row = document.querySelector<HTMLElement>(`.history-row[data-call-id="${CSS.escape(was.record.call_id)}"] .history-open`);
  (row ?? document.querySelector<HTMLElement>("#history-card"))?.focus();
}

function renderDetail(o: OpenDetail): HTMLElement {
  const r = o.record;
  const ai = aiHandled(r);
  const party = r.display_name || r.remote;
  const [dirIcon, dirKey] = r.direction === "out" ? ["out", "history.outgoing"] : r.answered_at || o.live ? ["in", "history.incoming"] : ["missed", "history.missed"];
  const body = h(
    "div",
    { id: "history-detail-body", class: "hd-body", tabindex: "0", role: "region", "aria-labelledby": "history-detail-title" },
    h(
      "dl",
      { id: "history-detail-facts", class: "hd-facts" },
      fact("history.detail.direction", t(dirKey)),
      fact("history.col.started", dateTime(r.started_at)),
      fact("history.col.duration", r.answered_at && r.duration_s !== null ? clock(r.duration_s) : t("history.no_duration")),
      fact("history.col.result", resultText(r, o.live)),
    ),
    ai ? [renderSummary(r.summary), renderLines(r.transcript)] : h("p", { id: "history-detail-no-ai", class: "hd-no-ai muted" }, t("history.detail.no_ai")),
  );
  body.addEventListener("scroll", () => {
    if (open === o) o.scroll = body.scrollTop;
  });
  const dialog = h(
    "section",
    {
      id: "history-detail",
      class: `history-detail${ai ? " with-ai" : ""}`,
      role: "dialog",
      "aria-modal": "true",
      "aria-labelledby": "history-detail-title",
      "aria-describedby": "history-detail-facts",
      tabindex: "-1",
      "data-call-id": r.call_id,
    },
    h(
      "div",
      { class: "hd-head" },
      h("span", { class: `history-icon icon-${dirIcon}`, "aria-hidden": "true" }, h("span", { class: `icon icon-call-${dirIcon}` })),
      h(
        "div",
        { class: "hd-title" },
        h("span", { class: "hd-kicker" }, t("history.detail.title")),
        h("h2", { id: "history-detail-title" }, party),
        r.display_name ? h("span", { class: "hd-uri" }, r.remote) : null,
      ),
      ai ? aiChip("history-detail-ai") : null,
      h(
        "button",
        { id: "history-detail-close", class: "btn hd-close", type: "button", title: t("history.detail.close"), "aria-label": t("history.detail.close"), onclick: closeDetail },
        h("span", { class: "hd-close-x", "aria-hidden": "true" }, "×"),
      ),
    ),
    body,
    h(
      "div",
      { class: "dialog-actions hd-actions" },
      h(
        "button",
        {
          id: "history-detail-callback",
          class: "btn",
          type: "button",
          onclick: () => {
            closeDetail();
            o.callBack(r);
          },
        },
        h("span", { class: "icon icon-phone", "aria-hidden": "true" }),
        t("history.callback"),
      ),
      h("button", { id: "history-detail-done", class: "btn btn-primary", type: "button", onclick: closeDetail }, t("history.detail.close")),
    ),
  );
  const overlay = h("div", { id: OVERLAY_ID, class: "overlay history-detail-overlay" }, dialog);
  // A click beside the dialog closes it (not one that started inside, e.g. selecting text).
  let downOutside = false;
  overlay.addEventListener("mousedown", (ev) => (downOutside = ev.target === overlay));
  overlay.addEventListener("click", (ev) => {
    if (downOutside && ev.target === overlay) closeDetail();
  });
  overlay.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") {
      ev.preventDefault();
      ev.stopPropagation();
      closeDetail();
    } else if (ev.key === "Tab" || ev.code === "Tab") {
      // (Shift+Tab can come as key "Unidentified" from GTK's ISO_Left_Tab; its code is still Tab.)
      keepFocusIn(dialog, ev);
    }
  });
  return overlay;
}

/** Tab and Shift+Tab go round the dialog's controls instead of leaving it. */
function keepFocusIn(dialog: HTMLElement, ev: KeyboardEvent): void {
  const items = [...dialog.querySelectorAll<HTMLElement>(FOCUSABLE)].filter((e) => e.offsetParent !== null);
  if (!items.length) return;
  const first = items[0];
  const last = items[items.length - 1];
  const at = document.activeElement;
  if (ev.shiftKey && (at === first || at === dialog)) {
    ev.preventDefault();
    last.focus();
  } else if (!ev.shiftKey && at === last) {
    ev.preventDefault();
    first.focus();
  }
}

/** The mark of a call the AI assistant had. */
export function aiChip(id?: string): HTMLElement {
  return h(
    "span",
    { id, class: "history-ai", title: t("history.ai_title"), role: "img", "aria-label": t("history.ai_title") },
    h("span", { class: "icon icon-ai", "aria-hidden": "true" }),
    t("history.ai"),
  );
}

function fact(labelKey: string, value: string): HTMLElement {
  return h("div", { class: "hd-fact" }, h("dt", {}, t(labelKey)), h("dd", {}, value));
}

/** What the history row says of how the call ended (the same words as the row's result). */
function resultText(r: CallRecord, live: boolean): string {
  if (r.end_reason === "busy" && r.direction === "in") return t("history.busy_in");
  if (r.end_reason !== null) return tCode("call.reason", r.end_reason);
  return live ? t("history.live") : t("history.interrupted");
}

function dateTime(iso: string): string {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso;
  return new Intl.DateTimeFormat(currentLang(), { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" }).format(when);
}

function timeOfDay(ms: number): string {
  const when = new Date(ms);
  if (Number.isNaN(when.getTime())) return "";
  return new Intl.DateTimeFormat(currentLang(), { hour: "2-digit", minute: "2-digit", second: "2-digit" }).format(when);
}

function isoTime(ms: number): string | null {
  const when = new Date(ms);
  return Number.isNaN(when.getTime()) ? null : when.toISOString();
}

/**
 * The assistant's summary: the core writes it as `; `-separated parts, most of them
 * `name: value` (the reason for calling, the slots it filled), shown one a line.
 */
function renderSummary(summary: string | null): HTMLElement {
  const text = (summary ?? "").trim();
  const parts = text
    .split(/;\s+/)
    .map((p) => p.trim())
    .filter((p) => p !== "");
  return h(
    "section",
    { class: "hd-section hd-summary", "aria-labelledby": "history-detail-summary-title" },
    h("h3", { id: "history-detail-summary-title" }, t("history.detail.summary")),
    parts.length
      ? h(
          "ul",
          { id: "history-detail-summary", class: "hd-summary-list", "data-summary": text },
          parts.map((p) => {
            const m = /^([^:]{1,40}):\s+(.+)$/.exec(p);
            return m
              ? h("li", {}, h("span", { class: "hd-key" }, m[1].replace(/_/g, " ")), h("span", { class: "hd-value" }, m[2]))
              : h("li", {}, h("span", { class: "hd-value" }, p));
          }),
        )
      : h("p", { id: "history-detail-summary", class: "muted", "data-summary": "" }, t("history.detail.no_summary")),
  );
}

/** The saved transcript, oldest line first, each with its time and who said it. */
function renderLines(lines: TranscriptLine[]): HTMLElement {
  return h(
    "section",
    { class: "hd-section hd-transcript", "aria-labelledby": "history-detail-transcript-title" },
    h(
      "h3",
      { id: "history-detail-transcript-title" },
      t("history.detail.transcript"),
      h("span", { class: "hd-count" }, lines.length === 1 ? t("history.detail.one_line") : t("history.detail.lines", { count: lines.length })),
    ),
    lines.length
      ? h(
          "ol",
          { id: "history-detail-lines", class: "hd-lines" },
          lines.map((l) =>
            h(
              "li",
              { class: `hd-line speaker-${l.speaker}`, "data-speaker": l.speaker },
              h("time", { class: "hd-time", datetime: isoTime(l.ts_ms) }, timeOfDay(l.ts_ms)),
              h("span", { class: "transcript-who" }, t(l.speaker === "ai" ? "handoff.transcript.ai" : "handoff.transcript.caller")),
              h("span", { class: "hd-text" }, l.text),
            ),
          ),
        )
      : h("p", { id: "history-detail-lines", class: "muted" }, t("history.detail.no_lines")),
  );
}
