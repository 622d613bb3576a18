// The keypad layout (the dialer's and the call's), and what the call card shows of DTMF: the
// in-call keypad, the keys typed on the keyboard, and the digits just sent and received (from the
// core's `dtmf` events; updated in place, so the card is not rebuilt for each digit).
import { h } from "./dom";
import { t } from "./i18n";
import type { DtmfEvent } from "./types";

/** The twelve keys: digit, id suffix, and ITU-T E.161's letters (the same in every language). */
export const KEYS: [string, string, string][] = [
  ["1", "one", ""],
  ["2", "two", "ABC"],
  ["3", "three", "DEF"],
  ["4", "four", "GHI"],
  ["5", "five", "JKL"],
  ["6", "six", "MNO"],
  ["7", "seven", "PQRS"],
  ["8", "eight", "TUV"],
  ["9", "nine", "WXYZ"],
  ["*", "star", ""],
  ["0", "zero", "+"],
  ["#", "hash", ""],
];

/** How long a burst of digits stays on the card after its last digit. */
export const TRAIL_MS = 6000;
/** The most digits a trail shows (the latest). */
const TRAIL_MAX = 24;

/** The digit a key press sends as DTMF, or null: 0-9, * and # without modifiers (also the numpad's). */
export function dtmfKey(ev: KeyboardEvent): string | null {
  if (ev.ctrlKey || ev.altKey || ev.metaKey || ev.repeat) return null;
  return /^[0-9*#]$/.test(ev.key) ? ev.key : null;
}

/** The compact keypad of the call card; each key sends its digit to the call. */
export function renderCallKeypad(send: (digit: string) => void): HTMLElement {
  return h(
    "div",
    { id: "call-keypad", class: "keypad keypad-call", role: "group", "aria-label": t("call.keypad") },
    KEYS.map(([key, name, letters]) =>
      h(
        "button",
        { id: `dtmf-key-${name}`, class: "key", type: "button", "data-key": key, onclick: () => send(key) },
        h("span", { class: "key-digit" }, key),
        h("span", { class: "key-letters" }, letters),
      ),
    ),
  );
}

/** Lights the in-call key of `digit` for a moment (a digit typed on the keyboard). */
export function flashKey(root: ParentNode, digit: string): void {
  const key = [...root.querySelectorAll<HTMLElement>("#call-keypad .key")].find((k) => k.dataset.key === digit);
  if (!key) return;
  key.classList.add("pressed");
  setTimeout(() => key.classList.remove("pressed"), 150);
}

/** The digits of one direction's current burst. */
interface Burst {
  digits: string;
  timer: ReturnType<typeof setTimeout> | null;
}

/** What the card shows of a call's DTMF: the latest burst each way ("" once it has faded). */
export interface DtmfDigits {
  out: string;
  in: string;
}

/**
 * The digits sent and received on each live call, from `dtmf` events. A burst fades TRAIL_MS
 * after its last digit; `changed` is told so the card can show it.
 */
export class DtmfTrail {
  private readonly calls = new Map<string, { out: Burst; in: Burst }>();

  constructor(private readonly changed: (callId: string) => void) {}

  add(e: DtmfEvent): void {
    let call = this.calls.get(e.call_id);
    if (!call) {
      call = { out: { digits: "", timer: null }, in: { digits: "", timer: null } };
      this.calls.set(e.call_id, call);
    }
    const burst = call[e.direction];
    burst.digits = (burst.digits + e.digit).slice(-TRAIL_MAX);
    if (burst.timer !== null) clearTimeout(burst.timer);
    burst.timer = setTimeout(() => {
      burst.digits = "";
      burst.timer = null;
      this.changed(e.call_id);
    }, TRAIL_MS);
    this.changed(e.call_id);
  }

  get(callId: string): DtmfDigits {
    const call = this.calls.get(callId);
    return { out: call?.out.digits ?? "", in: call?.in.digits ?? "" };
  }

  /** Drops the calls `live` no longer holds. */
  keep(live: (callId: string) => boolean): void {
    for (const [id, call] of [...this.calls]) {
      if (live(id)) continue;
      for (const b of [call.out, call.in]) if (b.timer !== null) clearTimeout(b.timer);
      this.calls.delete(id);
    }
  }
}

function side(id: string, label: string, cls: string): HTMLElement {
  return h(
    "span",
    { id, class: `dtmf-side ${cls}` },
    h("span", { class: "dtmf-label" }, label),
    h("span", { class: "dtmf-digits mono" }),
  );
}

/** The card's line of digits sent and received, showing `digits`. */
export function renderDtmf(digits: DtmfDigits): HTMLElement {
  const el = h(
    "div",
    { id: "call-dtmf", class: "dtmf", "aria-live": "polite" },
    side("call-dtmf-out", t("call.dtmf.sent"), "dtmf-out"),
    side("call-dtmf-in", t("call.dtmf.received"), "dtmf-in"),
    h("span", { class: "dtmf-hint muted" }, t("call.dtmf.hint")),
  );
  fill(el, digits);
  return el;
}

/** Shows `digits` on the card under `root`, when it shows the call `callId`. */
export function showDtmf(root: ParentNode, callId: string, digits: DtmfDigits): void {
  const panel = root.querySelector<HTMLElement>("#in-call");
  const el = root.querySelector<HTMLElement>("#call-dtmf");
  if (!panel || !el || panel.dataset.callId !== callId) return;
  fill(el, digits);
}

function fill(el: HTMLElement, digits: DtmfDigits): void {
  for (const [dir, text] of [["out", digits.out], ["in", digits.in]] as const) {
    const part = el.querySelector<HTMLElement>(`.dtmf-${dir}`);
    if (!part) continue;
    part.querySelector<HTMLElement>(".dtmf-digits")!.textContent = text;
    part.classList.toggle("hidden", text === "");
  }
  el.classList.toggle("dtmf-empty", digits.out === "" && digits.in === "");
}
