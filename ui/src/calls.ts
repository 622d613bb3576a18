// The live call on screen: the in-call panel (or the idle card when there is none) and the
// incoming-call popup (a call waiting over another call in a corner, not over the screen). Both
// only show what `calls_list` says; the buttons send commands.
import { elapsed, parseRemote, partyText, type Party } from "./call-format";
import { h } from "./dom";
import {
  aiHasCall,
  handoffButton,
  handoffCancelButton,
  renderAiNote,
  renderHandoffNotice,
  renderTranscript,
  type HandoffNotice,
  type HandoffPhase,
  type TranscriptLine,
} from "./handoff";
import { t, tCode } from "./i18n";
import { dtmfKey, flashKey, renderCallKeypad, renderDtmf, type DtmfDigits } from "./keypad";
import { renderLevels } from "./levels";
import { renderQuality } from "./quality";
import { renderTransferPanel, renderTransferStatus, transferButton, type TransferUi } from "./transfer";
import type { ApiError, CallLevelEvent, CallStatsEvent, CallView } from "./types";

/** A call waiting for the agent to answer or reject it. */
export function isRinging(c: CallView): boolean {
  return c.direction === "in" && (c.state === "incoming" || c.state === "ringing");
}

export interface CallActions {
  answer(callId: string): void;
  reject(callId: string): void;
  hangup(callId: string): void;
  mute(callId: string, on: boolean): void;
  hold(callId: string): void;
  resume(callId: string): void;
  dtmf(callId: string, digits: string): void;
  /** Holds the active call and resumes the held one. */
  swap(): void;
  /** Hands a connected call to the AI voice agent. */
  handoff(callId: string): void;
  /** Takes a call back from the AI voice agent. */
  takeBack(callId: string): void;
  /** Stops a handoff whose agent is still opening. */
  cancelHandoff(callId: string): void;
  /** Closes the notice that a call came back from the AI by itself. */
  closeHandoffNotice(callId: string): void;
}

/** What the card shows of the AI handoff: who has the call, why it came back, the transcript so far. */
export interface HandoffUi {
  phase: HandoffPhase;
  notice: HandoffNotice | null;
  lines: TranscriptLine[];
}

/** A call with a dialog and media: hold, resume, mute and the keypad apply to it. */
export function isConnected(c: CallView): boolean {
  return c.state === "active" || c.state === "held" || c.state === "held_remote";
}

function partyLines(p: Party, nameId: string, uriId: string): HTMLElement[] {
  return [
    h("div", { id: nameId, class: "party-name" }, p.name || p.uri || t("incoming.unknown_caller")),
    h("div", { id: uriId, class: "party-uri" }, p.name ? p.uri : ""),
  ];
}

/** What the card shows of the call's media: the last level and stats events, mute, DTMF digits. */
export interface CallMedia {
  level: CallLevelEvent | null;
  stats: CallStatsEvent | null;
  muted: boolean;
  digits: DtmfDigits;
}

/** The card's own state: whether its keypad is open, and how to open or close it. */
export interface CardUi {
  keypadOpen: boolean;
  toggleKeypad(): void;
}

/**
 * The in-call panel for `call`. The timer element carries its start, and a ticker refreshes its text
 * (it keeps running on hold); the level meter, the quality line, the DTMF digits and the transcript
 * start at what `media` and `ai` hold and are updated in place. Digits typed on the keyboard while
 * the focus is in the card are sent to the call (not those typed into the transfer box). While the
 * AI has the call, the desk's own controls (mute, hold, keypad, transfer) give way to Take back.
 */
export function renderInCall(
  call: CallView,
  line: string,
  media: CallMedia,
  error: ApiError | null,
  act: CallActions,
  ui: CardUi,
  transfer: TransferUi,
  ai: HandoffUi,
): HTMLElement {
  const party = parseRemote(call.remote);
  const since = call.active_since_ms;
  const withAi = aiHasCall(ai.phase);
  // The desk's own controls: not while the AI talks to the caller.
  const connected = isConnected(call) && !withAi;
  const keypad = connected && ui.keypadOpen;
  const send = (digit: string) => act.dtmf(call.call_id, digit);
  const card = h(
    "section",
    {
      id: "in-call",
      class: `card in-call state-${call.state}${keypad ? " keypad-open" : ""}${withAi ? " with-ai" : ""}`,
      "data-call-id": call.call_id,
      // Focusable, so a click anywhere in the card lets the keyboard's digits reach the call.
      tabindex: "-1",
      "aria-label": t("call.title"),
    },
    h(
      "div",
      { class: "in-call-top" },
      h("div", { class: "avatar", "aria-hidden": "true" }, h("span", { class: "icon icon-user" })),
      h("div", { class: "party" }, ...partyLines(party, "call-remote-name", "call-remote-uri")),
      h(
        "div",
        { class: "in-call-clock" },
        h(
          "div",
          { class: "in-call-chips" },
          withAi ? h("span", { id: "call-ai-chip", class: "call-state chip-ai" }, t("handoff.chip")) : null,
          h("span", { id: "call-state", class: `call-state chip-${call.state}` }, tCode("call.state", call.state)),
        ),
        since !== null ? h("span", { id: "call-timer", class: "call-timer", "data-since": since }, elapsed(since)) : null,
      ),
    ),
    ai.notice ? renderHandoffNotice(ai.notice, () => act.closeHandoffNotice(call.call_id)) : null,
    withAi ? renderAiNote() : holdNote(call),
    renderTransferStatus(transfer.last),
    h(
      "div",
      { class: "in-call-body" },
      h(
        "div",
        { class: "in-call-main" },
        renderLevels(media.level),
        h(
          "dl",
          { class: "facts" },
          h("div", {}, h("dt", {}, t("call.via")), h("dd", { id: "call-line" }, line)),
          h("div", {}, h("dt", {}, t("call.codec")), h("dd", { id: "call-codec" }, call.codec ?? t("call.no_codec"))),
          h("div", {}, h("dt", {}, t("call.quality")), renderQuality(media.stats)),
        ),
        connected ? renderDtmf(media.digits) : null,
      ),
      keypad ? renderCallKeypad(send) : null,
    ),
    withAi || ai.lines.length > 0 ? renderTranscript(ai.lines) : null,
    h(
      "div",
      { class: "in-call-bottom" },
      h(
        "div",
        { class: "in-call-tools" },
        connected ? muteButton(call.call_id, media.muted, act) : null,
        connected ? holdButton(call, act) : null,
        connected ? keypadButton(ui) : null,
        connected ? transferButton(transfer) : null,
      ),
      h(
        "div",
        { class: "in-call-actions" },
        withAi || call.state === "active" ? handoffButton(call.call_id, ai.phase, act) : null,
        handoffCancelButton(call.call_id, ai.phase, act),
        h(
          "button",
          { id: "call-hangup", class: "btn btn-hangup", type: "button", onclick: () => act.hangup(call.call_id) },
          h("span", { class: "icon icon-hangup", "aria-hidden": "true" }),
          t("call.hangup"),
        ),
      ),
    ),
    connected && transfer.open ? renderTransferPanel(transfer) : null,
    error ? h("div", { id: "call-error", class: "banner banner-error", role: "alert" }, tCode("call.error", error.code)) : null,
  );
  card.addEventListener("keydown", (ev) => {
    if (!connected || ev.target instanceof HTMLInputElement) return;
    const digit = dtmfKey(ev);
    if (digit === null) return;
    ev.preventDefault();
    flashKey(card, digit);
    send(digit);
  });
  return card;
}

/** Says who holds the call, and what that means for the agent. */
function holdNote(call: CallView): HTMLElement | null {
  if (call.state === "held") {
    return h(
      "div",
      { id: "call-hold-note", class: "hold-note hold-local", role: "status" },
      h("span", { class: "icon icon-pause", "aria-hidden": "true" }),
      t("call.held_note"),
    );
  }
  if (call.state === "held_remote") {
    return h(
      "div",
      { id: "call-held-remote", class: "hold-note hold-remote", role: "status" },
      h("span", { class: "icon icon-pause", "aria-hidden": "true" }),
      h("span", {}, h("strong", {}, t("call.held_remote_title")), " ", t("call.held_remote_note")),
    );
  }
  return null;
}

/** Mute toggles the microphone towards the far end; it shows what the core last reported. */
function muteButton(callId: string, muted: boolean, act: CallActions): HTMLElement {
  return h(
    "button",
    {
      id: "call-mute",
      class: `btn btn-tool btn-mute${muted ? " on" : ""}`,
      type: "button",
      "aria-pressed": muted ? "true" : "false",
      onclick: () => act.mute(callId, !muted),
    },
    h("span", { class: `icon ${muted ? "icon-mic-off" : "icon-mic"}`, "aria-hidden": "true" }),
    t(muted ? "call.unmute" : "call.mute"),
  );
}

/** Hold puts the far end on hold; while we hold it, the same button resumes. */
function holdButton(call: CallView, act: CallActions): HTMLElement {
  const held = call.state === "held";
  return h(
    "button",
    {
      id: "call-hold",
      class: `btn btn-tool btn-hold${held ? " on" : ""}`,
      type: "button",
      "aria-pressed": held ? "true" : "false",
      onclick: () => (held ? act.resume(call.call_id) : act.hold(call.call_id)),
    },
    h("span", { class: `icon ${held ? "icon-play" : "icon-pause"}`, "aria-hidden": "true" }),
    t(held ? "call.resume" : "call.hold"),
  );
}

/** Opens or closes the card's keypad. */
function keypadButton(ui: CardUi): HTMLElement {
  return h(
    "button",
    {
      id: "call-keypad-toggle",
      class: `btn btn-tool btn-keypad${ui.keypadOpen ? " on" : ""}`,
      type: "button",
      "aria-pressed": ui.keypadOpen ? "true" : "false",
      "aria-controls": "call-keypad",
      onclick: () => ui.toggleKeypad(),
    },
    h("span", { class: "icon icon-keypad", "aria-hidden": "true" }),
    t("call.keypad"),
  );
}

/** What the call area shows with no call: ready, or why calls cannot ring. */
export function renderIdle(line: string | null, dnd: boolean): HTMLElement {
  return h(
    "section",
    { id: "call-idle", class: `card call-idle${dnd ? " dnd" : ""}` },
    h("div", { class: "avatar idle", "aria-hidden": "true" }, h("span", { class: `icon ${dnd ? "icon-moon" : "icon-phone"}` })),
    h(
      "div",
      {},
      h("div", { class: "idle-title" }, t("phone.idle")),
      h(
        "div",
        { class: "muted" },
        dnd ? t("dnd.on_hint") : line ? t("phone.idle_hint", { account: line }) : t("phone.idle_no_account"),
      ),
    ),
  );
}

/**
 * The popup for a ringing call: above everything else, or, for a call waiting while `current` is
 * on the card, in a corner that leaves the card usable, saying that answering holds that call.
 */
export function renderIncoming(
  call: CallView,
  line: string,
  error: ApiError | null,
  act: CallActions,
  current: CallView | null = null,
): HTMLElement {
  const party = parseRemote(call.remote);
  const waiting = current !== null;
  const popup = h(
    "section",
    {
      id: "incoming-popup",
      class: `incoming${waiting ? " incoming-waiting" : ""}`,
      role: "alertdialog",
      "aria-labelledby": "incoming-title",
      "data-call-id": call.call_id,
      "data-waiting": waiting ? "true" : "false",
    },
    h("div", { class: "incoming-ring", "aria-hidden": "true" }, h("span", { class: "icon icon-phone" })),
    h("div", { id: "incoming-title", class: "incoming-title" }, t(waiting ? "incoming.waiting_title" : "incoming.title")),
    ...partyLines(party, "incoming-name", "incoming-uri"),
    h("div", { id: "incoming-line", class: "incoming-line muted" }, t("incoming.to", { account: line })),
    current?.state === "active"
      ? h("div", { id: "incoming-waiting-hint", class: "incoming-hint" }, t("incoming.waiting_hint", { party: partyText(current.remote) }))
      : null,
    error ? h("div", { id: "incoming-error", class: "banner banner-error", role: "alert" }, tCode("call.error", error.code)) : null,
    h(
      "div",
      { class: "incoming-actions" },
      h(
        "button",
        { id: "incoming-reject", class: "btn btn-hangup", type: "button", onclick: () => act.reject(call.call_id) },
        h("span", { class: "icon icon-hangup", "aria-hidden": "true" }),
        t("incoming.reject"),
      ),
      h(
        "button",
        { id: "incoming-answer", class: "btn btn-call", type: "button", onclick: () => act.answer(call.call_id) },
        h("span", { class: "icon icon-phone", "aria-hidden": "true" }),
        t("incoming.answer"),
      ),
    ),
  );
  return waiting ? popup : h("div", { class: "overlay incoming-overlay" }, popup);
}
