// The AI handoff in the call card: "Hand to AI" while the desk has the call, "Take back" while the
// AI has it (the desk listens, its microphone off to the caller), the live transcript (from the
// core's `transcript` events; updated in place), and the notice that the call came back by itself
// and why (a `handoff` event to `human` with a reason). The core does the handoff; this only shows
// it and sends the commands.
import { h } from "./dom";
import { t, tCode } from "./i18n";
import type { HandoffEvent, TranscriptEvent } from "./types";

/**
 * Who has a call, as far as the UI knows: the desk, the AI, or a command on its way (the button
 * waits for the core's `handoff` event). `cancelling`: the desk stopped a handoff whose agent was
 * still opening (a slow cloud provider); the call never left it.
 */
export type HandoffPhase = "desk" | "handing" | "cancelling" | "ai" | "taking_back";

/** A call that came back from the AI by itself, and why (a `handoff` event's reason). */
export interface HandoffNotice {
  reason: string;
}

/**
 * One line of the transcript: an interim line is replaced by its final one. `desk` lines mark
 * where the call went to the AI and came back (`text` is then the `handoff` event's reason, or
 * `to_ai` / `taken_back`).
 */
export interface TranscriptLine {
  speaker: "caller" | "ai" | "desk";
  text: string;
  final: boolean;
}

/** The most lines kept per call (the oldest go first). */
const MAX_LINES = 200;

/** How the next piece of an agent's reply joins what it said so far ("Hello." + "You are..."). */
function joinPiece(so_far: string, piece: string): string {
  if (!so_far) return piece;
  if (/\s$/.test(so_far) || /^\s/.test(piece)) return so_far + piece;
  return /[.?!,;:…。？！，；：]$/.test(so_far) ? `${so_far} ${piece}` : so_far + piece;
}

/** The transcript of each live call. */
export class TranscriptLog {
  private readonly calls = new Map<string, TranscriptLine[]>();

  /**
   * Adds a `transcript` event: a caller's interim words replace the speaker's open line, an agent's
   * piece is appended to it, and a final text replaces it and closes it.
   */
  add(e: TranscriptEvent): void {
    const lines = this.calls.get(e.call_id) ?? [];
    this.calls.set(e.call_id, lines);
    let open: TranscriptLine | null = null;
    for (let i = lines.length - 1; i >= 0; i--) {
      if (lines[i].speaker !== e.speaker) continue;
      if (!lines[i].final) open = lines[i];
      break;
    }
    if (e.final && e.text.trim() === "") {
      // Nothing was recognised in the end: the interim line goes.
      if (open) lines.splice(lines.indexOf(open), 1);
      return;
    }
    if (open) {
      open.text = e.speaker === "ai" && !e.final ? joinPiece(open.text, e.text) : e.text;
      open.final = e.final;
    } else {
      lines.push({ speaker: e.speaker, text: e.text, final: e.final });
      if (lines.length > MAX_LINES) lines.splice(0, lines.length - MAX_LINES);
    }
  }

  /** Marks where a call with a transcript went to the AI again, or came back (and why). */
  mark(e: HandoffEvent): void {
    const lines = this.calls.get(e.call_id);
    if (!lines?.length) return;
    const text = e.to === "ai" ? "to_ai" : (e.reason ?? "taken_back");
    lines.push({ speaker: "desk", text, final: true });
  }

  get(callId: string): TranscriptLine[] {
    return this.calls.get(callId) ?? [];
  }

  /** Forgets the calls for which `live` is false. */
  keep(live: (callId: string) => boolean): void {
    for (const id of [...this.calls.keys()]) if (!live(id)) this.calls.delete(id);
  }
}

/** What the phase becomes on a `handoff` event. */
export function phaseAfter(e: HandoffEvent): HandoffPhase {
  return e.to === "ai" ? "ai" : "desk";
}

/** True while the AI has the call, or is about to give it back. */
export function aiHasCall(phase: HandoffPhase): boolean {
  return phase === "ai" || phase === "taking_back";
}

/** "Hand to AI" (the desk has the call) or "Take back" (the AI has it); disabled while a command is on its way. */
export function handoffButton(callId: string, phase: HandoffPhase, act: { handoff(id: string): void; takeBack(id: string): void }): HTMLElement {
  if (aiHasCall(phase)) {
    const busy = phase === "taking_back";
    return h(
      "button",
      {
        id: "call-takeback",
        class: "btn btn-tool btn-takeback",
        type: "button",
        disabled: busy,
        onclick: () => act.takeBack(callId),
      },
      h("span", { class: "icon icon-mic", "aria-hidden": "true" }),
      t(busy ? "handoff.taking_back" : "handoff.take_back"),
    );
  }
  const busy = phase === "handing" || phase === "cancelling";
  return h(
    "button",
    {
      id: "call-handoff",
      class: "btn btn-tool btn-handoff",
      type: "button",
      disabled: busy,
      title: t("handoff.hand_hint"),
      onclick: () => act.handoff(callId),
    },
    h("span", { class: "icon icon-ai", "aria-hidden": "true" }),
    t(busy ? "handoff.handing" : "handoff.hand_to_ai"),
  );
}

/**
 * "Cancel" while a handoff waits for the agent to open (a cloud provider may take seconds): the
 * call stays with the desk. Nothing in the other phases.
 */
export function handoffCancelButton(callId: string, phase: HandoffPhase, act: { cancelHandoff(id: string): void }): HTMLElement | null {
  if (phase !== "handing" && phase !== "cancelling") return null;
  return h(
    "button",
    {
      id: "call-handoff-cancel",
      class: "btn btn-tool",
      type: "button",
      disabled: phase === "cancelling",
      title: t("handoff.cancel_hint"),
      onclick: () => act.cancelHandoff(callId),
    },
    t("handoff.cancel"),
  );
}

/** The state line while the AI has the call: who talks, that the desk listens with its microphone off. */
export function renderAiNote(): HTMLElement {
  return h(
    "div",
    { id: "call-ai-note", class: "ai-note", role: "status" },
    h("span", { class: "ai-note-icon", "aria-hidden": "true" }, h("span", { class: "icon icon-ai" })),
    h(
      "div",
      { class: "ai-note-text" },
      h("strong", { id: "call-ai-title" }, t("handoff.ai_title")),
      h("span", { id: "call-ai-listening" }, t("handoff.ai_listening")),
    ),
    h("span", { class: "ai-note-mic", title: t("handoff.mic_off") }, h("span", { class: "icon icon-mic-off", "aria-hidden": "true" }), t("handoff.mic_off")),
  );
}

/** The prominent notice that the call came back by itself, and why. */
export function renderHandoffNotice(notice: HandoffNotice, close: () => void): HTMLElement {
  const failed = notice.reason !== "ai_requested_human";
  const title = notice.reason === "provider_unavailable" ? t("handoff.back.unavailable_title") : t("handoff.back.title");
  return h(
    "div",
    {
      id: "handoff-notice",
      class: `handoff-notice${failed ? " handoff-failed" : ""}`,
      role: "alert",
      "data-reason": notice.reason,
    },
    h("span", { class: "handoff-notice-icon", "aria-hidden": "true" }, h("span", { class: "icon icon-user" })),
    h(
      "div",
      { class: "handoff-notice-text" },
      h("strong", { id: "handoff-notice-title" }, title),
      h("span", { id: "handoff-notice-reason" }, tCode("handoff.reason", notice.reason)),
    ),
    h("button", { id: "handoff-notice-close", class: "btn btn-small", type: "button", onclick: close }, t("device.dismiss")),
  );
}

function lineEl(line: TranscriptLine): HTMLElement {
  if (line.speaker === "desk") {
    const text =
      line.text === "to_ai"
        ? t("handoff.mark.to_ai")
        : line.text === "taken_back"
          ? t("handoff.mark.taken_back")
          : t("handoff.mark.back", { reason: tCode("handoff.reason", line.text) });
    return h("div", { class: "transcript-mark", "data-mark": line.text }, h("span", {}, text));
  }
  return h(
    "div",
    {
      class: `transcript-line speaker-${line.speaker}${line.final ? "" : " interim"}`,
      "data-speaker": line.speaker,
      "data-final": line.final ? "true" : "false",
    },
    h(
      "span",
      { class: "transcript-who" },
      t(line.speaker === "ai" ? "handoff.transcript.ai" : "handoff.transcript.caller"),
    ),
    h("span", { class: "transcript-text" }, line.text),
  );
}

function fillLines(list: HTMLElement, lines: TranscriptLine[]): void {
  list.replaceChildren(
    ...(lines.length ? lines.map(lineEl) : [h("div", { class: "transcript-empty muted" }, t("handoff.transcript.empty"))]),
  );
}

/** The live transcript panel of a call: a scrolling log, newest line at the bottom. */
export function renderTranscript(lines: TranscriptLine[]): HTMLElement {
  const list = h("div", { id: "transcript-lines", class: "transcript-lines", role: "log", "aria-live": "polite", tabindex: "0" });
  fillLines(list, lines);
  // Once the panel is on screen, its latest line is in view.
  requestAnimationFrame(() => {
    list.scrollTop = list.scrollHeight;
  });
  return h(
    "section",
    { id: "call-transcript", class: "transcript", "aria-labelledby": "transcript-title" },
    h(
      "div",
      { class: "transcript-head" },
      h("span", { id: "transcript-title", class: "transcript-title" }, t("handoff.transcript.title")),
      h("span", { id: "transcript-lang", class: "transcript-lang" }, t("handoff.english_only")),
    ),
    list,
  );
}

/**
 * Shows `lines` in the transcript under `root` when it belongs to `callId`; it keeps following the
 * latest line unless the agent scrolled up to read.
 */
export function showTranscript(root: ParentNode, callId: string, lines: TranscriptLine[]): void {
  const panel = root.querySelector<HTMLElement>("#in-call");
  const list = root.querySelector<HTMLElement>("#transcript-lines");
  if (!panel || !list || panel.dataset.callId !== callId) return;
  const following = list.scrollHeight - list.scrollTop - list.clientHeight < 24;
  fillLines(list, lines);
  if (following) list.scrollTop = list.scrollHeight;
}
