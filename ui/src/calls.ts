// The live call on screen: the in-call panel (or the idle card when there is none) and the
// incoming-call popup. Both only show what `calls_list` says; the buttons send commands.
import { elapsed, parseRemote, type Party } from "./call-format";
import { h } from "./dom";
import { t, tCode } from "./i18n";
import { renderLevels } from "./levels";
import { renderQuality } from "./quality";
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
}

function partyLines(p: Party, nameId: string, uriId: string): HTMLElement[] {
  return [
    h("div", { id: nameId, class: "party-name" }, p.name || p.uri || t("incoming.unknown_caller")),
    h("div", { id: uriId, class: "party-uri" }, p.name ? p.uri : ""),
  ];
}

/**
 * The in-call panel for `call`. The timer element carries its start, and a ticker refreshes its text;
 * the level meter and the quality line start at the call's last `call_level` and `call_stats` events
 * and are updated in place. `muted` is what the last `mute` event said.
 */
export function renderInCall(
  call: CallView,
  line: string,
  media: { level: CallLevelEvent | null; stats: CallStatsEvent | null; muted: boolean },
  error: ApiError | null,
  act: CallActions,
): HTMLElement {
  const party = parseRemote(call.remote);
  const since = call.active_since_ms;
  return h(
    "section",
    { id: "in-call", class: `card in-call state-${call.state}`, "data-call-id": call.call_id },
    h(
      "div",
      { class: "in-call-top" },
      h("div", { class: "avatar", "aria-hidden": "true" }, h("span", { class: "icon icon-user" })),
      h("div", { class: "party" }, ...partyLines(party, "call-remote-name", "call-remote-uri")),
      h(
        "div",
        { class: "in-call-clock" },
        h("span", { id: "call-state", class: `call-state chip-${call.state}` }, tCode("call.state", call.state)),
        since !== null ? h("span", { id: "call-timer", class: "call-timer", "data-since": since }, elapsed(since)) : null,
      ),
    ),
    renderLevels(media.level),
    h(
      "div",
      { class: "in-call-bottom" },
      h(
        "dl",
        { class: "facts" },
        h("div", {}, h("dt", {}, t("call.via")), h("dd", { id: "call-line" }, line)),
        h("div", {}, h("dt", {}, t("call.codec")), h("dd", { id: "call-codec" }, call.codec ?? t("call.no_codec"))),
        h("div", {}, h("dt", {}, t("call.quality")), renderQuality(media.stats)),
      ),
      h(
        "div",
        { class: "in-call-actions" },
        call.state === "active" ? muteButton(call.call_id, media.muted, act) : null,
        h(
          "button",
          { id: "call-hangup", class: "btn btn-hangup", type: "button", onclick: () => act.hangup(call.call_id) },
          h("span", { class: "icon icon-hangup", "aria-hidden": "true" }),
          t("call.hangup"),
        ),
      ),
    ),
    error ? h("div", { id: "call-error", class: "banner banner-error", role: "alert" }, tCode("call.error", error.code)) : null,
  );
}

/** Mute toggles the microphone towards the far end; it shows what the core last reported. */
function muteButton(callId: string, muted: boolean, act: CallActions): HTMLElement {
  return h(
    "button",
    {
      id: "call-mute",
      class: `btn btn-mute${muted ? " on" : ""}`,
      type: "button",
      "aria-pressed": muted ? "true" : "false",
      onclick: () => act.mute(callId, !muted),
    },
    h("span", { class: `icon ${muted ? "icon-mic-off" : "icon-mic"}`, "aria-hidden": "true" }),
    t(muted ? "call.unmute" : "call.mute"),
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

/** The popup for a ringing call, above everything else. */
export function renderIncoming(call: CallView, line: string, error: ApiError | null, act: CallActions): HTMLElement {
  const party = parseRemote(call.remote);
  return h(
    "div",
    { class: "overlay incoming-overlay" },
    h(
      "section",
      { id: "incoming-popup", class: "incoming", role: "alertdialog", "aria-labelledby": "incoming-title", "data-call-id": call.call_id },
      h("div", { class: "incoming-ring", "aria-hidden": "true" }, h("span", { class: "icon icon-phone" })),
      h("div", { id: "incoming-title", class: "incoming-title" }, t("incoming.title")),
      ...partyLines(party, "incoming-name", "incoming-uri"),
      h("div", { id: "incoming-line", class: "incoming-line muted" }, t("incoming.to", { account: line })),
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
    ),
  );
}
