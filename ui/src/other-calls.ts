// The calls beside the one in the call card: a compact row each (a call waiting to be answered,
// a call on hold), with what can be done to it: answer or reject a waiting call, swap to a held
// call, resume it, hang it up. The core decides what these do (answering holds the other call).
import { elapsed, parseRemote } from "./call-format";
import { isRinging, type CallActions } from "./calls";
import { h } from "./dom";
import { t, tCode } from "./i18n";
import type { CallView } from "./types";

/**
 * The calls in a steady order: answered ones by when they were answered, then the rest by id
 * (`calls_list` comes in no particular order).
 */
export function sortCalls(calls: CallView[]): CallView[] {
  const since = (c: CallView) => c.active_since_ms ?? Number.MAX_SAFE_INTEGER;
  return [...calls].sort((a, b) => since(a) - since(b) || a.call_id.localeCompare(b.call_id));
}

/**
 * The call the call card shows: the one being talked on (or placed), else one on hold; a call
 * still ringing never is (it is in the incoming popup, or a waiting row).
 */
export function mainCall(calls: CallView[]): CallView | null {
  const candidates = sortCalls(calls).filter((c) => !isRinging(c));
  return candidates.find((c) => c.state !== "held") ?? candidates[0] ?? null;
}

/** The rows under the call card: every call but `main` (none without a call on the card). */
export function renderOtherCalls(calls: CallView[], main: CallView | null, act: CallActions): HTMLElement | null {
  if (!main) return null;
  const others = sortCalls(calls).filter((c) => c.call_id !== main.call_id);
  if (!others.length) return null;
  return h(
    "section",
    { id: "other-calls", class: "card other-calls", "aria-label": t("other.title") },
    h("div", { class: "other-title" }, t("other.title")),
    others.map((c) => row(c, main, act)),
  );
}

function row(c: CallView, main: CallView, act: CallActions): HTMLElement {
  const party = parseRemote(c.remote);
  const waiting = isRinging(c);
  const state = waiting ? "waiting" : c.state;
  const since = c.active_since_ms;
  return h(
    "div",
    { class: `other-call state-${state}`, "data-call-id": c.call_id, "data-state": c.state },
    h(
      "span",
      { class: `other-icon icon-${state}`, "aria-hidden": "true" },
      h("span", { class: `icon ${c.state === "held" ? "icon-pause" : "icon-phone"}` }),
    ),
    h(
      "div",
      { class: "other-party" },
      h("div", { class: "other-name" }, party.name || party.uri || t("incoming.unknown_caller")),
      party.name ? h("div", { class: "other-uri" }, party.uri) : null,
    ),
    h(
      "span",
      { class: `call-state other-state chip-${state}` },
      waiting ? t("other.waiting") : tCode("call.state", c.state),
    ),
    since !== null ? h("span", { class: "other-timer", "data-since": since }, elapsed(since)) : h("span", { class: "other-timer" }),
    h("div", { class: "other-actions" }, actions(c, main, act)),
  );
}

function actions(c: CallView, main: CallView, act: CallActions): HTMLElement[] {
  if (isRinging(c)) {
    return [
      h(
        "button",
        { class: "btn btn-hangup other-reject", type: "button", onclick: () => act.reject(c.call_id) },
        h("span", { class: "icon icon-hangup", "aria-hidden": "true" }),
        t("incoming.reject"),
      ),
      h(
        "button",
        { class: "btn btn-call other-answer", type: "button", onclick: () => act.answer(c.call_id) },
        h("span", { class: "icon icon-phone", "aria-hidden": "true" }),
        t("other.answer"),
      ),
    ];
  }
  const list: HTMLElement[] = [];
  if (c.state === "held" && main.state === "active") {
    list.push(
      h(
        "button",
        { id: "calls-swap", class: "btn btn-primary other-swap", type: "button", onclick: () => act.swap() },
        h("span", { class: "icon icon-swap", "aria-hidden": "true" }),
        t("call.swap"),
      ),
    );
  } else if (c.state === "held") {
    list.push(
      h(
        "button",
        { class: "btn other-resume", type: "button", onclick: () => act.resume(c.call_id) },
        h("span", { class: "icon icon-play", "aria-hidden": "true" }),
        t("call.resume"),
      ),
    );
  }
  list.push(
    h(
      "button",
      {
        class: "btn other-hangup",
        type: "button",
        title: t("call.hangup"),
        "aria-label": t("call.hangup"),
        onclick: () => act.hangup(c.call_id),
      },
      h("span", { class: "icon icon-hangup", "aria-hidden": "true" }),
    ),
  );
  return list;
}
